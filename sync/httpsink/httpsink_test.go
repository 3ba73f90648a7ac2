package httpsink_test

import (
	"context"
	"errors"
	"testing"
	"time"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/sync/httpsink"
	"github.com/kaiten-edge/kaiten/sync/internal/firehosetest"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

func batch(n int) *sink.Batch {
	b := &sink.Batch{DeliveryStream: "plates-http", Version: 1, Stream: "plates", ShardID: "shardId-000000000000",
		FirstSeq: "1", LastSeq: "9", Time: time.Now()}
	b.ID = sink.BatchID(b.DeliveryStream, b.ShardID, b.FirstSeq, b.LastSeq)
	for i := 0; i < n; i++ {
		b.Records = append(b.Records, sink.Record{PartitionKey: "k", Data: []byte{byte('a' + i), 0, 255}})
	}
	return b
}

func TestProtocol(t *testing.T) {
	for _, enc := range []string{"", "gzip"} {
		t.Run("encoding="+enc, func(t *testing.T) {
			srv := firehosetest.New()
			defer srv.Close()
			srv.AccessKey = "s3cr3t"
			srv.Attrs = map[string]string{"store": "demo-store"}
			s, err := httpsink.New(httpsink.Config{URL: srv.URL, AccessKey: "s3cr3t", CommonAttributes: srv.Attrs, ContentEncoding: enc})
			if err != nil {
				t.Fatal(err)
			}
			b := batch(3)
			ctx := context.Background()
			if err := s.Deliver(ctx, b); err != nil {
				t.Fatal(err)
			}
			if p := srv.Problems(); len(p) > 0 {
				t.Fatalf("protocol problems: %q", p)
			}
			acc := srv.Accepted()
			if len(acc) != 1 || acc[0].RequestID != httpsink.RequestID(b) || len(acc[0].Records) != 3 || string(acc[0].Records[1]) != "b\x00\xff" {
				t.Fatalf("accepted %+v", acc)
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a 2 s request timeout: make test runs it")
	}
	srv := firehosetest.New()
	defer srv.Close()
	s, err := httpsink.New(httpsink.Config{URL: srv.URL, Timeout: gconfig.Duration{Duration: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := batch(1)

	srv.SetMode(firehosetest.Fail)
	if err := s.Deliver(ctx, b); err == nil || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("500: %v, want a transient error", err)
	}
	srv.SetMode(firehosetest.WrongID)
	if err := s.Deliver(ctx, b); err == nil || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("wrong id: %v, want a transient error", err)
	}
	srv.SetMode(firehosetest.Unexpected)
	if err := s.Deliver(ctx, b); err == nil {
		t.Fatal("a 200 without the JSON answer counted as delivered")
	}
	srv.SetMode(firehosetest.TooLarge)
	if err := s.Deliver(ctx, b); !errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("413: %v, want permanent", err)
	}
	srv.SetMode(firehosetest.Stall)
	start := time.Now()
	if err := s.Deliver(ctx, b); err == nil || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("stall: %v, want a transient timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stalled request took %s with a 2s timeout", d)
	}
	srv.SetMode(firehosetest.OK)
	if err := s.Deliver(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Every retry of the batch reused its request id.
	if n := srv.Attempts(httpsink.RequestID(b)); n != 6 {
		t.Fatalf("request id seen %d times, want 6", n)
	}
	if p := srv.Problems(); len(p) > 0 {
		t.Fatalf("protocol problems: %q", p)
	}
}

func TestConfig(t *testing.T) {
	if _, err := httpsink.New(httpsink.Config{}); err == nil {
		t.Fatal("empty url accepted")
	}
	if _, err := httpsink.New(httpsink.Config{URL: "http://x", ContentEncoding: "br"}); err == nil {
		t.Fatal("unknown encoding accepted")
	}
}

func TestSample(t *testing.T) {
	c := sinktest.Sample(t, "http_endpoint").(*httpsink.Config)
	if c.Timeout.Duration != httpsink.DefaultTimeout || c.ContentEncoding != "none" || c.AccessKey != "" {
		t.Fatalf("sample.yaml does not show the defaults: %+v", c)
	}
}
