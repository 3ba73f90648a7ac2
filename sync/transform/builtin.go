package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// Field selects one JSON field into the output.
type Field struct {
	// From is the input field, with dots for nesting ("meta.lane").
	From string
	// To is the output name; default From.
	To string
}

// Builtin is the built-in transform for JSON records: it drops the records
// for which DropIf is true and keeps only Fields (renamed), in their order.
// A record that is not a JSON object, or whose condition fails to evaluate
// to a boolean, is ProcessingFailed. A selected field missing from a record
// is left out of the output. Safe for concurrent use once built.
type Builtin struct {
	fields []Field
	drop   *vm.Program
}

// NewBuiltin compiles the condition (an expr-lang expression over the
// record's top-level fields, e.g. `event == "passed" || lane == "9"`; ""
// drops nothing; a missing field is nil; a field named like one of expr's
// builtins is reachable as $env.name, except count and type, which are
// plain fields here) and checks the fields (empty keeps every field).
func NewBuiltin(fields []Field, dropIf string) (*Builtin, error) {
	b := &Builtin{}
	for i, f := range fields {
		if strings.TrimSpace(f.From) == "" {
			return nil, fmt.Errorf("fields[%d].from: must not be empty", i)
		}
		if f.To == "" {
			f.To = f.From
		}
		b.fields = append(b.fields, f)
	}
	if strings.TrimSpace(dropIf) != "" {
		// count and type are field names in the team's formats (GPIO events
		// carry "count"); they shadow expr's builtins of the same names.
		p, err := expr.Compile(dropIf, expr.AsBool(), expr.AllowUndefinedVariables(),
			expr.DisableBuiltin("count"), expr.DisableBuiltin("type"))
		if err != nil {
			return nil, fmt.Errorf("drop_if: %w", err)
		}
		b.drop = p
	}
	return b, nil
}

// Transform implements Transformer; it never returns an error.
func (b *Builtin) Transform(_ context.Context, recs []Record) ([]Result, error) {
	out := make([]Result, len(recs))
	for i, r := range recs {
		out[i] = b.one(r.Data)
	}
	return out, nil
}

func (b *Builtin) one(data []byte) Result {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return Result{Result: ProcessingFailed, Message: "not a JSON object"}
	}
	if b.drop != nil {
		env := make(map[string]any, len(obj))
		for k, v := range obj {
			env[k] = plainNumbers(v)
		}
		v, err := expr.Run(b.drop, env)
		if err != nil {
			return Result{Result: ProcessingFailed, Message: "drop_if: " + err.Error()}
		}
		if drop, _ := v.(bool); drop {
			return Result{Result: Dropped}
		}
	}
	if len(b.fields) == 0 {
		return Result{Result: Ok, Data: data}
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	n := 0
	for _, f := range b.fields {
		v, ok := lookup(obj, f.From)
		if !ok {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		k, _ := json.Marshal(f.To)
		buf.Write(k)
		buf.WriteByte(':')
		val, err := json.Marshal(v)
		if err != nil {
			return Result{Result: ProcessingFailed, Message: err.Error()}
		}
		buf.Write(val)
	}
	buf.WriteByte('}')
	return Result{Result: Ok, Data: buf.Bytes()}
}

func lookup(obj map[string]any, path string) (any, bool) {
	var cur any = obj
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[part]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// plainNumbers turns json.Number into int or float64 for the expression.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
		return x
	}
	return v
}
