package pgsink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kaiten-edge/kaiten/sync/sink"
)

// CodeInvalidRecord is the error output's code for a record that does not
// convert to a row (a missing field, a wrong type, a value over a column's
// limit).
const CodeInvalidRecord = "InvalidRecord"

// selfTypes are the types each of the record's own fields converts to.
var selfTypes = map[string][]string{
	FromPartitionKey:   {TypeString},
	FromSequenceNumber: {TypeString},
	FromArrivalTime:    {TypeTimestamp, TypeBigint, TypeString},
	FromData:           {TypeString, TypeJSONB},
}

// column is a configured column with what the table says of it.
type column struct {
	Column
	path []string
	// maxChars is the table's character limit (varchar(n)); 0 for none.
	maxChars int
}

func newColumns(cols []Column) []column {
	out := make([]column, len(cols))
	for i, c := range cols {
		out[i] = column{Column: c}
		if !strings.HasPrefix(c.From, "$") {
			out[i].path = strings.Split(c.From, ".")
		}
	}
	return out
}

// converter turns records into rows for a batch's columns. It keeps
// scratch space between records: one per batch, not for concurrent use.
type converter struct {
	cols []column
	// top lists the distinct first path segments the columns read; topOf
	// is each column's index into it (-1 for the record's own fields).
	top   []string
	topOf []int
	raws  [][]byte
	seen  []bool
}

func newConverter(cols []column) *converter {
	cv := &converter{cols: cols, topOf: make([]int, len(cols))}
	for i, c := range cols {
		cv.topOf[i] = -1
		if c.path == nil {
			continue
		}
		k := slices.Index(cv.top, c.path[0])
		if k < 0 {
			k = len(cv.top)
			cv.top = append(cv.top, c.path[0])
		}
		cv.topOf[i] = k
	}
	cv.raws = make([][]byte, len(cv.top))
	cv.seen = make([]bool, len(cv.top))
	return cv
}

// row converts r into dst (one value per column), or says why it cannot.
func (cv *converter) row(r *sink.Record, dst []any) error {
	if len(cv.top) > 0 {
		clear(cv.seen)
		err := members(r.Data, cv.top, func(k int, raw []byte) { cv.raws[k], cv.seen[k] = raw, true })
		if err != nil {
			return fmt.Errorf("record is %w", err)
		}
	}
	for i, c := range cv.cols {
		var v any
		var err error
		if k := cv.topOf[i]; k < 0 {
			v, err = convertSelf(c, r)
		} else {
			var raw []byte
			if cv.seen[k] {
				raw, err = lookup(cv.raws[k], c.path[1:])
			}
			if err == nil {
				v, err = convertJSON(c, raw)
			}
		}
		if err != nil {
			return fmt.Errorf("column %s (from %s): %w", c.Name, c.From, err)
		}
		dst[i] = v
	}
	return nil
}

// lookup follows path into the JSON value raw; nil when a segment is
// missing or raw is not an object there.
func lookup(raw []byte, path []string) ([]byte, error) {
	for _, seg := range path {
		if len(raw) == 0 || raw[0] != '{' {
			return nil, nil
		}
		var next []byte
		if err := members(raw, []string{seg}, func(_ int, v []byte) { next = v }); err != nil {
			return nil, fmt.Errorf("at %s: %w", seg, err)
		}
		raw = next
	}
	return raw, nil
}

// rowSource feeds a batch's records to CopyFrom, converting each as it
// goes: a record that does not convert is noted in failed and skipped.
// CopyFrom encodes a row before it asks for the next, so one row slice
// serves them all.
type rowSource struct {
	cv     *converter
	recs   []sink.Record
	next   int
	row    []any
	failed map[int]sink.RecordError
}

func (s *rowSource) Next() bool {
	for s.next < len(s.recs) {
		i := s.next
		s.next++
		if err := s.cv.row(&s.recs[i], s.row); err != nil {
			s.failed[i] = sink.RecordError{Code: CodeInvalidRecord, Message: err.Error()}
			continue
		}
		return true
	}
	return false
}

func (s *rowSource) Values() ([]any, error) { return s.row, nil }
func (s *rowSource) Err() error             { return nil }

func convertSelf(c column, r *sink.Record) (any, error) {
	switch c.From {
	case FromPartitionKey:
		return c.text(r.PartitionKey)
	case FromSequenceNumber:
		return c.text(r.SequenceNumber)
	case FromArrivalTime:
		switch c.Type {
		case TypeBigint:
			return r.ArrivalTime.UnixMilli(), nil
		case TypeString:
			return c.text(r.ArrivalTime.UTC().Format(time.RFC3339Nano))
		}
		return r.ArrivalTime, nil
	case FromData:
		if c.Type == TypeJSONB {
			if !json.Valid(r.Data) {
				return nil, fmt.Errorf("the record is not JSON")
			}
			return json.RawMessage(r.Data), nil
		}
		return c.text(string(r.Data))
	}
	return nil, fmt.Errorf("unknown record field %s", c.From)
}

// text checks a string against what PostgreSQL text takes and the
// column's limit.
func (c column) text(s string) (any, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("not valid UTF-8 text")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fmt.Errorf("text holds a NUL character, which PostgreSQL text cannot")
	}
	if c.maxChars > 0 {
		if n := utf8.RuneCountInString(s); n > c.maxChars {
			return nil, fmt.Errorf("%d characters, over the column's limit of %d", n, c.maxChars)
		}
	}
	return s, nil
}

func convertJSON(c column, raw json.RawMessage) (any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		if c.Nullable {
			return nil, nil
		}
		if len(raw) == 0 {
			return nil, fmt.Errorf("missing field")
		}
		return nil, fmt.Errorf("null, and the column is not nullable")
	}
	kind := jsonKind(raw)
	switch c.Type {
	case TypeString:
		if kind != "string" {
			return nil, fmt.Errorf("a JSON %s, want a string", kind)
		}
		s, err := jsonString(raw)
		if err != nil {
			return nil, err
		}
		return c.text(s)
	case TypeInt, TypeBigint:
		if kind != "number" {
			return nil, fmt.Errorf("a JSON %s, want an integer", kind)
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(string(raw), 64)
			if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
				return nil, fmt.Errorf("%s is not a 64-bit integer", raw)
			}
			n = int64(f)
		}
		if c.Type == TypeInt && (n < math.MinInt32 || n > math.MaxInt32) {
			return nil, fmt.Errorf("%d is over the int column's 32-bit limit", n)
		}
		return n, nil
	case TypeDouble:
		if kind != "number" {
			return nil, fmt.Errorf("a JSON %s, want a number", kind)
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return nil, fmt.Errorf("%s is over a double's range", raw)
		}
		return f, nil
	case TypeBoolean:
		switch string(raw) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("a JSON %s, want true or false", kind)
	case TypeTimestamp:
		switch kind {
		case "string":
			s, err := jsonString(raw)
			if err != nil {
				return nil, err
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an RFC 3339 time", s)
			}
			return t, nil
		case "number":
			ms, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s is not a whole number of Unix milliseconds", raw)
			}
			return time.UnixMilli(ms).UTC(), nil
		}
		return nil, fmt.Errorf("a JSON %s, want an RFC 3339 string or Unix milliseconds", kind)
	case TypeJSONB:
		if !json.Valid(raw) {
			return nil, fmt.Errorf("not valid JSON")
		}
		return json.RawMessage(raw), nil
	}
	return nil, fmt.Errorf("unknown type %s", c.Type)
}

// jsonString decodes a JSON string; without escapes, by slicing.
func jsonString(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		inner := raw[1 : len(raw)-1]
		for _, c := range inner {
			if c < 0x20 || c == '"' {
				return "", fmt.Errorf("not a valid JSON string")
			}
		}
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("not a valid JSON string: %v", err)
	}
	return s, nil
}

func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	for _, c := range raw {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return "invalid value"
		}
	}
	return "number"
}
