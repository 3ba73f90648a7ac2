package peers

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// nRecords is the workload's size: 200,000, or KAITEN_PEERS_RECORDS for a
// quick try of the harness.
var nRecords = func() int {
	if n, err := strconv.Atoi(os.Getenv("KAITEN_PEERS_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 200_000
}()

// The rest of the workload every contender gets.
const (
	recordSize        = 100
	nKeys             = 1000
	producers         = 8
	batchSize         = 500 // records per PutBatch, WriteBatch, PutRecords; MQTT messages in flight per publisher
	shards            = 4
	kinesaliteVersion = "3.3.3"
)

var keys = func() []string {
	k := make([]string, nKeys)
	for i := range k {
		k[i] = fmt.Sprintf("key-%04d", i)
	}
	return k
}()

func payload(i int) []byte {
	b := make([]byte, recordSize)
	for j := range b {
		b[j] = 'a' + byte(j%26)
	}
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

// TestBenchPeers runs the whole comparison; see the package doc. It does
// nothing unless KAITEN_BENCH_PEERS=1 (make bench-peers).
func TestBenchPeers(t *testing.T) {
	if kind := os.Getenv("KAITEN_PEERS_CHILD"); kind != "" {
		child(t, kind)
		return
	}
	if os.Getenv("KAITEN_BENCH_PEERS") == "" {
		t.Skip("peer benchmark: run `make bench-peers` (KAITEN_BENCH_PEERS=1)")
	}
	fmt.Printf("BENCH machine %s/%s_%dcpu_%s 0 -\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	fmt.Printf("BENCH workload %d records_of_%d_bytes_%d_keys 0 -\n", nRecords, recordSize, nKeys)
	r := map[string]float64{}
	r["stream_append"] = inChild(t, "stream_append", "append")
	r["badger_fsync500"] = inChild(t, "badger_fsync500", "badger")
	r["jetstream_lazy"] = jetStreamBench(t, "jetstream_lazy_fsync", false)
	r["jetstream_always"] = jetStreamBench(t, "jetstream_sync_always", true)
	r["kinesis_putrecords"] = kaitenKinesis(t)
	r["kinesalite"] = kinesaliteBench(t)
	r["mqtt_ingest"] = kaitenMQTT(t)
	r["mosquitto"] = mosquittoBench(t)
	ratio := func(name, a, b string) {
		if r[a] > 0 && r[b] > 0 {
			fmt.Printf("RATIO %s %.2f\n", name, r[a]/r[b])
		}
	}
	ratio("stream_append_vs_badger_fsync500", "stream_append", "badger_fsync500") // target >= 0.7
	ratio("stream_append_vs_jetstream_lazy_fsync", "stream_append", "jetstream_lazy")
	ratio("stream_append_vs_jetstream_sync_always", "stream_append", "jetstream_always") // target >= 10
	ratio("kinesis_putrecords_vs_jetstream_lazy_fsync", "kinesis_putrecords", "jetstream_lazy")
	ratio("kinesis_putrecords_vs_kinesalite", "kinesis_putrecords", "kinesalite") // target >= 8
	ratio("mqtt_ingest_vs_mosquitto_pubsub", "mqtt_ingest", "mosquitto")          // target >= 0.8
}

// report prints a contender's rate and its memory: the peak resident
// memory (VmHWM, which counts mapped files such as Badger's tables and
// value log) and the anonymous resident memory at the end of the run
// (RssAnon: heap and stacks).
func report(name string, n int, d time.Duration, m testutil.Mem) float64 {
	rate := float64(n) / d.Seconds()
	fmt.Printf("BENCH %s %.0f records/s\n", name, rate)
	fmt.Printf("BENCH %s_seconds %.2f s\n", name, d.Seconds())
	fmt.Printf("BENCH %s_peak_rss %.1f MiB\n", name, float64(m.Peak)/1024)
	fmt.Printf("BENCH %s_rss_anon_at_end %.1f MiB\n", name, float64(m.Anon)/1024)
	return rate
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.ReplaceAll(strings.TrimSpace(v), " ", "_")
		}
	}
	return "unknown"
}

// ---- child processes -----------------------------------------------------

// startChild runs this test binary as a child of kind with a fresh data
// folder; its stdin stays open until the returned stop is called.
func startChild(t *testing.T, kind string) (cmd *exec.Cmd, lines <-chan string, stop func()) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^TestBenchPeers$", "-test.count=1", "-test.v", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), "KAITEN_PEERS_CHILD="+kind, "KAITEN_PEERS_DIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("child %s: %v", kind, err)
			}
		})
	}
	t.Cleanup(stop)
	return cmd, ch, stop
}

// expect waits for a child's line with the prefix and returns the rest.
func expect(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child ended before printing %q", prefix)
			}
			if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
				return rest
			}
		case <-timeout:
			t.Fatalf("child printed no %q", prefix)
		}
	}
}

// inChild runs an in-process contender in its own child process.
func inChild(t *testing.T, name, kind string) float64 {
	_, lines, stop := startChild(t, kind)
	secs, _ := strconv.ParseFloat(expect(t, lines, "SECONDS"), 64)
	var m testutil.Mem
	if _, err := fmt.Sscan(expect(t, lines, "RSS"), &m.Peak, &m.Anon); err != nil {
		t.Fatalf("child %s: %v", kind, err)
	}
	stop()
	return report(name, nRecords, time.Duration(secs*float64(time.Second)), m)
}

// child is what a child process does.
func child(t *testing.T, kind string) {
	dir := os.Getenv("KAITEN_PEERS_DIR")
	// The daemon's default memory_limit, so that in-process figures
	// compare with what the gateway runs with.
	debug.SetMemoryLimit(96 << 20)
	var d time.Duration
	switch kind {
	case "append":
		d = childAppend(t, dir)
	case "badger":
		d = childBadger(t, dir)
	case "nats-lazy", "nats-always":
		childNATS(t, dir, kind == "nats-always")
		return
	default:
		t.Fatalf("unknown child %q", kind)
	}
	fmt.Printf("SECONDS %f\n", d.Seconds())
	m := testutil.ReadMem(t, os.Getpid())
	fmt.Printf("RSS %d %d\n", m.Peak, m.Anon)
}

func childAppend(t *testing.T, dir string) time.Duration {
	s, err := stream.Open(stream.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateStream(ctx, stream.StreamConfig{Name: "bench", ShardCount: shards}); err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries := make([]stream.Entry, batchSize)
			for {
				first := next.Add(batchSize) - batchSize
				if first >= int64(nRecords) {
					return
				}
				n := min(batchSize, nRecords-int(first))
				for i := range entries[:n] {
					entries[i] = stream.Entry{PartitionKey: keys[(int(first)+i)%nKeys], Data: payload(int(first) + i)}
				}
				res, err := s.PutBatch(ctx, "bench", entries[:n])
				if err != nil {
					t.Error(err)
					return
				}
				for _, r := range res {
					if r.Err != nil {
						t.Error(r.Err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// childBadger writes the same records with the store's Badger tuning
// (gateway/stream badgerOptions) through WriteBatch, 500 records and one
// fsync per batch, keys and values shaped like the store's.
func childBadger(t *testing.T, dir string) time.Duration {
	bo := badger.DefaultOptions(dir).WithSyncWrites(true).WithDetectConflicts(false).
		WithMemTableSize(8 << 20).WithNumMemtables(3).WithBaseTableSize(2 << 20).WithBaseLevelSize(16 << 20).
		WithLevelSizeMultiplier(10).WithValueLogFileSize(64 << 20).WithValueThreshold(4 << 10).
		WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20).WithNumCompactors(2).
		WithCompression(options.None).WithNumLevelZeroTables(4).WithNumLevelZeroTablesStall(12).
		WithLogger(nil)
	bo.TableSizeMultiplier = 1
	db, err := badger.Open(bo)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	for first := 0; first < nRecords; first += batchSize {
		wb := db.NewWriteBatch()
		for i := first; i < min(first+batchSize, nRecords); i++ {
			k := make([]byte, 17)
			k[0] = 'r'
			binary.BigEndian.PutUint32(k[1:], 1)
			binary.BigEndian.PutUint32(k[5:], uint32(i%shards))
			binary.BigEndian.PutUint64(k[9:], uint64(i))
			pk := keys[i%nKeys]
			v := make([]byte, 0, 8+1+len(pk)+recordSize)
			v = binary.BigEndian.AppendUint64(v, uint64(time.Now().UnixMilli()))
			v = append(v, byte(len(pk)))
			v = append(v, pk...)
			v = append(v, payload(i)...)
			if err := wb.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil { // SyncWrites: one fsync per batch
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

// childNATS runs an embedded NATS server with JetStream file storage until
// stdin closes; it prints READY <url>.
func childNATS(t *testing.T, dir string, always bool) {
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true}
	if always {
		o.SyncAlways = true // sync_interval: always
		o.SyncInterval = 2 * time.Minute
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	fmt.Printf("READY %s\n", s.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	s.WaitForShutdown()
}

// ---- NATS JetStream ------------------------------------------------------

func jetStreamBench(t *testing.T, name string, always bool) float64 {
	kind := "nats-lazy"
	if always {
		kind = "nats-always"
	}
	cmd, lines, stop := startChild(t, kind)
	url := expect(t, lines, "READY")
	ctx := context.Background()
	nc0, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc0.Close()
	js0, _ := jetstream.New(nc0)
	st, err := js0.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]jetstream.JetStream, producers)
	for p := range conns {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns[p], _ = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(batchSize), jetstream.WithPublishAsyncTimeout(5*time.Minute))
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(js jetstream.JetStream) {
			defer wg.Done()
			var futs []jetstream.PubAckFuture
			for i := p; i < nRecords; i += producers {
				f, err := js.PublishAsync("bench."+keys[i%nKeys], payload(i), jetstream.WithStallWait(5*time.Minute))
				if err != nil {
					if failed.Add(1) == 1 {
						t.Logf("jetstream publish: %v", err)
					}
					continue
				}
				futs = append(futs, f)
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(15 * time.Minute):
				t.Error("jetstream: acks still pending after 15 minutes")
			}
			for _, f := range futs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					if failed.Add(1) == 1 {
						t.Logf("jetstream ack: %v", err)
					}
				}
			}
		}(conns[p])
	}
	wg.Wait()
	d := time.Since(start)
	rss := testutil.ReadMem(t, cmd.Process.Pid)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 0 || info.State.Msgs != uint64(nRecords) {
		t.Fatalf("%s: %d failed, %d stored", name, failed.Load(), info.State.Msgs)
	}
	stop()
	return report(name, nRecords, d, rss)
}

// ---- Kinesis API: kaiten and kinesalite ----------------------------------

func kinesisClient(endpoint string) *kinesis.Client {
	return testutil.KinesisClient(endpoint, testutil.KinesisKeys("AKIDBENCH", "bench"), testutil.KinesisSDKRetries(1))
}

// putRecordsAll sends every record as PutRecords of 500 from 8 producers.
func putRecordsAll(t *testing.T, c *kinesis.Client, name string) time.Duration {
	ctx := context.Background()
	var wg sync.WaitGroup
	var next atomic.Int64
	start := time.Now()
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := make([]types.PutRecordsRequestEntry, batchSize)
			for {
				first := int(next.Add(batchSize) - batchSize)
				if first >= nRecords {
					return
				}
				n := min(batchSize, nRecords-first)
				for i := range recs[:n] {
					recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(keys[(first+i)%nKeys]), Data: payload(first + i)}
				}
				out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: recs[:n]})
				if err != nil {
					t.Error(err)
					return
				}
				if f := aws.ToInt32(out.FailedRecordCount); f != 0 {
					t.Errorf("PutRecords: %d of %d failed", f, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return time.Since(start)
}

const daemonConfig = `
log: {level: warn}
streams:
  - {name: plates, shards: 4}
  - {name: gpio, shards: 1}
  - {name: deadletter, shards: 1}
  - {name: plate-stats, shards: 1}
  - {name: bench, shards: 4}
mqtt:
  routes:
    - {topic: "bench/+", stream: bench, key: "{1}", payload: raw}
`

func startKaiten(t *testing.T) *testutil.Daemon {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kaiten.yaml")
	if err := os.WriteFile(cfg, []byte(daemonConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return testutil.StartDaemon(t, filepath.Join(dir, "data"), "--config", cfg, "--no-sim", "--mqtt-addr", testutil.FreeAddr(t))
}

func kaitenKinesis(t *testing.T) float64 {
	d := startKaiten(t)
	d2 := putRecordsAll(t, kinesisClient("http://"+d.HTTPAddr), "bench")
	rss := testutil.ReadMem(t, d.Cmd.Process.Pid)
	_ = d.Stop(30 * time.Second)
	return report("kinesis_putrecords", nRecords, d2, rss)
}

func kinesaliteBench(t *testing.T) float64 {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed (apt-get install nodejs npm)")
	}
	cache := os.Getenv("KAITEN_BENCH_CACHE")
	if cache == "" {
		c, _ := os.UserCacheDir()
		cache = filepath.Join(c, "kaiten-bench")
	}
	dir := filepath.Join(cache, "kinesalite-"+kinesaliteVersion)
	cli := filepath.Join(dir, "node_modules", "kinesalite", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "kinesalite@"+kinesaliteVersion).CombinedOutput()
		if err != nil {
			t.Fatalf("npm install kinesalite: %v\n%s", err, out)
		}
	}
	addr := testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(node, cli, "--port", port, "--createStreamMs", "0", "--deleteStreamMs", "0", "--updateStreamMs", "0")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c := kinesisClient("http://" + addr)
	ctx := context.Background()
	testutil.WaitFor(t, 30*time.Second, func() error {
		_, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
		return err
	})
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("bench"), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("bench")})
		if err != nil {
			return err
		}
		if s := out.StreamDescriptionSummary.StreamStatus; s != types.StreamStatusActive {
			return fmt.Errorf("stream %s", s)
		}
		return nil
	})
	d := putRecordsAll(t, c, "bench")
	return report("kinesalite_in_memory", nRecords, d, testutil.ReadMem(t, cmd.Process.Pid))
}

// ---- MQTT: kaiten's broker and mosquitto --------------------------------

// publishAll sends every record as a QoS 1 publish to bench/<key> from 8
// publishers with up to 500 messages in flight each, and returns when every
// PUBACK is in.
func publishAll(t *testing.T, url string) time.Duration {
	clients := make([]paho.Client, producers)
	for p := range clients {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("bench-pub-%d", p)).
			SetCleanSession(true).SetKeepAlive(60 * time.Second).SetOrderMatters(false)
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", url, tok.Error())
		}
		defer c.Disconnect(100)
		clients[p] = c
	}
	var wg sync.WaitGroup
	start := time.Now()
	for p, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			window := make([]paho.Token, 0, batchSize)
			wait := func(tok paho.Token) bool {
				if !tok.WaitTimeout(2*time.Minute) || tok.Error() != nil {
					t.Errorf("publish: no PUBACK: %v", tok.Error())
					return false
				}
				return true
			}
			for i := p; i < nRecords; i += producers {
				window = append(window, c.Publish("bench/"+keys[i%nKeys], 1, false, payload(i)))
				if len(window) == batchSize {
					if !wait(window[0]) {
						return
					}
					window = window[1:]
				}
			}
			for _, tok := range window {
				if !wait(tok) {
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return time.Since(start)
}

func kaitenMQTT(t *testing.T) float64 {
	d := startKaiten(t)
	var broker string
	testutil.WaitFor(t, 10*time.Second, func() error {
		for _, l := range strings.Split(d.Log(), "\n") {
			if a, ok := strings.CutPrefix(strings.TrimSpace(l), "MQTT broker: tcp://"); ok {
				broker = strings.Fields(a)[0]
				return nil
			}
		}
		return fmt.Errorf("no broker address in the daemon's output")
	})
	dur := publishAll(t, "tcp://"+broker)
	rss := testutil.ReadMem(t, d.Cmd.Process.Pid)
	// Every PUBACK means a durable append: the stream holds them all.
	c := kinesisClient("http://" + d.HTTPAddr)
	n := 0
	ctx := context.Background()
	sh, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("bench")})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sh.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("bench"), ShardId: s.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		for iter := it.ShardIterator; iter != nil; {
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Records) == 0 {
				break
			}
			n += len(out.Records)
			iter = out.NextShardIterator
		}
	}
	if n < nRecords {
		t.Fatalf("mqtt ingest: %d of %d acknowledged messages in the stream", n, nRecords)
	}
	_ = d.Stop(30 * time.Second)
	return report("mqtt_ingest_qos1_durable", nRecords, dur, rss)
}

func mosquittoBench(t *testing.T) float64 {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n"+
		"max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages %d\nlog_dest stderr\nlog_type error\n", port, batchSize)
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "m.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "m.conf"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("mosquitto: %v (apt-get install mosquitto)", err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	testutil.WaitFor(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	var got atomic.Int64
	all := make(chan struct{})
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bench-sub").SetCleanSession(true).SetOrderMatters(false)
	sub := paho.NewClient(o)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("bench/+", 1, func(_ paho.Client, m paho.Message) {
		if got.Add(1) == int64(nRecords) {
			close(all)
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	start := time.Now()
	publishAll(t, "tcp://"+addr)
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		t.Fatalf("mosquitto: the subscriber got %d of %d", got.Load(), nRecords)
	}
	return report("mosquitto_qos1_pubsub_in_memory", nRecords, time.Since(start), testutil.ReadMem(t, cmd.Process.Pid))
}
