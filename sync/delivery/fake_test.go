package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// fakeStore is a small in-memory Store with Consume's contract (a goroutine
// per shard, batches in order after the checkpoint, empty batches when
// idle, restart from the checkpoint after an error), driven by the test.
type fakeStore struct {
	mu       sync.Mutex
	shards   map[string][]stream.Record
	order    []string
	ckpt     map[string]string
	next     int
	dead     []stream.Entry
	failCkpt error // returned by Checkpoint while set
	ckpts    int
}

func newFakeStore(shards ...string) *fakeStore {
	f := &fakeStore{shards: map[string][]stream.Record{}, ckpt: map[string]string{}, next: 1000}
	for _, s := range shards {
		f.shards[s] = nil
		f.order = append(f.order, s)
	}
	return f
}

// add appends records with data "<shard>:<i>" and returns their data.
func (f *fakeStore) add(shard string, n int, arrival time.Time) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for i := 0; i < n; i++ {
		f.next++
		d := fmt.Sprintf("%s:%d", shard, f.next)
		f.shards[shard] = append(f.shards[shard], stream.Record{SequenceNumber: strconv.Itoa(f.next), PartitionKey: "pk-" + shard, Data: []byte(d), ArrivalTime: arrival})
		out = append(out, d)
	}
	return out
}

func (f *fakeStore) after(shard, seq string, limit int) []stream.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []stream.Record
	for _, r := range f.shards[shard] {
		if seq == "" || seqCmp(r.SequenceNumber, seq) > 0 {
			out = append(out, r)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

func (f *fakeStore) Consume(ctx context.Context, cfg stream.ConsumerConfig, fn func(context.Context, stream.ShardBatch) error) error {
	var wg sync.WaitGroup
	for _, id := range f.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pos, _ := f.GetCheckpoint(cfg.Group, cfg.Stream, id)
			for ctx.Err() == nil {
				recs := f.after(id, pos, cfg.Limit)
				if len(recs) == 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(cfg.Idle):
					}
				}
				err := fn(ctx, stream.ShardBatch{ShardID: id, Records: recs, Lease: stream.Lease{Group: cfg.Group, ShardID: id, Token: 1}})
				if err != nil {
					pos, _ = f.GetCheckpoint(cfg.Group, cfg.Stream, id)
					select {
					case <-ctx.Done():
						return
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				if len(recs) > 0 {
					pos = recs[len(recs)-1].SequenceNumber
				}
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (f *fakeStore) Checkpoint(l stream.Lease, group, name, shardID, seq string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failCkpt; err != nil {
		return err
	}
	f.ckpt[shardID] = seq
	f.ckpts++
	return nil
}

func (f *fakeStore) GetCheckpoint(group, name, shardID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ckpt[shardID], nil
}

func (f *fakeStore) DescribeStream(name string) (stream.StreamDescription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := stream.StreamDescription{Name: name, Retention: 24 * time.Hour}
	for _, id := range f.order {
		d.Shards = append(d.Shards, stream.Shard{ShardID: id})
	}
	return d, nil
}

func (f *fakeStore) Read(ctx context.Context, req stream.ReadRequest) (stream.ReadResult, error) {
	lim := req.Limit
	if lim == 0 {
		lim = 1000
	}
	return stream.ReadResult{Records: f.after(req.ShardID, req.After, lim)}, nil
}

func (f *fakeStore) LastSequenceNumber(name, shardID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.shards[shardID]
	if len(r) == 0 {
		return "", nil
	}
	return r[len(r)-1].SequenceNumber, nil
}

func (f *fakeStore) PutBatch(ctx context.Context, name string, entries []stream.Entry) ([]stream.PutResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name != "deadletter" {
		return nil, stream.ErrStreamNotFound
	}
	f.dead = append(f.dead, entries...)
	return make([]stream.PutResult, len(entries)), nil
}

func (f *fakeStore) deadLetters() []stream.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stream.Entry(nil), f.dead...)
}

// memSink records deliveries; fail decides each attempt's error.
type memSink struct {
	mu       sync.Mutex
	batches  []sink.Batch
	attempts map[string]int
	errs     []sink.ErrorBatch
	fail     func(b *sink.Batch) error
	body     bool // take one encoded object per batch (lean buffering)
}

func (m *memSink) Kind() string    { return "local" }
func (m *memSink) WantsBody() bool { return m.body }

func (m *memSink) Deliver(ctx context.Context, b *sink.Batch) error {
	m.mu.Lock()
	if m.attempts == nil {
		m.attempts = map[string]int{}
	}
	m.attempts[b.ID]++
	fail := m.fail
	m.mu.Unlock()
	var err error
	if fail != nil {
		err = fail(b)
	}
	var re *sink.RecordErrors
	if err != nil && !errors.As(err, &re) {
		return err
	}
	cp := *b
	if b.Body != nil && b.Records == nil {
		// Lean batches carry only the object: split it back into records.
		plain, derr := sink.Decode(b.Body, b.ContentEncoding)
		if derr != nil {
			return derr
		}
		for _, line := range strings.SplitAfter(string(plain), "\n") {
			if line != "" {
				cp.Records = append(cp.Records, sink.Record{Data: []byte(strings.TrimSuffix(line, "\n"))})
			}
		}
	}
	m.mu.Lock()
	m.batches = append(m.batches, cp)
	m.mu.Unlock()
	return err
}

func (m *memSink) attemptsOf(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.attempts[id]
}

type memErrSink struct{ *memSink }

func (m memErrSink) DeliverErrors(ctx context.Context, b *sink.ErrorBatch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs = append(m.errs, *b)
	return nil
}

func (m *memSink) delivered() []sink.Batch {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sink.Batch(nil), m.batches...)
}

func (m *memSink) errorBatches() []sink.ErrorBatch {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sink.ErrorBatch(nil), m.errs...)
}

// records returns the data of every delivered record by shard, from
// batches with distinct ids (a re-delivered id overwrote itself).
func uniqueRecords(batches []sink.Batch) map[string][]string {
	seen := map[string]bool{}
	out := map[string][]string{}
	sort.SliceStable(batches, func(i, j int) bool { return seqCmp(batches[i].FirstSeq, batches[j].FirstSeq) < 0 })
	for _, b := range batches {
		if seen[b.ID] {
			continue
		}
		seen[b.ID] = true
		for _, r := range b.Records {
			out[b.ShardID] = append(out[b.ShardID], string(r.Data))
		}
	}
	return out
}

func run(t *testing.T, st Store, cfg Config) (*Stream, context.CancelFunc) {
	t.Helper()
	d, err := New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return d, stop
}

type bigInt = big.Int

func recordOf(seq int, data []byte) stream.Record {
	return stream.Record{SequenceNumber: strconv.Itoa(seq), PartitionKey: "pk", Data: data, ArrivalTime: time.Now()}
}

func (f *fakeStore) RenewLease(l stream.Lease, ttl time.Duration) (stream.Lease, error) {
	l.Expires = time.Now().Add(ttl)
	return l, nil
}

// captured is a slog.Handler that keeps every record, with its logger's
// attributes, as a map of key to value (plus "level" and "msg").
type captured struct {
	mu    *sync.Mutex
	recs  *[]map[string]any
	attrs []slog.Attr
}

func newCaptured() captured { return captured{mu: &sync.Mutex{}, recs: new([]map[string]any)} }

func (c captured) Enabled(context.Context, slog.Level) bool { return true }

func (c captured) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"level": r.Level.String(), "msg": r.Message}
	for _, a := range c.attrs {
		m[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.recs = append(*c.recs, m)
	return nil
}

func (c captured) WithAttrs(as []slog.Attr) slog.Handler {
	c.attrs = append(slices.Clip(c.attrs), as...)
	return c
}

func (c captured) WithGroup(string) slog.Handler { return c }

// find returns the records whose message starts with msg.
func (c captured) find(msg string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, r := range *c.recs {
		if strings.HasPrefix(r["msg"].(string), msg) {
			out = append(out, r)
		}
	}
	return out
}
