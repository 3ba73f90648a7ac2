package gpio

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

func pinCfg(t *testing.T, p PinConfig) PinConfig {
	t.Helper()
	c := Config{Pins: []PinConfig{p}}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	return c.Pins[0]
}

var t0 = time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestDebounceAtTheEdgeOfTheWindow(t *testing.T) {
	in := newInterpreter(pinCfg(t, PinConfig{Pin: "GPIO17", Edge: "falling", Debounce: config.Duration{Duration: ms(5)}}), pgpio.High)
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true},                  // first edge
		{ms(1), false},             // bounce
		{ms(5) - 1, false},         // one nanosecond inside the window
		{ms(5), true},              // exactly at the window's end: accepted
		{ms(9.999), false},         // inside the new window (from 5ms)
		{ms(10), true},             // exactly at its end
		{ms(10) + time.Hour, true}, // long after
	}
	for i, s := range steps {
		ev, ok := in.edge(t0.Add(s.at), pgpio.Low)
		if ok != s.want {
			t.Fatalf("step %d at %s: accepted=%v, want %v", i, s.at, ok, s.want)
		}
		if ok && ev.Count != int64(countTrue(steps[:i+1])) {
			t.Fatalf("step %d: count %d", i, ev.Count)
		}
	}
	if in.bounces != 3 {
		t.Fatalf("bounces %d, want 3", in.bounces)
	}
}

func countTrue(steps []struct {
	at   time.Duration
	want bool
}) int {
	n := 0
	for _, s := range steps {
		if s.want {
			n++
		}
	}
	return n
}

func TestInterpreterKinds(t *testing.T) {
	// pass on both edges counts only the edges into the active level.
	pass := newInterpreter(pinCfg(t, PinConfig{Pin: "GPIO5", Sensor: "lane1-beam", Lane: "1"}), pgpio.High)
	var got []int64
	for i, l := range []pgpio.Level{pgpio.Low, pgpio.High, pgpio.Low, pgpio.High} {
		if ev, ok := pass.edge(t0.Add(time.Duration(i)*time.Second), l); ok {
			got = append(got, ev.Count)
			if ev.Kind != KindPass || ev.Sensor != "lane1-beam" || ev.Lane != "1" || ev.Pin != "GPIO5" || ev.Level != "low" {
				t.Fatalf("pass event %+v", ev)
			}
		}
	}
	if fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("pass counts %v, want [1 2]", got)
	}

	// pulse: active (low) then inactive gives one event with the duration.
	pulse := newInterpreter(pinCfg(t, PinConfig{Pin: "GPIO6", Kind: KindPulse}), pgpio.High)
	if _, ok := pulse.edge(t0, pgpio.High); ok {
		t.Fatal("an inactive edge before any pulse must not make an event")
	}
	if _, ok := pulse.edge(t0.Add(time.Second), pgpio.Low); ok {
		t.Fatal("the pulse start must not make an event")
	}
	ev, ok := pulse.edge(t0.Add(time.Second+ms(12.5)), pgpio.High)
	if !ok || ev.DurationMS == nil || *ev.DurationMS != 12.5 || ev.Count != 1 || ev.Kind != KindPulse {
		t.Fatalf("pulse event %+v ok=%v", ev, ok)
	}

	// level: every change, and no event when the level did not change.
	lvl := newInterpreter(pinCfg(t, PinConfig{Pin: "GPIO7", Kind: KindLevel, Active: "high"}), pgpio.Low)
	var levels []string
	for i, l := range []pgpio.Level{pgpio.High, pgpio.High, pgpio.Low} {
		if ev, ok := lvl.edge(t0.Add(time.Duration(i)*time.Second), l); ok {
			levels = append(levels, ev.Level)
		}
	}
	if fmt.Sprint(levels) != "[high low]" {
		t.Fatalf("levels %v", levels)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		c    Config
		want string
	}{
		{Config{Pins: []PinConfig{{}}}, "gpio.pins[0].pin: must not be empty"},
		{Config{Pins: []PinConfig{{Pin: "GPIO1"}, {Pin: "GPIO1"}}}, "gpio.pins[1].pin: GPIO1 is listed twice"},
		{Config{Pins: []PinConfig{{Pin: "GPIO1", Pull: "sideways"}}}, "gpio.pins[0].pull"},
		{Config{Pins: []PinConfig{{Pin: "GPIO1", Edge: "up"}}}, "gpio.pins[0].edge"},
		{Config{Pins: []PinConfig{{Pin: "GPIO1", Kind: "count"}}}, "gpio.pins[0].kind"},
		{Config{Pins: []PinConfig{{Pin: "GPIO1", Active: "maybe"}}}, "gpio.pins[0].active"},
		{Config{Pins: []PinConfig{{Pin: "GPIO1", Kind: "pulse", Edge: "rising"}}}, "gpio.pins[0].edge: \"rising\": a pulse needs both edges"},
	}
	for _, c := range cases {
		if err := c.c.Normalize(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	c := Config{Pins: []PinConfig{{Pin: "GPIO17"}}}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	p := c.Pins[0]
	if c.Stream != "gpio" || c.WaitTimeout.Duration != time.Second || p.Sensor != "GPIO17" || p.Pull != "up" ||
		p.Edge != "both" || p.Kind != "pass" || p.Active != "low" || p.Debounce.Duration != 5*time.Millisecond {
		t.Fatalf("defaults %+v %+v", c, p)
	}
}

// memStore is an Appender that keeps records in memory.
type memStore struct {
	mu   sync.Mutex
	recs map[string][]stream.Entry
}

func (m *memStore) Put(ctx context.Context, s string, e stream.Entry) (stream.PutResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs == nil {
		m.recs = map[string][]stream.Entry{}
	}
	e.Data = bytes.Clone(e.Data)
	m.recs[s] = append(m.recs[s], e)
	return stream.PutResult{SequenceNumber: fmt.Sprint(len(m.recs[s]))}, nil
}

func (m *memStore) events(t testing.TB, s string) []Event {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, e := range m.recs[s] {
		var ev Event
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if e.PartitionKey != ev.Sensor {
			t.Fatalf("partition key %q, want the sensor %q", e.PartitionKey, ev.Sensor)
		}
		out = append(out, ev)
	}
	return out
}

// tickClock returns base + n*step on its n-th call: each accepted or
// ignored edge reads the clock exactly once, so a test knows every edge's
// time without racing the watcher.
func tickClock(base time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	n := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := base.Add(time.Duration(n) * step)
		n++
		return t
	}
}

func fakePin(name string, num int) *gpiotest.Pin {
	return &gpiotest.Pin{N: name, Num: num, EdgesChan: make(chan pgpio.Level)} // unbuffered: a send returns once the watcher took it
}

func TestWatcherWithFakePins(t *testing.T) {
	beam := fakePin("GPIO17", 17)
	reed := fakePin("GPIO27", 27)
	pins := map[string]pgpio.PinIO{"GPIO17": beam, "GPIO27": reed}
	cfg := Config{WaitTimeout: config.Duration{Duration: 50 * time.Millisecond}, Pins: []PinConfig{
		{Pin: "GPIO17", Sensor: "lane1-beam", Lane: "1", Edge: "falling", Debounce: config.Duration{Duration: ms(5)}},
		{Pin: "GPIO27", Sensor: "lane2-reed", Lane: "2", Kind: KindPulse, Debounce: config.Duration{Duration: ms(5)}},
		{Pin: "GPIO99", Sensor: "lane3-beam"}, // not on this machine
	}}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	st := &memStore{}
	var logs bytes.Buffer
	w, err := Start(cfg, Options{Store: st, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Lookup: func(n string) pgpio.PinIO { return pins[n] },
		Now:    tickClock(t0, ms(1))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "GPIO99") {
		t.Fatalf("the missing pin is not named in the log:\n%s", logs.String())
	}
	if beam.P != pgpio.PullUp {
		t.Fatalf("pull %v, want up", beam.P)
	}
	// A burst of 12 edges 1ms apart on the beam: the 5ms debounce keeps
	// those at 0, 5 and 10 ms (the window's edges) and drops the rest.
	for range 12 {
		beam.EdgesChan <- pgpio.Low
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if n := len(st.events(t, "gpio")); n != 3 {
			return fmt.Errorf("%d events, want 3", n)
		}
		// The clock is shared: let the last bounce read it before the
		// next pin's edges start.
		if b := w.Status().Pins[0].Bounces; b != 9 {
			return fmt.Errorf("%d bounces, want 9", b)
		}
		return nil
	})
	evs := st.events(t, "gpio")
	for i, ev := range evs {
		want := t0.Add(time.Duration(i) * ms(5)).Format("2006-01-02T15:04:05.000Z07:00")
		if ev.Count != int64(i+1) || ev.TS != want || ev.Kind != KindPass || ev.Sensor != "lane1-beam" || ev.Pin != "GPIO17" {
			t.Fatalf("event %d: %+v, want count %d at %s", i, ev, i+1, want)
		}
	}
	// A pulse on the reed switch, with a bounce on its leading edge: the
	// clock now reads 12ms, 13ms, ... one step per edge.
	L, H := pgpio.Low, pgpio.High
	for _, l := range []pgpio.Level{L, H, L, L, L, L, L, L, L, L, H} {
		reed.EdgesChan <- l
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if n := len(st.events(t, "gpio")); n != 4 {
			return fmt.Errorf("%d events, want 4", n)
		}
		return nil
	})
	p := st.events(t, "gpio")[3]
	// Accepted: Low at 12ms (start), bounces at 13-16ms, Low at 17ms
	// (still in the pulse: it does not restart it), bounces at 18-21ms,
	// High at 22ms ends it: 10ms.
	if p.Kind != KindPulse || p.DurationMS == nil || *p.DurationMS != 10 || p.Count != 1 || p.Sensor != "lane2-reed" {
		t.Fatalf("pulse %+v (duration %v)", p, p.DurationMS)
	}
	s := w.Status()
	if len(s.Missing) != 1 || s.Missing[0] != "GPIO99" || s.Stored != 4 || s.Pins[0].Bounces != 9 || s.Pins[1].Bounces != 8 || s.Pins[2].Found {
		t.Fatalf("status %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNoGPIOKeepsRunning(t *testing.T) {
	cfg := Config{Pins: []PinConfig{{Pin: "GPIO17"}, {Pin: "GPIO27"}}}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	// The default lookup: host.Init() and the registry of this machine
	// (a CI box has no GPIO17).
	w, err := Start(cfg, Options{Store: &memStore{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("a machine without GPIO must not fail the start: %v", err)
	}
	s := w.Status()
	if len(s.Missing) == 2 {
		if !strings.Contains(logs.String(), "GPIO17, GPIO27") {
			t.Fatalf("log does not name the missing pins:\n%s", logs.String())
		}
	} else {
		t.Logf("this machine has GPIO: %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherIntoRealStore(t *testing.T) {
	st := streamtest.Open(t, stream.Options{}, stream.StreamConfig{Name: "gpio", ShardCount: 1})
	pin := fakePin("GPIO22", 22)
	cfg := Config{WaitTimeout: config.Duration{Duration: 50 * time.Millisecond},
		Pins: []PinConfig{{Pin: "GPIO22", Sensor: "lane4-beam", Lane: "4", Edge: "falling"}}}
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	w, err := Start(cfg, Options{Store: st, Lookup: func(string) pgpio.PinIO { return pin },
		Now: tickClock(t0, 20*time.Millisecond), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		pin.EdgesChan <- pgpio.Low
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil { // Stop appends what is queued first
		t.Fatal(err)
	}
	d, _ := st.DescribeStream("gpio")
	res, err := st.Read(context.Background(), stream.ReadRequest{Stream: "gpio", ShardID: d.Shards[0].ShardID})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 50 {
		t.Fatalf("%d records, want 50", len(res.Records))
	}
	for i, r := range res.Records {
		var ev Event
		if err := json.Unmarshal(r.Data, &ev); err != nil || ev.Count != int64(i+1) || r.PartitionKey != "lane4-beam" || ev.Lane != "4" {
			t.Fatalf("record %d: %s key %q (%v)", i, r.Data, r.PartitionKey, err)
		}
	}
}
