package httpsink_test

import (
	"testing"

	"github.com/kaiten-edge/kaiten/sync/httpsink"
	"github.com/kaiten-edge/kaiten/sync/internal/firehosetest"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

// TestConformance runs the shared sink contract against the Firehose HTTP
// endpoint test server, which checks the protocol of every request. The
// protocol acknowledges a request whole, so there is no partial failure;
// a 413 is refused for good and, with no error output of its own, the
// records go to the dead-letter stream.
func TestConformance(t *testing.T) {
	open := func(mode firehosetest.Mode) func(t *testing.T) *sinktest.Target {
		return func(t *testing.T) *sinktest.Target {
			srv := firehosetest.New()
			t.Cleanup(srv.Close)
			srv.SetMode(mode)
			s, err := httpsink.New(httpsink.Config{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if p := srv.Problems(); len(p) > 0 {
					t.Errorf("protocol problems: %q", p)
				}
			})
			return &sinktest.Target{
				Sink:     s,
				Identity: httpsink.RequestID,
				Held: func(t testing.TB) []sinktest.Held {
					var out []sinktest.Held
					for _, d := range srv.Accepted() {
						h := sinktest.Held{ID: d.RequestID}
						for _, r := range d.Records {
							h.Records = append(h.Records, string(r))
						}
						out = append(out, h)
					}
					return out
				},
			}
		}
	}
	sinktest.Run(t, sinktest.Destination{
		Caps:         sinktest.Capabilities{Identity: true},
		Open:         open(firehosetest.OK),
		OpenRefusing: open(firehosetest.TooLarge),
	})
}
