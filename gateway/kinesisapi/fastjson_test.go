package kinesisapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzFastPutRecords: whenever the PutRecords fast path accepts a body,
// encoding/json must accept it too and read exactly the same request.
func FuzzFastPutRecords(f *testing.F) {
	for _, s := range []string{
		`{"StreamName":"s","Records":[{"Data":"aGVsbG8=","PartitionKey":"k"},{"PartitionKey":"k2","Data":"","ExplicitHashKey":"7"}]}`,
		` { "StreamARN" : "arn:aws:kinesis:us-east-1:000000000000:stream/s" , "Records" : [ ] } `,
		`{"StreamName":"s","Records":[{"Data":"aGVsbG8","PartitionKey":"k"}]}`,
		`{"StreamName":"s","StreamName":"t","Records":[]}`,
		`{"StreamName":"s\u0041","Records":[{"Data":"eA==","PartitionKey":"\u00e9"}]}`,
		`{"Records":[{"Data":"eA==","PartitionKey":"k","Data":"eQ=="}]}`,
		`{"Records":[{"Data":null,"PartitionKey":"k"}]}`,
		`{"Records":[{"Data":"eA==","PartitionKey":"k"},]}`,
		`{"StreamName":"s"}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast putRecordsInput
		if !fastPutRecords(body, &fast) {
			return
		}
		var slow putRecordsInput
		if err := json.Unmarshal(body, &slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, body)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path read %+v, encoding/json %+v, from %q", fast, slow, body)
		}
	})
}

func TestPutRecordsAnswerEncoding(t *testing.T) {
	out := putRecordsOutput{FailedRecordCount: 1, Records: []putRecordsResultEntry{
		{ShardId: "shardId-000000000001", SequenceNumber: "4964"},
		{ErrorCode: "InternalFailure", ErrorMessage: `cap "full" <now> é`},
	}}
	type plain putRecordsOutput // same fields, no appendJSON method
	want, _ := jsonCodec{}.encode(plain(out))
	got := out.appendJSON(nil)
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	_ = json.Unmarshal(want, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("hand-written %s\nencoding/json %s", got, want)
	}
}
