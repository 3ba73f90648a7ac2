package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// fakeStore records appends; a test can hold appends (gate) and make
// records fail.
type fakeStore struct {
	mu      sync.Mutex
	gate    chan struct{} // if non-nil, each PutBatch waits for a receive
	calls   []int         // records per call
	records map[string][]stream.Entry
	fail    func(s string, e stream.Entry) error // per record
}

func (f *fakeStore) PutBatch(ctx context.Context, s string, es []stream.Entry) ([]stream.PutResult, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.records == nil {
		f.records = map[string][]stream.Entry{}
	}
	f.calls = append(f.calls, len(es))
	res := make([]stream.PutResult, len(es))
	for i, e := range es {
		if f.fail != nil {
			if err := f.fail(s, e); err != nil {
				res[i].Err = err
				continue
			}
		}
		f.records[s] = append(f.records[s], e)
		res[i].SequenceNumber = fmt.Sprint(len(f.records[s]))
	}
	return res, nil
}

func (f *fakeStore) count(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.records[s])
}

func newTestWriter(t *testing.T, st Appender) (*writer, *metrics, context.CancelFunc) {
	t.Helper()
	c := Config{Routes: []Route{{Topic: "t/+", Stream: "s", Key: "{1}"}}}
	if err := c.Normalize("x"); err != nil {
		t.Fatal(err)
	}
	rt, err := newRouter(&c)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newMetrics(nil)
	w := newWriter(st, rt, 1024, 1<<20, 500, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	ctx, cancel := context.WithCancel(context.Background())
	go w.run(ctx)
	t.Cleanup(func() {
		select {
		case <-w.quit:
		default:
			w.stop()
		}
		cancel()
		<-w.exited
	})
	return w, m, cancel
}

func TestWriterAcksOnlyAfterAppendAndBatches(t *testing.T) {
	st := &fakeStore{gate: make(chan struct{})}
	w, m, _ := newTestWriter(t, st)
	var mu sync.Mutex
	acked := map[int]bool{}
	for i := range 100 {
		err := w.submit(context.Background(), Message{Topic: "t/a", Payload: fmt.Appendf(nil, `{"n":%d}`, i)},
			func(err error) {
				if err != nil {
					t.Errorf("message %d: %v", i, err)
				}
				mu.Lock()
				acked[i] = true
				mu.Unlock()
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The first append is held: nothing may be acknowledged yet.
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("%d messages acknowledged before their append returned", n)
	}
	st.gate <- struct{}{} // let exactly one append through
	testutil.WaitFor(t, 5*time.Second, func() error {
		st.mu.Lock()
		if len(st.calls) == 0 {
			st.mu.Unlock()
			return errors.New("no append finished yet")
		}
		first := st.calls[0]
		st.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		if len(acked) != first {
			return fmt.Errorf("%d acknowledged after the first append of %d", len(acked), first)
		}
		for i := range first {
			if !acked[i] {
				return fmt.Errorf("message %d not acknowledged", i)
			}
		}
		return nil
	})
	close(st.gate) // let every append through
	testutil.WaitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) != 100 {
			return fmt.Errorf("%d of 100 acknowledged", len(acked))
		}
		return nil
	})
	if st.count("s") != 100 || m.nStored.Load() != 100 {
		t.Fatalf("stored %d (metric %d), want 100", st.count("s"), m.nStored.Load())
	}
	st.mu.Lock()
	calls := len(st.calls)
	st.mu.Unlock()
	// One message went first, the other 99 queued behind it: far fewer
	// appends than messages (group commit).
	if calls > 10 {
		t.Fatalf("%d appends for 100 messages; want them batched", calls)
	}
}

func TestWriterRetriesAndDeadLetters(t *testing.T) {
	var mu sync.Mutex
	fullLeft := 3
	st := &fakeStore{fail: func(s string, e stream.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		if s == "s" && e.PartitionKey == "full" && fullLeft > 0 {
			fullLeft--
			return fmt.Errorf("put: %w", stream.ErrFull)
		}
		if s == "s" && e.PartitionKey == "invalid" {
			return fmt.Errorf("put: %w", stream.ErrInvalidArgument)
		}
		return nil
	}}
	w, m, _ := newTestWriter(t, st)
	ctx := context.Background()
	for _, topic := range []string{"t/full", "t/invalid", "t/ok"} {
		if err := w.store(ctx, Message{Topic: topic, Payload: []byte(`{}`)}); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
	}
	if st.count("s") != 2 || st.count("deadletter") != 1 {
		t.Fatalf("s=%d deadletter=%d, want 2 and 1", st.count("s"), st.count("deadletter"))
	}
	d := decodeDead(t, st.records["deadletter"][0].Data)
	if d.Topic != "t/invalid" || d.Reason[:len(ReasonRejected)] != ReasonRejected {
		t.Fatalf("dead letter %+v", d)
	}
	if m.nDead.Load() != 1 || m.nStored.Load() != 2 {
		t.Fatalf("metrics dead=%d stored=%d", m.nDead.Load(), m.nStored.Load())
	}
}

func TestWriterStopLeavesMessagesUnacknowledged(t *testing.T) {
	st := &fakeStore{gate: make(chan struct{})} // appends never finish
	w, _, cancel := newTestWriter(t, st)
	got := make(chan error, 1)
	if err := w.submit(context.Background(), Message{Topic: "t/a", Payload: []byte(`{}`)}, func(err error) { got <- err }); err != nil {
		t.Fatal(err)
	}
	w.stop()
	if err := w.submit(context.Background(), Message{Topic: "t/a"}, func(error) {}); !errors.Is(err, ErrStopped) {
		t.Fatalf("submit after stop: %v, want ErrStopped", err)
	}
	cancel() // the stop deadline passes while the append hangs
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("a message whose append never finished was acknowledged")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("done was never called")
	}
}

func TestWriterCountsRedeliveredDuplicates(t *testing.T) {
	st := &fakeStore{}
	w, m, _ := newTestWriter(t, st)
	ctx := context.Background()
	msg := Message{Topic: "t/a", Payload: []byte(`{"id":1}`)}
	if err := w.store(ctx, msg); err != nil {
		t.Fatal(err)
	}
	msg.Dup = true
	if err := w.store(ctx, msg); err != nil {
		t.Fatal(err)
	}
	other := Message{Topic: "t/a", Payload: []byte(`{"id":2}`), Dup: true}
	if err := w.store(ctx, other); err != nil {
		t.Fatal(err)
	}
	// A publisher's own resend reaches us without DUP: still a copy.
	resent := Message{Topic: "t/a", Payload: []byte(`{"id":1}`)}
	if err := w.store(ctx, resent); err != nil {
		t.Fatal(err)
	}
	if m.nRedelivered.Load() != 2 || m.nDup.Load() != 2 || st.count("s") != 4 {
		t.Fatalf("redelivered=%d duplicates=%d stored=%d; want 2, 2, 4 (at-least-once keeps every copy)",
			m.nRedelivered.Load(), m.nDup.Load(), st.count("s"))
	}
}

func TestWriterBoundsQueuedBytes(t *testing.T) {
	st := &fakeStore{gate: make(chan struct{})}
	c := Config{Routes: []Route{{Topic: "t/+", Stream: "s", Key: "{1}", Payload: PayloadRaw}}}
	if err := c.Normalize("x"); err != nil {
		t.Fatal(err)
	}
	rt, _ := newRouter(&c)
	m, _ := newMetrics(nil)
	w := newWriter(st, rt, 1024, 1000, 500, slog.New(slog.DiscardHandler), m)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { w.stop(); cancel(); <-w.exited }()
	go w.run(ctx)
	done := make(chan error, 3)
	big := make([]byte, 399) // 400 bytes of budget each
	for range 2 {
		if err := w.submit(ctx, Message{Topic: "t/a", Payload: big}, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	if w.budget.TryAcquire(400) {
		t.Fatal("a third 400-byte message fits in a 1000-byte budget holding 800")
	}
	third := make(chan error, 1)
	go func() { third <- w.submit(ctx, Message{Topic: "t/a", Payload: big}, func(err error) { done <- err }) }()
	close(st.gate) // appends finish, the budget frees, the third gets in
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if !w.budget.TryAcquire(1000) {
			return errors.New("budget not released after the appends")
		}
		w.budget.Release(1000)
		return nil
	})
}
