package kinesisapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// restartable is a gateway whose store and registry live in dir, so that it
// can be stopped and started again over the same data.
type restartable struct {
	t   *testing.T
	dir string
	*gateway
}

func (r *restartable) start() {
	r.t.Helper()
	st, err := stream.Open(stream.Options{Dir: filepath.Join(r.dir, "store"), SweepInterval: time.Hour})
	if err != nil {
		r.t.Fatal(err)
	}
	srv, err := New(st, Options{DataDir: r.dir})
	if err != nil {
		_ = st.Close()
		r.t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	r.gateway = &gateway{store: st, srv: srv, http: hs, url: hs.URL}
}

func (r *restartable) stop() {
	srv := r.gateway
	srv.srv.CloseSubscriptions()
	srv.http.Close()
	if err := srv.store.Close(); err != nil {
		r.t.Fatal(err)
	}
}

func newRestartable(t *testing.T) *restartable {
	r := &restartable{t: t, dir: t.TempDir()}
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *restartable) restart() { r.stop(); r.start() }

func listConsumers(t *testing.T, c *kinesis.Client, arn *string) []string {
	t.Helper()
	out := must[*kinesis.ListStreamConsumersOutput](t)(c.ListStreamConsumers(ctxT(t), &kinesis.ListStreamConsumersInput{StreamARN: arn}))
	var names []string
	for _, c := range out.Consumers {
		names = append(names, aws.ToString(c.ConsumerName)+"="+aws.ToString(c.ConsumerARN))
	}
	sort.Strings(names)
	return names
}

func TestConsumersSurviveRestart(t *testing.T) {
	g := newRestartable(t)
	ctx := ctxT(t)
	c := g.client("AKIDTEST", "secret")
	arns := map[string]*string{}
	for _, n := range []string{"orders", "temps"} {
		must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(n), ShardCount: aws.Int32(1)}))
		arns[n] = must[*kinesis.DescribeStreamSummaryOutput](t)(c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(n)})).StreamDescriptionSummary.StreamARN
	}
	reg := func(stream, name string) *types.Consumer {
		return must[*kinesis.RegisterStreamConsumerOutput](t)(c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arns[stream], ConsumerName: aws.String(name)})).Consumer
	}
	dash := reg("orders", "dashboard")
	reg("orders", "analytics")
	gone := reg("orders", "gone")
	reg("temps", "alerts")
	must[*kinesis.DeregisterStreamConsumerOutput](t)(c.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: gone.ConsumerARN}))
	before := listConsumers(t, c, arns["orders"])

	g.restart()
	c = g.client("AKIDTEST", "secret")
	if after := listConsumers(t, c, arns["orders"]); len(after) != 2 || after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("after a restart: %v, before: %v", after, before)
	}
	d := must[*kinesis.DescribeStreamConsumerOutput](t)(c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: dash.ConsumerARN})).ConsumerDescription
	if !d.ConsumerCreationTimestamp.Equal(*dash.ConsumerCreationTimestamp) || aws.ToString(d.StreamARN) != aws.ToString(arns["orders"]) {
		t.Fatalf("described after a restart: %+v, registered %+v", d, dash)
	}
	_, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: gone.ConsumerARN})
	wantCode(t, err, "ResourceNotFoundException")
	_, err = c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arns["orders"], ConsumerName: aws.String("dashboard")})
	wantCode(t, err, "ResourceInUseException")
	// The consumer reads after the restart as before.
	must[*kinesis.PutRecordOutput](t)(c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("after")}))
	var got []string
	var serr error
	for try := 0; try < 3 && len(got) == 0; try++ { // a stream error: subscribe again (see TestEnhancedFanOut)
		var sub *kinesis.SubscribeToShardOutput
		testutil.WaitFor(t, 10*time.Second, func() (err error) {
			sub, err = c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: dash.ConsumerARN,
				ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
			return err
		})
		es := sub.GetStream()
		for ev := range es.Events() {
			if e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
				for _, r := range e.Value.Records {
					got = append(got, string(r.Data))
				}
				if len(got) > 0 {
					break
				}
			}
		}
		serr = es.Err()
		es.Close()
	}
	if len(got) != 1 || got[0] != "after" {
		t.Fatalf("subscription after a restart read %v (stream error %v)", got, serr)
	}

	// A deleted stream takes its consumers along, for good.
	must[*kinesis.DeleteStreamOutput](t)(c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")}))
	g.restart()
	c = g.client("AKIDTEST", "secret")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(1)}))
	if got := listConsumers(t, c, arns["orders"]); len(got) != 0 {
		t.Fatalf("consumers of a deleted stream came back with a new stream of its name: %v", got)
	}
	if got := listConsumers(t, c, arns["temps"]); len(got) != 1 {
		t.Fatalf("the other stream's consumers: %v", got)
	}
	var doc consumersDoc
	data, err := os.ReadFile(filepath.Join(g.dir, ConsumersFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Consumers) != 1 || doc.Consumers[0].Name != "alerts" {
		t.Fatalf("registry file %s (%v)", data, err)
	}
}

// A stream deleted behind the API's back (through the store) loses its
// consumers at the next start, and the file is rewritten without them.
func TestConsumersOfStreamDeletedWhileDown(t *testing.T) {
	g := newRestartable(t)
	ctx := ctxT(t)
	c := g.client("AKIDTEST", "secret")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}))
	arn := must[*kinesis.DescribeStreamSummaryOutput](t)(c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})).StreamDescriptionSummary.StreamARN
	must[*kinesis.RegisterStreamConsumerOutput](t)(c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("x")}))
	if err := g.store.DeleteStream(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	g.restart()
	data, err := os.ReadFile(filepath.Join(g.dir, ConsumersFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc consumersDoc
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Consumers) != 0 {
		t.Fatalf("registry file after the stream went: %s (%v)", data, err)
	}
}

// An unreadable registry file is set aside; the gateway starts without it.
func TestConsumersFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ConsumersFile)
	if err := os.WriteFile(path, []byte(`{"version":1,"consumers":[{`), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &restartable{t: t, dir: dir}
	g.start()
	t.Cleanup(g.stop)
	if _, err := os.Stat(path + ".bad"); err != nil {
		t.Fatalf("the unreadable file was not kept aside: %v", err)
	}
	ctx := ctxT(t)
	c := g.client("AKIDTEST", "secret")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}))
	arn := must[*kinesis.DescribeStreamSummaryOutput](t)(c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})).StreamDescriptionSummary.StreamARN
	must[*kinesis.RegisterStreamConsumerOutput](t)(c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("x")}))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no new registry file: %v", err)
	}
}

// A registration that cannot be saved is refused and not kept: a consumer
// answered ACTIVE would otherwise vanish at the next restart.
func TestConsumerRegistrationNotSaved(t *testing.T) {
	g := newGateway(t, Config{})
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g.srv.consFile = filepath.Join(notDir, ConsumersFile) // cannot be written
	ctx := ctxT(t)
	c := g.client("AKIDTEST", "secret")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}))
	arn := must[*kinesis.DescribeStreamSummaryOutput](t)(c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})).StreamDescriptionSummary.StreamARN
	_, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("x")})
	wantCode(t, err, "InternalFailureException")
	if got := listConsumers(t, c, arn); len(got) != 0 {
		t.Fatalf("an unsaved registration was kept: %v", got)
	}
}
