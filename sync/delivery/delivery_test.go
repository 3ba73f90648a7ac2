package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	itest "github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/transform"
)

const s0, s1 = "shardId-000000000000", "shardId-000000000001"

func TestBuffersBySizeAndInterval(t *testing.T) {
	st := newFakeStore(s0, s1)
	want := map[string][]string{s0: st.add(s0, 50, time.Now()), s1: st.add(s1, 7, time.Now())}
	ms := &memSink{body: true}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB size hint never fills here: the 200ms interval delivers.
	d, _ := run(t, st, Config{Name: "ds", Stream: "plates", Sink: ms, BufferInterval: 200 * time.Millisecond,
		Compression: sink.Gzip, Delimiter: []byte("\n"), Metrics: m, StateDir: t.TempDir(), StatusInterval: 20 * time.Millisecond})
	itest.WaitFor(t, 10*time.Second, func() error {
		got := uniqueRecords(ms.delivered())
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("delivered %d+%d records", len(got[s0]), len(got[s1]))
		}
		if c, _ := st.GetCheckpoint("ds", "plates", s0); c != "1050" {
			return fmt.Errorf("checkpoint %q", c)
		}
		if s := d.Status(); s.BacklogRecords != 0 || s.FreshnessSeconds != 0 {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
	for _, b := range ms.delivered() {
		plain, err := sink.Decode(b.Body, sink.Gzip)
		if err != nil || b.Ext != ".gz" || b.ID != sink.BatchID("ds", b.ShardID, b.FirstSeq, b.LastSeq) {
			t.Fatalf("batch %s: ext %q, %v", b.ID, b.Ext, err)
		}
		if n := bytes.Count(plain, []byte("\n")); n != len(b.Records) {
			t.Fatalf("body has %d lines for %d records", n, len(b.Records))
		}
	}
	if v := counterValue(m.DeliveryRecords.WithLabelValues("ds", "local")); v != 57 {
		t.Fatalf("delivery_records_total %v", v)
	}
	if s := d.Status(); s.DeliveredRecords != 57 || !s.Online {
		t.Fatalf("status %+v", s)
	}

	// A size hint of 1 MiB cuts batches of that much.
	st2 := newFakeStore(s0)
	big := bytes.Repeat([]byte("x"), 300<<10)
	st2.mu.Lock()
	for i := 0; i < 8; i++ {
		st2.next++
		st2.shards[s0] = append(st2.shards[s0], recordOf(st2.next, big))
	}
	st2.mu.Unlock()
	ms2 := &memSink{}
	run(t, st2, Config{Name: "ds", Stream: "plates", Sink: ms2, BufferSize: 1 << 20, BufferInterval: 900 * time.Second, ReadLimit: 1})
	itest.WaitFor(t, 10*time.Second, func() error {
		if n := len(ms2.delivered()); n != 2 {
			return fmt.Errorf("%d batches", n)
		}
		return nil
	})
	for _, b := range ms2.delivered() {
		if len(b.Records) != 4 {
			t.Fatalf("batch of %d records, want 4 (1 MiB hint, 300 KiB records)", len(b.Records))
		}
	}
}

func TestRetriesTransientErrorsWithTheSameBatch(t *testing.T) {
	st := newFakeStore(s0)
	old := time.Now().Add(-time.Minute)
	want := st.add(s0, 20, old)
	var failing atomic.Bool
	failing.Store(true)
	ms := &memSink{fail: func(b *sink.Batch) error {
		if failing.Load() {
			return errors.New("connection refused")
		}
		return nil
	}}
	d, _ := run(t, st, Config{Name: "ds", Stream: "plates", Sink: ms, BufferInterval: -1,
		RetryInitial: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond, StatusInterval: 10 * time.Millisecond})
	itest.WaitFor(t, 5*time.Second, func() error {
		s := d.Status()
		if s.Online || !strings.Contains(s.LastError, "connection refused") || s.FreshnessSeconds < 59 || s.BacklogRecords != 20 {
			return fmt.Errorf("while failing: %+v", s)
		}
		ms.mu.Lock()
		defer ms.mu.Unlock()
		for _, n := range ms.attempts {
			if n >= 3 {
				return nil
			}
		}
		return errors.New("fewer than 3 attempts")
	})
	if c, _ := st.GetCheckpoint("ds", "plates", s0); c != "" {
		t.Fatalf("checkpoint %q while the destination fails", c)
	}
	failing.Store(false)
	itest.WaitFor(t, 10*time.Second, func() error {
		got := uniqueRecords(ms.delivered())
		if fmt.Sprint(got[s0]) != fmt.Sprint(want) {
			return fmt.Errorf("delivered %v", got)
		}
		if s := d.Status(); !s.Online || s.BacklogRecords != 0 {
			return fmt.Errorf("after: %+v", s)
		}
		return nil
	})
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if len(ms.attempts) != 1 || len(ms.batches) != 1 {
		t.Fatalf("%d batch identities over the retries, %d deliveries; want 1 and 1", len(ms.attempts), len(ms.batches))
	}
}

func TestPermanentFailuresGoToTheErrorOutput(t *testing.T) {
	st := newFakeStore(s0)
	recs := st.add(s0, 6, time.Now())
	ms := &memSink{fail: func(b *sink.Batch) error {
		if string(b.Records[0].Data) == recs[0] {
			return sink.Permanent(errors.New("413 too large"))
		}
		// Later batches: the second record fails on its own.
		return &sink.RecordErrors{Failed: map[int]sink.RecordError{1: {Code: "Oversize", Message: "too big"}}}
	}}
	es := memErrSink{ms}
	run(t, st, Config{Name: "ds", Stream: "plates", Sink: es, BufferInterval: -1, ReadLimit: 3})
	itest.WaitFor(t, 5*time.Second, func() error {
		if c, _ := st.GetCheckpoint("ds", "plates", s0); c != "1006" {
			return fmt.Errorf("checkpoint %q", c)
		}
		return nil
	})
	var failed []string
	for _, eb := range ms.errorBatches() {
		if eb.OutputType != "delivery-failed" {
			t.Fatalf("output type %q", eb.OutputType)
		}
		for _, r := range eb.Records {
			failed = append(failed, r.Code+"="+string(r.Data))
		}
	}
	want := []string{"Permanent=" + recs[0], "Permanent=" + recs[1], "Permanent=" + recs[2], "Oversize=" + recs[4]}
	if fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Fatalf("error output %v, want %v", failed, want)
	}
}

func TestTransformAndDeadLetter(t *testing.T) {
	st := newFakeStore(s0)
	st.mu.Lock()
	for i, d := range []string{`{"event":"taken","lane":"3"}`, `{"event":"passed","lane":"3"}`, `nope`} {
		st.shards[s0] = append(st.shards[s0], recordOf(2000+i, []byte(d)))
	}
	st.mu.Unlock()
	tr, err := transform.NewBuiltin([]transform.Field{{From: "lane"}}, `event == "passed"`)
	if err != nil {
		t.Fatal(err)
	}
	// memSink has no error output of its own: failures go to the dead-letter stream.
	ms := &memSink{}
	d, _ := run(t, st, Config{Name: "ds", Stream: "plates", Sink: ms, BufferInterval: -1, Transform: tr})
	itest.WaitFor(t, 5*time.Second, func() error {
		if len(st.deadLetters()) != 1 || len(ms.delivered()) != 1 {
			return fmt.Errorf("%d dead letters, %d batches", len(st.deadLetters()), len(ms.delivered()))
		}
		return nil
	})
	b := ms.delivered()[0]
	if len(b.Records) != 1 || string(b.Records[0].Data) != `{"lane":"3"}` {
		t.Fatalf("delivered %q", b.Records)
	}
	var dl map[string]string
	if err := json.Unmarshal(st.deadLetters()[0].Data, &dl); err != nil {
		t.Fatal(err)
	}
	if dl["source"] != "sync" || dl["topic"] != "ds" || dl["data_b64"] != "bm9wZQ==" || !strings.HasPrefix(dl["reason"], "ProcessingFailed") || dl["ts"] == "" {
		t.Fatalf("dead letter %v", dl)
	}
	if s := d.Status(); s.DroppedRecords != 1 || s.ErrorRecords != 1 || s.DeliveredRecords != 1 {
		t.Fatalf("status %+v", s)
	}
}

// A crash after the destination acknowledged and before the checkpoint:
// the restarted delivery stream rebuilds the same batch (same id, same
// range) although more records arrived meanwhile, so nothing is held twice
// under two identities.
func TestRestartRebuildsTheSameBatch(t *testing.T) {
	st := newFakeStore(s0)
	first := st.add(s0, 10, time.Now())
	state := t.TempDir()
	ms := &memSink{}
	st.failCkpt = errors.New("power cut")
	cfg := Config{Name: "ds", Stream: "plates", Sink: ms, BufferInterval: -1, StateDir: state, ReadLimit: 100}
	_, stop := run(t, st, cfg)
	itest.WaitFor(t, 5*time.Second, func() error {
		if len(ms.delivered()) == 0 {
			return errors.New("nothing delivered yet")
		}
		return nil
	})
	stop()
	st.mu.Lock()
	st.failCkpt = nil
	st.mu.Unlock()
	b0 := ms.delivered()[0]
	for _, b := range ms.delivered() {
		if b.ID != b0.ID {
			t.Fatalf("the retried batch changed identity: %s and %s", b0.ID, b.ID)
		}
	}
	more := st.add(s0, 15, time.Now())

	ms2 := &memSink{}
	logs := newCaptured()
	run(t, st, Config{Name: "ds", Stream: "plates", Sink: ms2, BufferInterval: -1, StateDir: state, ReadLimit: 100,
		Logger: slog.New(logs)})
	itest.WaitFor(t, 5*time.Second, func() error {
		if c, _ := st.GetCheckpoint("ds", "plates", s0); c != "1025" {
			return fmt.Errorf("checkpoint %q", c)
		}
		return nil
	})
	// The restart says what it recovered.
	rebuilt := logs.find("rebuilt the in-flight batch")
	if len(rebuilt) != 1 {
		t.Fatalf("%d log records about a rebuilt batch, want 1", len(rebuilt))
	}
	if r := rebuilt[0]; r["level"] != "INFO" || r["delivery_stream"] != "ds" || r["shard"] != s0 || r["first_sequence_number"] != b0.FirstSeq ||
		r["last_sequence_number"] != b0.LastSeq || r["records"] != int64(len(b0.Records)) || r["batch"] != b0.ID {
		t.Fatalf("rebuilt batch logged as %v, want INFO shard %s %s..%s, %d records, batch %s", r, s0, b0.FirstSeq, b0.LastSeq, len(b0.Records), b0.ID)
	}
	got := ms2.delivered()
	if got[0].ID != b0.ID || got[0].FirstSeq != b0.FirstSeq || got[0].LastSeq != b0.LastSeq {
		t.Fatalf("after restart the first batch is %s..%s (%s), want %s..%s (%s)", got[0].FirstSeq, got[0].LastSeq, got[0].ID, b0.FirstSeq, b0.LastSeq, b0.ID)
	}
	all := uniqueRecords(append(ms.delivered(), got...))
	if fmt.Sprint(all[s0]) != fmt.Sprint(append(first, more...)) {
		t.Fatalf("records across distinct batches: %v", all[s0])
	}
}

func TestConfigValidate(t *testing.T) {
	cases := map[string]Config{
		"name:":            {Stream: "s", Sink: &memSink{}},
		"stream:":          {Name: "n", Sink: &memSink{}},
		"buffer.size:":     {Name: "n", Stream: "s", Sink: &memSink{}, BufferSize: 1000},
		"buffer.interval:": {Name: "n", Stream: "s", Sink: &memSink{}, BufferInterval: time.Hour},
		"compression:":     {Name: "n", Stream: "s", Sink: &memSink{}, Compression: "lz4"},
		"destination:":     {Name: "n", Stream: "s"},
	}
	for key, c := range cases {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v", key, err)
		}
	}
}

func TestSeq(t *testing.T) {
	if seqCmp("9", "10") >= 0 || seqCmp("10", "10") != 0 || seqCmp("011", "10") <= 0 {
		t.Fatal("seqCmp")
	}
	// 2 | 9 hex creation | 1 | 16 hex counter | 00 | 9 hex put time | 8 hex shard | 2
	hex := "2" + "0693a5b3c" + "1" + "00000000000004d2" + "00" + "0693a5b3d" + "00000001" + "2"
	n, ok := new(bigInt).SetString(hex, 16)
	if !ok {
		t.Fatal("bad test number")
	}
	c, ok := seqCounter(n.String())
	if !ok || c != 1234 {
		t.Fatalf("counter %d %v", c, ok)
	}
	if _, ok := seqCounter("12345"); ok {
		t.Fatal("short number parsed")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var pb dto.Metric
	_ = c.Write(&pb)
	return pb.GetCounter().GetValue()
}

func TestRetryDurationEnds(t *testing.T) {
	st := newFakeStore(s0)
	recs := st.add(s0, 3, time.Now())
	ms := &memSink{fail: func(b *sink.Batch) error { return errors.New("still down") }}
	es := memErrSink{ms}
	d, _ := run(t, st, Config{Name: "ds", Stream: "plates", Sink: es, BufferInterval: -1,
		RetryInitial: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, RetryDuration: 150 * time.Millisecond})
	itest.WaitFor(t, 5*time.Second, func() error {
		if c, _ := st.GetCheckpoint("ds", "plates", s0); c != "1003" {
			return fmt.Errorf("checkpoint %q", c)
		}
		return nil
	})
	ebs := ms.errorBatches()
	if len(ebs) != 1 || len(ebs[0].Records) != 3 || ebs[0].Records[0].Code != "RetryExpired" || string(ebs[0].Records[2].Data) != recs[2] ||
		!strings.Contains(ebs[0].Records[0].Message, "still down") || ebs[0].Records[0].Attempts < 2 {
		t.Fatalf("error output %+v", ebs)
	}
	if s := d.Status(); s.ErrorRecords != 3 || s.DeliveredRecords != 0 {
		t.Fatalf("status %+v", s)
	}
}

// In lean mode (an object destination, no transform) a batch that fails
// permanently is read back from the stream for the error output.
func TestLeanPermanentFailureReadsBack(t *testing.T) {
	st := newFakeStore(s0)
	recs := st.add(s0, 4, time.Now())
	ms := &memSink{body: true, fail: func(b *sink.Batch) error { return sink.Permanent(errors.New("EntityTooLarge")) }}
	es := memErrSink{ms}
	run(t, st, Config{Name: "ds", Stream: "plates", Sink: es, BufferInterval: -1, Delimiter: []byte("\n"), ReadLimit: 2})
	itest.WaitFor(t, 5*time.Second, func() error {
		if c, _ := st.GetCheckpoint("ds", "plates", s0); c != "1004" {
			return fmt.Errorf("checkpoint %q", c)
		}
		return nil
	})
	var got []string
	for _, eb := range ms.errorBatches() {
		for _, r := range eb.Records {
			got = append(got, string(r.Data)+"/"+r.SequenceNumber+"/"+r.PartitionKey)
		}
	}
	want := []string{recs[0] + "/1001/pk-" + s0, recs[1] + "/1002/pk-" + s0, recs[2] + "/1003/pk-" + s0, recs[3] + "/1004/pk-" + s0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("error output %v, want %v", got, want)
	}
}
