package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// fakeClock is a wall clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "p", 2)
	var last PutResult
	for i := 0; i < 100; i++ {
		last, _ = s.Put(ctx, "p", Entry{PartitionKey: "same", Data: []byte(fmt.Sprint(i))})
	}
	if err := s.AddTags("p", map[string]string{"store": "42"}); err != nil {
		t.Fatal(err)
	}
	it, _ := s.ShardIterator(IteratorRequest{Stream: "p", ShardID: last.ShardID, Type: TrimHorizon})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "p", Entry{PartitionKey: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
	s, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := readAll(t, s, "p", last.ShardID)
	if len(recs) != 100 || recs[99].SequenceNumber != last.SequenceNumber {
		t.Fatalf("after reopen: %d records", len(recs))
	}
	// Iterators survive a restart (the key is stored).
	if res, err := s.GetRecords(ctx, it, 0); err != nil || len(res.Records) != 100 {
		t.Fatalf("old iterator: %v %d", err, len(res.Records))
	}
	r, _ := s.Put(ctx, "p", Entry{PartitionKey: "same", Data: []byte("after")})
	if !seqLess(last.SequenceNumber, r.SequenceNumber) {
		t.Fatalf("sequence went back after reopen: %s then %s", last.SequenceNumber, r.SequenceNumber)
	}
	tags, _ := s.Tags("p")
	if tags["store"] != "42" {
		t.Fatalf("tags %v", tags)
	}
	if st := s.Stats(); st.Streams[0].Records != 101 {
		t.Fatalf("stats after reopen: %+v", st.Streams[0])
	}
}

func TestRetentionAndClockJumps(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	s := openTest(t, func(o *Options) { o.Now = clk.Now })
	if err := s.CreateStream(ctx, StreamConfig{Name: "r", ShardCount: 1, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	sh := "shardId-000000000000"
	put := func(d string) PutResult {
		r, err := s.Put(ctx, "r", Entry{PartitionKey: "k", Data: []byte(d)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	put("old")
	clk.Add(50 * time.Minute)
	put("new")
	clk.Add(20 * time.Minute) // "old" is 70 min old, "new" 20 min
	recs := readAll(t, s, "r", sh)
	if len(recs) != 1 || string(recs[0].Data) != "new" {
		t.Fatalf("expired record still visible: %d", len(recs))
	}
	n, err := s.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep deleted %d (%v), want 1", n, err)
	}
	if st := s.Stats(); st.Streams[0].Records != 1 {
		t.Fatalf("records after sweep: %d", st.Streams[0].Records)
	}
	// The clock jumps back a day: sequence numbers still increase and
	// arrival times do not go backwards within the shard.
	a := put("before-jump")
	clk.Add(-24 * time.Hour)
	b := put("after-back-jump")
	if !seqLess(a.SequenceNumber, b.SequenceNumber) {
		t.Fatal("sequence number went back with the clock")
	}
	recs = readAll(t, s, "r", sh)
	if recs[len(recs)-1].ArrivalTime.Before(recs[len(recs)-2].ArrivalTime) {
		t.Fatal("arrival time went backwards within a shard")
	}
	// The clock jumps forward a year: nothing fresh is deleted.
	clk.Add(24*time.Hour + 365*24*time.Hour)
	c := put("after-forward-jump")
	if !seqLess(b.SequenceNumber, c.SequenceNumber) {
		t.Fatal("sequence number not increasing after forward jump")
	}
	if n, _ := s.Sweep(ctx); n != 0 {
		t.Fatalf("a forward clock jump made retention delete %d fresh records", n)
	}
	if got := len(readAll(t, s, "r", sh)); got != 4 {
		t.Fatalf("after forward jump %d records visible, want 4", got)
	}
}

func TestCaps(t *testing.T) {
	ctx := context.Background()
	t.Run("reject", func(t *testing.T) {
		s := openTest(t)
		if err := s.CreateStream(ctx, StreamConfig{Name: "c", ShardCount: 2, MaxBytes: 10_000}); err != nil {
			t.Fatal(err)
		}
		var ok, full int
		for i := 0; i < 200; i++ {
			_, err := s.Put(ctx, "c", Entry{PartitionKey: fmt.Sprint(i), Data: make([]byte, 100)})
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrFull):
				full++
			default:
				t.Fatal(err)
			}
		}
		st := s.Stats().Streams[0]
		if full == 0 || st.Bytes > 10_000 || int64(ok) != st.Records {
			t.Fatalf("ok %d full %d stats %+v", ok, full, st)
		}
		n := 0
		for _, sh := range []string{"shardId-000000000000", "shardId-000000000001"} {
			n += len(readAll(t, s, "c", sh))
		}
		if n != ok {
			t.Fatalf("stored %d, acked %d", n, ok)
		}
	})
	t.Run("evict_oldest", func(t *testing.T) {
		s := openTest(t)
		if err := s.CreateStream(ctx, StreamConfig{Name: "c", ShardCount: 1, MaxBytes: 10_000, OnFull: EvictOldest}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 500; i++ {
			if _, err := s.Put(ctx, "c", Entry{PartitionKey: "k", Data: []byte(fmt.Sprintf("%0100d", i))}); err != nil {
				t.Fatal(err)
			}
		}
		st := s.Stats().Streams[0]
		recs := readAll(t, s, "c", "shardId-000000000000")
		if st.Bytes > 10_000 || st.Evicted == 0 || int64(len(recs)) != st.Records {
			t.Fatalf("stats %+v, read %d", st, len(recs))
		}
		if string(recs[len(recs)-1].Data) != fmt.Sprintf("%0100d", 499) {
			t.Fatal("newest record missing")
		}
		for i := 1; i < len(recs); i++ {
			if !seqLess(recs[i-1].SequenceNumber, recs[i].SequenceNumber) {
				t.Fatal("order broken by eviction")
			}
		}
	})
	t.Run("store-wide", func(t *testing.T) {
		s := openTest(t, func(o *Options) { o.MaxBytes = 20_000 })
		mustCreate(t, s, "a", 1)
		mustCreate(t, s, "b", 1)
		var full int
		for i := 0; i < 300; i++ {
			if _, err := s.Put(ctx, []string{"a", "b"}[i%2], Entry{PartitionKey: "k", Data: make([]byte, 100)}); errors.Is(err, ErrFull) {
				full++
			}
		}
		if st := s.Stats(); full == 0 || st.Bytes > 20_000 {
			t.Fatalf("full %d bytes %d", full, st.Bytes)
		}
	})
}

func TestUpdateShardCount(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ from, to int }{{1, 2}, {2, 4}, {4, 2}, {3, 5}, {5, 3}, {4, 7}} {
		t.Run(fmt.Sprintf("%d-%d", c.from, c.to), func(t *testing.T) {
			s := openTest(t)
			mustCreate(t, s, "u", c.from)
			if err := s.UpdateShardCount(ctx, "u", c.to); err != nil {
				t.Fatal(err)
			}
			d, _ := s.DescribeStream("u")
			if d.OpenShardCount != c.to {
				t.Fatalf("open shards %d", d.OpenShardCount)
			}
			want := map[string]bool{}
			for _, w := range evenRanges(c.to) {
				want[w.String()] = true
			}
			for _, sh := range d.Shards {
				if sh.Open() && !want[sh.HashKeyRange.StartingHashKey] {
					t.Fatalf("open shard %s starts at %s, not an even boundary", sh.ShardID, sh.HashKeyRange.StartingHashKey)
				}
				if sh.ParentShardID == "" && sh.ShardID >= fmt.Sprintf("shardId-%012d", c.from) {
					t.Fatalf("%s has no parent", sh.ShardID)
				}
			}
		})
	}
	s := openTest(t)
	mustCreate(t, s, "u", 2)
	if err := s.UpdateShardCount(ctx, "u", 5); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("more than double: %v", err)
	}
}

func TestCheckpointsAndLeases(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Now()}
	s := openTest(t, func(o *Options) { o.Now = clk.Now })
	mustCreate(t, s, "l", 1)
	sh := "shardId-000000000000"
	r, _ := s.Put(ctx, "l", Entry{PartitionKey: "k", Data: []byte("x")})
	a, err := s.AcquireLease("g", "l", sh, "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease("g", "l", sh, "B", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second owner: %v", err)
	}
	if _, err := s.AcquireLease("other-group", "l", sh, "B", time.Minute); err != nil {
		t.Fatalf("other group: %v", err)
	}
	if err := s.Checkpoint(a, "g", "l", sh, r.SequenceNumber); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	b, err := s.AcquireLease("g", "l", sh, "B", time.Minute)
	if err != nil {
		t.Fatalf("expired lease not taken over: %v", err)
	}
	if err := s.Checkpoint(a, "g", "l", sh, r.SequenceNumber); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale owner checkpointed: %v", err)
	}
	if _, err := s.RenewLease(a, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale owner renewed: %v", err)
	}
	if _, err := s.RenewLease(b, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ck, _ := s.GetCheckpoint("g", "l", sh); ck != r.SequenceNumber {
		t.Fatalf("checkpoint %q", ck)
	}
	if err := s.Checkpoint(Lease{}, "g", "l", sh, "999"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad seq checkpoint: %v", err)
	}
}

func TestWaitWakesOnAppend(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	mustCreate(t, s, "w", 1)
	sh := "shardId-000000000000"
	done := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done <- s.Wait(c, "w", sh, "")
	}()
	if _, err := s.Put(ctx, "w", Entry{PartitionKey: "k", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	last, _ := s.LastSequenceNumber("w", sh)
	c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.Wait(c, "w", sh, last); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with nothing new: %v", err)
	}
}

func TestConsumeLineageAndResume(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	mustCreate(t, s, "cs", 1)
	for i := 0; i < 30; i++ {
		_, _ = s.Put(ctx, "cs", Entry{PartitionKey: fmt.Sprint(i), Data: []byte(fmt.Sprintf("p%d", i))})
	}
	if err := s.SplitShard(ctx, "cs", "shardId-000000000000", "170141183460469231731687303715884105728"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		_, _ = s.Put(ctx, "cs", Entry{PartitionKey: fmt.Sprint(i), Data: []byte(fmt.Sprintf("c%d", i))})
	}
	var mu sync.Mutex
	var got []string
	var parentDoneAt atomic.Int64
	run := func(ctx context.Context) {
		_ = s.Consume(ctx, ConsumerConfig{Group: "g", Stream: "cs", Idle: 20 * time.Millisecond}, func(ctx context.Context, b ShardBatch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range b.Records {
				if r.Data[0] == 'c' && parentDoneAt.Load() == 0 {
					t.Errorf("child record %s read before the parent finished", r.Data)
				}
				got = append(got, string(r.Data))
			}
			if n := len(b.Records); n > 0 {
				if err := s.Checkpoint(b.Lease, "g", "cs", b.ShardID, b.Records[n-1].SequenceNumber); err != nil {
					return err
				}
			}
			if b.Ended && b.ShardID == "shardId-000000000000" {
				parentDoneAt.Store(1)
			}
			return nil
		})
	}
	c1, cancel := context.WithCancel(ctx)
	go run(c1)
	waitRead(t, &mu, &got, 60)
	cancel()
	// A restarted consumer resumes after its checkpoints: new records only.
	_, _ = s.Put(ctx, "cs", Entry{PartitionKey: "z", Data: []byte("cz")})
	mu.Lock()
	got = nil
	mu.Unlock()
	c2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	go run(c2)
	waitRead(t, &mu, &got, 1)
	mu.Lock()
	if got[0] != "cz" {
		t.Fatalf("resumed consumer read %v", got)
	}
	mu.Unlock()
}

// waitRead waits until the consumer has read n records into got.
func waitRead(t *testing.T, mu *sync.Mutex, got *[]string, n int) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(*got) != n {
			return fmt.Errorf("the consumer read %d records, want %d", len(*got), n)
		}
		return nil
	})
}

func TestDeleteStream(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	mustCreate(t, s, "d", 1)
	_, _ = s.Put(ctx, "d", Entry{PartitionKey: "k", Data: []byte("x")})
	if err := s.DeleteStream(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DescribeStream("d"); !errors.Is(err, ErrStreamNotFound) {
		t.Fatal(err)
	}
	mustCreate(t, s, "d", 1)
	if recs := readAll(t, s, "d", "shardId-000000000000"); len(recs) != 0 {
		t.Fatalf("recreated stream holds %d old records", len(recs))
	}
}

func TestConsumeRenewsLeaseWhileHandlerRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("its handler runs for a full second, three lease lifetimes: make test runs it")
	}
	ctx := context.Background()
	s := openTest(t)
	mustCreate(t, s, "lr", 1)
	_, _ = s.Put(ctx, "lr", Entry{PartitionKey: "k", Data: []byte("x")})
	done := make(chan error, 1)
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = s.Consume(c, ConsumerConfig{Group: "g", Stream: "lr", LeaseTTL: 300 * time.Millisecond}, func(ctx context.Context, b ShardBatch) error {
			if len(b.Records) == 0 {
				return nil
			}
			time.Sleep(time.Second) // a destination retried for over three lease lifetimes
			done <- s.Checkpoint(b.Lease, "g", "lr", b.ShardID, b.Records[0].SequenceNumber)
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("checkpoint after a long handler: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("handler never finished")
	}
	if _, err := s.AcquireLease("g", "lr", "shardId-000000000000", "intruder", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("the lease lapsed while the handler ran: %v", err)
	}
}

func TestIteratorInfo(t *testing.T) {
	s := openTest(t)
	mustCreate(t, s, "ii", 2)
	it, _ := s.ShardIterator(IteratorRequest{Stream: "ii", ShardID: "shardId-000000000001", Type: Latest})
	name, shard, err := s.IteratorInfo(it)
	if err != nil || name != "ii" || shard != "shardId-000000000001" {
		t.Fatalf("%q %q %v", name, shard, err)
	}
	if _, _, err := s.IteratorInfo("garbage"); !errors.Is(err, ErrInvalidIterator) {
		t.Fatal(err)
	}
}
