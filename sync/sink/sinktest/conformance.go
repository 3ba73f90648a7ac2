package sinktest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/delivery"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// Capabilities are the parts of the sink contract a destination has. The
// body checks what applies and says, as a skip with the reason, what does
// not.
type Capabilities struct {
	// Identity: the destination keeps a batch under an identity derived
	// from sink.Batch.ID (an object key, a request id), so that a retried
	// batch replaces itself or can be recognised as the same.
	Identity bool
	// PartialFailure: the destination can acknowledge part of a batch
	// (Kinesis PutRecords' FailedRecordCount); the retry of the same batch
	// sends only the rest.
	PartialFailure bool
	// ErrorOutput: the destination has its own error output
	// (sink.ErrorSink); without it failed records go to the dead-letter
	// stream.
	ErrorOutput bool
}

// Held is one batch as the destination holds it.
type Held struct {
	// ID is the identity it is held under (object key, request id); ""
	// for a destination without Capabilities.Identity.
	ID string
	// Records are the records' data in the order held.
	Records []string
}

// Failed is one record in a destination's own error output.
type Failed struct {
	Data string
	Code string
}

// Target is one destination under test, opened fresh for one check.
type Target struct {
	// Sink is the destination, built against the real component.
	Sink sink.Sink
	// Held returns what the destination holds now (not its error output).
	Held func(t testing.TB) []Held
	// Identity is the identity the destination keeps b under; nil
	// without Capabilities.Identity.
	Identity func(b *sink.Batch) string
	// Errors returns the records in the destination's own error output;
	// nil without Capabilities.ErrorOutput.
	Errors func(t testing.TB) []Failed
}

// Destination describes a destination to the conformance body.
type Destination struct {
	Caps Capabilities
	// Open returns a fresh destination that works.
	Open func(t *testing.T) *Target
	// OpenRefusing returns a fresh destination that refuses every batch
	// with a permanent error (its error output, if any, still works); nil
	// when no input the delivery stream can send makes it fail for good.
	OpenRefusing func(t *testing.T) *Target
	// PartialRecords is a batch size that the destination takes only in
	// part on the first attempts (with Capabilities.PartialFailure).
	PartialRecords int
}

// Run is the conformance body: a real delivery stream reads a real stream
// store (in a temporary directory) into the destination, and each subtest
// checks one clause of the sink contract:
//
//   - Ordered: every record arrives once, each batch keeps the stream's
//     order, and batches follow each other without gap or overlap.
//   - RetrySameIdentity: a batch that fails before reaching the
//     destination, then reaches it but loses the acknowledgement, is
//     retried as the same batch (same sink.Batch.ID, same destination
//     identity) and the destination ends with each record once.
//   - PartialFailure: a batch the destination takes in part is completed
//     by retries that send only the rest: each record once, in order.
//   - PermanentToErrorOutput: a batch refused for good goes, with the code
//     Permanent, to the destination's error output or else to the
//     dead-letter stream, and the stream is checkpointed past it.
func Run(t *testing.T, d Destination) {
	t.Run("Ordered", func(t *testing.T) { ordered(t, d) })
	t.Run("RetrySameIdentity", func(t *testing.T) { retrySameIdentity(t, d) })
	t.Run("PartialFailure", func(t *testing.T) {
		if !d.Caps.PartialFailure {
			t.Skip("the destination takes a batch whole or not at all: there is no partial acknowledgement to retry")
		}
		partial(t, d)
	})
	t.Run("PermanentToErrorOutput", func(t *testing.T) {
		if d.OpenRefusing == nil {
			t.Skip("no record within the stream's limits makes this destination fail for good; its errors are all transient")
		}
		permanent(t, d)
	})
}

const (
	name       = "conformance"
	source     = "plates"
	deadLetter = "deadletter"
)

// rig is a stream store with the source and dead-letter streams, and a
// delivery stream from the source into a recorded destination.
type rig struct {
	store *stream.Store
	rec   *recorder
	ds    *delivery.Stream
}

func newRig(t *testing.T, target *Target, readLimit int, fail func(attempt int) (before, after error)) *rig {
	t.Helper()
	st, err := stream.Open(stream.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	for _, s := range []string{source, deadLetter} {
		if err := st.CreateStream(ctx, stream.StreamConfig{Name: s, ShardCount: 1}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{inner: target.Sink, identity: target.Identity, fail: fail, attempts: map[string]int{}}
	var s sink.Sink = rec
	if _, ok := target.Sink.(sink.ErrorSink); ok {
		s = errRecorder{rec}
	}
	ds, err := delivery.New(st, delivery.Config{Name: name, Stream: source, Sink: s, BufferInterval: -1,
		ReadLimit: readLimit, Compression: sink.Gzip, Delimiter: []byte("\n"), DeadLetter: deadLetter,
		RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, StateDir: t.TempDir(),
		StatusInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = ds.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &rig{store: st, rec: rec, ds: ds}
}

// put appends n records (data r0000, r0001, … from first) over four
// partition keys, in order, and returns their data.
func (r *rig) put(t *testing.T, first, n int) []string {
	t.Helper()
	var out []string
	for i := first; i < first+n; i += 100 {
		var entries []stream.Entry
		for j := i; j < min(i+100, first+n); j++ {
			d := fmt.Sprintf("r%04d", j)
			entries = append(entries, stream.Entry{PartitionKey: fmt.Sprintf("store/lane-%d", j%4), Data: []byte(d)})
			out = append(out, d)
		}
		res, err := r.store.PutBatch(context.Background(), source, entries)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res {
			if p.Err != nil {
				t.Fatal(p.Err)
			}
		}
	}
	return out
}

// caughtUp waits until the delivery stream has checkpointed every record
// of the source stream.
func (r *rig) caughtUp(t *testing.T) {
	t.Helper()
	testutil.WaitFor(t, 60*time.Second, func() error {
		d, err := r.store.DescribeStream(source)
		if err != nil {
			return err
		}
		for _, sh := range d.Shards {
			last, err := r.store.LastSequenceNumber(source, sh.ShardID)
			if err != nil {
				return err
			}
			ck, err := r.store.GetCheckpoint(name, source, sh.ShardID)
			if err != nil {
				return err
			}
			if ck != last {
				return fmt.Errorf("shard %s checkpointed at %q, last record %q (%d attempts so far)", sh.ShardID, ck, last, r.rec.total())
			}
		}
		return nil
	})
}

// heldOnce checks that the destination holds want exactly once, each
// batch in order and the batches contiguous, counting batches held twice
// under one identity once (a retry that replaced itself, or one the
// destination can recognise).
func heldOnce(t *testing.T, held []Held, want []string) {
	t.Helper()
	var batches [][]string
	byID := map[string][]string{}
	for _, h := range held {
		if h.ID != "" {
			if prev, ok := byID[h.ID]; ok {
				if !slices.Equal(prev, h.Records) {
					t.Fatalf("identity %s holds %v and %v: a retry under one identity changed its records", h.ID, prev, h.Records)
				}
				continue
			}
			byID[h.ID] = h.Records
		}
		if len(h.Records) > 0 {
			batches = append(batches, h.Records)
		}
	}
	slices.SortFunc(batches, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	got := slices.Concat(batches...)
	if !slices.Equal(got, want) {
		t.Fatalf("the destination holds %d records in %d batches, want %d once in order:\n got %v\nwant %v", len(got), len(batches), len(want), got, want)
	}
}

func ordered(t *testing.T, d Destination) {
	target := d.Open(t)
	r := newRig(t, target, 7, nil)
	want := r.put(t, 0, 40)
	r.caughtUp(t)
	want = append(want, r.put(t, 40, 25)...)
	r.caughtUp(t)
	heldOnce(t, target.Held(t), want)
	if n := len(r.rec.batchIDs()); n < 2 {
		t.Fatalf("%d batches: the check wants several", n)
	}
}

// errConnRefused and errAckLost are the failures the body injects around
// the real destination: one before the batch reaches it, one after it took
// the batch (the acknowledgement is lost on the way back).
var (
	errConnRefused = errors.New("sinktest: connection refused (injected before the destination)")
	errAckLost     = errors.New("sinktest: acknowledgement lost (injected after the destination took the batch)")
)

func retrySameIdentity(t *testing.T, d Destination) {
	target := d.Open(t)
	r := newRig(t, target, 1000, func(attempt int) (error, error) {
		switch attempt {
		case 1:
			return errConnRefused, nil
		case 2:
			return nil, errAckLost
		}
		return nil, nil
	})
	want := r.put(t, 0, 12)
	r.caughtUp(t)
	ids := r.rec.batchIDs()
	for _, id := range ids {
		if n := r.rec.attemptsOf(id); n != 3 {
			t.Fatalf("batch %s delivered in %d attempts, want 3 (refused, acknowledgement lost, ok)", id, n)
		}
	}
	if !d.Caps.Identity {
		t.Log("the destination has no batch identity: checking only that the retries did not duplicate records")
	} else {
		for _, id := range ids {
			if got := r.rec.identitiesOf(id); len(got) != 1 {
				t.Fatalf("batch %s was sent under %d destination identities %v, want 1", id, len(got), got)
			}
		}
	}
	heldOnce(t, target.Held(t), want)
}

func partial(t *testing.T, d Destination) {
	target := d.Open(t)
	r := newRig(t, target, d.PartialRecords, nil)
	want := r.put(t, 0, d.PartialRecords)
	r.caughtUp(t)
	if r.rec.partials() == 0 {
		t.Fatalf("no attempt was acknowledged in part in %d attempts: the check did not exercise a partial failure", r.rec.total())
	}
	t.Logf("%d attempts, %d acknowledged in part", r.rec.total(), r.rec.partials())
	heldOnce(t, target.Held(t), want)
}

func permanent(t *testing.T, d Destination) {
	target := d.OpenRefusing(t)
	r := newRig(t, target, 1000, nil)
	want := r.put(t, 0, 5)
	r.caughtUp(t)
	var got []string
	if d.Caps.ErrorOutput {
		for _, f := range target.Errors(t) {
			if f.Code != "Permanent" {
				t.Fatalf("error output record %s has code %q, want Permanent", f.Data, f.Code)
			}
			got = append(got, f.Data)
		}
	} else {
		for _, rec := range streamtest.ReadStream(t, r.store, deadLetter) {
			got = append(got, deadLetterData(t, rec.Data))
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("error output holds %v, want %v", got, want)
	}
	for _, h := range target.Held(t) {
		if len(h.Records) > 0 {
			t.Fatalf("the refusing destination holds %v", h.Records)
		}
	}
	if s := r.ds.Status(); s.ErrorRecords != int64(len(want)) || s.DeliveredRecords != 0 {
		t.Fatalf("status %+v", s)
	}
}

// deadLetterData finds the failed record's data in a dead-letter record:
// the one base64 field that decodes to a record of this body (r0000…).
// The dead-letter record's format is gateway-wide and not this body's to
// define, so it only looks for the data.
func deadLetterData(t *testing.T, raw []byte) string {
	t.Helper()
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("dead letter %s: %v", raw, err)
	}
	for _, v := range fields {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 5 && b[0] == 'r' {
			return string(b)
		}
	}
	t.Fatalf("dead letter %s holds no record data", raw)
	return ""
}
