package kinesisapi

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

const kinesaliteVersion = "3.3.3"

// TestBenchReport (make bench) measures PutRecords of 500 x 100-byte
// records through the aws-sdk-go-v2 client against the gateway (records
// fsynced before the 200) and against kinesalite (in memory, no fsync) on
// loopback, in the same process, and prints BENCH and RATIO lines.
func TestBenchReport(t *testing.T) {
	if os.Getenv("KAITEN_BENCH") != "1" {
		t.Skip("benchmark report: make bench (KAITEN_BENCH=1)")
	}
	g := newGateway(t, Config{})
	gwRun := putRecordsRunner(t, "gateway", g.url)
	klRun := putRecordsRunner(t, "kinesalite", startKinesalite(t))
	// Rounds alternate between the two so that load from elsewhere on the
	// machine hits both alike; each side's median round counts. One client
	// sending one request at a time, then four clients at once (a store
	// with several producers; the gateway's group commit then covers
	// several requests with one fsync).
	for _, clients := range []int{1, benchClients} {
		var gws, kls []benchResult
		for range 3 {
			gws = append(gws, gwRun(clients))
			kls = append(kls, klRun(clients))
		}
		gw, ref := median(gws), median(kls)
		suffix := fmt.Sprintf("_%dclients", clients)
		if clients == 1 {
			suffix = "_1client"
		}
		fmt.Printf("BENCH kinesis_putrecords_gateway%s %.0f records/s\n", suffix, gw.recsPerSec)
		fmt.Printf("BENCH kinesis_putrecords_gateway%s_latency %.2f ms/request\n", suffix, gw.msPerReq)
		fmt.Printf("BENCH kinesis_putrecords_kinesalite%s %.0f records/s\n", suffix, ref.recsPerSec)
		fmt.Printf("BENCH kinesis_putrecords_kinesalite%s_latency %.2f ms/request\n", suffix, ref.msPerReq)
		name := "putrecords_vs_kinesalite"
		if clients == 1 {
			name += "_1client"
		}
		fmt.Printf("RATIO %s %.2f\n", name, gw.recsPerSec/ref.recsPerSec)
	}
}

// benchClients is how many clients send at once in the concurrent rounds.
const benchClients = 4

type benchResult struct{ recsPerSec, msPerReq float64 }

func median(rs []benchResult) benchResult {
	sort.Slice(rs, func(i, j int) bool { return rs[i].recsPerSec < rs[j].recsPerSec })
	return rs[len(rs)/2]
}

// putRecordsRunner creates the bench stream, warms the server up (the JIT
// of kinesalite, the caches of both) and returns a function that measures
// one round of sequential PutRecords calls.
func putRecordsRunner(t *testing.T, label, url string) func(clients int) benchResult {
	t.Helper()
	ctx := context.Background()
	c := testutil.KinesisClient(url, testutil.KinesisKeys("AKIDBENCH", "bench"), testutil.KinesisSDKRetries(1))
	name := aws.String("bench")
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(4)}); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if err := kinesis.NewStreamExistsWaiter(c).Wait(ctx, &kinesis.DescribeStreamInput{StreamName: name}, 30*time.Second); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	recs := make([]types.PutRecordsRequestEntry, 500)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range recs {
		data := make([]byte, 100)
		for j := range data {
			data[j] = byte(rng.UintN(256))
		}
		recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("demo-store/%d", rng.UintN(64))), Data: data}
	}
	in := &kinesis.PutRecordsInput{StreamName: name, Records: recs}
	for range 20 {
		if _, err := c.PutRecords(ctx, in); err != nil {
			t.Fatalf("%s: warm-up: %v", label, err)
		}
	}
	return func(clients int) benchResult {
		return measurePutRecords(t, label, c, in, clients)
	}
}

// measurePutRecords runs clients goroutines, each sending PutRecords one
// after the other for a fixed time, and returns records per second and the
// mean latency of a request.
func measurePutRecords(t *testing.T, label string, c *kinesis.Client, in *kinesis.PutRecordsInput, clients int) benchResult {
	t.Helper()
	const round = 2 * time.Second
	ctx := context.Background()
	var mu sync.Mutex
	var reqs int
	var busy time.Duration
	var failed error
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, spent := 0, time.Duration(0)
			for time.Since(start) < round {
				t0 := time.Now()
				out, err := c.PutRecords(ctx, in)
				if err == nil && aws.ToInt32(out.FailedRecordCount) != 0 {
					err = fmt.Errorf("%d records failed", aws.ToInt32(out.FailedRecordCount))
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
				spent += time.Since(t0)
				n++
			}
			mu.Lock()
			reqs += n
			busy += spent
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil || reqs == 0 {
		t.Fatalf("%s: PutRecords: %v", label, failed)
	}
	t.Logf("%s: %d clients, %d PutRecords in %s", label, clients, reqs, elapsed)
	return benchResult{recsPerSec: float64(reqs*500) / elapsed.Seconds(), msPerReq: busy.Seconds() * 1000 / float64(reqs)}
}

// startKinesalite installs kinesalite with npm into the user cache (once)
// and runs it on a free loopback port until the test ends.
func startKinesalite(t *testing.T) string {
	t.Helper()
	npm := testutil.LookTool(t, "npm")
	node := testutil.LookTool(t, "node")
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kaiten-bench", "kinesalite-"+kinesaliteVersion)
	cli := filepath.Join(dir, "node_modules", "kinesalite", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		cmd := exec.Command(npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "kinesalite@"+kinesaliteVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install kinesalite: %v\n%s", err, out)
		}
	}
	addr := testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(node, cli, "--port", port, "--createStreamMs", "0", "--deleteStreamMs", "0", "--updateStreamMs", "0", "--shardLimit", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testutil.WaitFor(t, 30*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	return "http://" + addr
}
