package kinesisapi

import (
	"bytes"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestSDKStreamLifecycle(t *testing.T) {
	g := newGateway(t, Config{})
	c := g.client("AKIDTEST", "secret")
	ctx := ctxT(t)

	for _, n := range []string{"a-stream", "b-stream", "c-stream"} {
		must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(n), ShardCount: aws.Int32(3)}))
	}
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("a-stream"), ShardCount: aws.Int32(1)})
	wantCode(t, err, "ResourceInUseException")
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("bad name!"), ShardCount: aws.Int32(1)})
	ae := wantCode(t, err, "ValidationException")
	if want := "1 validation error detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"; ae.ErrorMessage() != want {
		t.Fatalf("message %q\nwant    %q", ae.ErrorMessage(), want)
	}
	_, err = c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("zero"), ShardCount: aws.Int32(0)})
	wantCode(t, err, "ValidationException")

	// The SDK's own waiter polls DescribeStream until ACTIVE.
	w := kinesis.NewStreamExistsWaiter(c)
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("a-stream")}, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// ListStreams, paginated two at a time.
	var names []string
	p := kinesis.NewListStreamsPaginator(c, &kinesis.ListStreamsInput{Limit: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		out := must[*kinesis.ListStreamsOutput](t)(p.NextPage(ctx))
		pages++
		names = append(names, out.StreamNames...)
		if len(out.StreamSummaries) != len(out.StreamNames) {
			t.Fatalf("summaries %d != names %d", len(out.StreamSummaries), len(out.StreamNames))
		}
	}
	if strings.Join(names, ",") != "a-stream,b-stream,c-stream" || pages != 2 {
		t.Fatalf("ListStreams pages=%d names=%v", pages, names)
	}

	// DescribeStream, one shard per page.
	var shardIDs []string
	var arn string
	var start *string
	for {
		out := must[*kinesis.DescribeStreamOutput](t)(c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("a-stream"), Limit: aws.Int32(1), ExclusiveStartShardId: start}))
		d := out.StreamDescription
		arn = aws.ToString(d.StreamARN)
		if d.StreamStatus != types.StreamStatusActive || aws.ToInt32(d.RetentionPeriodHours) != 24 || d.StreamCreationTimestamp == nil {
			t.Fatalf("description %+v", d)
		}
		for _, s := range d.Shards {
			shardIDs = append(shardIDs, aws.ToString(s.ShardId))
		}
		if !aws.ToBool(d.HasMoreShards) {
			break
		}
		start = d.Shards[len(d.Shards)-1].ShardId
	}
	if len(shardIDs) != 3 || shardIDs[0] != "shardId-000000000000" {
		t.Fatalf("shards %v", shardIDs)
	}
	if !strings.HasPrefix(arn, "arn:aws:kinesis:") || !strings.HasSuffix(arn, ":stream/a-stream") {
		t.Fatalf("arn %q", arn)
	}

	// StreamARN works wherever StreamName does.
	sum := must[*kinesis.DescribeStreamSummaryOutput](t)(c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(arn)}))
	if aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 3 || aws.ToString(sum.StreamDescriptionSummary.StreamName) != "a-stream" {
		t.Fatalf("summary %+v", sum.StreamDescriptionSummary)
	}
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(strings.Replace(arn, "a-stream", "nope", 1))})
	wantCode(t, err, "ResourceNotFoundException")

	// ListShards with MaxResults and NextToken.
	var listed []string
	var next *string
	for i := 0; ; i++ {
		in := &kinesis.ListShardsInput{MaxResults: aws.Int32(2), NextToken: next}
		if next == nil {
			in.StreamName = aws.String("a-stream")
		}
		out := must[*kinesis.ListShardsOutput](t)(c.ListShards(ctx, in))
		for _, s := range out.Shards {
			listed = append(listed, aws.ToString(s.ShardId))
		}
		if out.NextToken == nil {
			break
		}
		next = out.NextToken
		if i > 5 {
			t.Fatal("ListShards does not end")
		}
	}
	if strings.Join(listed, ",") != strings.Join(shardIDs, ",") {
		t.Fatalf("ListShards %v, DescribeStream %v", listed, shardIDs)
	}
	_, err = c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("a-stream"), NextToken: aws.String("x")})
	wantCode(t, err, "InvalidArgumentException")
	_, err = c.ListShards(ctx, &kinesis.ListShardsInput{NextToken: aws.String("bm90IGEgdG9rZW4")})
	wantCode(t, err, "InvalidArgumentException")

	// Retention: Kinesis' API rules.
	must[*kinesis.IncreaseStreamRetentionPeriodOutput](t)(c.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("a-stream"), RetentionPeriodHours: aws.Int32(48)}))
	_, err = c.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("a-stream"), RetentionPeriodHours: aws.Int32(8761)})
	wantCode(t, err, "InvalidArgumentException")
	_, err = c.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("a-stream"), RetentionPeriodHours: aws.Int32(30)})
	wantCode(t, err, "InvalidArgumentException")
	_, err = c.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: aws.String("a-stream"), RetentionPeriodHours: aws.Int32(23)})
	wantCode(t, err, "InvalidArgumentException")
	_, err = c.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: aws.String("a-stream"), RetentionPeriodHours: aws.Int32(100)})
	wantCode(t, err, "InvalidArgumentException")
	must[*kinesis.DecreaseStreamRetentionPeriodOutput](t)(c.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamARN: aws.String(arn), RetentionPeriodHours: aws.Int32(36)}))
	sum = must[*kinesis.DescribeStreamSummaryOutput](t)(c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("a-stream")}))
	if h := aws.ToInt32(sum.StreamDescriptionSummary.RetentionPeriodHours); h != 36 {
		t.Fatalf("retention %d h, want 36", h)
	}
	_, err = c.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("nope"), RetentionPeriodHours: aws.Int32(48)})
	wantCode(t, err, "ResourceNotFoundException")

	// Tags.
	tags := map[string]string{}
	for i := 0; i < 7; i++ {
		tags[fmt.Sprintf("k%d", i)] = fmt.Sprintf("v%d", i)
	}
	must[*kinesis.AddTagsToStreamOutput](t)(c.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("a-stream"), Tags: tags}))
	lt := must[*kinesis.ListTagsForStreamOutput](t)(c.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String("a-stream"), Limit: aws.Int32(4)}))
	if len(lt.Tags) != 4 || !aws.ToBool(lt.HasMoreTags) || aws.ToString(lt.Tags[0].Key) != "k0" || aws.ToString(lt.Tags[0].Value) != "v0" {
		t.Fatalf("tags page 1 %+v", lt)
	}
	lt = must[*kinesis.ListTagsForStreamOutput](t)(c.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String("a-stream"), ExclusiveStartTagKey: lt.Tags[3].Key}))
	if len(lt.Tags) != 3 || aws.ToBool(lt.HasMoreTags) || aws.ToString(lt.Tags[0].Key) != "k4" {
		t.Fatalf("tags page 2 %+v", lt)
	}
	must[*kinesis.RemoveTagsFromStreamOutput](t)(c.RemoveTagsFromStream(ctx, &kinesis.RemoveTagsFromStreamInput{StreamName: aws.String("a-stream"), TagKeys: []string{"k0", "k6"}}))
	lt = must[*kinesis.ListTagsForStreamOutput](t)(c.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamARN: aws.String(arn)}))
	if len(lt.Tags) != 5 || aws.ToString(lt.Tags[0].Key) != "k1" {
		t.Fatalf("tags after remove %+v", lt)
	}
	_, err = c.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("a-stream"), Tags: map[string]string{strings.Repeat("k", 129): "v"}})
	wantCode(t, err, "ValidationException")

	// Delete, then it is gone.
	must[*kinesis.DeleteStreamOutput](t)(c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("b-stream")}))
	wn := kinesis.NewStreamNotExistsWaiter(c)
	if err := wn.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("b-stream")}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("b-stream")})
	wantCode(t, err, "ResourceNotFoundException")
	_, err = c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("b-stream")})
	wantCode(t, err, "ResourceNotFoundException")
	ls := must[*kinesis.ListStreamsOutput](t)(c.ListStreams(ctx, &kinesis.ListStreamsInput{}))
	if strings.Join(ls.StreamNames, ",") != "a-stream,c-stream" || aws.ToBool(ls.HasMoreStreams) {
		t.Fatalf("after delete: %v", ls.StreamNames)
	}
}

func TestSDKPutAndGet(t *testing.T) {
	g := newGateway(t, Config{})
	c := g.client("AKIDTEST", "secret")
	ctx := ctxT(t)
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("plates"), ShardCount: aws.Int32(4)}))

	one := must[*kinesis.PutRecordOutput](t)(c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("plates"),
		PartitionKey: aws.String("demo-store/3"), Data: []byte(`{"event":"placed"}`)}))
	if !strings.HasPrefix(aws.ToString(one.ShardId), "shardId-") || one.SequenceNumber == nil {
		t.Fatalf("PutRecord %+v", one)
	}
	before := time.Now().Add(-time.Second)

	// 500 records in one PutRecords, each with distinct data.
	entries := make([]types.PutRecordsRequestEntry, 500)
	want := map[string]string{} // data -> partition key
	for i := range entries {
		pk := fmt.Sprintf("demo-store/%d", i%8)
		data := fmt.Sprintf(`{"plate_id":"p-%06d"}`, i)
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: []byte(data)}
		want[data] = pk
	}
	// One with an explicit hash key of 0 must land on the first shard.
	entries[499].ExplicitHashKey = aws.String("0")
	pr := must[*kinesis.PutRecordsOutput](t)(c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("plates"), Records: entries}))
	if aws.ToInt32(pr.FailedRecordCount) != 0 || len(pr.Records) != 500 {
		t.Fatalf("PutRecords failed=%d n=%d", aws.ToInt32(pr.FailedRecordCount), len(pr.Records))
	}
	if got := aws.ToString(pr.Records[499].ShardId); got != "shardId-000000000000" {
		t.Fatalf("explicit hash key 0 went to %s", got)
	}
	seqOf := map[string]string{} // data -> seq
	for i, r := range pr.Records {
		seqOf[string(entries[i].Data)] = aws.ToString(r.SequenceNumber)
	}

	// Read every shard from TRIM_HORIZON.
	got := map[string]string{}
	var firstSeq, firstShard string
	for i := 0; i < 4; i++ {
		shard := fmt.Sprintf("shardId-%012d", i)
		it := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})).ShardIterator
		var last *big.Int
		for it != nil {
			out := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(100)}))
			if len(out.Records) == 0 {
				break
			}
			for _, r := range out.Records {
				n, _ := new(big.Int).SetString(aws.ToString(r.SequenceNumber), 10)
				if last != nil && n.Cmp(last) <= 0 {
					t.Fatalf("sequence numbers not increasing in %s", shard)
				}
				last = n
				if r.ApproximateArrivalTimestamp == nil || r.ApproximateArrivalTimestamp.Before(before.Add(-time.Minute)) {
					t.Fatalf("arrival %v", r.ApproximateArrivalTimestamp)
				}
				got[string(r.Data)] = aws.ToString(r.PartitionKey)
				if s, ok := seqOf[string(r.Data)]; ok && s != aws.ToString(r.SequenceNumber) {
					t.Fatalf("seq mismatch for %s", r.Data)
				}
				if firstSeq == "" && strings.HasPrefix(string(r.Data), `{"plate_id"`) {
					firstSeq, firstShard = aws.ToString(r.SequenceNumber), shard
				}
			}
			it = out.NextShardIterator
		}
	}
	if len(got) != 501 {
		t.Fatalf("read %d distinct records, want 501", len(got))
	}
	for d, pk := range want {
		if got[d] != pk {
			t.Fatalf("record %s: partition key %q, want %q", d, got[d], pk)
		}
	}

	// AT_SEQUENCE_NUMBER returns that record first; AFTER_ the next one.
	at := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"), ShardId: aws.String(firstShard),
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(firstSeq)}))
	r1 := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: at.ShardIterator, Limit: aws.Int32(2)}))
	if len(r1.Records) != 2 || aws.ToString(r1.Records[0].SequenceNumber) != firstSeq {
		t.Fatalf("AT_SEQUENCE_NUMBER gave %d records", len(r1.Records))
	}
	af := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"), ShardId: aws.String(firstShard),
		ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(firstSeq)}))
	r2 := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: af.ShardIterator, Limit: aws.Int32(1)}))
	if len(r2.Records) != 1 || aws.ToString(r2.Records[0].SequenceNumber) != aws.ToString(r1.Records[1].SequenceNumber) {
		t.Fatal("AFTER_SEQUENCE_NUMBER did not return the next record")
	}

	// LATEST sees only what comes after it.
	lat := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest}))
	empty := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: lat.ShardIterator}))
	if len(empty.Records) != 0 || empty.NextShardIterator == nil {
		t.Fatalf("LATEST on a quiet shard: %d records", len(empty.Records))
	}
	must[*kinesis.PutRecordOutput](t)(c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("plates"), PartitionKey: aws.String("x"), ExplicitHashKey: aws.String("1"), Data: []byte("after-latest")}))
	nr := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: empty.NextShardIterator}))
	if len(nr.Records) != 1 || string(nr.Records[0].Data) != "after-latest" {
		t.Fatalf("after LATEST: %d records", len(nr.Records))
	}

	// AT_TIMESTAMP in the future sees nothing yet; in the past sees all.
	ts := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"), ShardId: aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(before.Add(-time.Hour))}))
	tr := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: ts.ShardIterator}))
	if len(tr.Records) == 0 {
		t.Fatal("AT_TIMESTAMP in the past returned nothing")
	}

	// Errors.
	_, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"), ShardId: aws.String("shardId-000000000009"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	wantCode(t, err, "ResourceNotFoundException")
	_, err = c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber})
	wantCode(t, err, "InvalidArgumentException")
	_, err = c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: "SOMEWHERE"})
	wantCode(t, err, "ValidationException")
	_, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAAAAAAAE=garbage")})
	wantCode(t, err, "InvalidArgumentException")
	// A tampered iterator is refused, never read.
	good := aws.ToString(at.ShardIterator)
	bad := []byte(good)
	bad[len(bad)/2] ^= 1
	if bad[len(bad)/2] == '=' || string(bad) == good {
		bad[len(bad)/2] = 'A'
	}
	_, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(string(bad))})
	wantCode(t, err, "InvalidArgumentException")
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("plates"), PartitionKey: aws.String(""), Data: []byte("x")})
	ae := wantCode(t, err, "ValidationException")
	if !strings.Contains(ae.ErrorMessage(), "at 'partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1") {
		t.Fatalf("message %q", ae.ErrorMessage())
	}
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("plates"), PartitionKey: aws.String("k"), Data: bytes.Repeat([]byte("x"), 1<<20+1)})
	wantCode(t, err, "ValidationException")
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("nope"), PartitionKey: aws.String("k"), Data: []byte("x")})
	wantCode(t, err, "ResourceNotFoundException")
	many := make([]types.PutRecordsRequestEntry, 501)
	for i := range many {
		many[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte("x")}
	}
	_, err = c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("plates"), Records: many})
	wantCode(t, err, "ValidationException")
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("plates"), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("-1"), Data: []byte("x")})
	wantCode(t, err, "ValidationException")
	big5 := make([]types.PutRecordsRequestEntry, 6)
	for i := range big5 {
		big5[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: bytes.Repeat([]byte("x"), 1<<20)}
	}
	_, err = c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("plates"), Records: big5})
	// 6 MiB of data: either the body cap (413) or the 5 MB rule refuses it.
	if err == nil {
		t.Fatal("6 MiB PutRecords accepted")
	}
}

func TestSDKResharding(t *testing.T) {
	g := newGateway(t, Config{})
	c := g.client("AKIDTEST", "secret")
	ctx := ctxT(t)
	name := aws.String("belt")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)}))
	put := func(prefix string, n int) {
		entries := make([]types.PutRecordsRequestEntry, n)
		for i := range entries {
			entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("lane-%d", i)), Data: []byte(fmt.Sprintf("%s-%d", prefix, i))}
		}
		out := must[*kinesis.PutRecordsOutput](t)(c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: name, Records: entries}))
		if aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("failed %d", aws.ToInt32(out.FailedRecordCount))
		}
	}
	put("old", 50)
	parentIt := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: name, ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})).ShardIterator

	mid := new(big.Int).Lsh(big.NewInt(1), 127).String()
	must[*kinesis.SplitShardOutput](t)(c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: name, ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(mid)}))
	w := kinesis.NewStreamExistsWaiter(c)
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: name}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	put("new", 50)

	ls := must[*kinesis.ListShardsOutput](t)(c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name}))
	if len(ls.Shards) != 3 {
		t.Fatalf("after split: %d shards", len(ls.Shards))
	}
	parent := ls.Shards[0]
	if parent.SequenceNumberRange.EndingSequenceNumber == nil {
		t.Fatal("parent not closed")
	}
	for _, ch := range ls.Shards[1:] {
		if aws.ToString(ch.ParentShardId) != "shardId-000000000000" || ch.SequenceNumberRange.EndingSequenceNumber != nil {
			t.Fatalf("child %+v", ch)
		}
	}
	if aws.ToString(ls.Shards[1].HashKeyRange.EndingHashKey) != new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1)).String() ||
		aws.ToString(ls.Shards[2].HashKeyRange.StartingHashKey) != mid {
		t.Fatalf("children ranges %+v %+v", ls.Shards[1].HashKeyRange, ls.Shards[2].HashKeyRange)
	}

	// Read the parent to its end: old records only, then ChildShards and no
	// next iterator.
	var parentData []string
	var children []types.ChildShard
	for i := 0; parentIt != nil; i++ {
		out := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: parentIt, Limit: aws.Int32(20)}))
		for _, r := range out.Records {
			parentData = append(parentData, string(r.Data))
		}
		children = out.ChildShards
		parentIt = out.NextShardIterator
		if i > 20 {
			t.Fatal("parent never ended")
		}
	}
	if len(parentData) != 50 || !strings.HasPrefix(parentData[0], "old-") {
		t.Fatalf("parent held %d records", len(parentData))
	}
	if len(children) != 2 || children[0].ParentShards[0] != "shardId-000000000000" {
		t.Fatalf("ChildShards %+v", children)
	}
	// Then the children hold the new records, split between them.
	var childData []string
	for _, ch := range children {
		it := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: name, ShardId: ch.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})).ShardIterator
		out := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it}))
		if len(out.Records) == 0 {
			t.Fatalf("child %s got no records", aws.ToString(ch.ShardId))
		}
		for _, r := range out.Records {
			childData = append(childData, string(r.Data))
		}
	}
	sort.Strings(childData)
	if len(childData) != 50 || !strings.HasPrefix(childData[0], "new-") {
		t.Fatalf("children held %d records", len(childData))
	}

	// ShardFilter.
	filter := func(f types.ShardFilter) []string {
		out := must[*kinesis.ListShardsOutput](t)(c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name, ShardFilter: &f}))
		var ids []string
		for _, s := range out.Shards {
			ids = append(ids, aws.ToString(s.ShardId)[len("shardId-00000000000"):])
		}
		return ids
	}
	if got := filter(types.ShardFilter{Type: types.ShardFilterTypeAtLatest}); strings.Join(got, ",") != "1,2" {
		t.Fatalf("AT_LATEST %v", got)
	}
	if got := filter(types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}); strings.Join(got, ",") != "0" {
		t.Fatalf("AT_TRIM_HORIZON %v", got)
	}
	if got := filter(types.ShardFilter{Type: types.ShardFilterTypeFromTrimHorizon}); strings.Join(got, ",") != "0,1,2" {
		t.Fatalf("FROM_TRIM_HORIZON %v", got)
	}
	if got := filter(types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String("shardId-000000000001")}); strings.Join(got, ",") != "2" {
		t.Fatalf("AFTER_SHARD_ID %v", got)
	}
	if got := filter(types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: aws.Time(time.Now().Add(-48 * time.Hour))}); strings.Join(got, ",") != "0" {
		t.Fatalf("AT_TIMESTAMP before creation %v", got)
	}

	// Merge the two children back into one.
	must[*kinesis.MergeShardsOutput](t)(c.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: name, ShardToMerge: aws.String("shardId-000000000001"), AdjacentShardToMerge: aws.String("shardId-000000000002")}))
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: name}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ls = must[*kinesis.ListShardsOutput](t)(c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: name, ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}}))
	if len(ls.Shards) != 1 || aws.ToString(ls.Shards[0].ParentShardId) == "" || aws.ToString(ls.Shards[0].AdjacentParentShardId) == "" {
		t.Fatalf("after merge %+v", ls.Shards)
	}
	_, err := c.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: name, ShardToMerge: aws.String("shardId-000000000001"), AdjacentShardToMerge: aws.String("shardId-000000000009")})
	if err == nil {
		t.Fatal("merging a closed and a missing shard succeeded")
	}
	_, err = c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: name, ShardToSplit: aws.String("shardId-000000000077"), NewStartingHashKey: aws.String(mid)})
	wantCode(t, err, "ResourceNotFoundException")

	// UpdateShardCount: within Kinesis' doubling rule, and beyond it.
	_, err = c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: name, TargetShardCount: aws.Int32(3), ScalingType: types.ScalingTypeUniformScaling})
	wantCode(t, err, "LimitExceededException")
	us := must[*kinesis.UpdateShardCountOutput](t)(c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: name, TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling}))
	if aws.ToInt32(us.CurrentShardCount) != 1 || aws.ToInt32(us.TargetShardCount) != 2 {
		t.Fatalf("UpdateShardCount %+v", us)
	}
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: name}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sum := must[*kinesis.DescribeStreamSummaryOutput](t)(c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name}))
	if aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 2 {
		t.Fatalf("open shards %d after UpdateShardCount", aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount))
	}
}
