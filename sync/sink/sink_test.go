package sink

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestObjectKeys(t *testing.T) {
	b := &Batch{DeliveryStream: "ds", Version: 3, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), ID: BatchID("ds", "s", "1", "2"), Ext: ".gz"}
	id := UUID(b.ID)
	cases := map[string]string{
		"":   "2026/01/02/02/ds-3-2026-01-02-02-04-05-" + id + ".gz",
		"p/": "p/2026/01/02/02/ds-3-2026-01-02-02-04-05-" + id + ".gz",
		"d=!{timestamp:yyyy-MM-dd}/h=!{timestamp:HH}/":   "d=2026-01-02/h=02/ds-3-2026-01-02-02-04-05-" + id + ".gz",
		"!{timestamp:yy'y'MM}/!{firehose:random-string}": "26y01/ds-3-2026-01-02-02-04-05-" + id + ".gz",
	}
	for prefix, want := range cases {
		if got := ObjectKey(prefix, b); got != want {
			t.Errorf("prefix %q: %q, want %q", prefix, got, want)
		}
	}
	eb := &ErrorBatch{DeliveryStream: "ds", Time: b.Time, ID: b.ID, OutputType: "processing-failed"}
	if got := ErrorObjectKey("", eb); got != "processing-failed/2026/01/02/02/ds-1-2026-01-02-02-04-05-"+id {
		t.Errorf("error key %q", got)
	}
	if got := ErrorObjectKey("err/!{firehose:error-output-type}/", eb); !strings.HasPrefix(got, "err/processing-failed/2026/01/02/02/") {
		t.Errorf("error key %q", got)
	}
	if err := ValidatePrefix("a/!{bogus}"); err == nil {
		t.Error("unknown expression accepted")
	}
	if err := ValidatePrefix("a/!{timestamp:yyyy"); err == nil {
		t.Error("unclosed expression accepted")
	}
}

func TestBatchIDStable(t *testing.T) {
	a := BatchID("ds", "shardId-000000000000", "10", "20")
	if a != BatchID("ds", "shardId-000000000000", "10", "20") || len(a) != 32 {
		t.Fatalf("id %q not stable", a)
	}
	for _, o := range []string{BatchID("ds2", "shardId-000000000000", "10", "20"), BatchID("ds", "shardId-000000000001", "10", "20"),
		BatchID("ds", "shardId-000000000000", "10", "21"), BatchID("ds", "shardId-000000000000", "1", "020")} {
		if o == a {
			t.Fatal("different batches share an id")
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	var recs []Record
	var want bytes.Buffer
	for i := 0; i < 1000; i++ {
		d := []byte(fmt.Sprintf(`{"plate_id":"p-%06d","lane":"3"}`, i))
		recs = append(recs, Record{Data: d})
		want.Write(d)
		want.WriteByte('\n')
	}
	for _, c := range []string{None, Gzip, Snappy, Zip} {
		body, err := Encode(recs, []byte("\n"), c, "entry")
		if err != nil {
			t.Fatal(c, err)
		}
		got, err := Decode(body, c)
		if err != nil {
			t.Fatal(c, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%s: round trip differs", c)
		}
		if c != None && len(body) >= want.Len() {
			t.Errorf("%s did not compress: %d >= %d", c, len(body), want.Len())
		}
	}
	if _, err := Encode(recs, nil, "lz4", ""); err == nil {
		t.Fatal("unknown compression accepted")
	}
	if err := ValidCompression("lz4"); err == nil {
		t.Fatal("unknown compression valid")
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("boom")
	err := fmt.Errorf("wrapped: %w", Permanent(base))
	if !errors.Is(err, ErrPermanent) || !errors.Is(err, base) {
		t.Fatal("Permanent lost its marks")
	}
	if errors.Is(base, ErrPermanent) {
		t.Fatal("plain error is permanent")
	}
}
