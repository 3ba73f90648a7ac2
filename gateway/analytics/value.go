package analytics

import (
	"math"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// Kind is the type of a Value.
type Kind uint8

// Value kinds. JSON objects and arrays read from records become Str values
// holding their JSON text.
const (
	Null Kind = iota
	Num
	Str
	Bool
)

// Value is a SQL value: NULL, a number (float64, as JSON numbers are), a
// string or a boolean.
type Value struct {
	K Kind
	N float64
	S string
	B bool
}

// numV is a number; NaN and ±Inf (overflow) become NULL, as JSON has no
// such numbers.
func numV(f float64) Value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nullV
	}
	return Value{K: Num, N: f}
}
func strV(s string) Value { return Value{K: Str, S: s} }
func boolV(b bool) Value  { return Value{K: Bool, B: b} }

var nullV = Value{}

// truth is SQL's three-valued truth of a WHERE or HAVING result: only a
// true boolean (or a non-zero number) passes.
func (v Value) truth() bool {
	switch v.K {
	case Bool:
		return v.B
	case Num:
		return v.N != 0
	}
	return false
}

// num returns the value as a number: numbers as they are, booleans as 0/1,
// strings that spell a number (MySQL-style coercion). ok is false otherwise.
func (v Value) num() (float64, bool) {
	switch v.K {
	case Num:
		return v.N, true
	case Bool:
		if v.B {
			return 1, true
		}
		return 0, true
	case Str:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.S), 64)
		return f, err == nil
	}
	return 0, false
}

// compare orders a against b; ok is false when either is NULL or they
// cannot be compared. Numbers compare numerically (a string that spells a
// number compares as one against a number), strings byte-wise.
func compare(a, b Value) (int, bool) {
	if a.K == Null || b.K == Null {
		return 0, false
	}
	if a.K == Str && b.K == Str {
		return strings.Compare(a.S, b.S), true
	}
	x, ok1 := a.num()
	y, ok2 := b.num()
	if !ok1 || !ok2 {
		if a.K == Str || b.K == Str {
			return strings.Compare(a.text(), b.text()), true
		}
		return 0, false
	}
	switch {
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

// text is the value as a string, for string functions and mixed compares.
func (v Value) text() string {
	switch v.K {
	case Str:
		return v.S
	case Num:
		return strconv.FormatFloat(v.N, 'f', -1, 64)
	case Bool:
		if v.B {
			return "true"
		}
		return "false"
	}
	return ""
}

// appendJSON appends the value as JSON. Non-finite numbers become null.
func (v Value) appendJSON(b []byte) []byte {
	switch v.K {
	case Num:
		if math.IsNaN(v.N) || math.IsInf(v.N, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v.N, 'f', -1, 64)
	case Str:
		return appendJSONString(b, v.S)
	case Bool:
		return strconv.AppendBool(b, v.B)
	}
	return append(b, "null"...)
}

// appendKey appends an unambiguous encoding of v for group keys.
func (v Value) appendKey(b []byte) []byte {
	switch v.K {
	case Num:
		b = append(b, 'n')
		b = strconv.AppendFloat(b, v.N, 'g', -1, 64)
	case Str:
		b = append(b, 's')
		b = strconv.AppendInt(b, int64(len(v.S)), 10)
		b = append(b, ':')
		b = append(b, v.S...)
	case Bool:
		if v.B {
			b = append(b, 't')
		} else {
			b = append(b, 'f')
		}
	default:
		b = append(b, 'z')
	}
	return append(b, ';')
}

// fromJSON converts a parsed JSON value; nil (a missing field) is NULL.
func fromJSON(j *fastjson.Value) Value {
	if j == nil {
		return nullV
	}
	switch j.Type() {
	case fastjson.TypeString:
		sb, _ := j.StringBytes()
		return Value{K: Str, S: string(sb)}
	case fastjson.TypeNumber:
		f, err := j.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nullV // e.g. 1e400: not a float64, and not storable as JSON
		}
		return numV(f)
	case fastjson.TypeTrue:
		return boolV(true)
	case fastjson.TypeFalse:
		return boolV(false)
	case fastjson.TypeNull:
		return nullV
	}
	return strV(string(j.MarshalTo(nil)))
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
