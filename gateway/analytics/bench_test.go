package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

const benchSQL = "SELECT lane, plate_type, COUNT(*) AS n, AVG(price) AS avg_price FROM plates GROUP BY lane, plate_type, TUMBLING(INTERVAL '1' MINUTE)"

var benchTypes = []string{"salmon", "tuna", "ebi", "tamago", "unagi", "inari", "kappa-maki", "ikura"}

// fillPlates stores n plate events in stream plates (4 shards), event times
// 60 ms apart starting at base, 8 lanes and 8 plate types. One writer, so
// every shard holds its records in event-time order, as a live store's
// sensors would produce them.
func fillPlates(t *testing.T, st *stream.Store, n int, base time.Time) {
	t.Helper()
	const per = 500
	batch := make([]stream.Entry, 0, per)
	flush := func() {
		res, err := st.PutBatch(context.Background(), "plates", batch)
		if err == nil {
			for _, r := range res {
				if r.Err != nil {
					err = r.Err
					break
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 0; i < n; i++ {
		lane := i%8 + 1
		ts := base.Add(time.Duration(i) * 60 * time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00")
		data := fmt.Sprintf(`{"store":"demo-store","lane":"%d","plate_type":"%s","event":"taken","plate_id":"p-%06d","sensor":"lane%d-ir1","price":%d,"ts":"%s"}`,
			lane, benchTypes[(i/8)%8], i, lane, 100+(i*37)%400, ts)
		batch = append(batch, stream.Entry{PartitionKey: fmt.Sprintf("demo-store/%d", lane), Data: []byte(data)})
		if len(batch) == per {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// handwritten is the practical limit: the same result computed by a plain
// Go loop over the same stored records (encoding/json into a struct, a map
// of running sums), rendered in the same format.
func handwritten(t testing.TB, st *stream.Store) []string {
	type key struct {
		start           int64
		lane, plateType string
	}
	type agg struct {
		n   int64
		sum float64
	}
	groups := map[key]*agg{}
	streamtest.ReadBatches(t, st, "plates", 5000, func(_ string, recs []stream.Record) {
		for _, r := range recs {
			var ev struct {
				Lane      string    `json:"lane"`
				PlateType string    `json:"plate_type"`
				Price     float64   `json:"price"`
				TS        time.Time `json:"ts"`
			}
			if err := json.Unmarshal(r.Data, &ev); err != nil {
				continue
			}
			ms := ev.TS.UnixMilli()
			k := key{ms - ms%60000, ev.Lane, ev.PlateType}
			g := groups[k]
			if g == nil {
				g = &agg{}
				groups[k] = g
			}
			g.n++
			g.sum += ev.Price
		}
	})
	out := make([]string, 0, len(groups))
	for k, g := range groups {
		out = append(out, fmt.Sprintf(`{"query":"bench","window_start":"%s","window_end":"%s","lane":"%s","plate_type":"%s","n":%d,"avg_price":%s}`,
			formatMillis(k.start), formatMillis(k.start+60000), k.lane, k.plateType, g.n, strconv.FormatFloat(g.sum/float64(g.n), 'f', -1, 64)))
	}
	sort.Strings(out)
	return out
}

// engineOnly runs the query's operator over the same stored records.
func engineOnly(t testing.TB, st *stream.Store) []string {
	p, err := Parse(benchSQL)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(p, EngineOptions{Query: "bench", EventTime: []string{"ts"}, Lateness: 5 * time.Second})
	d, err := st.DescribeStream("plates")
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range d.Shards {
		e.Track(sh.ShardID) // shards are read one after the other here
	}
	var out []string
	streamtest.ReadBatches(t, st, "plates", 5000, func(shard string, recs []stream.Record) {
		e.Process(shard, recs)
		for _, em := range e.Take() {
			if em.Late {
				t.Fatalf("late record in the benchmark: %s", em.Data)
			}
			out = append(out, string(em.Data))
		}
	})
	e.FlushAll()
	for _, em := range e.Take() {
		out = append(out, string(em.Data))
	}
	sort.Strings(out)
	return out
}

// mib is a kB figure of testutil.Mem in MiB.
func mib(kb int64) float64 { return float64(kb) / 1024 }

// resetPeakRSS returns freed memory to the OS and resets VmHWM.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// heapObjects reads the live heap (bytes in objects) cheaply.
func heapObjects() float64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()) / (1 << 20)
}

// runQuery runs the benchmark query as a Runner (consumer group
// analytics-<name>, durable state, results put into stream out) until it
// has read all n records and emitted every window. It returns the time and
// the peak anonymous RSS sampled meanwhile.
func runQuery(t *testing.T, st *stream.Store, dir, name, out string, n, windows int) (time.Duration, float64, float64) {
	q := QueryConfig{Name: name, SQL: benchSQL, EventTime: "ts", Output: out, Recent: 5}
	r, err := NewRunner(context.Background(), q, RunnerOptions{Store: st, StateDir: filepath.Join(dir, "analytics"),
		Logger: slog.New(slog.DiscardHandler), Idle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var anon, heapPeak float64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	r.Start(ctx)
	deadline := time.Now().Add(time.Duration(n/1000) * 300 * time.Millisecond)
	for {
		anon = max(anon, mib(testutil.ReadMem(t, os.Getpid()).Anon))
		heapPeak = max(heapPeak, heapObjects())
		s := r.Status()
		if s.In == int64(n) && s.OpenWindows == 0 && s.Out == int64(windows) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query did not finish: in %d, out %d, open %d, late %d, skipped %v", s.In, s.Out, s.OpenWindows, s.Late, s.Skipped)
		}
		<-tick.C // poll the end of the run every 5 ms: adds at most 5 ms to the time
	}
	took := time.Since(start)
	stopCtx, stopCancel := context.WithTimeout(context.Background(), time.Minute)
	defer stopCancel()
	if err := r.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	return took, anon, heapPeak
}

// TestBenchReport (make bench): a grouped one-minute tumbling COUNT/AVG
// over 1,000,000 stored records. The query as it runs in the gateway
// (Consume, operator, durable state, results written to a stream) and the
// operator alone, against a hand-written loop over the same records, in
// the same run; each side runs twice, alternating, and its best counts.
func TestBenchReport(t *testing.T) {
	if os.Getenv("KAITEN_BENCH") != "1" {
		t.Skip("benchmark report: make bench (KAITEN_BENCH=1)")
	}
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("KAITEN_BENCH_ANALYTICS_N")); err == nil && v > 0 {
		n = v
	}
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "store"), map[string]int{"plates": 4, "out1": 1, "out2": 1, "deadletter": 1})
	base := time.Now().Add(-time.Duration(n)*60*time.Millisecond - time.Hour).Truncate(time.Minute)
	start := time.Now()
	fillPlates(t, st, n, base)
	t.Logf("stored %d records in %s", n, time.Since(start))
	want := handwritten(t, st) // warm-up, and the expected results

	best := func(old, d time.Duration) time.Duration {
		if old == 0 || d < old {
			return d
		}
		return old
	}
	var hand, eng, full time.Duration
	var rss, anon, heapPeak float64
	for round := 1; round <= 2; round++ {
		runtime.GC()
		start = time.Now()
		got := handwritten(t, st)
		hand = best(hand, time.Since(start))
		if !slices.Equal(got, want) {
			t.Fatal("the hand-written loop is not deterministic")
		}

		runtime.GC()
		start = time.Now()
		got = engineOnly(t, st)
		eng = best(eng, time.Since(start))
		if !slices.Equal(got, want) {
			t.Fatalf("operator and hand-written loop disagree: %d vs %d results", len(got), len(want))
		}

		resetPeakRSS()
		out := fmt.Sprintf("out%d", round)
		d, a, h := runQuery(t, st, dir, fmt.Sprintf("bench%d", round), out, n, len(want))
		full = best(full, d)
		rss, anon, heapPeak = max(rss, mib(testutil.ReadMem(t, os.Getpid()).Peak)), max(anon, a), max(heapPeak, h)
		var res []string
		for _, r := range readAll(t, st, out) {
			res = append(res, strings.Replace(string(r.Data), fmt.Sprintf(`"query":"bench%d"`, round), `"query":"bench"`, 1))
		}
		sort.Strings(res)
		if !slices.Equal(res, want) {
			t.Fatalf("query results and hand-written loop disagree: %d vs %d results", len(res), len(want))
		}
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("BENCH analytics_query_records_per_s %.0f records/s\n", rate(full))
	fmt.Printf("BENCH analytics_operator_records_per_s %.0f records/s\n", rate(eng))
	fmt.Printf("BENCH analytics_handwritten_records_per_s %.0f records/s\n", rate(hand))
	// VmHWM counts the pages of Badger's memory-mapped files that the reads
	// touched; RssAnon (sampled every 5 ms) is the process's own memory.
	fmt.Printf("BENCH analytics_query_peak_rss %.1f MiB\n", rss)
	fmt.Printf("BENCH analytics_query_peak_rss_anon %.1f MiB\n", anon)
	// The live Go heap of the whole test process (store included) at its
	// peak during the query, sampled every 5 ms.
	fmt.Printf("BENCH analytics_query_peak_heap %.1f MiB\n", heapPeak)
	fmt.Printf("BENCH analytics_windows %d results\n", len(want))
	fmt.Printf("RATIO analytics_vs_handwritten %.2f\n", hand.Seconds()/full.Seconds())
	fmt.Printf("RATIO analytics_operator_vs_handwritten %.2f\n", hand.Seconds()/eng.Seconds())
}
