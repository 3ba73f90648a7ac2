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
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
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
		return
	}
	g := newGateway(t, Config{})
	gwRun := putRecordsRunner(t, "gateway", g.url)
	klRun := putRecordsRunner(t, "kinesalite", startKinesalite(t))
	// Rounds alternate between the two so that load from elsewhere on the
	// machine hits both alike; each side's median round counts.
	var gws, kls []benchResult
	for range 3 {
		gws = append(gws, gwRun())
		kls = append(kls, klRun())
	}
	gw, ref := median(gws), median(kls)
	fmt.Printf("BENCH kinesis_putrecords_gateway %.0f records/s\n", gw.recsPerSec)
	fmt.Printf("BENCH kinesis_putrecords_gateway_latency %.2f ms/request\n", gw.msPerReq)
	fmt.Printf("BENCH kinesis_putrecords_kinesalite %.0f records/s\n", ref.recsPerSec)
	fmt.Printf("BENCH kinesis_putrecords_kinesalite_latency %.2f ms/request\n", ref.msPerReq)
	fmt.Printf("RATIO putrecords_vs_kinesalite %.2f\n", gw.recsPerSec/ref.recsPerSec)
}

type benchResult struct{ recsPerSec, msPerReq float64 }

func median(rs []benchResult) benchResult {
	sort.Slice(rs, func(i, j int) bool { return rs[i].recsPerSec < rs[j].recsPerSec })
	return rs[len(rs)/2]
}

// putRecordsRunner creates the bench stream, warms the server up (the JIT
// of kinesalite, the caches of both) and returns a function that measures
// one round of sequential PutRecords calls.
func putRecordsRunner(t *testing.T, label, url string) func() benchResult {
	t.Helper()
	ctx := context.Background()
	c := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDBENCH", "bench", ""), RetryMaxAttempts: 1})
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
	return func() benchResult {
		return measurePutRecords(t, label, c, in)
	}
}

func measurePutRecords(t *testing.T, label string, c *kinesis.Client, in *kinesis.PutRecordsInput) benchResult {
	ctx := context.Background()
	var failed error
	res := testing.Benchmark(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out, err := c.PutRecords(ctx, in)
			if err == nil && aws.ToInt32(out.FailedRecordCount) != 0 {
				err = fmt.Errorf("%d records failed", aws.ToInt32(out.FailedRecordCount))
			}
			if err != nil {
				failed = err
				b.FailNow()
			}
		}
	})
	if failed != nil || res.N == 0 {
		t.Fatalf("%s: PutRecords: %v", label, failed)
	}
	perReq := res.T.Seconds() / float64(res.N)
	t.Logf("%s: %d PutRecords in %s", label, res.N, res.T)
	return benchResult{recsPerSec: 500 / perReq, msPerReq: perReq * 1000}
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
