package analytics

import (
	"math"
	"regexp"
	"strings"

	"github.com/valyala/fastjson"
)

// evalCtx is what an expression reads: a record's parsed JSON (WHERE,
// GROUP BY keys, aggregate arguments) or a closed window's group (SELECT
// list and HAVING).
type evalCtx struct {
	doc *fastjson.Value
	// Group context.
	keys       []Value
	aggs       []Value
	start, end int64 // window bounds, unix ms
}

// expr is a compiled expression.
type expr interface {
	eval(c *evalCtx) Value
}

// field reads a JSON field by path (nested objects).
type field struct{ path []string }

func (f field) eval(c *evalCtx) Value {
	if c.doc == nil {
		return nullV
	}
	return fromJSON(c.doc.Get(f.path...))
}

type lit struct{ v Value }

func (l lit) eval(*evalCtx) Value { return l.v }

type keyRef int

func (k keyRef) eval(c *evalCtx) Value { return c.keys[k] }

type aggRef int

func (a aggRef) eval(c *evalCtx) Value { return c.aggs[a] }

// winRef is WINDOW_START() (end false) or WINDOW_END() (end true), as an
// RFC 3339 string in UTC with milliseconds.
type winRef struct{ end bool }

func (w winRef) eval(c *evalCtx) Value {
	if w.end {
		return strV(formatMillis(c.end))
	}
	return strV(formatMillis(c.start))
}

type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opNullSafeEq
)

type cmpExpr struct {
	op   cmpOp
	l, r expr
}

func (e cmpExpr) eval(c *evalCtx) Value {
	a, b := e.l.eval(c), e.r.eval(c)
	if e.op == opNullSafeEq {
		if a.K == Null || b.K == Null {
			return boolV(a.K == b.K)
		}
	}
	n, ok := compare(a, b)
	if !ok {
		return nullV
	}
	switch e.op {
	case opEq, opNullSafeEq:
		return boolV(n == 0)
	case opNe:
		return boolV(n != 0)
	case opLt:
		return boolV(n < 0)
	case opLe:
		return boolV(n <= 0)
	case opGt:
		return boolV(n > 0)
	}
	return boolV(n >= 0)
}

type andExpr struct{ l, r expr }

func (e andExpr) eval(c *evalCtx) Value {
	a := e.l.eval(c)
	if a.K != Null && !a.truth() {
		return boolV(false)
	}
	b := e.r.eval(c)
	if b.K != Null && !b.truth() {
		return boolV(false)
	}
	if a.K == Null || b.K == Null {
		return nullV
	}
	return boolV(true)
}

type orExpr struct{ l, r expr }

func (e orExpr) eval(c *evalCtx) Value {
	a := e.l.eval(c)
	if a.truth() {
		return boolV(true)
	}
	b := e.r.eval(c)
	if b.truth() {
		return boolV(true)
	}
	if a.K == Null || b.K == Null {
		return nullV
	}
	return boolV(false)
}

type notExpr struct{ e expr }

func (e notExpr) eval(c *evalCtx) Value {
	v := e.e.eval(c)
	if v.K == Null {
		return nullV
	}
	return boolV(!v.truth())
}

type isNullExpr struct {
	e   expr
	not bool
}

func (e isNullExpr) eval(c *evalCtx) Value {
	return boolV((e.e.eval(c).K == Null) != e.not)
}

type isBoolExpr struct {
	e    expr
	want bool // IS TRUE (true) or IS FALSE (false)
	not  bool
}

func (e isBoolExpr) eval(c *evalCtx) Value {
	v := e.e.eval(c)
	is := v.K != Null && v.truth() == e.want
	return boolV(is != e.not)
}

type inExpr struct {
	e    expr
	list []expr
	not  bool
}

func (e inExpr) eval(c *evalCtx) Value {
	v := e.e.eval(c)
	if v.K == Null {
		return nullV
	}
	sawNull := false
	for _, x := range e.list {
		w := x.eval(c)
		if w.K == Null {
			sawNull = true
			continue
		}
		if n, ok := compare(v, w); ok && n == 0 {
			return boolV(!e.not)
		}
	}
	if sawNull {
		return nullV
	}
	return boolV(e.not)
}

type betweenExpr struct {
	e, lo, hi expr
	not       bool
}

func (e betweenExpr) eval(c *evalCtx) Value {
	v := e.e.eval(c)
	a, ok1 := compare(v, e.lo.eval(c))
	b, ok2 := compare(v, e.hi.eval(c))
	if !ok1 || !ok2 {
		return nullV
	}
	return boolV((a >= 0 && b <= 0) != e.not)
}

// likeExpr matches a SQL LIKE pattern (% and _, backslash escapes),
// compiled once.
type likeExpr struct {
	e   expr
	re  *regexp.Regexp
	not bool
}

func (e likeExpr) eval(c *evalCtx) Value {
	v := e.e.eval(c)
	if v.K == Null {
		return nullV
	}
	return boolV(e.re.MatchString(v.text()) != e.not)
}

func likeRegexp(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for i := 0; i < len(pattern); i++ {
		switch ch := pattern[i]; ch {
		case '%':
			b.WriteString(`.*`)
		case '_':
			b.WriteString(`.`)
		case '\\':
			if i+1 < len(pattern) {
				i++
				b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			}
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	b.WriteString(`$`)
	return regexp.Compile(b.String())
}

type arithExpr struct {
	op   byte // + - * / %
	l, r expr
}

func (e arithExpr) eval(c *evalCtx) Value {
	a, ok1 := e.l.eval(c).num()
	b, ok2 := e.r.eval(c).num()
	if !ok1 || !ok2 {
		return nullV
	}
	switch e.op {
	case '+':
		return numV(a + b)
	case '-':
		return numV(a - b)
	case '*':
		return numV(a * b)
	case '/':
		if b == 0 {
			return nullV
		}
		return numV(a / b)
	}
	if b == 0 {
		return nullV
	}
	return numV(math.Mod(a, b))
}

type negExpr struct{ e expr }

func (e negExpr) eval(c *evalCtx) Value {
	a, ok := e.e.eval(c).num()
	if !ok {
		return nullV
	}
	return numV(-a)
}

// scalarFn is one of the few scalar functions: LOWER, UPPER, COALESCE,
// ABS, ROUND, FLOOR, CEIL, CONCAT.
type scalarFn struct {
	name string
	args []expr
}

func (f scalarFn) eval(c *evalCtx) Value {
	switch f.name {
	case "coalesce":
		for _, a := range f.args {
			if v := a.eval(c); v.K != Null {
				return v
			}
		}
		return nullV
	case "concat":
		var b strings.Builder
		for _, a := range f.args {
			v := a.eval(c)
			if v.K == Null {
				return nullV
			}
			b.WriteString(v.text())
		}
		return strV(b.String())
	}
	v := f.args[0].eval(c)
	if v.K == Null {
		return nullV
	}
	switch f.name {
	case "lower":
		return strV(strings.ToLower(v.text()))
	case "upper":
		return strV(strings.ToUpper(v.text()))
	}
	n, ok := v.num()
	if !ok {
		return nullV
	}
	switch f.name {
	case "abs":
		return numV(math.Abs(n))
	case "floor":
		return numV(math.Floor(n))
	case "ceil", "ceiling":
		return numV(math.Ceil(n))
	case "round":
		digits := 0.0
		if len(f.args) > 1 {
			d, ok := f.args[1].eval(c).num()
			if !ok {
				return nullV
			}
			digits = math.Trunc(d)
		}
		p := math.Pow(10, digits)
		return numV(math.Round(n*p) / p)
	}
	return nullV
}

// scalarArity gives the allowed argument counts of the scalar functions.
var scalarArity = map[string][2]int{
	"lower": {1, 1}, "upper": {1, 1}, "abs": {1, 1}, "floor": {1, 1}, "ceil": {1, 1},
	"ceiling": {1, 1}, "round": {1, 2}, "coalesce": {1, 64}, "concat": {1, 64},
}
