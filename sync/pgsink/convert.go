package pgsink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
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

// convert turns a record into a row of values in the columns' order, or
// says why it cannot.
func convert(cols []column, r *sink.Record) ([]any, error) {
	row := make([]any, len(cols))
	var obj map[string]json.RawMessage
	parsed := false
	for i, c := range cols {
		var v any
		var err error
		if c.path == nil {
			v, err = convertSelf(c, r)
		} else {
			if !parsed {
				parsed = true
				if err := json.Unmarshal(r.Data, &obj); err != nil {
					return nil, fmt.Errorf("record is not a JSON object: %v", err)
				}
			}
			v, err = convertJSON(c, lookup(obj, c.path))
		}
		if err != nil {
			return nil, fmt.Errorf("column %s (from %s): %w", c.Name, c.From, err)
		}
		row[i] = v
	}
	return row, nil
}

// lookup follows path into obj; nil when a segment is missing or not an
// object.
func lookup(obj map[string]json.RawMessage, path []string) json.RawMessage {
	raw, ok := obj[path[0]]
	if !ok {
		return nil
	}
	if len(path) == 1 {
		return raw
	}
	var next map[string]json.RawMessage
	if json.Unmarshal(raw, &next) != nil {
		return nil
	}
	return lookup(next, path[1:])
}

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
	raw = bytes.TrimSpace(raw)
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
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
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
		if kind != "boolean" {
			return nil, fmt.Errorf("a JSON %s, want true or false", kind)
		}
		return string(raw) == "true", nil
	case TypeTimestamp:
		switch kind {
		case "string":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
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
		return raw, nil
	}
	return nil, fmt.Errorf("unknown type %s", c.Type)
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
	return "number"
}
