package sinktest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/kaiten-edge/kaiten/sync/sink"
)

// Lines splits an object's body (compressed with compression) into its
// newline-delimited records: what an object destination holds.
func Lines(t testing.TB, body []byte, compression string) []string {
	t.Helper()
	plain, err := sink.Decode(body, compression)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(plain))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// ErrorLines decodes an error output object (sink.EncodeErrors' JSON
// lines) into its records.
func ErrorLines(t testing.TB, body []byte) []Failed {
	t.Helper()
	var out []Failed
	dec := json.NewDecoder(bytes.NewReader(body))
	for dec.More() {
		var l sink.ErrorLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("error output: %v", err)
		}
		data, err := base64.StdEncoding.DecodeString(l.RawData)
		if err != nil {
			t.Fatalf("error output rawData: %v", err)
		}
		out = append(out, Failed{Data: string(data), Code: l.ErrorCode})
	}
	return out
}
