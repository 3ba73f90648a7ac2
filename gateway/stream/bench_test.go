package stream

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

const benchRecordSize = 100

var benchKeys = func() []string {
	k := make([]string, 1000)
	for i := range k {
		k[i] = fmt.Sprintf("lane-%04d", i)
	}
	return k
}()

// benchRawBadger is the physical baseline: WriteBatches of 500 records of
// 100 bytes with one fsync per batch, on the store's own Badger options.
func benchRawBadger(b *testing.B) {
	o := Options{Dir: b.TempDir()}
	_ = o.fill()
	db, err := badger.Open(badgerOptions(o))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	data := make([]byte, benchRecordSize)
	b.ReportAllocs()
	b.SetBytes(benchRecordSize)
	b.ResetTimer()
	var ctr uint64
	for done := 0; done < b.N; {
		wb := db.NewWriteBatch()
		for i := 0; i < 500 && done < b.N; i++ {
			ctr++
			k := recordKey(1, uint32(ctr%4), ctr)
			v := make([]byte, valueLen(benchKeys[ctr%1000], data))
			putValue(v, int64(ctr), benchKeys[ctr%1000], data)
			if err := wb.Set(k, v); err != nil {
				b.Fatal(err)
			}
			done++
		}
		if err := wb.Flush(); err != nil { // SyncWrites: one fsync per batch
			b.Fatal(err)
		}
	}
}

// benchAppend is the stream's durable append from producers concurrent
// producers over 1,000 partition keys and 4 shards; batch is records per
// call (1 = Put).
func benchAppend(producers, batch int) func(b *testing.B) {
	return func(b *testing.B) {
		s, err := Open(Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		if err := s.CreateStream(ctx, StreamConfig{Name: "bench", ShardCount: 4}); err != nil {
			b.Fatal(err)
		}
		data := make([]byte, benchRecordSize)
		var next atomic.Int64
		b.ReportAllocs()
		b.SetBytes(benchRecordSize)
		b.ResetTimer()
		var wg sync.WaitGroup
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				entries := make([]Entry, batch)
				for {
					start := next.Add(int64(batch)) - int64(batch)
					if start >= int64(b.N) {
						return
					}
					n := min(int64(batch), int64(b.N)-start)
					if batch == 1 {
						if _, err := s.Put(ctx, "bench", Entry{PartitionKey: benchKeys[start%1000], Data: data}); err != nil {
							b.Error(err)
							return
						}
						continue
					}
					for i := range entries[:n] {
						entries[i] = Entry{PartitionKey: benchKeys[(start+int64(i))%1000], Data: data}
					}
					res, err := s.PutBatch(ctx, "bench", entries[:n])
					if err != nil || res[0].Err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}

func BenchmarkRawBadgerWriteBatch500(b *testing.B) { benchRawBadger(b) }
func BenchmarkAppendPut64(b *testing.B)            { benchAppend(64, 1)(b) }
func BenchmarkAppendPutBatch500x8(b *testing.B)    { benchAppend(8, 500)(b) }

// TestBenchReport prints the side-by-side figures `make bench` collects.
func TestBenchReport(t *testing.T) {
	if os.Getenv("KAITEN_RSS_CHILD") != "" {
		rssChild(t)
		return
	}
	if os.Getenv("KAITEN_BENCH") == "" {
		t.Skip("benchmark report: make bench")
	}
	perSec := func(r testing.BenchmarkResult) float64 { return float64(r.N) / r.T.Seconds() }
	raw := testing.Benchmark(benchRawBadger)
	batch := testing.Benchmark(benchAppend(8, 500))
	single := testing.Benchmark(benchAppend(256, 1))
	fmt.Printf("BENCH machine %s/%s_%dcpu 0 -\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Printf("BENCH badger_writebatch500_fsync %.0f records/s\n", perSec(raw))
	fmt.Printf("BENCH stream_append_putbatch500_8producers %.0f records/s\n", perSec(batch))
	fmt.Printf("BENCH stream_append_put_256producers %.0f records/s\n", perSec(single))
	fmt.Printf("BENCH badger_writebatch_allocs %d allocs/record\n", raw.AllocsPerOp())
	fmt.Printf("BENCH stream_append_putbatch_allocs %d allocs/record\n", batch.AllocsPerOp())
	fmt.Printf("BENCH stream_append_put_allocs %d allocs/record\n", single.AllocsPerOp())
	fmt.Printf("RATIO stream_append_vs_badger %.2f\n", perSec(batch)/perSec(raw))
	fmt.Printf("RATIO stream_put_vs_badger %.2f\n", perSec(single)/perSec(raw))

	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchReport$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "KAITEN_RSS_CHILD="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rss child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "BENCH ") {
			fmt.Println(l)
		}
	}
}

// rssChild appends 1,000,000 records of 100 bytes from 8 producers and
// reports the process's peak and final resident memory.
func rssChild(t *testing.T) {
	debug.SetMemoryLimit(96 << 20) // what the daemon sets by default
	s, err := Open(Options{Dir: os.Getenv("KAITEN_RSS_CHILD")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	_ = s.CreateStream(ctx, StreamConfig{Name: "rss", ShardCount: 4})
	data := make([]byte, benchRecordSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries := make([]Entry, 500)
			for next.Add(500) <= 1_000_000 {
				for i := range entries {
					binary.BigEndian.PutUint64(data[:8], uint64(i))
					entries[i] = Entry{PartitionKey: benchKeys[i%1000], Data: data}
				}
				if _, err := s.PutBatch(ctx, "rss", entries); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	m := testutil.ReadMem(t, os.Getpid())
	fmt.Printf("BENCH rss_after_1M_records_peak %d MiB\n", m.Peak>>10)
	fmt.Printf("BENCH rss_after_1M_records_now %d MiB\n", m.RSS>>10)
	fmt.Printf("BENCH rss_anon_after_1M_records %d MiB\n", m.Anon>>10)
	fmt.Printf("BENCH rss_file_after_1M_records %d MiB\n", m.File>>10)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if f := os.Getenv("KAITEN_HEAP_PROFILE"); f != "" {
		hf, _ := os.Create(f)
		_ = pprof.WriteHeapProfile(hf)
		hf.Close()
	}
	fmt.Printf("BENCH go_heap_inuse_after_1M_records %d MiB\n", ms.HeapInuse>>20)
	fmt.Printf("BENCH store_1M_records_disk %d MiB\n", st.DiskBytes>>20)
}
