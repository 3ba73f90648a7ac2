package s3sink_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/sync/internal/awscfg"
	"github.com/kaiten-edge/kaiten/sync/internal/s3test"
	"github.com/kaiten-edge/kaiten/sync/s3sink"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

func batch(recs ...string) *sink.Batch {
	b := &sink.Batch{DeliveryStream: "plates-archive", Version: 1, Stream: "plates", ShardID: "shardId-000000000001",
		FirstSeq: "100", LastSeq: "200", Time: time.Date(2026, 11, 26, 5, 4, 3, 0, time.UTC)}
	b.ID = sink.BatchID(b.DeliveryStream, b.ShardID, b.FirstSeq, b.LastSeq)
	for i, r := range recs {
		b.Records = append(b.Records, sink.Record{PartitionKey: "demo-store/3", SequenceNumber: string(rune('a' + i)), ArrivalTime: b.Time, Data: []byte(r)})
	}
	return b
}

func TestDeliverToVersitygw(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw: make test runs it")
	}
	srv := s3test.Start(t)
	srv.CreateBucket(t, "archive")
	ctx := context.Background()

	cfg := srv.Config("archive")
	cfg.Prefix = "plates/"
	s, err := s3sink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := batch(`{"plate_id":"p-1"}`, `{"plate_id":"p-2"}`)
	b.Body, err = sink.Encode(b.Records, []byte("\n"), sink.Gzip, "x")
	if err != nil {
		t.Fatal(err)
	}
	b.Ext = sink.Ext(sink.Gzip)
	if err := s.Deliver(ctx, b); err != nil {
		t.Fatal(err)
	}
	// A retry of the same batch overwrites the same key.
	if err := s.Deliver(ctx, b); err != nil {
		t.Fatal(err)
	}
	keys, err := srv.Objects(ctx, "archive", "")
	if err != nil {
		t.Fatal(err)
	}
	want := "plates/2026/11/26/05/plates-archive-1-2026-11-26-05-04-03-" + sink.UUID(b.ID) + ".gz"
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys %q, want [%q]", keys, want)
	}
	raw, err := srv.Get(ctx, "archive", want)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := sink.Decode(raw, sink.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != "{\"plate_id\":\"p-1\"}\n{\"plate_id\":\"p-2\"}\n" {
		t.Fatalf("object holds %q", plain)
	}

	// Error output goes under the error prefix, as JSON lines with the raw data.
	eb := &sink.ErrorBatch{ID: sink.BatchID(b.ID, "processing-failed", "", ""), DeliveryStream: b.DeliveryStream, Version: 1,
		Stream: "plates", ShardID: b.ShardID, Time: b.Time, OutputType: "processing-failed",
		Records: []sink.FailedRecord{{Record: b.Records[0], Code: "ProcessingFailed", Message: "bad", Attempts: 1}}}
	if err := s.DeliverErrors(ctx, eb); err != nil {
		t.Fatal(err)
	}
	keys, err = srv.Objects(ctx, "archive", "processing-failed/")
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], "processing-failed/2026/11/26/05/plates-archive-1-") {
		t.Fatalf("error keys %q, %v", keys, err)
	}
	raw, _ = srv.Get(ctx, "archive", keys[0])
	if !bytes.Contains(raw, []byte(`"errorCode":"ProcessingFailed"`)) || !bytes.Contains(raw, []byte(`"rawData":"eyJwbGF0ZV9pZCI6InAtMSJ9"`)) {
		t.Fatalf("error object %s", raw)
	}
}

func TestTimestampPrefixAndTransientErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and stops versitygw: make test runs it")
	}
	srv := s3test.Start(t)
	srv.CreateBucket(t, "archive")
	ctx := context.Background()
	cfg := srv.Config("archive")
	cfg.Prefix = "y=!{timestamp:yyyy}/m=!{timestamp:MM}/"
	s, err := s3sink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := batch("x")
	b.Body = []byte("x\n")
	if err := s.Deliver(ctx, b); err != nil {
		t.Fatal(err)
	}
	keys, _ := srv.Objects(ctx, "archive", "")
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "y=2026/m=11/plates-archive-1-2026-11-26-05-04-03-") {
		t.Fatalf("keys %q", keys)
	}

	// Wrong credentials and a missing bucket are transient (an operator can
	// fix them), never permanent.
	bad := srv.Config("archive")
	bad.SecretAccessKey = "wrong-secret-key-0000"
	sb, _ := s3sink.New(bad)
	if err := sb.Deliver(ctx, b); err == nil || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("bad credentials: %v", err)
	}
	nb, _ := s3sink.New(srv.Config("no-such-bucket"))
	if err := nb.Deliver(ctx, b); err == nil || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("missing bucket: %v", err)
	}
	// A server that is down is transient too.
	srv.Kill()
	if err := s.Deliver(ctx, b); err == nil || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("server down: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := s3sink.New(s3sink.Config{}); err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("no bucket: %v", err)
	}
	if _, err := s3sink.New(s3sink.Config{Bucket: "b", Prefix: "!{nope}"}); err == nil || !strings.HasPrefix(err.Error(), "prefix:") {
		t.Fatalf("bad prefix: %v", err)
	}
}

func TestSample(t *testing.T) {
	c := sinktest.Sample(t, "s3").(*s3sink.Config)
	if c.Region != awscfg.DefaultRegion || c.Timeout.Duration != s3sink.DefaultTimeout || c.PathStyle {
		t.Fatalf("sample.yaml does not show the defaults: %+v", c)
	}
}
