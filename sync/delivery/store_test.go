package delivery_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/delivery"
	"github.com/kaiten-edge/kaiten/sync/internal/s3test"
	"github.com/kaiten-edge/kaiten/sync/localsink"
	"github.com/kaiten-edge/kaiten/sync/s3sink"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

func openStore(t testing.TB, dir string) *stream.Store {
	t.Helper()
	st, err := stream.Open(stream.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// readDelivered reads every object under dir (gzip JSON lines) and returns
// the lines, keyed by object path.
func readDelivered(t testing.TB, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".gz") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := sink.Decode(raw, sink.Gzip)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(plain))
		for sc.Scan() {
			out[path] = append(out[path], sc.Text())
		}
		return nil
	})
	return out
}

// orderSink wraps a sink and records what it acknowledged, in order.
type orderSink struct {
	sink.BodySink
	mu    sync.Mutex
	lines []string
}

func (o *orderSink) Deliver(ctx context.Context, b *sink.Batch) error {
	if err := o.BodySink.Deliver(ctx, b); err != nil {
		return err
	}
	plain, err := sink.Decode(b.Body, b.ContentEncoding)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(plain))
	for sc.Scan() {
		o.lines = append(o.lines, sc.Text())
	}
	return nil
}

// TestRealStoreWithResharding delivers a stream to the local directory
// while records keep coming and a shard splits: every record arrives once,
// and within each partition key in the order it was put.
func TestRealStoreWithResharding(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := st.CreateStream(ctx, stream.StreamConfig{Name: "plates", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	rec := &orderSink{BodySink: &localsink.Sink{Dir: out}}
	m, _ := delivery.NewMetrics(nil)
	d, err := delivery.New(st, delivery.Config{Name: "plates-archive", Stream: "plates",
		Sink: rec, Compression: sink.Gzip, Delimiter: []byte("\n"),
		BufferInterval: 100 * time.Millisecond, StateDir: t.TempDir(), Metrics: m, StatusInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Run(ctx) }()

	const keys, perKey = 8, 150
	put := func(from, to int) {
		for i := from; i < to; i++ {
			var entries []stream.Entry
			for k := 0; k < keys; k++ {
				entries = append(entries, stream.Entry{PartitionKey: fmt.Sprintf("demo-store/%d", k),
					Data: []byte(fmt.Sprintf(`{"lane":"%d","n":%d}`, k, i))})
			}
			res, err := st.PutBatch(ctx, "plates", entries)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
			}
		}
	}
	put(0, perKey/2)
	desc, err := st.DescribeStream("plates")
	if err != nil {
		t.Fatal(err)
	}
	sh := desc.Shards[0]
	mid := midpoint(sh.HashKeyRange.StartingHashKey, sh.HashKeyRange.EndingHashKey)
	if err := st.SplitShard(ctx, "plates", sh.ShardID, mid); err != nil {
		t.Fatal(err)
	}
	put(perKey/2, perKey)

	testutil.WaitFor(t, 30*time.Second, func() error {
		n := 0
		for _, lines := range readDelivered(t, out) {
			n += len(lines)
		}
		if n < keys*perKey {
			return fmt.Errorf("%d of %d records delivered", n, keys*perKey)
		}
		if s := d.Status(); s.BacklogRecords != 0 || s.FreshnessSeconds != 0 {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
	cancel()
	wg.Wait()

	objs := readDelivered(t, out)
	seen := map[string]int{}
	for p, lines := range objs {
		for _, line := range lines {
			seen[line]++
		}
		rel, _ := filepath.Rel(out, p)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 5 || !strings.HasPrefix(parts[4], "plates-archive-1-") {
			t.Fatalf("object path %q is not YYYY/MM/DD/HH/name-version-...", rel)
		}
	}
	// In acknowledgement order, every key's records come in put order,
	// across the parent shard and its children.
	last := map[int]int{}
	rec.mu.Lock()
	for _, line := range rec.lines {
		var lane, n int
		if _, err := fmt.Sscanf(line, `{"lane":"%d","n":%d}`, &lane, &n); err != nil {
			t.Fatalf("line %q", line)
		}
		if prev, ok := last[lane]; ok && n != prev+1 {
			t.Fatalf("lane %d: %d delivered after %d", lane, n, prev)
		}
		last[lane] = n
	}
	rec.mu.Unlock()
	if len(seen) != keys*perKey {
		t.Fatalf("%d distinct records, want %d", len(seen), keys*perKey)
	}
	for line, n := range seen {
		if n != 1 {
			t.Fatalf("%q delivered %d times", line, n)
		}
	}
	// The parent's checkpoint is its last record: children came after it.
	ck, err := st.GetCheckpoint("plates-archive", "plates", sh.ShardID)
	if err != nil || ck == "" {
		t.Fatalf("parent checkpoint %q %v", ck, err)
	}
}

func midpoint(a, b string) string {
	var x, y, s big.Int
	x.SetString(a, 10)
	y.SetString(b, 10)
	s.Add(&x, &y)
	s.Rsh(&s, 1)
	return s.String()
}

// crashingStore fails every Checkpoint while crashed is set: the process
// "dies" after the destination acknowledged and before the checkpoint.
type crashingStore struct {
	*stream.Store
	mu      sync.Mutex
	crashed bool
}

func (c *crashingStore) Checkpoint(l stream.Lease, group, name, shardID, seq string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return errors.New("power cut")
	}
	return c.Store.Checkpoint(l, group, name, shardID, seq)
}

// TestCrashAfterAckIsExactOnS3 runs against the real store and a real S3
// server: objects are written, checkpoints are lost, more records arrive,
// the delivery stream restarts; every record is in exactly one object.
func TestCrashAfterAckIsExactOnS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw: make test runs it")
	}
	srv := s3test.Start(t)
	srv.CreateBucket(t, "archive")
	st := openStore(t, t.TempDir())
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateStream(ctx, stream.StreamConfig{Name: "plates", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	n := 0
	put := func(k int) {
		for i := 0; i < k; i++ {
			n++
			if _, err := st.Put(ctx, "plates", stream.Entry{PartitionKey: fmt.Sprintf("demo-store/%d", n%7), Data: []byte(fmt.Sprintf("rec-%05d", n))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(300)
	state := t.TempDir()
	cs := &crashingStore{Store: st, crashed: true}
	s3s, err := s3sink.New(srv.Config("archive"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := delivery.Config{Name: "exact", Stream: "plates", Sink: s3s, Compression: sink.Gzip, Delimiter: []byte("\n"),
		BufferInterval: -1, ReadLimit: 50, StateDir: state}
	d1, err := delivery.New(cs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d1.Run(rctx) }()
	testutil.WaitFor(t, 20*time.Second, func() error {
		keys, err := srv.Objects(ctx, "archive", "")
		if err != nil || len(keys) < 2 {
			return fmt.Errorf("%d objects, %v", len(keys), err)
		}
		return nil
	})
	cancel()
	<-done
	put(200) // more records arrive while the gateway is down

	cs.mu.Lock()
	cs.crashed = false
	cs.mu.Unlock()
	// The restarted gateway reads in other chunks: only the intents make it
	// cut the first batches where the lost ones ended.
	cfg2 := cfg
	cfg2.ReadLimit = 80
	d2, err := delivery.New(cs, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel = context.WithCancel(ctx)
	done = make(chan struct{})
	go func() { defer close(done); _ = d2.Run(rctx) }()
	defer func() { cancel(); <-done }()
	testutil.WaitFor(t, 30*time.Second, func() error {
		seen := map[string]int{}
		keys, err := srv.Objects(ctx, "archive", "")
		if err != nil {
			return err
		}
		for _, k := range keys {
			raw, err := srv.Get(ctx, "archive", k)
			if err != nil {
				return err
			}
			plain, err := sink.Decode(raw, sink.Gzip)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			sc := bufio.NewScanner(bytes.NewReader(plain))
			for sc.Scan() {
				seen[sc.Text()]++
			}
		}
		if len(seen) != n {
			return fmt.Errorf("%d of %d records in %d objects", len(seen), n, len(keys))
		}
		for r, c := range seen {
			if c != 1 {
				t.Fatalf("%s is in %d objects", r, c)
			}
		}
		return nil
	})
}

// TestBacklogTailIsNotHeldBack: the interval hint counts from a record's
// arrival once the delivery stream has caught up, so the last partial batch
// of a backlog older than the interval goes out at once, while records that
// have just arrived wait for the interval as Firehose buffers them.
func TestBacklogTailIsNotHeldBack(t *testing.T) {
	if testing.Short() {
		t.Skip("watches for a second that fresh records stay buffered: make test runs it")
	}
	var mu sync.Mutex
	clock := time.Now().Add(-time.Hour) // records arrive an hour ago...
	st, err := stream.Open(stream.Options{Dir: t.TempDir(), Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := st.CreateStream(ctx, stream.StreamConfig{Name: "plates", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	put := func(from, to int) {
		var entries []stream.Entry
		for i := from; i < to; i++ {
			entries = append(entries, stream.Entry{PartitionKey: "lane-1", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		}
		if _, err := st.PutBatch(ctx, "plates", entries); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 500)
	mu.Lock()
	clock = time.Now() // ...and the next ones now
	mu.Unlock()

	out := t.TempDir()
	m, _ := delivery.NewMetrics(nil)
	d, err := delivery.New(st, delivery.Config{Name: "archive", Stream: "plates", Sink: &localsink.Sink{Dir: out},
		Compression: sink.Gzip, Delimiter: []byte("\n"), BufferInterval: delivery.MaxBufferInterval,
		StateDir: t.TempDir(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Run(ctx) }()
	testutil.WaitFor(t, 30*time.Second, func() error {
		if s := d.Status(); s.DeliveredRecords != 500 {
			return fmt.Errorf("%d of the 500 old records delivered", s.DeliveredRecords)
		}
		return nil
	})
	put(500, 600)
	// The fresh records are read (the stream's checkpoint stays behind
	// them) but stay buffered: the interval is 900 s.
	testutil.WaitFor(t, 30*time.Second, func() error {
		if s := d.Status(); s.BacklogRecords != 100 {
			return fmt.Errorf("backlog %d, want the 100 fresh records", s.BacklogRecords)
		}
		return nil
	})
	time.Sleep(time.Second)
	if s := d.Status(); s.DeliveredRecords != 500 {
		t.Fatalf("delivered %d records; the fresh ones should wait for the interval", s.DeliveredRecords)
	}
	cancel()
	wg.Wait()
	n := 0
	for _, lines := range readDelivered(t, out) {
		n += len(lines)
	}
	if n != 500 {
		t.Fatalf("%d records in the destination, want 500", n)
	}
}
