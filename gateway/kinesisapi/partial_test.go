package kinesisapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

func entries(n, size int) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", i)),
			Data: []byte(fmt.Sprintf("%0*d", size, i))}
	}
	return out
}

// TestPutRecordsFullCap: a stream at its disk cap fails the records that do
// not fit with a retriable InternalFailure, stores the others, and a failed
// record never blocks the rest.
func TestPutRecordsFullCap(t *testing.T) {
	g := newGateway(t, Config{})
	ctx := ctxT(t)
	if err := g.store.CreateStream(context.Background(), stream.StreamConfig{Name: "small", ShardCount: 2, MaxBytes: 4000, OnFull: stream.Reject}); err != nil {
		t.Fatal(err)
	}
	c := g.client("AKIDTEST", "secret")
	in := entries(100, 100)
	out := must[*kinesis.PutRecordsOutput](t)(c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("small"), Records: in}))
	failed, ok := 0, 0
	stored := map[string]bool{}
	for i, r := range out.Records {
		switch {
		case r.ErrorCode == nil:
			ok++
			stored[string(in[i].Data)] = true
			if r.SequenceNumber == nil || r.ShardId == nil {
				t.Fatalf("record %d: success without sequence number", i)
			}
		case aws.ToString(r.ErrorCode) == "InternalFailure" && strings.Contains(aws.ToString(r.ErrorMessage), "Storage cap"):
			failed++
			if r.SequenceNumber != nil {
				t.Fatalf("record %d: failure with a sequence number", i)
			}
		default:
			t.Fatalf("record %d: %s %s", i, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
		}
	}
	if failed == 0 || ok == 0 || int(aws.ToInt32(out.FailedRecordCount)) != failed {
		t.Fatalf("ok=%d failed=%d FailedRecordCount=%d", ok, failed, aws.ToInt32(out.FailedRecordCount))
	}
	// Exactly the successful records are readable.
	read := 0
	for _, sh := range []string{"shardId-000000000000", "shardId-000000000001"} {
		it := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("small"), ShardId: aws.String(sh), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}))
		gr := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator}))
		for _, r := range gr.Records {
			if !stored[string(r.Data)] {
				t.Fatalf("record %s readable but reported failed", r.Data)
			}
			read++
		}
	}
	if read != ok {
		t.Fatalf("read %d records, %d reported stored", read, ok)
	}
	// A single PutRecord against the full stream: InternalFailure (HTTP 500,
	// which the SDKs retry).
	_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("small"), PartitionKey: aws.String("k"), Data: make([]byte, 3000)})
	wantCode(t, err, "InternalFailureException")

	mfs, _ := g.reg.Gather()
	if v := counterValue(mfs, "kaiten_kinesis_put_records_failed_records_total", map[string]string{"stream": "small"}); v != float64(failed) {
		t.Fatalf("FailedRecords metric %v, want %d", v, failed)
	}
	if v := counterValue(mfs, "kaiten_kinesis_incoming_records_total", map[string]string{"stream": "small"}); v != float64(ok) {
		t.Fatalf("IncomingRecords metric %v, want %d", v, ok)
	}
}

// TestPutRecordsThrottled: with the per-shard write limit on, the excess
// gets ProvisionedThroughputExceededException per record.
func TestPutRecordsThrottled(t *testing.T) {
	g := newGateway(t, Config{}, func(o *stream.Options) { o.ShardWriteRecords = 10 })
	ctx := ctxT(t)
	c := g.client("AKIDTEST", "secret")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("slow"), ShardCount: aws.Int32(1)}))
	out := must[*kinesis.PutRecordsOutput](t)(c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("slow"), Records: entries(200, 10)}))
	throttled := 0
	for _, r := range out.Records {
		if aws.ToString(r.ErrorCode) == "ProvisionedThroughputExceededException" {
			throttled++
		} else if r.ErrorCode != nil {
			t.Fatalf("unexpected %s", aws.ToString(r.ErrorCode))
		}
	}
	if throttled == 0 || throttled == 200 || int(aws.ToInt32(out.FailedRecordCount)) != throttled {
		t.Fatalf("throttled %d of 200, FailedRecordCount %d", throttled, aws.ToInt32(out.FailedRecordCount))
	}
	mfs, _ := g.reg.Gather()
	if v := counterValue(mfs, "kaiten_kinesis_write_provisioned_throughput_exceeded_total", map[string]string{"stream": "slow"}); v != float64(throttled) {
		t.Fatalf("WriteProvisionedThroughputExceeded %v, want %d", v, throttled)
	}
}

// TestShardLimits: the store's shard cap answers LimitExceededException.
func TestShardLimits(t *testing.T) {
	g := newGateway(t, Config{}, func(o *stream.Options) { o.MaxShards = 4 })
	ctx := ctxT(t)
	c := g.client("AKIDTEST", "secret")
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("wide"), ShardCount: aws.Int32(5)})
	wantCode(t, err, "LimitExceededException")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("narrow"), ShardCount: aws.Int32(2)}))
	_, err = c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("narrow"), TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling})
	wantCode(t, err, "LimitExceededException")
	// The stream is untouched: still two open shards, ACTIVE.
	sum := must[*kinesis.DescribeStreamSummaryOutput](t)(c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("narrow")}))
	if aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 2 || sum.StreamDescriptionSummary.StreamStatus != types.StreamStatusActive {
		t.Fatalf("after refused reshard: %+v", sum.StreamDescriptionSummary)
	}
}

// TestExpiry: an old shard iterator gets ExpiredIteratorException, an old
// ListShards NextToken ExpiredNextTokenException.
func TestExpiry(t *testing.T) {
	g := newGateway(t, Config{}, func(o *stream.Options) { o.IteratorTTL = 50 * time.Millisecond })
	ctx := ctxT(t)
	c := g.client("AKIDTEST", "secret")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("old"), ShardCount: aws.Int32(3)}))
	it := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("old"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}))
	testutil.WaitFor(t, 10*time.Second, func() error {
		_, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		var ee *types.ExpiredIteratorException
		if errors.As(err, &ee) {
			return nil
		}
		return fmt.Errorf("GetRecords on an old iterator: %v", err)
	})

	ls := must[*kinesis.ListShardsOutput](t)(c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("old"), MaxResults: aws.Int32(1)}))
	if ls.NextToken == nil {
		t.Fatal("no NextToken")
	}
	g.srv.now = func() time.Time { return time.Now().Add(nextTokenTTL + time.Minute) }
	_, err := c.ListShards(ctx, &kinesis.ListShardsInput{NextToken: ls.NextToken})
	wantCode(t, err, "ExpiredNextTokenException")
}
