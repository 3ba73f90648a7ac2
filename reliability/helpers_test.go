package reliability

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// needRoot fails the test when it cannot mount: never a skip, CI is root.
func needRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("%s needs root to mount (CI runs as root); running as uid %d", what, os.Geteuid())
	}
}

// gatewayConfig is the daemon config the fault tests use: stream plates
// (4 shards) as in the demo, the default local delivery stream but with a
// 1 s buffer so that deliveries happen between kills, no analytics and no
// dashboard (they are tested elsewhere and only cost CPU here). moreSync is
// appended to the sync list (YAML list entries indented by two spaces);
// extra is appended as top-level sections.
func gatewayConfig(t *testing.T, extra string, moreSync ...string) string {
	t.Helper()
	cfg := `log:
  level: info
streams:
  - name: plates
    shards: 4
  - name: deadletter
    shards: 1
sync:
  - name: plates-archive
    stream: plates
    buffer:
      interval: 1s
    local:
      dir: delivered
` + strings.Join(moreSync, "") + `analytics:
  disabled: true
dashboard:
  disabled: true
` + extra
	p := filepath.Join(t.TempDir(), "kaiten.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// s3Server is a versitygw (an S3-compatible server, installed by make
// test-deps) on its posix backend: bucket b's object k is the file
// Dir/b/k, so the test reads deliveries straight from disk.
type s3Server struct {
	Endpoint, Dir string
}

const s3Key, s3Secret = "kaitenfaultroot", "kaitenfaultsecret0123456789"

func startS3(t *testing.T, buckets ...string) *s3Server {
	t.Helper()
	bin := testutil.LookTool(t, "versitygw")
	addr := testutil.FreeAddr(t)
	s := &s3Server{Endpoint: "http://" + addr, Dir: t.TempDir()}
	for _, b := range buckets {
		if err := os.Mkdir(filepath.Join(s.Dir, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	var mu sync.Mutex
	cmd := exec.Command(bin, "--access", s3Key, "--secret", s3Secret, "--port", addr, "--quiet", "posix", "--nometa", s.Dir)
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("versitygw log:\n%s", out.String())
			mu.Unlock()
		}
	})
	testutil.WaitFor(t, 30*time.Second, func() error {
		select {
		case <-done:
			return fmt.Errorf("versitygw exited")
		default:
		}
		resp, err := http.Get(s.Endpoint + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return s
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// syncEntry is a sync list entry delivering stream plates to the bucket.
func (s *s3Server) syncEntry(name, bucket string) string {
	return fmt.Sprintf(`  - name: %s
    stream: plates
    buffer:
      interval: 1s
    s3:
      bucket: %s
      endpoint: %s
      path_style: true
      access_key_id: %s
      secret_access_key: %s
`, name, bucket, s.Endpoint, s3Key, s3Secret)
}

// kinesisClient is the real aws-sdk-go-v2 client pointed at a gateway; each
// request may take up to timeout.
func kinesisClient(addr string, timeout time.Duration) *kinesis.Client {
	// No SDK retries: a retried PutRecords after a lost answer would store
	// a record twice, which is the producer's doing, not ours.
	return testutil.KinesisClient(addr, testutil.KinesisSDKRetries(1), testutil.KinesisHTTPClient(&http.Client{Timeout: timeout}))
}

// ack is one acknowledged record.
type ack struct {
	shard, seq string // "" for MQTT, which does not tell them
	round      int
}

// ledger records what the gateway acknowledged. Safe for concurrent use.
type ledger struct {
	mu    sync.Mutex
	acked map[string]ack // data -> ack
	n     atomic.Int64
}

func newLedger() *ledger { return &ledger{acked: map[string]ack{}} }

func (l *ledger) add(data string, a ack) {
	l.mu.Lock()
	l.acked[data] = a
	l.mu.Unlock()
	l.n.Add(1)
}

func (l *ledger) snapshot() map[string]ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]ack, len(l.acked))
	for k, v := range l.acked {
		out[k] = v
	}
	return out
}

// producers publish unique records until ctx ends: mqttN goroutines over
// MQTT QoS 1 (one fresh clean-session client each, so nothing is ever
// resent: an unacknowledged message is simply not counted) and kinN
// goroutines with PutRecords of 25 records.
func producers(ctx context.Context, t *testing.T, round int, mqttAddr, httpAddr string, mqttN, kinN int, led *ledger) *sync.WaitGroup {
	var wg sync.WaitGroup
	pad := strings.Repeat("x", 60)
	for g := 0; g < mqttN; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).
				SetClientID(fmt.Sprintf("fault-r%d-g%d", round, g)).SetCleanSession(true).
				SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
				SetWriteTimeout(5 * time.Second)
			c := paho.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				return // killed before we connected
			}
			defer c.Disconnect(0)
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("m-r%d-g%d-%d", round, g, i)
				tok := c.Publish(fmt.Sprintf("store/demo/lane/%d/plate", i%8), 1, false,
					fmt.Sprintf(`{"id":%q,"pad":%q}`, id, pad))
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					return
				}
				led.add(id, ack{round: round})
			}
		}()
	}
	kc := kinesisClient(httpAddr, 10*time.Second)
	for g := 0; g < kinN; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				entries := make([]ktypes.PutRecordsRequestEntry, 25)
				ids := make([]string, len(entries))
				for j := range entries {
					ids[j] = fmt.Sprintf("k-r%d-g%d-%d-%d", round, g, i, j)
					entries[j] = ktypes.PutRecordsRequestEntry{
						PartitionKey: aws.String(fmt.Sprintf("demo/%d", (i+j)%50)),
						Data:         []byte(fmt.Sprintf(`{"id":%q,"pad":%q}`, ids[j], pad)),
					}
				}
				rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				out, err := kc.PutRecords(rctx, &kinesis.PutRecordsInput{StreamName: aws.String("plates"), Records: entries})
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue // e.g. a retriable error while the disk is full
				}
				for j, r := range out.Records {
					if r.ErrorCode == nil && r.SequenceNumber != nil {
						led.add(ids[j], ack{shard: aws.ToString(r.ShardId), seq: aws.ToString(r.SequenceNumber), round: round})
					}
				}
			}
		}()
	}
	return &wg
}

// streamRecord is a record read back through the Kinesis API.
type streamRecord struct {
	shard, seq string
}

// readStream reads every shard of the stream from TRIM_HORIZON through the
// Kinesis API. It checks that sequence numbers increase strictly within
// each shard and returns the records by data, and the last sequence number
// of each shard.
func readStream(t *testing.T, httpAddr, name string) (map[string]streamRecord, map[string]*big.Int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kc := kinesisClient(httpAddr, time.Minute) // a loaded CI machine reads slowly
	var shards *kinesis.ListShardsOutput
	err := transient(func() (err error) {
		shards, err = kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
		return err
	})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	recs := map[string]streamRecord{}
	last := map[string]*big.Int{}
	for _, sh := range shards.Shards {
		id := aws.ToString(sh.ShardId)
		var it *kinesis.GetShardIteratorOutput
		err := transient(func() (err error) {
			it, err = kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name),
				ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
			return err
		})
		if err != nil {
			t.Fatalf("GetShardIterator %s: %v", id, err)
		}
		iter := it.ShardIterator
		prev := big.NewInt(-1)
		for iter != nil {
			var out *kinesis.GetRecordsOutput
			err := transient(func() (err error) {
				out, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(2000)})
				return err
			})
			if err != nil {
				t.Fatalf("GetRecords %s: %v", id, err)
			}
			for _, r := range out.Records {
				seq, ok := new(big.Int).SetString(aws.ToString(r.SequenceNumber), 10)
				if !ok {
					t.Fatalf("%s: sequence number %q is not a decimal number", id, aws.ToString(r.SequenceNumber))
				}
				if seq.Cmp(prev) <= 0 {
					t.Fatalf("%s: sequence numbers not increasing: %s after %s", id, seq, prev)
				}
				prev = seq
				data := recordID(r.Data)
				if old, dup := recs[data]; dup {
					t.Fatalf("record %s is in the stream twice (%s %s and %s %s)", data, old.shard, old.seq, id, seq)
				}
				recs[data] = streamRecord{shard: id, seq: seq.String()}
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
		last[id] = prev
	}
	return recs, last
}

// transient retries fn on the one transport error that is not the
// gateway's, the Go SDK's own connection race (testutil.SDKConnRace); this
// client has no SDK retries, so that nothing else is retried behind the
// test's back. Every other error, a timeout or a reset included, is
// returned at once. Reads with the same iterator are idempotent.
func transient(fn func() error) error { return testutil.RetrySDKRace(fn) }

// recordID is the "id" field of a test record, or the whole data when it
// has none.
func recordID(data []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &v) == nil && v.ID != "" {
		return v.ID
	}
	return string(data)
}

// checkAcked fails the test unless every acknowledged record is in recs,
// with the shard and sequence number the gateway answered.
func checkAcked(t *testing.T, when string, acked map[string]ack, recs map[string]streamRecord) {
	t.Helper()
	lost := 0
	var example string
	for data, a := range acked {
		r, ok := recs[data]
		switch {
		case !ok:
			lost++
			if example == "" {
				example = fmt.Sprintf("%s (round %d, %s %s) missing", data, a.round, a.shard, a.seq)
			}
		case a.seq != "" && (r.seq != a.seq || r.shard != a.shard):
			t.Fatalf("%s: acknowledged record %s was %s %s, now %s %s", when, data, a.shard, a.seq, r.shard, r.seq)
		}
	}
	if lost > 0 {
		t.Fatalf("%s: %d of %d acknowledged records lost, e.g. %s", when, lost, len(acked), example)
	}
}

// delivered reads every object the local delivery stream wrote under dir
// (gzip, one record per line) and counts each record id. Error outputs
// (processing-failed/, delivery-failed/) are returned apart.
func delivered(t *testing.T, dir string) (counts map[string]int, errorObjects []string) {
	t.Helper()
	counts = map[string]int{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".tmp") {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(rel, "processing-failed") || strings.HasPrefix(rel, "delivery-failed") {
			errorObjects = append(errorObjects, rel)
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("%s (%d bytes): %w", rel, len(raw), err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 64<<10), 2<<20)
		for sc.Scan() {
			if len(sc.Bytes()) > 0 {
				counts[recordID(sc.Bytes())]++
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatalf("reading delivered objects: %v", err)
	}
	return counts, errorObjects
}

// checkNoDuplicates fails when a record was delivered twice or a delivered
// record is not in the stream.
func checkNoDuplicates(t *testing.T, when string, counts map[string]int, recs map[string]streamRecord) {
	t.Helper()
	for id, n := range counts {
		if n > 1 {
			t.Fatalf("%s: record %s delivered %d times", when, id, n)
		}
		if recs != nil {
			if _, ok := recs[id]; !ok {
				t.Fatalf("%s: delivered record %s is not in the stream", when, id)
			}
		}
	}
}

// syncStatus is the part of /api/status the tests read.
type syncStatus struct {
	Sync []struct {
		Name           string `json:"name"`
		BacklogRecords int64  `json:"backlog_records"`
		Delivered      int64  `json:"delivered_records"`
		LastError      string `json:"last_error"`
	} `json:"sync"`
}

func getStatus(addr string) (syncStatus, error) {
	var st syncStatus
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("/api/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitDrained waits until no delivery stream has a backlog.
func waitDrained(t *testing.T, addr string) {
	t.Helper()
	testutil.WaitFor(t, 90*time.Second, func() error {
		st, err := getStatus(addr)
		if err != nil {
			return err
		}
		if len(st.Sync) == 0 {
			return fmt.Errorf("no delivery stream in /api/status")
		}
		for _, ds := range st.Sync {
			if ds.BacklogRecords != 0 {
				return fmt.Errorf("delivery stream %s: backlog %d records (last error %q)", ds.Name, ds.BacklogRecords, ds.LastError)
			}
		}
		return nil
	})
}

// proc is a kaiten child started without waiting for health, for the tests
// where refusing to start is a correct outcome.
type proc struct {
	httpAddr string
	cmd      *exec.Cmd
	out      bytes.Buffer
	mu       sync.Mutex
	done     chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startOrRefuse runs kaiten and reports whether it became healthy (true) or
// exited (false) within a minute.
func startOrRefuse(t *testing.T, dataDir, httpAddr string, args ...string) (*proc, bool) {
	t.Helper()
	p := &proc{httpAddr: httpAddr, done: make(chan struct{})}
	p.cmd = exec.Command(testutil.KaitenBinary(t), append([]string{"run", "--data-dir", dataDir, "--http-addr", httpAddr}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = p.cmd.Process.Signal(syscall.SIGKILL); <-p.done })
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return p, false
		default:
		}
		if resp, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("kaiten neither healthy nor exited after a minute:\n%s", p.log())
	return nil, false
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}
