package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

var (
	plateTopic = regexp.MustCompile(`^store/demo-store/lane/([1-6])/plate$`)
	hbTopic    = regexp.MustCompile(`^store/demo-store/lane/([1-6])/sensor/(lane[1-6]-(kitchen|ir1|ir2))/status$`)
)

type tally struct {
	plates, heartbeats, garbled, faultyHB int
	byEvent                               map[string]int
}

// simulate runs the belt for d of simulated time from start and checks
// every message against the team's formats.
func simulate(t *testing.T, b *Belt, start time.Time, d time.Duration) tally {
	t.Helper()
	tl := tally{byEvent: map[string]int{}}
	placed := map[string]bool{}
	for now := start; now.Before(start.Add(d)); now = now.Add(DefaultTick) {
		for li, msgs := range b.Step(now, DefaultTick) {
			lane := fmt.Sprint(li + 1)
			for _, m := range msgs {
				switch {
				case plateTopic.MatchString(m.Topic):
					if plateTopic.FindStringSubmatch(m.Topic)[1] != lane {
						t.Fatalf("message of lane %s on %s", lane, m.Topic)
					}
					var ev PlateEvent
					if err := json.Unmarshal(m.Payload, &ev); err != nil {
						tl.garbled++
						continue
					}
					tl.plates++
					tl.byEvent[ev.Event]++
					if ev.Store != "demo-store" || ev.Lane != lane || !strings.HasPrefix(ev.Sensor, "lane"+lane+"-") ||
						!strings.HasPrefix(ev.PlateID, "p-") || !slices.ContainsFunc(PlateTypes, func(p struct {
						Name   string
						Weight float64
					}) bool {
						return p.Name == ev.PlateType
					}) {
						t.Fatalf("bad plate event %s", m.Payload)
					}
					if _, err := time.Parse(time.RFC3339Nano, ev.TS); err != nil {
						t.Fatalf("ts %q: %v", ev.TS, err)
					}
					switch ev.Event {
					case Placed:
						placed[ev.PlateID] = true
					case Passed, Taken:
						if !placed[ev.PlateID] {
							t.Fatalf("%s of a plate never placed: %s", ev.Event, m.Payload)
						}
					default:
						t.Fatalf("event %q", ev.Event)
					}
				case hbTopic.MatchString(m.Topic):
					var hb Heartbeat
					if err := json.Unmarshal(m.Payload, &hb); err != nil || hb.Lane != lane || hb.Sensor != hbTopic.FindStringSubmatch(m.Topic)[2] {
						t.Fatalf("bad heartbeat %s on %s (%v)", m.Payload, m.Topic, err)
					}
					if strings.Contains(string(m.Payload), `"event"`) {
						t.Fatal("a heartbeat must have no event field")
					}
					tl.heartbeats++
					if !hb.OK {
						tl.faultyHB++
					}
				default:
					t.Fatalf("unexpected topic %q", m.Topic)
				}
			}
		}
	}
	return tl
}

func TestBeltTrafficVariesByHour(t *testing.T) {
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.Local)
	lunch := simulate(t, NewBelt("demo-store", 6, DefaultRate, 0, DefaultHeartbeat, 1), day.Add(12*time.Hour), 10*time.Minute)
	night := simulate(t, NewBelt("demo-store", 6, DefaultRate, 0, DefaultHeartbeat, 1), day.Add(3*time.Hour), 10*time.Minute)
	perLaneSec := func(tl tally) float64 { return float64(tl.plates) / 6 / (10 * 60) }
	t.Logf("lunch %.2f plate events/s/lane %v; night %.2f %v", perLaneSec(lunch), lunch.byEvent, perLaneSec(night), night.byEvent)
	if r := perLaneSec(lunch); r < 1 || r > 6 {
		t.Errorf("lunch: %.2f plate events per second per lane, want a few (1-6)", r)
	}
	if perLaneSec(night) >= perLaneSec(lunch)/2 {
		t.Errorf("night traffic %.2f is not well below lunch %.2f", perLaneSec(night), perLaneSec(lunch))
	}
	for _, e := range []string{Placed, Passed, Taken} {
		if lunch.byEvent[e] == 0 {
			t.Errorf("no %s events at lunch", e)
		}
	}
	// 3 sensors per lane, one heartbeat each per 10s, 10 minutes.
	if want := 6 * 3 * 10 * 6; lunch.heartbeats != want {
		t.Errorf("%d heartbeats, want %d", lunch.heartbeats, want)
	}
	if lunch.garbled != 0 || lunch.faultyHB != 0 {
		t.Errorf("faults off, yet %d garbled and %d faulty heartbeats", lunch.garbled, lunch.faultyHB)
	}
}

func TestBeltFaults(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.Local)
	tl := simulate(t, NewBelt("demo-store", 6, DefaultRate, 0.05, DefaultHeartbeat, 7), start, 10*time.Minute)
	if tl.garbled == 0 || tl.faultyHB == 0 {
		t.Fatalf("faults on, yet %d garbled messages and %d ok:false heartbeats", tl.garbled, tl.faultyHB)
	}
}

func TestBeltIsRepeatable(t *testing.T) {
	start := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	a, b := NewBelt("s", 2, 1, 0.1, time.Second, 42), NewBelt("s", 2, 1, 0.1, time.Second, 42)
	for i := range 600 {
		now := start.Add(time.Duration(i) * DefaultTick)
		ma, mb := a.Step(now, DefaultTick), b.Step(now, DefaultTick)
		if fmt.Sprint(ma) != fmt.Sprint(mb) {
			t.Fatalf("step %d differs with the same seed", i)
		}
	}
}

func TestConfig(t *testing.T) {
	var c Config
	if err := c.Normalize("demo-store"); err != nil {
		t.Fatal(err)
	}
	if c.Store != "demo-store" || c.Lanes != 6 || c.Rate != DefaultRate || c.Faults != DefaultFaults || c.Heartbeat.Duration != DefaultHeartbeat || c.Speed != 1 {
		t.Fatalf("defaults %+v", c)
	}
	for _, bad := range []struct {
		c    Config
		want string
	}{{Config{Lanes: -1}, "sim.lanes"}, {Config{Rate: -2}, "sim.rate"}, {Config{Faults: 2}, "sim.faults"}, {Config{Speed: 5000}, "sim.speed"}} {
		if err := bad.c.Normalize("s"); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want an error naming %s", bad.c, err, bad.want)
		}
	}
}

// fastClock runs simulated time at lunch so the belt is busy at once.
func lunchClock() func() time.Time {
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.Local)
	start := time.Now()
	return func() time.Time { return base.Add(time.Since(start)) }
}

// TestSimPublishesToMosquitto runs the simulator against a real mosquitto
// and checks what a subscriber receives.
func TestSimPublishesToMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto: make test runs it")
	}
	m := mqtttest.StartMosquitto(t, mqtttest.Options{})
	var mu sync.Mutex
	lanes := map[string]int{}
	mqtttest.Subscriber(t, m.URL(), "sim-watch", "store/#", func(msg paho.Message) {
		mu.Lock()
		defer mu.Unlock()
		if s := plateTopic.FindStringSubmatch(msg.Topic()); s != nil {
			lanes[s[1]]++
		}
	})
	cfg := Config{Rate: 20, Seed: 3}
	if err := cfg.Normalize("demo-store"); err != nil {
		t.Fatal(err)
	}
	var beams sync.Map
	s, err := Start(cfg, m.URL(), Options{Now: lunchClock(), Logger: slog.New(slog.DiscardHandler),
		OnBeam: func(lane string) { beams.Store(lane, true) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	testutil.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(lanes) < 6 {
			return fmt.Errorf("plates seen on lanes %v", lanes)
		}
		n := 0
		beams.Range(func(any, any) bool { n++; return true })
		if n < 6 {
			return fmt.Errorf("beams broken on %d lanes", n)
		}
		return nil
	})
	st := s.Status()
	if st.Connected != 6 || st.Published == 0 {
		t.Fatalf("status %+v", st)
	}
}

// TestSimWaitsForTheBroker starts the simulator before its broker is up
// (an external broker down at start): what it publishes meanwhile goes
// out once the broker answers, and it does not hang.
func TestSimWaitsForTheBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto: make test runs it")
	}
	addr := testutil.FreeAddr(t)
	cfg := Config{Rate: 20, Speed: 50, Seed: 9}
	if err := cfg.Normalize("demo-store"); err != nil {
		t.Fatal(err)
	}
	var beams atomic.Int64
	s, err := Start(cfg, "tcp://"+addr, Options{Now: lunchClock(), Logger: slog.New(slog.DiscardHandler),
		OnBeam: func(string) { beams.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	// Let the belt publish into the void first (each beam is a published pass).
	testutil.WaitFor(t, 10*time.Second, func() error {
		if b := beams.Load(); b < 12 {
			return fmt.Errorf("%d passes so far", b)
		}
		return nil
	})
	if st := s.Status(); st.Connected != 0 || st.Published != 0 {
		t.Fatalf("published with no broker: %+v", st)
	}
	m := mqtttest.StartMosquitto(t, mqtttest.Options{Addr: addr})
	var got atomic.Int64
	mqtttest.Subscriber(t, m.URL(), "sim-watch-late", "store/#", func(paho.Message) { got.Add(1) })
	testutil.WaitFor(t, 30*time.Second, func() error {
		st := s.Status()
		if st.Connected < 6 || st.Published < 100 || got.Load() < 100 {
			return fmt.Errorf("status %+v, subscriber got %d", st, got.Load())
		}
		return nil
	})
}

// TestSimThroughEmbeddedIngest is the demo path: simulator -> embedded
// broker -> ingest -> stream plates (and the garbled ones to deadletter).
func TestSimThroughEmbeddedIngest(t *testing.T) {
	st := streamtest.Open(t, stream.Options{}, stream.StreamConfig{Name: "plates", ShardCount: 4}, stream.StreamConfig{Name: "deadletter", ShardCount: 1})
	in, err := mqtt.Start(mqtt.Config{Embedded: mqtt.EmbeddedConfig{Addr: testutil.FreeAddr(t)}}, "demo-store",
		mqtt.Options{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = in.Stop(ctx)
	}()
	cfg := Config{Rate: 20, Faults: 0.5, Seed: 5}
	if err := cfg.Normalize("demo-store"); err != nil {
		t.Fatal(err)
	}
	s, err := Start(cfg, in.BrokerURL(), Options{Now: lunchClock(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	testutil.WaitFor(t, 30*time.Second, func() error {
		is := in.Status()
		if is.Stored < 100 || is.DeadLettered == 0 {
			return fmt.Errorf("ingest %+v", is)
		}
		return nil
	})
	stats := st.Stats()
	for _, ss := range stats.Streams {
		if ss.Name == "plates" {
			used := 0
			for _, sh := range ss.Shards {
				if sh.Incoming > 0 {
					used++
				}
			}
			if used < 2 {
				t.Errorf("6 lanes hashed onto %d of 4 shards", used)
			}
		}
	}
}
