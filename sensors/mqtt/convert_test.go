package mqtt

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

func testRouter(t *testing.T, routes ...Route) *router {
	t.Helper()
	c := Config{Routes: routes, MaxPayload: 1024}
	if err := c.Normalize("s"); err != nil {
		t.Fatal(err)
	}
	r, err := newRouter(&c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func decodeDead(t *testing.T, b []byte) stream.DeadLetter {
	t.Helper()
	d, err := stream.DecodeDeadLetter(b)
	if err != nil {
		t.Fatalf("dead letter is not JSON: %v: %s", err, b)
	}
	return d
}

func TestConvert(t *testing.T) {
	r := testRouter(t,
		Route{Topic: "store/+/lane/+/plate", Stream: "plates", Key: "{1}/{3}"},
		Route{Topic: "raw/#", Stream: "raw", Key: "{1}", Payload: PayloadRaw},
		Route{Topic: "enrich/+", Stream: "rich", Key: "{dev}", Payload: PayloadEnrich},
	)
	now := time.Date(2026, 11, 26, 5, 0, 0, 123e6, time.UTC)
	plate := []byte(`{"store":"demo-store","lane":"3","plate_type":"salmon","event":"placed"}`)

	s, e, class := r.convert(&Message{Topic: "store/demo-store/lane/3/plate", Payload: plate, Received: now})
	if s != "plates" || class != "" || e.PartitionKey != "demo-store/3" || !bytes.Equal(e.Data, plate) {
		t.Fatalf("plate: %s %q %q %s", s, class, e.PartitionKey, e.Data)
	}
	s, e, class = r.convert(&Message{Topic: "raw/dev1", Payload: []byte{0xff, 0}, Received: now})
	if s != "raw" || class != "" || e.PartitionKey != "dev1" || !bytes.Equal(e.Data, []byte{0xff, 0}) {
		t.Fatalf("raw: %s %q %q %v", s, class, e.PartitionKey, e.Data)
	}
	s, e, class = r.convert(&Message{Topic: "enrich/x", Payload: []byte(`{"dev":"d7","v":1}`), Received: now})
	if s != "rich" || class != "" || e.PartitionKey != "d7" {
		t.Fatalf("enrich: %s %q %q", s, class, e.PartitionKey)
	}
	var rich struct {
		Topic      string          `json:"topic"`
		ReceivedAt string          `json:"received_at"`
		Payload    json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(e.Data, &rich); err != nil || rich.Topic != "enrich/x" ||
		rich.ReceivedAt != "2026-11-26T05:00:00.123Z" || string(rich.Payload) != `{"dev":"d7","v":1}` {
		t.Fatalf("enriched record %s (%v)", e.Data, err)
	}

	bad := []struct {
		topic   string
		payload []byte
		class   string
	}{
		{"store/demo-store/lane/3/plate", []byte(`{"store":`), ReasonInvalidJSON},
		{"store/demo-store/lane/3/plate", bytes.Repeat([]byte("x"), 1025), ReasonTooLarge},
		{"enrich/x", []byte(`{"v":1}`), ReasonKey},
		{"enrich/x", []byte(`[1,2]`), ReasonKey},
		{"nothing/here", []byte(`{}`), ReasonNoRoute},
	}
	for _, b := range bad {
		s, e, class := r.convert(&Message{Topic: b.topic, Payload: b.payload, Received: now})
		if s != "deadletter" || class != b.class || e.PartitionKey != "mqtt" {
			t.Errorf("%s %q: got %s %q %q", b.topic, b.payload, s, class, e.PartitionKey)
			continue
		}
		d := decodeDead(t, e.Data)
		orig := d.Data
		if d.Source != "mqtt" || d.Topic != b.topic || !strings.HasPrefix(d.Reason, b.class+": ") ||
			!bytes.Equal(orig, b.payload) || d.TS != "2026-11-26T05:00:00.123Z" || d.Truncated {
			t.Errorf("dead letter %+v", d)
		}
	}
}

func TestDeadLetterTruncatesHugeInput(t *testing.T) {
	big := bytes.Repeat([]byte("y"), 3<<20)
	e := deadEntry(&Message{Topic: "t", Payload: big, Received: time.Now()}, ReasonTooLarge, "big")
	d := decodeDead(t, e.Data)
	orig := d.Data
	if !d.Truncated || d.Size != len(big) || len(orig) != MaxDeadLetterData || len(e.Data) > 1<<20 {
		t.Fatalf("truncated=%v size=%d kept=%d record=%d", d.Truncated, d.Size, len(orig), len(e.Data))
	}
}

// FuzzConvert: any topic and payload gives either a routed record or a
// dead letter that is valid JSON holding the original bytes; never a panic.
func FuzzConvert(f *testing.F) {
	f.Add("store/demo-store/lane/3/plate", []byte(`{"store":"demo-store"}`))
	f.Add("dev/x/reading", []byte(`{"device":{"id":1}}`))
	f.Add("enrich/\xff", []byte("\x00\x01"))
	c := Config{MaxPayload: 512, Routes: append(DefaultRoutes(),
		Route{Topic: "dev/+/reading", Stream: "plates", Key: "{device}-{9}"},
		Route{Topic: "enrich/#", Stream: "rich", Key: "{1}", Payload: PayloadEnrich})}
	if err := c.Normalize("s"); err != nil {
		f.Fatal(err)
	}
	r, err := newRouter(&c)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		m := &Message{Topic: topic, Payload: payload, Received: time.Now()}
		s, e, class := r.convert(m)
		if class == "" {
			if s == "deadletter" || e.PartitionKey == "" || len(e.Data) > 1<<20 {
				t.Fatalf("routed to %q key %q", s, e.PartitionKey)
			}
			return
		}
		d := decodeDead(t, e.Data)
		if s != "deadletter" || (!d.Truncated && !bytes.Equal(d.Data, payload)) {
			t.Fatalf("dead letter %+v for %q", d, payload)
		}
	})
}
