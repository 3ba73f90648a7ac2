package kinesissink_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/internal/awscfg"
	"github.com/kaiten-edge/kaiten/sync/kinesissink"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

// startHub runs a second kaiten as the upstream, with a per-shard write
// limit so that large PutRecords calls fail partly, as Kinesis does.
func startHub(t *testing.T) *testutil.Daemon {
	cfg := filepath.Join(t.TempDir(), "hub.yaml")
	if err := os.WriteFile(cfg, []byte(`
store: {shard_write_records: 300}
streams:
  - {name: plates, shards: 4}
  - {name: gpio, shards: 1}
  - {name: deadletter, shards: 1}
  - {name: plate-stats, shards: 1}
  - {name: hub, shards: 1}
sync: []
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return testutil.StartDaemon(t, t.TempDir(), "--config", cfg, "--no-sim", "--mqtt-addr", testutil.FreeAddr(t))
}

func client(addr string) *kinesis.Client {
	return testutil.KinesisClient(addr, testutil.KinesisSDKRetries(0), testutil.KinesisHTTPClient(&http.Client{Timeout: 10 * time.Second}))
}

func readAll(t *testing.T, c *kinesis.Client, stream string) []types.Record {
	ctx := context.Background()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var out []types.Record
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		for iter := it.ShardIterator; iter != nil; {
			res, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, res.Records...)
			if len(res.Records) == 0 {
				break
			}
			iter = res.NextShardIterator
		}
	}
	return out
}

// TestPartialFailuresRetryOnlyTheFailed sends more records than the hub's
// shard takes per second: the first attempts fail partly, and the retries
// of the same batch send only what failed, so the hub ends with every
// record once, in order, with its partition key.
func TestPartialFailuresRetryOnlyTheFailed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	hub := startHub(t)
	s, err := kinesissink.New(kinesissink.Config{StreamName: "hub", Access: awscfg.Access{Endpoint: "http://" + hub.HTTPAddr}})
	if err != nil {
		t.Fatal(err)
	}
	b := &sink.Batch{ID: "x", ShardID: "shardId-000000000000"}
	const n = 1000
	for i := 0; i < n; i++ {
		b.Records = append(b.Records, sink.Record{PartitionKey: fmt.Sprintf("demo-store/%d", i%5), Data: []byte(fmt.Sprintf("r%04d", i))})
	}
	// Oversize and empty-key records can never go: they are reported, not sent.
	b.Records = append(b.Records, sink.Record{PartitionKey: "big", Data: make([]byte, 1<<20+1)}, sink.Record{PartitionKey: "", Data: []byte("nokey")})
	ctx := context.Background()
	attempts, partial := 0, 0
	testutil.WaitFor(t, 60*time.Second, func() error {
		attempts++
		err := s.Deliver(ctx, b)
		var re *sink.RecordErrors
		if errors.As(err, &re) {
			if len(re.Failed) != 2 || re.Failed[n].Code != "Oversize" || re.Failed[n+1].Code != "InvalidPartitionKey" {
				t.Fatalf("record errors %+v", re.Failed)
			}
			return nil
		}
		if err == nil {
			t.Fatal("bad records were not reported")
		}
		if strings.Contains(err.Error(), "still to send") {
			partial++
		}
		return err
	})
	if partial == 0 {
		t.Fatalf("no partial failure in %d attempts: the test did not exercise retries", attempts)
	}
	recs := readAll(t, client(hub.HTTPAddr), "hub")
	if len(recs) != n {
		t.Fatalf("hub holds %d records, want %d (retries resent acknowledged records?)", len(recs), n)
	}
	last := map[string]string{}
	for _, r := range recs {
		k := aws.ToString(r.PartitionKey)
		if !strings.HasPrefix(k, "demo-store/") {
			t.Fatalf("partition key %q lost", k)
		}
		if p, ok := last[k]; ok && string(r.Data) <= p {
			t.Fatalf("key %s: %s after %s", k, r.Data, p)
		}
		last[k] = string(r.Data)
	}
	t.Logf("%d attempts, %d with a partial failure", attempts, partial)
}

func TestConfig(t *testing.T) {
	if _, err := kinesissink.New(kinesissink.Config{}); err == nil {
		t.Fatal("no stream accepted")
	}
}

func TestSample(t *testing.T) {
	c := sinktest.Sample(t, "kinesis").(*kinesissink.Config)
	if c.Region != awscfg.DefaultRegion || c.Timeout.Duration != kinesissink.DefaultTimeout || c.Endpoint != "" {
		t.Fatalf("sample.yaml does not show the defaults: %+v", c)
	}
}
