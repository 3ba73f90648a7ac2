package dashboard

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ingest writes plate events into st from 4 writers for d and returns
// records per second and the process CPU time spent per record.
func ingest(t testing.TB, st *stream.Store, d time.Duration) (perSec float64, cpuPerRec time.Duration) {
	t.Helper()
	const writers, batch = 4, 100
	types := []string{"salmon", "tuna", "ebi", "tamago", "unagi", "inari", "kappa-maki", "ikura"}
	events := []string{"placed", "passed", "passed", "taken"}
	var total atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			es := make([]stream.Entry, batch)
			n := 0
			for time.Now().Before(deadline) {
				for i := range es {
					n++
					lane := strconv.Itoa(1 + (w*batch+i)%6)
					es[i] = stream.Entry{PartitionKey: "demo-store/" + lane,
						Data: plateJSON(lane, types[n%len(types)], events[n%len(events)], fmt.Sprintf("p-%d-%d", w, n/4), "lane"+lane+"-ir1")}
				}
				res, err := st.PutBatch(context.Background(), "plates", es)
				if err != nil {
					t.Error(err)
					return
				}
				for _, r := range res {
					if r.Err == nil {
						total.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	n := max(total.Load(), 1)
	return float64(n) / time.Since(start).Seconds(), (cpuTime() - cpu0) / time.Duration(n)
}

// TestBenchReport measures ingest throughput with no dashboard and with a
// dashboard serving 50 websocket clients (all on the store and gateway
// views, 10 of them also tailing the plates stream), in the same process,
// alternating the two sides so that drift on a shared machine hits both.
// The target (issue 6) is a ratio of at least 0.9.
// Run with `make bench` (KAITEN_BENCH=1).
func TestBenchReport(t *testing.T) {
	if os.Getenv("KAITEN_BENCH") == "" {
		t.Skip("benchmark report: make bench (KAITEN_BENCH=1)")
	}
	const clients, phase, rounds = 50, 3 * time.Second, 7
	var base, with []float64
	var baseCPU, withCPU []float64
	var received atomic.Int64
	var drops int64
	for r := 0; r < rounds; r++ {
		st := openStore(t)
		rate, cpu := ingest(t, st, phase)
		base, baseCPU = append(base, rate), append(baseCPU, float64(cpu))

		st2 := openStore(t)
		rg := startRig(t, st2, Config{})
		var conns sync.WaitGroup
		var cs []interface{ Close() error }
		for i := 0; i < clients; i++ {
			q := "?topics=store,gateway"
			if i < 10 {
				q += ",tail/plates"
			}
			ws, _, err := rg.dial(q, nil)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, ws)
			conns.Add(1)
			go func() {
				defer conns.Done()
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						return
					}
					received.Add(1)
				}
			}()
		}
		rate, cpu = ingest(t, st2, phase)
		with, withCPU = append(with, rate), append(withCPU, float64(cpu))
		drops += rg.srv.hub.Dropped()
		for _, c := range cs {
			c.Close()
		}
		conns.Wait()
	}
	med := func(xs []float64) float64 {
		s := append([]float64(nil), xs...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	ratios := make([]float64, rounds)
	for i := range ratios {
		ratios[i] = with[i] / base[i]
	}
	b, w := med(base), med(with)
	fmt.Printf("BENCH dashboard_ingest_no_dashboard %.0f records/s\n", b)
	fmt.Printf("BENCH dashboard_ingest_50_ws_clients %.0f records/s\n", w)
	fmt.Printf("BENCH dashboard_ingest_cpu_per_record_no_dashboard %.2f us\n", med(baseCPU)/1e3)
	fmt.Printf("BENCH dashboard_ingest_cpu_per_record_50_ws_clients %.2f us\n", med(withCPU)/1e3)
	fmt.Printf("BENCH dashboard_ws_messages_received %.0f messages/s\n", float64(received.Load())/(rounds*phase.Seconds()))
	fmt.Printf("BENCH dashboard_ws_clients_dropped %d clients\n", drops)
	// The ratio is the median of the rounds' ratios: each round runs both
	// sides back to back, which cancels most of a shared machine's drift.
	fmt.Printf("RATIO dashboard_ingest_50_ws_clients_vs_none %.3f\n", med(ratios))
	// CPU per record is steadier than throughput on a shared machine: the
	// share of the process's CPU the dashboard adds at full ingest.
	fmt.Printf("RATIO dashboard_cpu_per_record_none_vs_50_ws_clients %.3f\n", med(baseCPU)/med(withCPU))
	t.Logf("rounds: without %v, with %v", base, with)
}
