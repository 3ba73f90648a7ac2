package stream

import (
	"context"
	"testing"
)

// BenchmarkReadShard reads 100-byte records in batches of 1,000, the way
// Consume feeds delivery streams.
func BenchmarkReadShard(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	mustCreate(b, s, "rb", 1)
	data := make([]byte, benchRecordSize)
	entries := make([]Entry, 500)
	for i := range entries {
		entries[i] = Entry{PartitionKey: benchKeys[i], Data: data}
	}
	for i := 0; i < 100; i++ {
		if _, err := s.PutBatch(ctx, "rb", entries); err != nil {
			b.Fatal(err)
		}
	}
	st, _ := s.lookup("rb")
	sh := st.shard(0)
	b.ReportAllocs()
	b.SetBytes(benchRecordSize)
	b.ResetTimer()
	pos := uint64(1)
	for n := 0; n < b.N; {
		rr, next, err := s.readShard(st, sh, pos, 1000, MaxGetRecordsBytes)
		if err != nil {
			b.Fatal(err)
		}
		n += len(rr.Records)
		pos = next
		if len(rr.Records) == 0 {
			pos = 1
		}
	}
}
