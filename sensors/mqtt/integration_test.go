package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

func quietLogger() *slog.Logger {
	if os.Getenv("KAITEN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openStore opens a real store in dir with the demo's ingest streams.
func openStore(t testing.TB, dir string) *stream.Store {
	t.Helper()
	return streamtest.Open(t, stream.Options{Dir: dir, Logger: quietLogger()},
		stream.StreamConfig{Name: "plates", ShardCount: 4}, stream.StreamConfig{Name: "deadletter", ShardCount: 1})
}

// readAll returns every record of a stream, shard by shard.
func readAll(t testing.TB, st *stream.Store, name string) []stream.Record {
	t.Helper()
	return streamtest.ReadStream(t, st, name)
}

func platePayload(i int) []byte {
	return fmt.Appendf(nil, `{"store":"demo-store","lane":"%d","plate_type":"salmon","event":"passed","plate_id":"p-%06d","sensor":"lane%d-ir1","ts":"2026-11-26T05:00:00.000Z"}`, i%6+1, i, i%6+1)
}

func plateTopic(i int) string { return fmt.Sprintf("store/demo-store/lane/%d/plate", i%6+1) }

// flow publishes plates with QoS 1 the way a sensor node would: without
// waiting, and publishing again whatever the client reports as failed
// (a write on a dropped connection), until the broker acknowledged it.
type flow struct {
	c    paho.Client
	toks map[int]paho.Token
	// retried counts publishes sent again after an error.
	retried int
}

func newFlow(c paho.Client) *flow { return &flow{c: c, toks: map[int]paho.Token{}} }

func (f *flow) publish(from, to int) {
	for i := from; i < to; i++ {
		f.toks[i] = f.c.Publish(plateTopic(i), 1, false, platePayload(i))
	}
}

// acked counts acknowledged publishes, re-publishing failed ones.
func (f *flow) acked() int {
	n := 0
	for i, tok := range f.toks {
		select {
		case <-tok.Done():
			if tok.Error() != nil {
				f.retried++
				f.toks[i] = f.c.Publish(plateTopic(i), 1, false, platePayload(i))
				continue
			}
			n++
		default:
		}
	}
	return n
}

func (f *flow) waitAcked(t testing.TB, n int, wait time.Duration) {
	t.Helper()
	testutil.WaitFor(t, wait, func() error {
		if a := f.acked(); a < n {
			return fmt.Errorf("%d of %d publishes acknowledged", a, n)
		}
		return nil
	})
}

func waitTokens(t testing.TB, toks []paho.Token, wait time.Duration) {
	t.Helper()
	testutil.WaitFor(t, wait, func() error {
		for i, tok := range toks {
			select {
			case <-tok.Done():
				if err := tok.Error(); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			default:
				return fmt.Errorf("publish %d of %d not acknowledged yet", i, len(toks))
			}
		}
		return nil
	})
}

// waitSubscribed waits until the ingest holds its subscriptions (at once
// with the embedded broker): before that, a broker drops messages that
// no session subscribed to.
func waitSubscribed(t testing.TB, in *Ingest) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, func() error {
		if !in.Status().Subscribed {
			return fmt.Errorf("not subscribed yet: %+v", in.Status())
		}
		return nil
	})
}

// distinctPlates counts the different plate ids among records.
func distinctPlates(t testing.TB, recs []stream.Record) int {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range recs {
		var p struct {
			PlateID string `json:"plate_id"`
		}
		if json.Unmarshal(r.Data, &p) == nil {
			seen[p.PlateID] = true
		}
	}
	return len(seen)
}

// checkPlates checks that every plate 0..n-1 is in the stream at least
// once with the right partition key and the payload as published; it
// returns the number of extra copies (redeliveries).
func checkPlates(t testing.TB, recs []stream.Record, n int) int {
	t.Helper()
	seen := map[string]int{}
	for _, r := range recs {
		var p struct {
			PlateID string `json:"plate_id"`
			Lane    string `json:"lane"`
		}
		if err := json.Unmarshal(r.Data, &p); err != nil {
			t.Fatalf("record %s is not a plate: %v", r.Data, err)
		}
		var i int
		fmt.Sscanf(p.PlateID, "p-%d", &i)
		if !bytes.Equal(r.Data, platePayload(i)) {
			t.Fatalf("record %s: not the payload as published", r.Data)
		}
		if want := "demo-store/" + p.Lane; r.PartitionKey != want {
			t.Fatalf("record %s: partition key %q, want %q", r.Data, r.PartitionKey, want)
		}
		seen[p.PlateID]++
	}
	extra := 0
	for i := range n {
		id := fmt.Sprintf("p-%06d", i)
		if seen[id] == 0 {
			t.Errorf("plate %s lost", id)
		}
		extra += max(seen[id]-1, 0)
	}
	if len(seen) != n {
		t.Errorf("%d distinct plates stored, want %d", len(seen), n)
	}
	return extra
}

func startIngest(t testing.TB, cfg Config, st *stream.Store) (*Ingest, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	in, err := Start(cfg, "demo-store", Options{Store: st, Metrics: reg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return in, reg
}

func stopIngest(t testing.TB, in *Ingest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := in.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := in.Stop(ctx); err != nil { // a second Stop is harmless
		t.Errorf("second stop: %v", err)
	}
}

// brokerKind is one of the two ways the gateway meets MQTT; the suite
// below runs against both.
type brokerKind struct {
	name string
	// setup returns the config for an Ingest and the URL publishers use.
	setup func(t *testing.T) (Config, string)
}

var kinds = []brokerKind{
	{"mosquitto", func(t *testing.T) (Config, string) {
		if testing.Short() {
			t.Skip("starts mosquitto: make test runs it")
		}
		m := mqtttest.StartMosquitto(t, mqtttest.Options{})
		return Config{Broker: m.URL(), ClientID: "kaiten-test-" + t.Name()}, m.URL()
	}},
	{"embedded", func(t *testing.T) (Config, string) {
		addr := testutil.FreeAddr(t)
		return Config{Embedded: EmbeddedConfig{Addr: addr}}, "tcp://" + addr
	}},
}

// TestIngestRestartLosesNothing publishes N plates, stops the gateway's
// ingest in the middle while the publisher keeps going, starts it again,
// and checks every plate is stored at least once (duplicates only from
// redelivery, and counted).
func TestIngestRestartLosesNothing(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			cfg, url := k.setup(t)
			st := openStore(t, t.TempDir())
			defer st.Close()
			in, _ := startIngest(t, cfg, st)
			waitSubscribed(t, in)
			f := newFlow(mqtttest.Publisher(t, url, "pub-"+k.name))
			const n = 400
			f.publish(0, n/2)
			f.waitAcked(t, n/4, 20*time.Second)
			stopIngest(t, in) // in the middle of the flow
			before := in.Status()
			f.publish(n/2, n)
			in, _ = startIngest(t, cfg, st)
			defer stopIngest(t, in)
			f.waitAcked(t, n, 60*time.Second)
			testutil.WaitFor(t, 30*time.Second, func() error {
				if got := distinctPlates(t, readAll(t, st, "plates")); got < n {
					return fmt.Errorf("%d of %d plates stored", got, n)
				}
				return nil
			})
			extra := checkPlates(t, readAll(t, st, "plates"), n)
			s := in.Status()
			// Every extra copy came as a redelivery (DUP) or as a publish the
			// client sent again after an error; none appear from nowhere.
			if int64(extra) > before.Duplicates+s.Redelivered+s.Duplicates+int64(f.retried) {
				t.Errorf("%d duplicates, but only %d+%d recognised, %d redelivered and %d re-sent",
					extra, before.Duplicates, s.Duplicates, s.Redelivered, f.retried)
			}
			t.Logf("%s: %d duplicates stored; publisher re-sent %d; after restart: received %d, redelivered %d, duplicates detected %d",
				k.name, extra, f.retried, s.Received, s.Redelivered, s.Duplicates)
		})
	}
}

// TestIngestDeadLetters sends input that cannot be stored as routed
// between good messages: each bad one lands in the dead-letter stream with
// its reason and original bytes, and the good ones after it still flow.
func TestIngestDeadLetters(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			cfg, url := k.setup(t)
			cfg.MaxPayload = 2048
			cfg.Routes = append(DefaultRoutes(), Route{Topic: "dev/+/reading", Stream: "plates", Key: "{device}"})
			st := openStore(t, t.TempDir())
			defer st.Close()
			in, reg := startIngest(t, cfg, st)
			defer stopIngest(t, in)
			waitSubscribed(t, in)
			pub := mqtttest.Publisher(t, url, "pub-dl-"+k.name)
			bad := []struct {
				topic   string
				payload []byte
				class   string
			}{
				{plateTopic(0), []byte(`{"store":"demo-store","lane":`), ReasonInvalidJSON},
				{plateTopic(1), bytes.Repeat([]byte("z"), 5000), ReasonTooLarge},
				{"dev/d1/reading", []byte(`{"value":3}`), ReasonKey},
				{"dev/d1/reading", []byte(`not json`), ReasonInvalidJSON},
			}
			var toks []paho.Token
			for i, b := range bad {
				toks = append(toks, pub.Publish(b.topic, 1, false, b.payload))
				toks = append(toks, pub.Publish(plateTopic(i), 1, false, platePayload(i)))
			}
			waitTokens(t, toks, 30*time.Second)
			testutil.WaitFor(t, 30*time.Second, func() error {
				if got := len(readAll(t, st, "deadletter")); got < len(bad) {
					return fmt.Errorf("%d dead letters", got)
				}
				if got := distinctPlates(t, readAll(t, st, "plates")); got < len(bad) {
					return fmt.Errorf("%d plates", got)
				}
				return nil
			})
			checkPlates(t, readAll(t, st, "plates"), len(bad))
			dl := readAll(t, st, "deadletter")
			if len(dl) != len(bad) {
				t.Fatalf("%d dead letters, want %d", len(dl), len(bad))
			}
			for _, r := range dl {
				d, err := stream.DecodeDeadLetter(r.Data)
				if err != nil {
					t.Fatal(err)
				}
				orig := d.Data
				found := false
				for _, b := range bad {
					if b.topic == d.Topic && bytes.Equal(b.payload, orig) {
						found = true
						if !strings.HasPrefix(d.Reason, b.class) || r.PartitionKey != "mqtt" || d.Source != "mqtt" {
							t.Errorf("dead letter for %s: reason %q key %q", b.topic, d.Reason, r.PartitionKey)
						}
					}
				}
				if !found {
					t.Errorf("unexpected dead letter %+v", d)
				}
			}
			if got := counterSum(t, reg, "kaiten_mqtt_deadletter_total"); got != float64(len(bad)) {
				t.Errorf("kaiten_mqtt_deadletter_total = %v, want %d", got, len(bad))
			}
			if got := counterSum(t, reg, "kaiten_mqtt_stored_total"); got != float64(len(bad)) {
				t.Errorf("kaiten_mqtt_stored_total = %v, want %d", got, len(bad))
			}
		})
	}
}

// TestMosquittoRestartLosesNothing restarts the broker in the middle of
// the flow: what it had accepted is persisted and delivered after it
// comes back, and the gateway reconnects by itself.
func TestMosquittoRestartLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts mosquitto: make test runs it")
	}
	m := mqtttest.StartMosquitto(t, mqtttest.Options{})
	st := openStore(t, t.TempDir())
	defer st.Close()
	in, _ := startIngest(t, Config{Broker: m.URL(), ClientID: "kaiten-test-restart", MaxReconnectInterval: config.Duration{Duration: time.Second}}, st)
	defer stopIngest(t, in)
	waitSubscribed(t, in)
	f := newFlow(mqtttest.Publisher(t, m.URL(), "pub-restart"))
	const n = 400
	f.publish(0, n/2)
	f.waitAcked(t, n/4, 20*time.Second)
	m.Stop(t)
	f.publish(n/2, n)
	m.Start(t)
	f.waitAcked(t, n, 60*time.Second)
	testutil.WaitFor(t, 30*time.Second, func() error {
		if got := distinctPlates(t, readAll(t, st, "plates")); got < n {
			return fmt.Errorf("%d of %d plates stored", got, n)
		}
		return nil
	})
	extra := checkPlates(t, readAll(t, st, "plates"), n)
	s := in.Status()
	// One ingest process saw every copy: each one is recognised.
	if int64(extra) != s.Duplicates {
		t.Errorf("%d duplicates stored, %d recognised (%d redelivered, %d re-sent by the test)", extra, s.Duplicates, s.Redelivered, f.retried)
	}
	if s.Reconnects == 0 {
		t.Errorf("no reconnect counted after a broker restart: %+v", s)
	}
	t.Logf("duplicates stored %d; publisher re-sent %d; status %+v", extra, f.retried, s)
}

func counterSum(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
