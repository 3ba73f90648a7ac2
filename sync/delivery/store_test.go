package delivery_test

import (
	"bufio"
	"bytes"
	"context"
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
	"github.com/kaiten-edge/kaiten/sync/localsink"
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
