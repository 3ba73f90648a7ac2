package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// TestDeadLetterEncoding pins the bytes of the dead-letter format as each
// writer produced them before the type existed: a change here changes
// what is on disk and what other tools read.
func TestDeadLetterEncoding(t *testing.T) {
	for name, c := range map[string]struct {
		d    DeadLetter
		want string
	}{
		"mqtt": {
			DeadLetter{Source: "mqtt", Topic: "store/s1/lane/2/plate", Reason: "invalid_json: payload is not valid JSON",
				Data: []byte("not json"), TS: "2026-03-01T12:00:00.123456789Z"},
			`{"source":"mqtt","topic":"store/s1/lane/2/plate","reason":"invalid_json: payload is not valid JSON","data_b64":"bm90IGpzb24=","ts":"2026-03-01T12:00:00.123456789Z"}`,
		},
		"mqtt truncated": {
			DeadLetter{Source: "mqtt", Topic: "t", Reason: "payload_too_large: big", Data: []byte("abc"),
				TS: "2026-03-01T12:00:00Z", Size: 70000, Truncated: true},
			`{"source":"mqtt","topic":"t","reason":"payload_too_large: big","data_b64":"YWJj","ts":"2026-03-01T12:00:00Z","size":70000,"truncated":true}`,
		},
		"mqtt empty payload": {
			DeadLetter{Source: "mqtt", Topic: "t", Reason: "no_route: no route matches the topic", TS: "2026-03-01T12:00:00Z"},
			`{"source":"mqtt","topic":"t","reason":"no_route: no route matches the topic","data_b64":"","ts":"2026-03-01T12:00:00Z"}`,
		},
		"analytics late": {
			DeadLetter{Source: "analytics", Topic: "plates/shardId-000000000001/49650000000000000000000000000000000000000000000000000002",
				Reason: "late for query q: event time 2026-03-01T12:00:00.000Z is behind the watermark none",
				Data:   []byte(`{"ts":"x"}`), TS: "2026-03-01T12:00:05.000Z"},
			`{"source":"analytics","topic":"plates/shardId-000000000001/49650000000000000000000000000000000000000000000000000002","reason":"late for query q: event time 2026-03-01T12:00:00.000Z is behind the watermark none","data_b64":"eyJ0cyI6IngifQ==","ts":"2026-03-01T12:00:05.000Z"}`,
		},
		"sync": {
			DeadLetter{Source: "sync", Topic: "ds", Reason: "ProcessingFailed: nope", Data: []byte("nope"), TS: "2026-03-01T12:00:00.5Z",
				Origin: &DeadLetterOrigin{Stream: "plates", ShardID: "shardId-000000000000", SequenceNumber: "123", PartitionKey: "k"}},
			`{"source":"sync","topic":"ds","reason":"ProcessingFailed: nope","data_b64":"bm9wZQ==","ts":"2026-03-01T12:00:00.5Z","stream":"plates","shard_id":"shardId-000000000000","sequence_number":"123","partition_key":"k"}`,
		},
		"sync empty origin fields stay": {
			DeadLetter{Source: "sync", Topic: "ds", Reason: "x: y", TS: "t", Origin: &DeadLetterOrigin{}},
			`{"source":"sync","topic":"ds","reason":"x: y","data_b64":"","ts":"t","stream":"","shard_id":"","sequence_number":"","partition_key":""}`,
		},
		"escaping": {
			DeadLetter{Source: "mqtt", Topic: "a<b>&\"c\"\\\n\t", Reason: "r", TS: "t"},
			`{"source":"mqtt","topic":"a\u003cb\u003e\u0026\"c\"\\\n\t","reason":"r","data_b64":"","ts":"t"}`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := string(c.d.Encode()); got != c.want {
				t.Fatalf("Encode:\n got %s\nwant %s", got, c.want)
			}
			if b, err := json.Marshal(c.d); err != nil || string(b) != c.want {
				t.Fatalf("json.Marshal = %s, %v; want Encode's bytes", b, err)
			}
			if e := c.d.Entry(); e.PartitionKey != c.d.Source || string(e.Data) != c.want {
				t.Fatalf("Entry = %q %s", e.PartitionKey, e.Data)
			}
			back, err := DecodeDeadLetter([]byte(c.want))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.Encode(), []byte(c.want)) {
				t.Fatalf("round trip: %s", back.Encode())
			}
			if len(c.d.Data) > 0 && !reflect.DeepEqual(back, c.d) {
				t.Fatalf("decoded %+v, want %+v", back, c.d)
			}
		})
	}
}

func TestDecodeDeadLetterErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not json":     `x`,
		"not object":   `[1]`,
		"wrong type":   `{"source":"mqtt","topic":5}`,
		"bad base64":   `{"source":"mqtt","data_b64":"%%%"}`,
		"empty record": ``,
	} {
		d, err := DecodeDeadLetter([]byte(in))
		if !errors.Is(err, ErrInvalidDeadLetter) {
			t.Errorf("%s: err %v, want ErrInvalidDeadLetter", name, err)
		}
		if name == "bad base64" && d.Source != "mqtt" {
			t.Errorf("%s: the fields read before the error are lost: %+v", name, d)
		}
	}
	var d DeadLetter
	if err := json.Unmarshal([]byte(`{"source":"sync","data_b64":"eA==","extra":1}`), &d); err != nil || d.Source != "sync" || string(d.Data) != "x" || d.Origin != nil {
		t.Fatalf("json.Unmarshal: %+v, %v", d, err)
	}
}

func TestValidName(t *testing.T) {
	long := string(bytes.Repeat([]byte("a"), MaxStreamNameLen))
	for _, ok := range []string{"a", "plates", "plate-stats", "A_b.c-9", long, NamePlates, NameGPIO, NameDeadLetter, NamePlateStats} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "é", long + "a", "a\n", "a:b"} {
		err := ValidName(bad)
		if !errors.Is(err, ErrInvalidName) || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalidName wrapping ErrInvalidArgument", bad, err)
		}
	}
}
