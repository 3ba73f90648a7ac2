package s3sink_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kaiten-edge/kaiten/sync/internal/s3test"
	"github.com/kaiten-edge/kaiten/sync/s3sink"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

// TestConformance runs the shared sink contract against a real versitygw.
// An object is stored whole or not at all, so there is no partial
// failure; a key with a segment longer than any file name is refused for
// good (a request retrying cannot fix) while the error output works.
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	buckets := 0
	open := func(prefix string) func(t *testing.T) *sinktest.Target {
		return func(t *testing.T) *sinktest.Target {
			buckets++
			bucket := "conformance-" + string(rune('a'+buckets))
			srv.CreateBucket(t, bucket)
			cfg := srv.Config(bucket)
			cfg.Prefix = prefix
			s, err := s3sink.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			list := func(t testing.TB, errorOutput bool) map[string][]byte {
				t.Helper()
				ctx := context.Background()
				keys, err := srv.Objects(ctx, bucket, "")
				if err != nil {
					t.Fatal(err)
				}
				out := map[string][]byte{}
				for _, k := range keys {
					if strings.HasPrefix(k, "delivery-failed/") != errorOutput {
						continue
					}
					if out[k], err = srv.Get(ctx, bucket, k); err != nil {
						t.Fatal(err)
					}
				}
				return out
			}
			return &sinktest.Target{
				Sink:     s,
				Identity: s.Key,
				Held: func(t testing.TB) []sinktest.Held {
					var out []sinktest.Held
					for k, body := range list(t, false) {
						out = append(out, sinktest.Held{ID: k, Records: sinktest.Lines(t, body, sink.Gzip)})
					}
					return out
				},
				Errors: func(t testing.TB) []sinktest.Failed {
					var out []sinktest.Failed
					for _, body := range list(t, true) {
						out = append(out, sinktest.ErrorLines(t, body)...)
					}
					return out
				},
			}
		}
	}
	sinktest.Run(t, sinktest.Destination{
		Caps:         sinktest.Capabilities{Identity: true, ErrorOutput: true},
		Open:         open("plates/"),
		OpenRefusing: open(strings.Repeat("k", 1100) + "/"),
	})
}
