package kinesisapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// call posts a raw request and returns status, headers and body.
func call(t testing.TB, url, op, contentType string, body []byte, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if op != "" {
		req.Header.Set("X-Amz-Target", TargetPrefix+op)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func callJSON(t testing.TB, url, op, body string) (int, map[string]any) {
	t.Helper()
	st, _, b := call(t, url, op, ContentTypeJSON, []byte(body))
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: response is not JSON: %q", op, b)
		}
	}
	return st, m
}

func TestErrorShapesAndHeaders(t *testing.T) {
	g := newGateway(t, Config{MaxBodyBytes: 64 << 10})
	st, hdr, b := call(t, g.url, "CreateStream", ContentTypeJSON, []byte(`{"StreamName":"s1","ShardCount":1}`))
	if st != 200 || len(b) != 0 {
		t.Fatalf("CreateStream %d %q", st, b)
	}
	if _, err := uuid.Parse(hdr.Get("x-amzn-RequestId")); err != nil {
		t.Fatalf("x-amzn-RequestId %q is not a UUID", hdr.Get("x-amzn-RequestId"))
	}
	if hdr.Get("x-amz-id-2") == "" || hdr.Get("Content-Type") != ContentTypeJSON {
		t.Fatalf("headers %v", hdr)
	}

	cases := []struct {
		op, body string
		status   int
		typ, msg string
	}{
		{"Nope", `{}`, 400, "UnknownOperationException", ""},
		{"", `{}`, 400, "UnknownOperationException", ""},
		{"DescribeStream", `{"StreamName":`, 400, "SerializationException", ""},
		{"DescribeStream", `[1,2]`, 400, "SerializationException", ""},
		{"DescribeStream", `{"StreamName":5}`, 400, "SerializationException", ""},
		{"CreateStream", `{"StreamName":"x","ShardCount":"2"}`, 400, "SerializationException", ""},
		{"PutRecord", `{"StreamName":"s1","PartitionKey":"k","Data":"not base64!"}`, 400, "SerializationException", ""},
		{"DescribeStream", `{"StreamName":"nope"}`, 400, "ResourceNotFoundException", "Stream nope not found."},
		{"DescribeStream", `{}`, 400, "InvalidArgumentException", "Either StreamName or StreamARN must be provided."},
		{"CreateStream", `{"StreamName":"s1","ShardCount":1}`, 400, "ResourceInUseException", "Stream s1 already exists."},
		{"CreateStream", `{"ShardCount":1}`, 400, "ValidationException",
			"1 validation error detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null"},
		{"CreateStream", `{"StreamName":"` + strings.Repeat("a", 129) + `","ShardCount":0}`, 400, "ValidationException",
			"2 validation errors detected: Value '" + strings.Repeat("a", 80) + "...' at 'streamName' failed to satisfy constraint: Member must have length less than or equal to 128; Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"},
		{"PutRecords", `{"StreamName":"s1","Records":[]}`, 400, "ValidationException",
			"1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1"},
		{"PutRecords", `{"StreamName":"s1","Records":[{"Data":"eA=="}]}`, 400, "ValidationException",
			"1 validation error detected: Value null at 'records.1.member.partitionKey' failed to satisfy constraint: Member must not be null"},
		{"UpdateShardCount", `{"StreamName":"s1","TargetShardCount":2}`, 400, "ValidationException",
			"1 validation error detected: Value null at 'scalingType' failed to satisfy constraint: Member must not be null"},
		{"GetShardIterator", `{"StreamName":"s1","ShardId":"shardId-000000000000","ShardIteratorType":"LATEST","StartingSequenceNumber":"1"}`, 400, "InvalidArgumentException", ""},
		{"GetRecords", `{"ShardIterator":"AAAAAAAAAAGZm9v"}`, 400, "InvalidArgumentException", "Invalid ShardIterator."},
		{"ListStreams", `{"Limit":0}`, 400, "ValidationException", ""},
		{"ListStreams", `{"NextToken":"!!"}`, 400, "InvalidArgumentException", ""},
		{"IncreaseStreamRetentionPeriod", `{"StreamName":"s1","RetentionPeriodHours":10}`, 400, "InvalidArgumentException",
			"Minimum allowed retention period is 24 hours. Requested retention period (10 hours) is too short."},
	}
	for _, c := range cases {
		st, m := callJSON(t, g.url, c.op, c.body)
		if st != c.status || m["__type"] != c.typ {
			t.Errorf("%s %s: %d %v, want %d %s", c.op, c.body, st, m, c.status, c.typ)
			continue
		}
		if c.msg != "" && m["message"] != c.msg {
			t.Errorf("%s %s:\n message %q\n want    %q", c.op, c.body, m["message"], c.msg)
		}
		if c.typ == "UnknownOperationException" {
			if _, ok := m["message"]; ok {
				t.Errorf("UnknownOperationException carries a message: %v", m)
			}
		}
		for k := range m {
			if k != "__type" && k != "message" {
				t.Errorf("%s: unexpected error field %q", c.op, k)
			}
		}
	}

	// Body cap: 413, nothing stored.
	big := `{"StreamName":"s1","PartitionKey":"k","Data":"` + strings.Repeat("QUFB", 30<<10) + `"}`
	st, m := callJSON(t, g.url, "PutRecord", big)
	if st != 413 || m["__type"] != ExRequestEntityTooLarge {
		t.Fatalf("oversize body: %d %v", st, m)
	}

	// Absent fields are omitted, never null: an open shard has no
	// EndingSequenceNumber, and no ParentShardId.
	_, _, raw := call(t, g.url, "DescribeStream", ContentTypeJSON, []byte(`{"StreamName":"s1"}`))
	for _, bad := range []string{"null", "EndingSequenceNumber", "ParentShardId"} {
		if bytes.Contains(raw, []byte(bad)) {
			t.Fatalf("DescribeStream response has %s: %s", bad, raw)
		}
	}
	// A GetRecords on an open shard has no ChildShards.
	_, it := callJSON(t, g.url, "GetShardIterator", `{"StreamName":"s1","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`)
	_, _, raw = call(t, g.url, "GetRecords", ContentTypeJSON, []byte(`{"ShardIterator":"`+it["ShardIterator"].(string)+`"}`))
	if !bytes.HasPrefix(raw, []byte(`{"Records":[]`)) || bytes.Contains(raw, []byte("ChildShards")) || bytes.Contains(raw, []byte("null")) {
		t.Fatalf("GetRecords body %s", raw)
	}

	// Requests were counted per operation and outcome.
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if v := counterValue(mfs, "kaiten_kinesis_requests_total", map[string]string{"operation": "unknown", "code": "UnknownOperationException"}); v != 2 {
		t.Fatalf("unknown-operation requests counted %v, want 2", v)
	}
}

func counterValue(mfs []*dto.MetricFamily, name string, labels map[string]string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

func TestCORS(t *testing.T) {
	g := newGateway(t, Config{CORSOrigins: []string{"http://shop.local"}})
	req, _ := http.NewRequest(http.MethodOptions, g.url+"/", nil)
	req.Header.Set("Origin", "http://shop.local")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type,x-amz-target,x-amz-date,authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 200 || h.Get("Access-Control-Allow-Origin") != "http://shop.local" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		h.Get("Access-Control-Allow-Headers") != "content-type,x-amz-target,x-amz-date,authorization" ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "x-amzn-RequestId") {
		t.Fatalf("preflight %d %v", resp.StatusCode, h)
	}
	_, hdr, _ := call(t, g.url, "ListStreams", ContentTypeJSON, []byte(`{}`), "Origin", "http://evil.example")
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin allowed: %v", hdr)
	}
	_, hdr, _ = call(t, g.url, "ListStreams", ContentTypeJSON, []byte(`{}`), "Origin", "http://shop.local")
	if hdr.Get("Access-Control-Allow-Origin") != "http://shop.local" {
		t.Fatalf("listed origin refused: %v", hdr)
	}
}

// TestCBORRoundTrip speaks CBOR as the AWS SDK for Java v2 and the KCL do:
// requests built with a CBOR library, blobs as byte strings, timestamps as
// tag 1 around epoch milliseconds.
func TestCBORRoundTrip(t *testing.T) {
	g := newGateway(t, Config{})
	enc, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	post := func(op string, v any) (int, map[string]any) {
		t.Helper()
		body, err := enc.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		st, hdr, b := call(t, g.url, op, ContentTypeCBOR, body)
		if hdr.Get("Content-Type") != ContentTypeCBOR {
			t.Fatalf("%s answered %q", op, hdr.Get("Content-Type"))
		}
		var m map[string]any
		if len(b) > 0 {
			if err := cbor.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: response is not CBOR: %v", op, err)
			}
		}
		return st, m
	}
	if st, m := post("CreateStream", map[string]any{"StreamName": "cbor", "ShardCount": 1}); st != 200 {
		t.Fatalf("CreateStream %d %v", st, m)
	}
	payload := []byte{0x00, 0xff, 0x10, 'k', 'a', 'i', 't', 'e', 'n', 0x80}
	st, m := post("PutRecord", map[string]any{"StreamName": "cbor", "PartitionKey": "demo-store/1", "Data": payload})
	if st != 200 || m["SequenceNumber"] == nil {
		t.Fatalf("PutRecord %d %v", st, m)
	}
	seq := m["SequenceNumber"].(string)
	st, m = post("PutRecords", map[string]any{"StreamName": "cbor", "Records": []map[string]any{
		{"PartitionKey": "a", "Data": []byte("one")}, {"PartitionKey": "b", "Data": []byte("two")}}})
	if st != 200 || m["FailedRecordCount"] != uint64(0) {
		t.Fatalf("PutRecords %d %v", st, m)
	}
	// AT_TIMESTAMP with a CBOR tag-1 millisecond timestamp an hour ago.
	st, m = post("GetShardIterator", map[string]any{"StreamName": "cbor", "ShardId": "shardId-000000000000",
		"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: time.Now().Add(-time.Hour).UnixMilli()}})
	if st != 200 {
		t.Fatalf("GetShardIterator %d %v", st, m)
	}
	it := m["ShardIterator"]
	st, m = post("GetRecords", map[string]any{"ShardIterator": it, "Limit": 10})
	if st != 200 {
		t.Fatalf("GetRecords %d %v", st, m)
	}
	recs := m["Records"].([]any)
	if len(recs) != 3 {
		t.Fatalf("GetRecords returned %d records", len(recs))
	}
	r0 := recs[0].(map[any]any)
	if !bytes.Equal(r0["Data"].([]byte), payload) || r0["SequenceNumber"] != seq || r0["PartitionKey"] != "demo-store/1" {
		t.Fatalf("record %v", r0)
	}
	// The arrival time is tag 1 around an integer of epoch milliseconds (a
	// generic CBOR decoder would read tag 1 as seconds, so look at the raw tag).
	st, _, raw := call(t, g.url, "GetRecords", ContentTypeCBOR, mustCBOR(t, map[string]any{"ShardIterator": it}))
	var rawResp struct {
		Records []struct {
			ApproximateArrivalTimestamp cbor.RawTag
		}
	}
	if err := cbor.Unmarshal(raw, &rawResp); err != nil || st != 200 || len(rawResp.Records) != 3 {
		t.Fatalf("raw GetRecords %d %v", st, err)
	}
	tag := rawResp.Records[0].ApproximateArrivalTimestamp
	var arrival uint64
	if err := cbor.Unmarshal(tag.Content, &arrival); err != nil || tag.Number != 1 {
		t.Fatalf("arrival tag %d: %v", tag.Number, err)
	}
	if d := time.Since(time.UnixMilli(int64(arrival))); d < -time.Minute || d > time.Minute {
		t.Fatalf("arrival %d ms is %v ago", arrival, d)
	}
	_, _, raw2 := call(t, g.url, "DescribeStreamSummary", ContentTypeCBOR, mustCBOR(t, map[string]any{"StreamName": "cbor"}))
	var sum struct {
		StreamDescriptionSummary struct {
			StreamCreationTimestamp cbor.RawTag
			OpenShardCount          int
		}
	}
	if err := cbor.Unmarshal(raw2, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.StreamDescriptionSummary.StreamCreationTimestamp.Number != 1 || sum.StreamDescriptionSummary.OpenShardCount != 1 {
		t.Fatalf("summary %+v", sum)
	}
	var ms any
	if err := cbor.Unmarshal(sum.StreamDescriptionSummary.StreamCreationTimestamp.Content, &ms); err != nil {
		t.Fatal(err)
	}
	if v, ok := ms.(uint64); !ok || time.Since(time.UnixMilli(int64(v))) > time.Minute {
		t.Fatalf("creation timestamp content %T %v, want epoch ms", ms, ms)
	}

	// CBOR errors are CBOR too.
	st, m = post("DescribeStream", map[string]any{"StreamName": "nope"})
	if st != 400 || m["__type"] != ExResourceNotFound {
		t.Fatalf("CBOR error %d %v", st, m)
	}
	st, _, b := call(t, g.url, "DescribeStream", ContentTypeCBOR, []byte{0xa1, 0x6a})
	var em map[string]any
	_ = cbor.Unmarshal(b, &em)
	if st != 400 || em["__type"] != ExSerialization {
		t.Fatalf("truncated CBOR: %d %v", st, em)
	}
	st, m = post("PutRecord", map[string]any{"StreamName": "cbor", "PartitionKey": 7, "Data": []byte("x")})
	if st != 400 || m["__type"] != ExSerialization {
		t.Fatalf("wrong CBOR type: %d %v", st, m)
	}
}

func mustCBOR(t testing.TB, v any) []byte {
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTimestampDecoding(t *testing.T) {
	want := time.UnixMilli(1764133200123).UTC()
	for _, in := range []string{`1764133200.123`, `"1764133200.123"`, `"2025-11-26T05:00:00.123Z"`} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err != nil || !ts.Equal(want) {
			t.Errorf("JSON %s -> %v %v", in, ts.Time, err)
		}
	}
	for _, in := range []any{cbor.Tag{Number: 1, Content: uint64(1764133200123)}, uint64(1764133200123), 1764133200.123, "2025-11-26T05:00:00.123Z"} {
		var ts Timestamp
		if err := cbor.Unmarshal(mustCBOR(t, in), &ts); err != nil || !ts.Equal(want) {
			t.Errorf("CBOR %v -> %v %v", in, ts.Time, err)
		}
	}
	for _, in := range []string{`-1`, `1e300`, `"soon"`, `true`} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err == nil {
			t.Errorf("JSON %s accepted as %v", in, ts.Time)
		}
	}
	b, _ := json.Marshal(Timestamp{want})
	if string(b) != "1764133200.123" {
		t.Errorf("JSON encoding %s", b)
	}
}

// TestInflightBudget: with the in-flight budget taken, a request waits (it
// shows in kaiten_kinesis_requests_waiting) and goes through once the
// budget is free.
func TestInflightBudget(t *testing.T) {
	g := newGateway(t, Config{MaxInflightBytes: 64 << 10, MaxBodyBytes: 64 << 10})
	if !g.srv.inflight.TryAcquire(64 << 10) {
		t.Fatal("budget not free at start")
	}
	done := make(chan int, 1)
	go func() {
		st, _, _ := call(t, g.url, "ListStreams", ContentTypeJSON, []byte(`{}`))
		done <- st
	}()
	testutil.WaitFor(t, 10*time.Second, func() error {
		mfs, _ := g.reg.Gather()
		if v := counterValue(mfs, "kaiten_kinesis_requests_waiting", nil); v != 1 {
			return fmt.Errorf("waiting = %v", v)
		}
		return nil
	})
	select {
	case st := <-done:
		t.Fatalf("request answered %d while the budget was taken", st)
	default:
	}
	g.srv.inflight.Release(64 << 10)
	if st := <-done; st != 200 {
		t.Fatalf("after release: %d", st)
	}
}
