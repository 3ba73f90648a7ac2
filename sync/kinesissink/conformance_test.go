package kinesissink_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/kaiten-edge/kaiten/gateway/kinesisapi"
	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/sync/internal/awscfg"
	"github.com/kaiten-edge/kaiten/sync/kinesissink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

// TestConformance runs the shared sink contract against a Kaiten Kinesis
// API (in process, over its own stream store) with a per-shard write limit
// of 300 records/s, so that a batch of 1,000 records is taken in part, as
// Kinesis throttling does.
//
// PutRecords has no request id, so a batch has no identity at the
// destination: the retry check verifies only that retries resend nothing
// that was acknowledged. No record within the stream's limits is one
// Kinesis refuses for good (its limits on data and partition keys are the
// stream's own) and API errors are transient, so there is no permanent
// case to check.
func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Destination{
		Caps:           sinktest.Capabilities{PartialFailure: true},
		PartialRecords: 1000,
		Open: func(t *testing.T) *sinktest.Target {
			up, err := stream.Open(stream.Options{Dir: t.TempDir(), ShardWriteRecords: 300})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = up.Close() })
			if err := up.CreateStream(context.Background(), stream.StreamConfig{Name: "hub", ShardCount: 1}); err != nil {
				t.Fatal(err)
			}
			api, err := kinesisapi.New(up, kinesisapi.Options{})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(api)
			t.Cleanup(hs.Close)
			s, err := kinesissink.New(kinesissink.Config{StreamName: "hub", Access: awscfg.Access{Endpoint: hs.URL}})
			if err != nil {
				t.Fatal(err)
			}
			return &sinktest.Target{
				Sink: s,
				Held: func(t testing.TB) []sinktest.Held {
					h := sinktest.Held{}
					for _, r := range streamtest.ReadStream(t, up, "hub") {
						h.Records = append(h.Records, string(r.Data))
					}
					return []sinktest.Held{h}
				},
			}
		},
	})
}
