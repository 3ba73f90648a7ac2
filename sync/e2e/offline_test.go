// Package e2e runs the offline scenario of issue 5 against real processes:
// a kaiten gateway (the binary), fed through its Kinesis API, delivering to
// a real destination that the test takes away (kill -STOP or a stalled
// endpoint) while ingest goes on and the gateway is killed and restarted;
// then the destination comes back and every record must be there.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/internal/firehosetest"
	"github.com/kaiten-edge/kaiten/sync/internal/s3test"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

const keys = 6 // partition keys k0..k5; record i of key k is {"k":"k<k>","n":i}

// baseStreams keeps the demo's default streams (other components read
// them) and adds the test's own.
const baseStreams = `
streams:
  - {name: plates, shards: 4}
  - {name: gpio, shards: 1}
  - {name: deadletter, shards: 1}
  - {name: plate-stats, shards: 1}
  - {name: e2e, shards: 2}
`

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "kaiten.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// deliveryConfig writes a gateway config with the base streams and one
// delivery stream, name, from the e2e stream to destination: its key and
// keys, indented under the entry.
func deliveryConfig(t *testing.T, name, destination string) string {
	t.Helper()
	return writeConfig(t, t.TempDir(), baseStreams+`
sync:
  - name: `+name+`
    stream: e2e
    buffer: {interval: 1s}
    retry: {initial: 100ms, max: 1s}
`+destination)
}

func startGateway(t *testing.T, dataDir, cfg string) *testutil.Daemon {
	t.Helper()
	return testutil.StartDaemon(t, dataDir, "--config", cfg, "--no-sim", "--mqtt-addr", testutil.FreeAddr(t))
}

func kinesisClient(addr string) *kinesis.Client {
	return testutil.KinesisClient(addr, testutil.KinesisSDKRetries(0), testutil.KinesisHTTPClient(&http.Client{Timeout: 10 * time.Second}))
}

// feeder puts records into the gateway's stream through its Kinesis API
// and remembers which ones were acknowledged.
type feeder struct {
	mu    sync.Mutex
	next  [keys]int
	acked map[string]bool
}

func newFeeder() *feeder { return &feeder{acked: map[string]bool{}} }

// put sends one PutRecords of n records per key.
func (f *feeder) put(ctx context.Context, c *kinesis.Client, stream string, n int) error {
	f.mu.Lock()
	var entries []types.PutRecordsRequestEntry
	var datas []string
	for i := 0; i < n; i++ {
		for k := 0; k < keys; k++ {
			d := fmt.Sprintf(`{"k":"k%d","n":%d}`, k, f.next[k])
			f.next[k]++
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", k)), Data: []byte(d)})
			datas = append(datas, d)
		}
	}
	f.mu.Unlock()
	out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	if err != nil {
		return err
	}
	if out.FailedRecordCount != nil && *out.FailedRecordCount > 0 {
		return fmt.Errorf("%d records failed", *out.FailedRecordCount)
	}
	f.mu.Lock()
	for _, d := range datas {
		f.acked[d] = true
	}
	f.mu.Unlock()
	return nil
}

// feed puts rounds of records until the deadline, spaced by every. A put
// is never cut short, so every record numbered is either acknowledged or
// reported as failed.
func (f *feeder) feed(t *testing.T, c *kinesis.Client, stream string, until time.Time, every time.Duration) {
	for time.Now().Before(until) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := f.put(ctx, c, stream, 5)
		cancel()
		if err != nil {
			t.Errorf("put: %v", err)
			return
		}
		time.Sleep(every) // pacing of the producer, not a wait for a result
	}
}

func (f *feeder) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.acked)
}

// runFeed feeds in the background for d.
func (f *feeder) runFeed(t *testing.T, c *kinesis.Client, stream string, d time.Duration) {
	f.feed(t, c, stream, time.Now().Add(d), 20*time.Millisecond)
}

type syncStatus struct {
	Name             string  `json:"name"`
	Online           bool    `json:"online"`
	BacklogRecords   int64   `json:"backlog_records"`
	FreshnessSeconds float64 `json:"freshness_seconds"`
	DeliveredRecords int64   `json:"delivered_records"`
	LastError        string  `json:"last_error"`
}

func status(addr, name string) (syncStatus, error) {
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		return syncStatus{}, err
	}
	defer resp.Body.Close()
	var all struct {
		Sync []syncStatus `json:"sync"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return syncStatus{}, err
	}
	for _, s := range all.Sync {
		if s.Name == name {
			return s, nil
		}
	}
	return syncStatus{}, fmt.Errorf("no delivery stream %q on the status board", name)
}

// outage is the offline scenario every destination runs: ingest; take the
// destination away (away) and ingest on until the delivery stream reports
// the outage (offline, a backlog, stale data); kill the gateway in the
// middle of it and start it again; ingest; bring the destination back
// (back) and ingest while the backlog drains; wait until all of it is
// delivered. It returns what was fed and the gateway, still running.
func outage(t *testing.T, cfg, name string, away, back func()) (*feeder, *testutil.Daemon) {
	t.Helper()
	dataDir := t.TempDir()
	gw := startGateway(t, dataDir, cfg)
	f := newFeeder()
	f.runFeed(t, kinesisClient(gw.HTTPAddr), "e2e", time.Second)
	away()
	f.runFeed(t, kinesisClient(gw.HTTPAddr), "e2e", 2*time.Second)
	waitStatus(t, gw.HTTPAddr, name, 20*time.Second, "during the outage", func(s syncStatus) bool {
		return !s.Online && s.BacklogRecords > 0 && s.FreshnessSeconds > 0
	})
	gw.Kill()
	gw = startGateway(t, dataDir, cfg)
	f.runFeed(t, kinesisClient(gw.HTTPAddr), "e2e", time.Second)
	back()
	f.runFeed(t, kinesisClient(gw.HTTPAddr), "e2e", time.Second)
	waitStatus(t, gw.HTTPAddr, name, 60*time.Second, "after the outage", func(s syncStatus) bool {
		return s.Online && s.BacklogRecords == 0
	})
	return f, gw
}

// waitStatus waits until the delivery stream's status satisfies ok.
func waitStatus(t *testing.T, addr, name string, wait time.Duration, when string, ok func(syncStatus) bool) {
	t.Helper()
	testutil.WaitFor(t, wait, func() error {
		s, err := status(addr, name)
		if err != nil {
			return err
		}
		if !ok(s) {
			return fmt.Errorf("%s: %+v", when, s)
		}
		return nil
	})
}

// check verifies the records against what was acknowledged: every one
// present, no duplicate unless allowDup, and each key's records in put
// order within each delivered unit (an object, a request, a key's records
// in the hub).
func check(t *testing.T, f *feeder, units [][]string, allowDup bool) {
	t.Helper()
	seen := map[string]int{}
	dups := 0
	type run struct{ first, last int }
	runs := map[string][]run{}
	for ui, u := range units {
		last := map[string]int{}
		firstOf := map[string]int{}
		for _, line := range u {
			var r struct {
				K string `json:"k"`
				N int    `json:"n"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("unit %d: record %q: %v", ui, line, err)
			}
			if prev, ok := last[r.K]; ok && r.N <= prev {
				t.Fatalf("unit %d: key %s: record %d follows %d", ui, r.K, r.N, prev)
			}
			if _, ok := last[r.K]; !ok {
				firstOf[r.K] = r.N
			}
			last[r.K] = r.N
			seen[line]++
			if seen[line] > 1 {
				dups++
			}
		}
		for k, f := range firstOf {
			runs[k] = append(runs[k], run{f, last[k]})
		}
	}
	// Units never overlap within a key (a key lives in one shard, and a
	// shard's batches are disjoint ranges), unless duplicates are allowed.
	if !allowDup {
		for k, rs := range runs {
			sort.Slice(rs, func(i, j int) bool { return rs[i].first < rs[j].first })
			for i := 1; i < len(rs); i++ {
				if rs[i].first <= rs[i-1].last {
					t.Fatalf("key %s: a unit holds %d..%d, another %d..%d", k, rs[i-1].first, rs[i-1].last, rs[i].first, rs[i].last)
				}
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	missing := 0
	for d := range f.acked {
		if seen[d] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records never arrived", missing, len(f.acked))
	}
	if dups > 0 && !allowDup {
		t.Fatalf("%d records arrived twice", dups)
	}
	t.Logf("%d records acknowledged, all delivered, %d duplicates, %d units", len(f.acked), dups, len(units))
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestOfflineS3 is the offline scenario against versitygw, checked for
// exactly once across objects.
func TestOfflineS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon and versitygw: make test runs it")
	}
	srv := s3test.Start(t)
	srv.CreateBucket(t, "archive")
	cfg := deliveryConfig(t, "e2e-s3", fmt.Sprintf(`    s3:
      bucket: archive
      prefix: edge/
      endpoint: %s
      path_style: true
      access_key_id: %s
      secret_access_key: %s
      timeout: 2s
`, srv.Endpoint, srv.AccessKey, srv.SecretKey))
	// The link goes (the server freezes mid-stream) and comes back.
	f, gw := outage(t, cfg, "e2e-s3", srv.Pause, srv.Resume)
	ctx := context.Background()
	objs, err := srv.Objects(ctx, "archive", "")
	if err != nil {
		t.Fatal(err)
	}
	var units [][]string
	for _, key := range objs {
		if !strings.HasPrefix(key, "edge/") || !strings.HasSuffix(key, ".gz") {
			t.Fatalf("object %q outside the prefix or not gzip", key)
		}
		raw, err := srv.Get(ctx, "archive", key)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := sink.Decode(raw, sink.Gzip)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		units = append(units, lines(plain))
	}
	check(t, f, units, false)
	if err := gw.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestOfflineHTTPEndpoint is the offline scenario against a Firehose HTTP
// endpoint that stalls (as a frozen server does); a request id the endpoint
// accepted twice counts once.
func TestOfflineHTTPEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	ep := firehosetest.New()
	defer ep.Close()
	ep.AccessKey = "edge-key"
	cfg := deliveryConfig(t, "e2e-http", fmt.Sprintf(`    http_endpoint:
      url: %s
      access_key: edge-key
      common_attributes: {store: demo-store}
      content_encoding: gzip
      timeout: 2s
`, ep.URL))
	f, _ := outage(t, cfg, "e2e-http", func() { ep.SetMode(firehosetest.Stall) }, func() { ep.SetMode(firehosetest.OK) })
	if p := ep.Problems(); len(p) > 0 {
		t.Fatalf("protocol problems: %q", p)
	}
	var units [][]string
	byID := map[string]bool{}
	for _, d := range ep.Accepted() {
		if byID[d.RequestID] {
			continue // the same batch again: the endpoint de-duplicates by id
		}
		byID[d.RequestID] = true
		var u []string
		for _, r := range d.Records {
			u = append(u, strings.TrimRight(string(r), "\n"))
		}
		units = append(units, u)
	}
	check(t, f, units, false)
}

// TestOfflineKinesisHub is the offline scenario with a second kaiten as the
// upstream Kinesis hub, frozen with SIGSTOP. PutRecords has no request id,
// so a batch the hub took while the edge gateway died can arrive twice;
// nothing may be missing and the order per key must hold.
func TestOfflineKinesisHub(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two kaiten daemons: make test runs it")
	}
	hub := startGateway(t, t.TempDir(), writeConfig(t, t.TempDir(), baseStreams+`
  - {name: hub, shards: 2}
sync: []
`))
	cfg := deliveryConfig(t, "e2e-kinesis", fmt.Sprintf(`    kinesis:
      stream_name: hub
      endpoint: http://%s
      timeout: 2s
`, hub.HTTPAddr))
	t.Cleanup(func() { _ = hub.Cmd.Process.Signal(syscall.SIGCONT) })
	f, _ := outage(t, cfg, "e2e-kinesis",
		func() { _ = hub.Cmd.Process.Signal(syscall.SIGSTOP) },
		func() { _ = hub.Cmd.Process.Signal(syscall.SIGCONT) })
	// Read the hub's stream with the Kinesis API, shard by shard.
	c := kinesisClient(hub.HTTPAddr)
	ctx := context.Background()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("hub")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("hub"), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				got = append(got, string(r.Data))
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	// Keys keep their order in the hub; a replayed batch shows as a step
	// back to an earlier record followed by the same run again.
	firsts := map[string]bool{}
	var dedup []string
	for _, d := range got {
		if !firsts[d] {
			firsts[d] = true
			dedup = append(dedup, d)
		}
	}
	byKey := map[string][]string{}
	for _, d := range dedup {
		var r struct {
			K string `json:"k"`
		}
		_ = json.Unmarshal([]byte(d), &r)
		byKey[r.K] = append(byKey[r.K], d)
	}
	var units [][]string
	ks := make([]string, 0, len(byKey))
	for k := range byKey {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		units = append(units, byKey[k])
	}
	check(t, f, units, true)
	t.Logf("hub holds %d records, %d distinct", len(got), len(dedup))
}
