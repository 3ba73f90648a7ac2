package stream

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestBlocks appends commits large enough to span several blocks, then
// reads from every kind of position: the middle of a block, its last
// record, across blocks, with record and byte limits that stop mid-block.
func TestBlocks(t *testing.T) {
	s := openTest(t)
	mustCreate(t, s, "b", 1)
	ctx := context.Background()
	var put []PutResult
	var want [][]byte
	for c := 0; c < 4; c++ {
		var entries []Entry
		for i := 0; i < 500; i++ {
			n := len(want)
			size := 1 + n%300 // 4 KiB blocks fill after about 25
			if n%97 == 0 {
				size = 6000 // a block of its own, in the value log
			}
			d := bytes.Repeat([]byte{byte('a' + n%26)}, size)
			d = fmt.Appendf(d, "#%d", n)
			entries = append(entries, Entry{PartitionKey: fmt.Sprintf("k%d", n%7), Data: d})
			want = append(want, d)
		}
		res, err := s.PutBatch(ctx, "b", entries)
		if err != nil {
			t.Fatal(err)
		}
		put = append(put, res...)
	}
	// More than one block per commit.
	blocks := 0
	_ = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kindRecord}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			blocks++
		}
		return nil
	})
	if blocks < 40 {
		t.Fatalf("%d blocks for 4 commits of about 100 KiB", blocks)
	}
	all := readAll(t, s, "b", "shardId-000000000000")
	if len(all) != len(want) {
		t.Fatalf("read %d records, want %d", len(all), len(want))
	}
	for i, r := range all {
		if !bytes.Equal(r.Data, want[i]) || r.SequenceNumber != put[i].SequenceNumber || r.PartitionKey != fmt.Sprintf("k%d", i%7) {
			t.Fatalf("record %d: %q %s %s, want %q %s", i, r.Data, r.SequenceNumber, r.PartitionKey, want[i], put[i].SequenceNumber)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		i := rng.IntN(len(want))
		limit := 1 + rng.IntN(700)
		maxBytes := 0
		if rng.IntN(2) == 0 {
			maxBytes = 1 + rng.IntN(20000)
		}
		after := ""
		if i > 0 {
			after = put[i-1].SequenceNumber
		}
		rr, err := s.Read(ctx, ReadRequest{Stream: "b", ShardID: "shardId-000000000000", After: after, Limit: limit, MaxBytes: maxBytes})
		if err != nil {
			t.Fatal(err)
		}
		if len(rr.Records) == 0 || len(rr.Records) > limit {
			t.Fatalf("at %d limit %d: %d records", i, limit, len(rr.Records))
		}
		size := 0
		for j, r := range rr.Records {
			if r.SequenceNumber != put[i+j].SequenceNumber || !bytes.Equal(r.Data, want[i+j]) {
				t.Fatalf("at %d, record %d: %q, want %q", i, j, r.Data, want[i+j])
			}
			size += len(r.Data)
		}
		if maxBytes > 0 && size > maxBytes && len(rr.Records) > 1 {
			t.Fatalf("at %d: %d bytes returned over a cap of %d", i, size, maxBytes)
		}
		if end := i + len(rr.Records); end < len(want) && len(rr.Records) < limit && (maxBytes == 0 || size+len(want[end]) <= maxBytes) {
			t.Fatalf("at %d limit %d cap %d: stopped after %d records", i, limit, maxBytes, len(rr.Records))
		}
	}
}

// TestVersion1Values: records stored one per value (the first format) are
// still read, and the writer goes on after them.
func TestVersion1Values(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "v", 1)
	st, _ := s.lookup("v")
	ms := s.now().UnixMilli()
	if err := s.db.Update(func(txn *badger.Txn) error {
		for ctr := uint64(1); ctr <= 3; ctr++ {
			data := []byte(fmt.Sprintf("old-%d", ctr))
			v := make([]byte, valueLen("pk", data))
			putValue(v, ms, "pk", data)
			if err := txn.Set(recordKey(st.id, 0, ctr), v); err != nil {
				return err
			}
		}
		hw := make([]byte, 8)
		hw[7] = 3
		return txn.Set(highWaterKey(st.id, 0), hw)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: dir, AcceptDataLoss: true}) // the high-water file knows nothing of the records put by hand
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(context.Background(), "v", Entry{PartitionKey: "pk", Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, s, "v", "shardId-000000000000")
	var got []string
	for _, r := range all {
		got = append(got, string(r.Data))
	}
	if fmt.Sprint(got) != "[old-1 old-2 old-3 new]" {
		t.Fatalf("read %q", got)
	}
}

// TestSeqFormatter: printing runs incrementally gives what the full
// conversion gives, also across put-time changes and digit carries.
func TestSeqFormatter(t *testing.T) {
	var f seqFormatter
	rng := rand.New(rand.NewPCG(3, 4))
	s := seqNum{created: 1_700_000_000, counter: 1, put: 1_700_000_100, shard: 3}
	for i := 0; i < 100000; i++ {
		switch rng.IntN(50) {
		case 0:
			s.put++
		case 1:
			s.counter += uint64(rng.IntN(1000))
		case 2:
			s.counter = rng.Uint64() >> rng.IntN(64)
		case 3:
			s.shard = rng.Uint32()
		}
		if got, want := string(f.digits(s)), s.String(); got != want {
			t.Fatalf("%+v: %s, want %s", s, got, want)
		}
		s.counter++
	}
}

// TestDiskBytes: the disk figure follows what was written at once (Badger's
// own estimate is refreshed once a minute).
func TestDiskBytes(t *testing.T) {
	s := openTest(t)
	mustCreate(t, s, "d", 1)
	before := s.Stats().DiskBytes
	data := bytes.Repeat([]byte("x"), 1000)
	for i := 0; i < 8; i++ {
		entries := make([]Entry, 250)
		for j := range entries {
			entries[j] = Entry{PartitionKey: fmt.Sprint(j), Data: data}
		}
		if _, err := s.PutBatch(context.Background(), "d", entries); err != nil {
			t.Fatal(err)
		}
	}
	if after := s.Stats().DiskBytes; after-before < 1<<20 {
		t.Fatalf("disk bytes %d before and %d after writing 2 MB", before, after)
	}
}
