package load

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/gorilla/websocket"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

const (
	rssLimitMiB = 128
	dashboards  = 20
	// simSpeed runs the simulator ten times faster than real time (belt,
	// heartbeats, hours of the day): ten times its normal message rate.
	simSpeed = 10
)

// loadConfig keeps the default streams (the simulator, analytics and the
// local delivery use them) and adds "load" for the Kinesis producer.
const loadConfig = `
log: {level: warn}
streams:
  - {name: plates, shards: 4}
  - {name: gpio, shards: 1}
  - {name: deadletter, shards: 1}
  - {name: plate-stats, shards: 1}
  - {name: load, shards: 4}
sim:
  speed: %d
`

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// slope is the least-squares slope of ys (one sample per second), per second.
func slope(ys []float64) float64 {
	n := float64(len(ys))
	var sx, sy, sxx, sxy float64
	for i, y := range ys {
		x := float64(i)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

func mean(ys []float64) float64 {
	var s float64
	for _, y := range ys {
		s += y
	}
	return s / float64(len(ys))
}

// dashClient is one websocket dashboard that counts what it receives.
type dashClient struct {
	c      *websocket.Conn
	got    atomic.Int64
	closed atomic.Bool
	err    atomic.Value
}

func openDashboard(t *testing.T, addr, topics string) *dashClient {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?topics="+topics, nil)
	if err != nil {
		t.Fatalf("dashboard %s: %v", topics, err)
	}
	d := &dashClient{c: c}
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				if !d.closed.Load() {
					d.err.Store(err.Error())
				}
				return
			}
			d.got.Add(1)
		}
	}()
	return d
}

// TestLoadSoak: see the package doc. make test-long (KAITEN_LONG=1); about
// KAITEN_LOAD_DURATION plus 20 seconds.
func TestLoadSoak(t *testing.T) {
	if os.Getenv("KAITEN_LONG") == "" {
		t.Skip("soak: make test-long")
	}
	dur := envDuration("KAITEN_LOAD_DURATION", 2*time.Minute)
	rate := 1800
	if n, err := strconv.Atoi(os.Getenv("KAITEN_LOAD_RATE")); err == nil && n > 0 {
		rate = n
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kaiten.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(loadConfig, simSpeed)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := testutil.StartDaemon(t, filepath.Join(dir, "data"), "--config", cfg, "--mqtt-addr", testutil.FreeAddr(t))
	pid := d.Cmd.Process.Pid

	var dash []*dashClient
	for i := 0; i < dashboards; i++ {
		topics := "store,gateway"
		if i%4 == 3 {
			topics = "gateway,tail/load"
		}
		dash = append(dash, openDashboard(t, d.HTTPAddr, topics))
	}
	defer func() {
		for _, c := range dash {
			c.closed.Store(true)
			c.c.Close()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	kc := testutil.KinesisClient(d.HTTPAddr, testutil.KinesisKeys("AKIDLOAD", "load"))
	var put, putErr atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the Kinesis producer: rate/10 records every 100 ms
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		per := max(rate/10, 1)
		recs := make([]types.PutRecordsRequestEntry, per)
		var n int
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for i := range recs {
				n++
				recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("sensor-%03d", n%500)),
					Data: []byte(fmt.Sprintf(`{"sensor":%d,"n":%d,"temp":%.1f}`, n%500, n, 20+float64(n%100)/10))}
			}
			out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("load"), Records: recs})
			if err != nil {
				putErr.Add(int64(per))
				continue
			}
			f := int64(aws.ToInt32(out.FailedRecordCount))
			put.Add(int64(per) - f)
			putErr.Add(f)
		}
	}()

	// Sample the daemon's resident memory every second: all of it (VmRSS)
	// and its anonymous part (RssAnon: Go heap, stacks). The rest is
	// Badger's memory-mapped files, a sawtooth bounded by its table and
	// value-log sizes that the kernel can reclaim; growth is judged on the
	// anonymous part.
	var samples, anon []float64
	tick := time.NewTicker(time.Second)
	start := time.Now()
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case <-d.Exited():
			t.Fatalf("the daemon died under load:\n%s", d.Log())
		case <-tick.C:
			m := testutil.ReadMem(t, pid)
			samples = append(samples, float64(m.RSS)/1024)
			anon = append(anon, float64(m.Anon)/1024)
		}
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(start)

	var sim, mq struct {
		Published int64 `json:"published"`
		Stored    int64 `json:"stored"`
	}
	board := func(entry string, v any) {
		resp, err := http.Get("http://" + d.HTTPAddr + "/api/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var all map[string]json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&all)
		_ = json.Unmarshal(all[entry], v)
	}
	board("sim", &sim)
	board("mqtt", &mq)
	peak := float64(testutil.ReadMem(t, pid).Peak) / 1024
	half := anon[len(anon)/2:]
	q := len(anon) / 4
	growth := mean(anon[len(anon)-q:]) - mean(anon[len(anon)/2:len(anon)-q])
	sl := slope(half)
	minDash := int64(math.MaxInt64)
	for _, c := range dash {
		minDash = min(minDash, c.got.Load())
	}
	fmt.Printf("BENCH load_duration %.0f s\n", elapsed.Seconds())
	fmt.Printf("BENCH load_kinesis_records %d records (%.0f/s)\n", put.Load(), float64(put.Load())/elapsed.Seconds())
	fmt.Printf("BENCH load_mqtt_stored %d records (%.0f/s, simulator at speed %d)\n", mq.Stored, float64(mq.Stored)/elapsed.Seconds(), simSpeed)
	fmt.Printf("BENCH load_rss_peak %.1f MiB\n", peak)
	fmt.Printf("BENCH load_rss_last_half_mean %.1f MiB\n", mean(samples[len(samples)/2:]))
	fmt.Printf("BENCH load_rss_anon_last_half_mean %.1f MiB\n", mean(half))
	fmt.Printf("BENCH load_rss_anon_last_half_slope %.3f MiB/min\n", sl*60)
	fmt.Printf("BENCH load_rss_anon_last_quarter_growth %.1f MiB\n", growth)
	fmt.Printf("BENCH load_dashboard_min_messages %d messages\n", minDash)

	if peak >= rssLimitMiB {
		t.Errorf("peak RSS %.1f MiB: want under %d MiB", peak, rssLimitMiB)
	}
	// Steady growth: the anonymous memory of the last half trends up by
	// more than 2 MiB a minute and the last quarter sits more than 4 MiB
	// above the quarter before.
	if sl*60 > 2 && growth > 4 {
		t.Errorf("anonymous memory keeps growing in the second half: %.2f MiB/min, +%.1f MiB in the last quarter; samples %v", sl*60, growth, half)
	}
	if putErr.Load() != 0 {
		t.Errorf("%d Kinesis records were refused under load", putErr.Load())
	}
	if want := int64(float64(rate) * elapsed.Seconds() * 0.8); put.Load() < want {
		t.Errorf("the producer managed %d records, want at least %d: the gateway could not keep up", put.Load(), want)
	}
	if mq.Stored == 0 || sim.Published == 0 {
		t.Errorf("the simulator's plates did not flow: sim %+v mqtt %+v", sim, mq)
	}
	for i, c := range dash {
		if e, _ := c.err.Load().(string); e != "" {
			t.Errorf("dashboard %d was dropped: %s", i, e)
		}
		if c.got.Load() < int64(elapsed.Seconds()/2) {
			t.Errorf("dashboard %d got only %d messages in %s", i, c.got.Load(), elapsed)
		}
	}
	// Everything acknowledged is in the stream.
	var stored int64
	shards, err := kc.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("load")})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards.Shards {
		it, err := kc.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String("load"),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		for iter := it.ShardIterator; iter != nil; {
			out, err := kc.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Records) == 0 {
				break
			}
			stored += int64(len(out.Records))
			iter = out.NextShardIterator
		}
	}
	if stored != put.Load() {
		t.Errorf("stream load holds %d records, %d were acknowledged", stored, put.Load())
	}
}
