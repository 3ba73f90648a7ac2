package stream

import "testing"

func BenchmarkSeqString(b *testing.B) {
	sn := seqNum{created: 1_764_000_000, counter: 123456789, put: 1_764_000_100, shard: 3}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sn.counter++
		_ = sn.String()
	}
}

// BenchmarkSeqRun prints consecutive counters as a read does.
func BenchmarkSeqRun(b *testing.B) {
	sn := seqNum{created: 1_764_000_000, counter: 123456789, put: 1_764_000_100, shard: 3}
	var f seqFormatter
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sn.counter++
		_ = f.digits(sn)
	}
}
