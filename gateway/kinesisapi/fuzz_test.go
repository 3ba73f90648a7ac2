package kinesisapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

var fuzzSeeds = []struct{ op, body string }{
	{"CreateStream", `{"StreamName":"fz","ShardCount":2,"Tags":{"a":"b"}}`},
	{"CreateStream", `{"StreamName":"fz2","StreamModeDetails":{"StreamMode":"ON_DEMAND"}}`},
	{"PutRecord", `{"StreamName":"canary","PartitionKey":"k","Data":"aGVsbG8=","ExplicitHashKey":"12"}`},
	{"PutRecords", `{"StreamName":"canary","Records":[{"PartitionKey":"a","Data":"eA=="},{"PartitionKey":"b","Data":""}]}`},
	{"GetShardIterator", `{"StreamName":"canary","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":1764133200.5}`},
	{"GetRecords", `{"ShardIterator":"AAAAAAAAAAE=","Limit":5}`},
	{"ListShards", `{"StreamName":"canary","ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":0}}`},
	{"ListShards", `{"NextToken":"eyJzIjoiY2FuYXJ5IiwiYSI6IiIsIm0iOjEsIm4iOjB9"}`},
	{"ListStreams", `{"Limit":1,"NextToken":"Y2FuYXJ5"}`},
	{"DescribeStream", `{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/canary","Limit":1}`},
	{"SplitShard", `{"StreamName":"fz","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"1"}`},
	{"MergeShards", `{"StreamName":"fz","ShardToMerge":"shardId-000000000001","AdjacentShardToMerge":"shardId-000000000002"}`},
	{"UpdateShardCount", `{"StreamName":"fz","TargetShardCount":3,"ScalingType":"UNIFORM_SCALING"}`},
	{"IncreaseStreamRetentionPeriod", `{"StreamName":"fz","RetentionPeriodHours":48}`},
	{"AddTagsToStream", `{"StreamName":"fz","Tags":{"k":"v"}}`},
	{"ListTagsForStream", `{"StreamName":"fz","ExclusiveStartTagKey":"a","Limit":1}`},
	{"RemoveTagsFromStream", `{"StreamName":"fz","TagKeys":["k"]}`},
	{"DeleteStream", `{"StreamName":"fz2"}`},
	{"PutRecord", `{"StreamName":"canary","PartitionKey":"\u0000\uffff","Data":null}`},
	{"RegisterStreamConsumer", `{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/canary","ConsumerName":"c1"}`},
	{"SubscribeToShard", `{"ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/canary/consumer/c1:1","ShardId":"shardId-000000000000","StartingPosition":{"Type":"TRIM_HORIZON"}}`},
	{"ListStreamConsumers", `{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/canary","MaxResults":1}`},
	{"Bogus", `{"x":[[[[[[1]]]]]]}`},
}

func fuzzOps() []string {
	ops := Operations()
	sort.Strings(ops)
	return append(ops, "Bogus")
}

// fuzzServer is a gateway over a real store holding a canary stream with
// one known record.
func fuzzServer(f *testing.F) (*gateway, string) {
	g := newGateway(f, Config{})
	g.srv.subscribeFor = 20 * time.Millisecond // a fuzzed SubscribeToShard must not hang the run
	ctx := context.Background()
	if err := g.store.CreateStream(ctx, stream.StreamConfig{Name: "canary", ShardCount: 1}); err != nil {
		f.Fatal(err)
	}
	res, err := g.store.Put(ctx, "canary", stream.Entry{PartitionKey: "k", Data: []byte("canary-data")})
	if err != nil || res.Err != nil {
		f.Fatal(err, res.Err)
	}
	return g, res.SequenceNumber
}

// fuzzOne serves one request in-process (a panic fails the fuzz run) and
// checks the invariants: an AWS-shaped answer, never a 5xx, and a store
// that still reads consistently.
func fuzzOne(t *testing.T, g *gateway, canarySeq, op, contentType string, body []byte) {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.RemoteAddr = "127.0.0.1:9"
	r.Header.Set("X-Amz-Target", TargetPrefix+op)
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	g.srv.ServeHTTP(w, r)
	switch w.Code {
	case 200, 400, 413:
	default:
		t.Fatalf("%s %q: HTTP %d %s", op, body, w.Code, w.Body.Bytes())
	}
	if w.Code != 200 {
		var e map[string]any
		var err error
		if contentType == ContentTypeCBOR {
			err = cbor.Unmarshal(w.Body.Bytes(), &e)
		} else {
			err = json.Unmarshal(w.Body.Bytes(), &e)
		}
		if err != nil || e["__type"] == nil {
			t.Fatalf("%s: error body %q is not AWS-shaped: %v", op, w.Body.Bytes(), err)
		}
	}
	// The store still reads: every stream describes and every shard reads.
	for _, name := range g.store.ListStreams() {
		d, err := g.store.DescribeStream(name)
		if errors.Is(err, stream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("after %s: describe %s: %v", op, name, err)
		}
		for _, sh := range d.Shards {
			if _, err := g.store.Read(context.Background(), stream.ReadRequest{Stream: name, ShardID: sh.ShardID, Limit: 5}); err != nil && !errors.Is(err, stream.ErrStreamNotFound) {
				t.Fatalf("after %s: read %s/%s: %v", op, name, sh.ShardID, err)
			}
		}
	}
	// The canary record is intact unless the input deleted the stream.
	rr, err := g.store.Read(context.Background(), stream.ReadRequest{Stream: "canary", ShardID: "shardId-000000000000", Limit: 1})
	if err == nil && (len(rr.Records) == 0 || rr.Records[0].SequenceNumber != canarySeq || string(rr.Records[0].Data) != "canary-data") {
		t.Fatalf("after %s %q: canary record changed: %+v", op, body, rr.Records)
	}
}

func FuzzJSONRequest(f *testing.F) {
	ops := fuzzOps()
	for _, s := range fuzzSeeds {
		f.Add(uint8(sort.SearchStrings(ops[:len(ops)-1], s.op)), []byte(s.body))
	}
	f.Add(uint8(0), []byte(`{"StreamName":"a","ShardCount":1e400}`))
	f.Add(uint8(3), []byte("\xff\xfe"))
	g, seq := fuzzServer(f)
	f.Fuzz(func(t *testing.T, opIdx uint8, body []byte) {
		fuzzOne(t, g, seq, ops[int(opIdx)%len(ops)], ContentTypeJSON, body)
	})
}

func FuzzCBORRequest(f *testing.F) {
	ops := fuzzOps()
	for _, s := range fuzzSeeds {
		var v any
		if err := json.Unmarshal([]byte(s.body), &v); err != nil {
			f.Fatal(err)
		}
		// Blobs travel as byte strings in CBOR.
		if m, ok := v.(map[string]any); ok {
			if d, ok := m["Data"].(string); ok {
				m["Data"] = []byte(d)
			}
			if ts, ok := m["Timestamp"].(float64); ok {
				m["Timestamp"] = cbor.Tag{Number: 1, Content: int64(ts * 1000)}
			}
		}
		b, err := cbor.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(sort.SearchStrings(ops[:len(ops)-1], s.op)), b)
	}
	f.Add(uint8(1), []byte{0xbf, 0x61, 0x61, 0x9f, 0x9f, 0x9f}) // indefinite, unterminated
	f.Add(uint8(2), []byte{0xa1, 0x65, 'L', 'i', 'm', 'i', 't', 0xc1, 0xfb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(4), []byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // huge array header
	g, seq := fuzzServer(f)
	f.Fuzz(func(t *testing.T, opIdx uint8, body []byte) {
		fuzzOne(t, g, seq, ops[int(opIdx)%len(ops)], ContentTypeCBOR, body)
	})
}
