package stream

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTest opens a store in a temp dir; the variants let one suite run on
// every configuration that matters.
func openTest(t testing.TB, mod ...func(*Options)) *Store {
	t.Helper()
	o := Options{Dir: t.TempDir(), SweepInterval: time.Hour}
	for _, f := range mod {
		f(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var variants = map[string]func(*Options){
	"default":       func(o *Options) {},
	"small-commits": func(o *Options) { o.CommitRecords = 3; o.MemTableSize = 1 << 20 },
}

func mustCreate(t testing.TB, s *Store, name string, shards int) {
	t.Helper()
	if err := s.CreateStream(context.Background(), StreamConfig{Name: name, ShardCount: shards}); err != nil {
		t.Fatal(err)
	}
}

func readAll(t testing.TB, s *Store, stream, shard string) []Record {
	t.Helper()
	var out []Record
	after := ""
	for {
		rr, err := s.Read(context.Background(), ReadRequest{Stream: stream, ShardID: shard, After: after, Limit: 333})
		if err != nil {
			t.Fatal(err)
		}
		if len(rr.Records) == 0 {
			return out
		}
		out = append(out, rr.Records...)
		after = rr.Records[len(rr.Records)-1].SequenceNumber
	}
}

func seqLess(a, b string) bool {
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	return x.Cmp(y) < 0
}

func TestConformance(t *testing.T) {
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			t.Run("PutReadOrder", func(t *testing.T) { testPutReadOrder(t, openTest(t, v)) })
			t.Run("Routing", func(t *testing.T) { testRouting(t, openTest(t, v)) })
			t.Run("Limits", func(t *testing.T) { testLimits(t, openTest(t, v)) })
			t.Run("Iterators", func(t *testing.T) { testIterators(t, openTest(t, v)) })
			t.Run("Split", func(t *testing.T) { testSplit(t, openTest(t, v)) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, openTest(t, v)) })
		})
	}
}

func testPutReadOrder(t *testing.T, s *Store) {
	ctx := context.Background()
	mustCreate(t, s, "a", 1)
	var seqs []string
	for i := 0; i < 50; i++ {
		r, err := s.Put(ctx, "a", Entry{PartitionKey: "k", Data: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		if r.ShardID != "shardId-000000000000" {
			t.Fatalf("shard %s", r.ShardID)
		}
		if len(seqs) > 0 && !seqLess(seqs[len(seqs)-1], r.SequenceNumber) {
			t.Fatalf("sequence numbers not increasing: %s then %s", seqs[len(seqs)-1], r.SequenceNumber)
		}
		seqs = append(seqs, r.SequenceNumber)
	}
	recs := readAll(t, s, "a", "shardId-000000000000")
	if len(recs) != 50 {
		t.Fatalf("read %d records, want 50", len(recs))
	}
	for i, r := range recs {
		if string(r.Data) != fmt.Sprint(i) || r.SequenceNumber != seqs[i] || r.PartitionKey != "k" {
			t.Fatalf("record %d = %q %s, want %d %s", i, r.Data, r.SequenceNumber, i, seqs[i])
		}
	}
}

func testRouting(t *testing.T, s *Store) {
	ctx := context.Background()
	mustCreate(t, s, "r", 4)
	d, _ := s.DescribeStream("r")
	if len(d.Shards) != 4 || d.Shards[0].HashKeyRange.StartingHashKey != "0" ||
		d.Shards[3].HashKeyRange.EndingHashKey != "340282366920938463463374607431768211455" ||
		d.Shards[1].HashKeyRange.StartingHashKey != "85070591730234615865843651857942052864" {
		t.Fatalf("ranges: %+v", d.Shards)
	}
	// MD5("a") = 0cc175b9..., which is in the first quarter; MD5("b") = 92eb5ffe... third quarter.
	for key, want := range map[string]string{"a": "shardId-000000000000", "b": "shardId-000000000002"} {
		r, err := s.Put(ctx, "r", Entry{PartitionKey: key, Data: []byte("x")})
		if err != nil || r.ShardID != want {
			t.Fatalf("key %q went to %s (%v), want %s", key, r.ShardID, err, want)
		}
	}
	r, err := s.Put(ctx, "r", Entry{PartitionKey: "a", ExplicitHashKey: "340282366920938463463374607431768211455", Data: nil})
	if err != nil || r.ShardID != "shardId-000000000003" {
		t.Fatalf("explicit hash key: %s %v", r.ShardID, err)
	}
}

func testLimits(t *testing.T, s *Store) {
	ctx := context.Background()
	mustCreate(t, s, "l", 1)
	cases := []struct {
		name string
		e    Entry
	}{
		{"empty key", Entry{PartitionKey: "", Data: []byte("x")}},
		{"key 257", Entry{PartitionKey: strings.Repeat("k", 257), Data: []byte("x")}},
		{"data 1MiB+1", Entry{PartitionKey: "k", Data: make([]byte, MaxRecordSize+1)}},
		{"hash key 2^128", Entry{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456"}},
		{"hash key text", Entry{PartitionKey: "k", ExplicitHashKey: "12a"}},
	}
	for _, c := range cases {
		if _, err := s.Put(ctx, "l", c.e); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: err %v, want ErrInvalidArgument", c.name, err)
		}
	}
	// 256 multi-byte characters are fine; a 1 MiB record is fine.
	if _, err := s.Put(ctx, "l", Entry{PartitionKey: strings.Repeat("寿", 256), Data: make([]byte, MaxRecordSize)}); err != nil {
		t.Fatal(err)
	}
	res, err := s.PutBatch(ctx, "l", []Entry{{PartitionKey: "ok", Data: []byte("1")}, {PartitionKey: ""}, {PartitionKey: "ok2", Data: []byte("2")}})
	if err != nil || res[0].Err != nil || !errors.Is(res[1].Err, ErrInvalidArgument) || res[2].Err != nil {
		t.Fatalf("batch with one bad record: %v %+v", err, res)
	}
	if _, err := s.PutBatch(ctx, "l", make([]Entry, 501)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("501 records: %v", err)
	}
	if _, err := s.Put(ctx, "nope", Entry{PartitionKey: "k"}); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("missing stream: %v", err)
	}
	for _, bad := range []string{"", "a b", strings.Repeat("x", 129), "ü"} {
		if err := s.CreateStream(ctx, StreamConfig{Name: bad, ShardCount: 1}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if err := s.CreateStream(ctx, StreamConfig{Name: "l", ShardCount: 1}); !errors.Is(err, ErrStreamExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.CreateStream(ctx, StreamConfig{Name: "big", ShardCount: DefaultMaxShards + 1}); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("too many shards: %v", err)
	}
}

func testIterators(t *testing.T, s *Store) {
	ctx := context.Background()
	mustCreate(t, s, "it", 1)
	sh := "shardId-000000000000"
	var seqs []string
	for i := 0; i < 10; i++ {
		r, _ := s.Put(ctx, "it", Entry{PartitionKey: "k", Data: []byte{byte(i)}})
		seqs = append(seqs, r.SequenceNumber)
	}
	get := func(req IteratorRequest) GetRecordsResult {
		t.Helper()
		req.Stream, req.ShardID = "it", sh
		it, err := s.ShardIterator(req)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.GetRecords(ctx, it, 0)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := get(IteratorRequest{Type: TrimHorizon}); len(r.Records) != 10 || r.NextShardIterator == "" {
		t.Fatalf("trim horizon: %d", len(r.Records))
	}
	if r := get(IteratorRequest{Type: Latest}); len(r.Records) != 0 {
		t.Fatalf("latest: %d", len(r.Records))
	}
	if r := get(IteratorRequest{Type: AtSequenceNumber, SequenceNumber: seqs[4]}); len(r.Records) != 6 || r.Records[0].Data[0] != 4 {
		t.Fatalf("at seq: %d", len(r.Records))
	}
	if r := get(IteratorRequest{Type: AfterSequenceNumber, SequenceNumber: seqs[4]}); len(r.Records) != 5 || r.Records[0].Data[0] != 5 {
		t.Fatalf("after seq: %d", len(r.Records))
	}
	if r := get(IteratorRequest{Type: AtTimestamp, Timestamp: time.Now().Add(-time.Hour)}); len(r.Records) != 10 {
		t.Fatalf("at old timestamp: %d", len(r.Records))
	}
	if r := get(IteratorRequest{Type: AtTimestamp, Timestamp: time.Now().Add(time.Hour)}); len(r.Records) != 0 {
		t.Fatalf("at future timestamp: %d", len(r.Records))
	}
	// Next iterator continues where the last read stopped.
	it, _ := s.ShardIterator(IteratorRequest{Stream: "it", ShardID: sh, Type: TrimHorizon})
	r1, _ := s.GetRecords(ctx, it, 3)
	r2, _ := s.GetRecords(ctx, r1.NextShardIterator, 3)
	if len(r1.Records) != 3 || len(r2.Records) != 3 || r2.Records[0].Data[0] != 3 {
		t.Fatalf("paging: %d %d", len(r1.Records), len(r2.Records))
	}
	// Tampered iterator.
	bad := []byte(it)
	bad[20] ^= 1
	if _, err := s.GetRecords(ctx, string(bad), 1); !errors.Is(err, ErrInvalidIterator) {
		t.Fatalf("tampered: %v", err)
	}
	// Sequence number of another shard / garbage.
	if _, err := s.ShardIterator(IteratorRequest{Stream: "it", ShardID: sh, Type: AtSequenceNumber, SequenceNumber: "12345"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("garbage seq: %v", err)
	}
}

func testSplit(t *testing.T, s *Store) {
	ctx := context.Background()
	mustCreate(t, s, "sp", 1)
	for i := 0; i < 20; i++ {
		_, _ = s.Put(ctx, "sp", Entry{PartitionKey: fmt.Sprint(i), Data: []byte("p")})
	}
	mid := "170141183460469231731687303715884105728"
	if err := s.SplitShard(ctx, "sp", "shardId-000000000000", mid); err != nil {
		t.Fatal(err)
	}
	d, _ := s.DescribeStream("sp")
	if len(d.Shards) != 3 || d.OpenShardCount != 2 || d.Shards[0].EndingSequenceNumber == "" ||
		d.Shards[1].ParentShardID != "shardId-000000000000" || d.Shards[2].HashKeyRange.StartingHashKey != mid {
		t.Fatalf("after split: %+v", d)
	}
	for i := 0; i < 20; i++ {
		r, err := s.Put(ctx, "sp", Entry{PartitionKey: fmt.Sprint(i), Data: []byte("c")})
		if err != nil || r.ShardID == "shardId-000000000000" {
			t.Fatalf("write after split went to %s: %v", r.ShardID, err)
		}
	}
	// The parent is readable to its end, then names its children.
	it, _ := s.ShardIterator(IteratorRequest{Stream: "sp", ShardID: "shardId-000000000000", Type: TrimHorizon})
	res, err := s.GetRecords(ctx, it, 0)
	if err != nil || len(res.Records) != 20 || res.NextShardIterator != "" || len(res.ChildShards) != 2 {
		t.Fatalf("parent read: %d records, next %q, children %v, %v", len(res.Records), res.NextShardIterator, res.ChildShards, err)
	}
	n := len(readAll(t, s, "sp", "shardId-000000000001")) + len(readAll(t, s, "sp", "shardId-000000000002"))
	if n != 20 {
		t.Fatalf("children hold %d records", n)
	}
	if err := s.MergeShards(ctx, "sp", "shardId-000000000001", "shardId-000000000002"); err != nil {
		t.Fatal(err)
	}
	if err := s.MergeShards(ctx, "sp", "shardId-000000000001", "shardId-000000000003"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("merging a closed shard: %v", err)
	}
	d, _ = s.DescribeStream("sp")
	if d.OpenShardCount != 1 || d.Shards[3].AdjacentParentShardID != "shardId-000000000002" {
		t.Fatalf("after merge: %+v", d.Shards)
	}
}

func testConcurrent(t *testing.T, s *Store) {
	ctx := context.Background()
	mustCreate(t, s, "c", 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string][]string{}
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				r, err := s.Put(ctx, "c", Entry{PartitionKey: fmt.Sprintf("k%d", i%17), Data: []byte(fmt.Sprintf("%d-%d", p, i))})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[r.ShardID] = append(got[r.ShardID], r.SequenceNumber)
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	total := 0
	for shard, seqs := range got {
		recs := readAll(t, s, "c", shard)
		sort.Slice(seqs, func(i, j int) bool { return seqLess(seqs[i], seqs[j]) })
		if len(recs) != len(seqs) {
			t.Fatalf("%s: read %d, acked %d", shard, len(recs), len(seqs))
		}
		for i := range recs {
			if recs[i].SequenceNumber != seqs[i] {
				t.Fatalf("%s: record %d seq %s, want %s", shard, i, recs[i].SequenceNumber, seqs[i])
			}
		}
		total += len(recs)
	}
	if total != 800 {
		t.Fatalf("total %d", total)
	}
	st := s.Stats()
	if st.Streams[0].Records != 800 {
		t.Fatalf("stats records %d", st.Streams[0].Records)
	}
}
