package delivery_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/delivery"
	"github.com/kaiten-edge/kaiten/sync/internal/s3test"
	"github.com/kaiten-edge/kaiten/sync/s3sink"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// TestBenchReport measures backlog drain (make bench): N records of 100
// bytes already stored in a 4-shard stream, delivered to versitygw with
// GZIP (buffer 5 MiB / 2 s, newline-delimited), against a plain upload of
// the same bytes (as 5 MiB objects, 4 at a time, like the 4 shards) with
// the same S3 client in the same run, and against the store's own read
// rate (Consume with a handler that does nothing, run first on the same
// data), which bounds any drain.
// KAITEN_BENCH_RECORDS overrides N (default 1,000,000);
// KAITEN_BENCH_CPUPROFILE names a file for a CPU profile of the drain alone.
func TestBenchReport(t *testing.T) {
	n := testutil.BenchRecords(t, 1_000_000)
	const recSize, shards = 100, 4
	srv := s3test.Start(t)
	srv.CreateBucket(t, "drain")
	srv.CreateBucket(t, "plain")
	ctx := context.Background()

	st := openStore(t, t.TempDir())
	defer st.Close()
	if err := st.CreateStream(ctx, stream.StreamConfig{Name: "bench", ShardCount: shards}); err != nil {
		t.Fatal(err)
	}
	fill := time.Now()
	var wg sync.WaitGroup
	per := n / 4
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			entries := make([]stream.Entry, 0, 500)
			for i := w * per; i < (w+1)*per; i++ {
				d := fmt.Appendf(nil, `{"store":"demo-store","lane":"%d","plate_type":"salmon","event":"passed","n":%09d`, i%8, i)
				d = append(d, bytes.Repeat([]byte(" "), recSize-1-len(d))...)
				d = append(d, '}')
				entries = append(entries, stream.Entry{PartitionKey: fmt.Sprintf("demo-store/%d", i%64), Data: d})
				if len(entries) == 500 || i == (w+1)*per-1 {
					if _, err := st.PutBatch(ctx, "bench", entries); err != nil {
						t.Error(err)
						return
					}
					entries = entries[:0]
				}
			}
		}(w)
	}
	wg.Wait()
	filled := time.Now()
	n = per * 4
	t.Logf("stored %d records in %s", n, time.Since(fill))

	desc, err := st.DescribeStream("bench")
	if err != nil {
		t.Fatal(err)
	}
	lasts := map[string]string{}
	for _, sh := range desc.Shards {
		lasts[sh.ShardID], _ = st.LastSequenceNumber("bench", sh.ShardID)
	}

	// The store's own read rate, for scale: Consume with a no-op handler.
	var got atomic.Int64
	cctx, ccancel := context.WithCancel(ctx)
	start := time.Now()
	go func() {
		_ = st.Consume(cctx, stream.ConsumerConfig{Group: "read-only", Stream: "bench", Limit: 10000},
			func(_ context.Context, b stream.ShardBatch) error {
				if got.Add(int64(len(b.Records))) >= int64(n) {
					ccancel()
				}
				return nil
			})
	}()
	<-cctx.Done()
	readOnly := time.Since(start)

	// A backlog is older than the buffering interval (it built up while the
	// destination was away): let the newest record age past it, so the
	// drain is not measured waiting for an interval a real backlog has
	// already waited out.
	const interval = 2 * time.Second
	if wait := interval - time.Since(filled); wait > 0 {
		time.Sleep(wait)
	}

	client := s3sink.NewClient(srv.Config(""))
	cfg := srv.Config("drain")
	s := s3sink.NewWithClient(cfg, client)
	m, _ := delivery.NewMetrics(nil)
	d, err := delivery.New(st, delivery.Config{Name: "drain", Stream: "bench", Sink: s, Compression: sink.Gzip,
		Delimiter: []byte("\n"), BufferInterval: interval, BufferSize: 5 << 20, Metrics: m, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	stopProfile := profileDrain(t)
	start = time.Now()
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(rctx) }()
	for {
		all := true
		for id, last := range lasts {
			if ck, _ := st.GetCheckpoint("drain", "bench", id); ck != last {
				all = false
			}
		}
		if all {
			break
		}
		if time.Since(start) > 20*time.Minute {
			t.Fatal("drain did not finish in 20 minutes")
		}
		time.Sleep(5 * time.Millisecond) // polling granularity of the measurement
	}
	drain := time.Since(start)
	stopProfile()
	cancel()
	<-done
	ds := d.Status()
	if ds.DeliveredRecords != int64(n) {
		t.Fatalf("delivered %d of %d", ds.DeliveredRecords, n)
	}

	// Plain upload of the same bytes: 5 MiB objects, 4 concurrent, same client.
	total := n * (recSize + 1)
	obj := bytes.Repeat([]byte(`{"store":"demo-store","lane":"3","plate_type":"salmon","event":"passed","n":000000001}`+"               \n"), (5<<20)/(recSize+1))
	start = time.Now()
	jobs := make(chan int)
	var pw sync.WaitGroup
	for w := 0; w < shards; w++ {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for j := range jobs {
				size := min(len(obj), total-j*len(obj))
				if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("plain"), Key: aws.String(fmt.Sprintf("obj-%06d", j)),
					Body: bytes.NewReader(obj[:size]), ContentLength: aws.Int64(int64(size))}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for j := 0; j*len(obj) < total; j++ {
		jobs <- j
	}
	close(jobs)
	pw.Wait()
	plain := time.Since(start)

	drainRate := float64(n) / drain.Seconds()
	plainRate := float64(n) / plain.Seconds() // records of the same bytes per second
	fmt.Printf("BENCH drain_records_per_s %.0f records/s\n", drainRate)
	fmt.Printf("BENCH drain_mib_per_s %.1f MiB/s\n", float64(total)/drain.Seconds()/(1<<20))
	fmt.Printf("BENCH plain_upload_records_per_s %.0f records/s\n", plainRate)
	fmt.Printf("BENCH drain_gzip_ratio %.3f compressed/raw\n", float64(ds.DeliveredBytes)/float64(total))
	fmt.Printf("BENCH consume_only_records_per_s %.0f records/s\n", float64(n)/readOnly.Seconds())
	fmt.Printf("RATIO drain_vs_plain_upload %.2f\n", drainRate/plainRate)
	fmt.Printf("RATIO drain_vs_consume_only %.2f\n", drainRate/(float64(n)/readOnly.Seconds()))
}

// profileDrain starts a CPU profile into $KAITEN_BENCH_CPUPROFILE, if set,
// and returns what stops it.
func profileDrain(t *testing.T) func() {
	path := os.Getenv("KAITEN_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
}
