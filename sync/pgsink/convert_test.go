package pgsink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kaiten-edge/kaiten/sync/sink"
)

func TestConvert(t *testing.T) {
	at := time.Date(2026, 12, 4, 5, 6, 7, 8_000_000, time.UTC)
	rec := func(data string) *sink.Record {
		return &sink.Record{PartitionKey: "store/1", SequenceNumber: "4960", ArrivalTime: at, Data: []byte(data)}
	}
	cols := newColumns([]Column{
		{Name: "s", From: "s", Type: TypeString},
		{Name: "i", From: "nested.i", Type: TypeInt},
		{Name: "b", From: "b", Type: TypeBigint},
		{Name: "d", From: "d", Type: TypeDouble},
		{Name: "ok", From: "ok", Type: TypeBoolean},
		{Name: "ts", From: "ts", Type: TypeTimestamp},
		{Name: "j", From: "j", Type: TypeJSONB},
		{Name: "pk", From: FromPartitionKey, Type: TypeString},
		{Name: "at", From: FromArrivalTime, Type: TypeBigint},
		{Name: "n", From: "n", Type: TypeString, Nullable: true},
	})
	cols[0].maxChars = 5
	cv := newConverter(cols)
	row := make([]any, len(cols))
	good := `{"s":"h\u00e9llo","nested":{"x":[1,{"i":9}],"i":-7},"b":1e3,"d":2.5,"ok":false,"ts":"2026-12-04T05:06:07Z","j":{"a":[1,"}"]},"extra":"ignored"}`
	if err := cv.row(rec(good), row); err != nil {
		t.Fatal(err)
	}
	want := []any{"héllo", int64(-7), int64(1000), 2.5, false, time.Date(2026, 12, 4, 5, 6, 7, 0, time.UTC),
		json.RawMessage(`{"a":[1,"}"]}`), "store/1", at.UnixMilli(), nil}
	if fmt.Sprint(row) != fmt.Sprint(want) {
		t.Fatalf("row\n got %v\nwant %v", row, want)
	}
	bad := map[string]string{
		`{"nested":{"i":1},"b":1,"d":1,"ok":true,"ts":1,"j":1}`:                   "column s (from s): missing field",
		`{"s":"toolong","nested":{"i":1},"b":1,"d":1,"ok":true,"ts":1,"j":1}`:     "7 characters, over the column's limit of 5",
		`{"s":"a\u0000","nested":{"i":1},"b":1,"d":1,"ok":true,"ts":1,"j":1}`:     "NUL",
		`{"s":"a","nested":{"i":1.5},"b":1,"d":1,"ok":true,"ts":1,"j":1}`:         "1.5 is not a 64-bit integer",
		`{"s":"a","nested":{"i":2147483648},"b":1,"d":1,"ok":true,"ts":1,"j":1}`:  "over the int column's 32-bit limit",
		`{"s":"a","nested":"x","b":1,"d":1,"ok":true,"ts":1,"j":1}`:               "column i (from nested.i): missing field",
		`{"s":"a","nested":{"i":1},"b":"1","d":1,"ok":true,"ts":1,"j":1}`:         "a JSON string, want an integer",
		`{"s":"a","nested":{"i":1},"b":1,"d":NaN,"ok":true,"ts":1,"j":1}`:         "a JSON invalid value, want a number",
		`{"s":"a","nested":{"i":1},"b":1,"d":1,"ok":tru,"ts":1,"j":1}`:            "want true or false",
		`{"s":"a","nested":{"i":1},"b":1,"d":1,"ok":true,"ts":"yesterday","j":1}`: `"yesterday" is not an RFC 3339 time`,
		`{"s":"a","nested":{"i":1},"b":1,"d":1,"ok":true,"ts":1,"j":[1,]}`:        "column j (from j): not valid JSON",
		`{"s":"a","nested":{"i":1},"b":1,"d":1,"ok":true,"ts":1,"j":null}`:        "null, and the column is not nullable",
		`["s"]`:              "record is not a JSON object",
		`{"s":"a" "b":1}`:    "want ',' or '}'",
		`{"s":"a"} trailing`: "data after the object",
		`{"s":"a`:            "unterminated string",
	}
	for data, reason := range bad {
		err := cv.row(rec(data), row)
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: %v, want %q", data, err, reason)
		}
	}
}

func TestConvertSelf(t *testing.T) {
	at := time.Date(2026, 12, 4, 5, 6, 7, 0, time.UTC)
	r := &sink.Record{PartitionKey: "k", SequenceNumber: "1", ArrivalTime: at, Data: []byte("plain text")}
	cv := newConverter(newColumns([]Column{
		{Name: "a", From: FromData, Type: TypeString},
		{Name: "b", From: FromArrivalTime, Type: TypeString},
		{Name: "c", From: FromArrivalTime, Type: TypeTimestamp},
		{Name: "d", From: FromSequenceNumber, Type: TypeString},
	}))
	row := make([]any, 4)
	if err := cv.row(r, row); err != nil {
		t.Fatal(err)
	}
	if row[0] != "plain text" || row[1] != "2026-12-04T05:06:07Z" || row[2] != at || row[3] != "1" {
		t.Fatalf("row %v", row)
	}
	cv = newConverter(newColumns([]Column{{Name: "a", From: FromData, Type: TypeJSONB}}))
	if err := cv.row(r, row); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("plain text as jsonb: %v", err)
	}
}

// FuzzMembers checks the scanner against encoding/json: on any input
// encoding/json reads as an object, members finds the same value for
// every key (compacted); on input it rejects, members either rejects it
// too or finds nothing encoding/json would disagree with at the top level.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":"x\"}","b":[1,{"c":"]"}]}`, ` { "a" : true , "b" : null } `,
		`{"a":1,"a":2}`, `{"a":{"b":{"c":[]}}}`, `[1]`, `{"a":}`, `{"a":1,}`, `{"\u0061":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want map[string]json.RawMessage
		jerr := json.Unmarshal(data, &want)
		var keys []string
		for k := range want {
			if !strings.ContainsAny(k, "\\\"") && json.Valid([]byte(`"`+k+`"`)) && bytes.Contains(data, []byte(`"`+k+`"`)) {
				keys = append(keys, k)
			}
		}
		got := make(map[string][]byte)
		err := members(data, keys, func(i int, raw []byte) { got[keys[i]] = raw })
		if jerr != nil {
			return // members may be more lenient inside values it skips
		}
		if err != nil {
			t.Fatalf("%q: encoding/json reads it, members says %v", data, err)
		}
		for _, k := range keys {
			var a, b bytes.Buffer
			_ = json.Compact(&a, want[k])
			if cerr := json.Compact(&b, got[k]); cerr != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("%q: key %q: members %q, encoding/json %q", data, k, got[k], want[k])
			}
		}
	})
}

func TestClassify(t *testing.T) {
	for code, permanent := range map[string]bool{
		"22001": true, "22P02": true, "23505": true, "23502": true, "23514": true, "42804": true,
		"08006": false, "40001": false, "40P01": false, "53100": false, "57P01": false, "42P01": false, "42501": false,
	} {
		err := classify(fmt.Errorf("op: %w", &pgconn.PgError{Code: code}))
		if errors.Is(err, sink.ErrPermanent) != permanent {
			t.Errorf("SQLSTATE %s: permanent %v, want %v", code, !permanent, permanent)
		}
	}
	if err := classify(errors.New("connection refused")); errors.Is(err, sink.ErrPermanent) {
		t.Error("a network error is permanent")
	}
}
