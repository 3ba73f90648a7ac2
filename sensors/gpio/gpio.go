// Package gpio turns edges on GPIO input lines (IR break-beams, reed
// switches on the conveyor lanes) into records in the gpio stream, through
// periph.io. Each configured pin gets a goroutine that calls WaitForEdge
// in a loop with a finite timeout (drivers disagree on what "forever" is),
// debounces in software, and interprets edges as passes (counted), pulses
// (timed) or level changes. A separate writer appends the records, so a
// slow append never delays edge timestamps.
package gpio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"

	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Defaults for zero config values.
const (
	DefaultStream      = stream.NameGPIO
	DefaultWaitTimeout = time.Second
	DefaultDebounce    = 5 * time.Millisecond
	DefaultQueue       = 1024
)

// Event kinds.
const (
	KindPass  = "pass"  // every accepted active edge counts one pass
	KindPulse = "pulse" // active then inactive: one record with the duration
	KindLevel = "level" // every accepted change of level
)

// Config is the gpio section. With no pins, nothing is started.
type Config struct {
	// Stream receives the events. Default "gpio".
	Stream string `yaml:"stream"`
	// WaitTimeout bounds each WaitForEdge call (and so how long Stop
	// takes). Default 1s.
	WaitTimeout config.Duration `yaml:"wait_timeout"`
	// Pins to watch.
	Pins []PinConfig `yaml:"pins"`
}

// PinConfig is one entry of gpio.pins.
type PinConfig struct {
	// Pin is the periph.io name, e.g. GPIO17. Required.
	Pin string `yaml:"pin"`
	// Sensor names the sensor; it is the record's partition key. Default
	// the pin name.
	Sensor string `yaml:"sensor"`
	// Lane is the conveyor lane, copied into records; optional.
	Lane string `yaml:"lane"`
	// Pull is up (default), down or none.
	Pull string `yaml:"pull"`
	// Edge is rising, falling or both (default).
	Edge string `yaml:"edge"`
	// Debounce: edges closer than this to the last accepted edge are
	// ignored (an edge exactly Debounce later is accepted). Default 5ms.
	Debounce config.Duration `yaml:"debounce"`
	// Kind is pass (default), pulse or level.
	Kind string `yaml:"kind"`
	// Active is the level that means "something is there": low (default,
	// a beam broken on a pulled-up line) or high.
	Active string `yaml:"active"`
}

// Normalize fills defaults and validates; errors name the key.
func (c *Config) Normalize() error {
	var errs []error
	bad := func(key, f string, a ...any) { errs = append(errs, config.Errorf("gpio."+key, f, a...)) }
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.WaitTimeout.Duration == 0 {
		c.WaitTimeout.Duration = DefaultWaitTimeout
	}
	seen := map[string]bool{}
	for i := range c.Pins {
		p := &c.Pins[i]
		k := fmt.Sprintf("pins[%d]", i)
		if p.Pin == "" {
			bad(k+".pin", "must not be empty (e.g. GPIO17)")
		} else if seen[p.Pin] {
			bad(k+".pin", "%s is listed twice", p.Pin)
		}
		seen[p.Pin] = true
		if p.Sensor == "" {
			p.Sensor = p.Pin
		}
		if len(p.Sensor) > stream.MaxPartitionKeyLen {
			bad(k+".sensor", "longer than %d characters", stream.MaxPartitionKeyLen)
		}
		def := func(v *string, d string, allowed ...string) bool {
			if *v == "" {
				*v = d
			}
			for _, a := range allowed {
				if *v == a {
					return true
				}
			}
			return false
		}
		if !def(&p.Pull, "up", "up", "down", "none") {
			bad(k+".pull", "%q: want up, down or none", p.Pull)
		}
		if !def(&p.Edge, "both", "rising", "falling", "both") {
			bad(k+".edge", "%q: want rising, falling or both", p.Edge)
		}
		if !def(&p.Kind, KindPass, KindPass, KindPulse, KindLevel) {
			bad(k+".kind", "%q: want pass, pulse or level", p.Kind)
		}
		if !def(&p.Active, "low", "low", "high") {
			bad(k+".active", "%q: want low or high", p.Active)
		}
		if p.Kind == KindPulse && p.Edge != "both" {
			bad(k+".edge", "%q: a pulse needs both edges", p.Edge)
		}
		if p.Debounce.Duration == 0 {
			p.Debounce.Duration = DefaultDebounce
		}
	}
	return errors.Join(errs...)
}

func (p *PinConfig) pull() pgpio.Pull {
	switch p.Pull {
	case "down":
		return pgpio.PullDown
	case "none":
		return pgpio.Float
	}
	return pgpio.PullUp
}

func (p *PinConfig) edge() pgpio.Edge {
	switch p.Edge {
	case "rising":
		return pgpio.RisingEdge
	case "falling":
		return pgpio.FallingEdge
	}
	return pgpio.BothEdges
}

func (p *PinConfig) active() pgpio.Level { return p.Active == "high" }

// Event is the JSON of a record in the gpio stream (the team's format).
type Event struct {
	Pin        string   `json:"pin"`
	Sensor     string   `json:"sensor"`
	Lane       string   `json:"lane,omitempty"`
	Kind       string   `json:"kind"`
	Count      int64    `json:"count"`
	DurationMS *float64 `json:"duration_ms,omitempty"`
	Level      string   `json:"level"`
	TS         string   `json:"ts"`
}

func levelName(l pgpio.Level) string {
	if l {
		return "high"
	}
	return "low"
}

// interpreter turns timestamped edges of one pin into events. It is pure
// (no clock, no pin) so that debounce edges can be tested exactly.
type interpreter struct {
	cfg     PinConfig
	last    time.Time // last accepted edge
	have    bool
	level   pgpio.Level // level after the last accepted edge
	start   time.Time   // pulse start
	inPulse bool
	count   int64
	bounces int64
}

func newInterpreter(cfg PinConfig, initial pgpio.Level) *interpreter {
	return &interpreter{cfg: cfg, level: initial}
}

// edge handles an edge at t after which the line reads lvl. It returns an
// event, or ok false when the edge is a bounce or means nothing.
func (in *interpreter) edge(t time.Time, lvl pgpio.Level) (ev Event, ok bool) {
	if in.have && t.Sub(in.last) < in.cfg.Debounce.Duration {
		in.bounces++
		return Event{}, false
	}
	in.have, in.last = true, t
	changed := lvl != in.level
	in.level = lvl
	ev = Event{Pin: in.cfg.Pin, Sensor: in.cfg.Sensor, Lane: in.cfg.Lane, Kind: in.cfg.Kind,
		Level: levelName(lvl), TS: t.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	active := lvl == in.cfg.active()
	switch in.cfg.Kind {
	case KindPass:
		if in.cfg.Edge == "both" && !active {
			return Event{}, false
		}
		in.count++
	case KindPulse:
		if active {
			if !in.inPulse { // a repeated active edge does not restart the pulse
				in.start, in.inPulse = t, true
			}
			return Event{}, false
		}
		if !in.inPulse {
			return Event{}, false
		}
		in.inPulse = false
		in.count++
		d := float64(t.Sub(in.start).Microseconds()) / 1000
		ev.DurationMS = &d
	case KindLevel:
		if !changed {
			return Event{}, false
		}
		in.count++
	}
	ev.Count = in.count
	return ev, true
}

// Appender is the part of the stream store the writer calls;
// *stream.Store implements it.
type Appender interface {
	Put(ctx context.Context, stream string, e stream.Entry) (stream.PutResult, error)
}

// Options are what Start needs besides the config.
type Options struct {
	Store   Appender
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	// Lookup finds a pin by name. Default: host.Init() once, then
	// gpioreg.ByName. Tests pass gpiotest pins.
	Lookup func(name string) pgpio.PinIO
	// Now is the clock stamped on edges. Default time.Now.
	Now func() time.Time
}

// PinStatus is one pin on the status board.
type PinStatus struct {
	Pin       string    `json:"pin"`
	Sensor    string    `json:"sensor"`
	Lane      string    `json:"lane,omitempty"`
	Kind      string    `json:"kind"`
	Found     bool      `json:"found"`
	Events    int64     `json:"events"`
	Bounces   int64     `json:"bounces"`
	LastEvent time.Time `json:"last_event,omitzero"`
}

// Status is the "gpio" entry of the status board.
type Status struct {
	Pins    []PinStatus `json:"pins"`
	Missing []string    `json:"missing,omitempty"`
	Stored  int64       `json:"stored"`
	Dropped int64       `json:"dropped"`
	Error   string      `json:"error,omitempty"`
}

type watched struct {
	cfg     PinConfig
	pin     pgpio.PinIO
	events  atomic.Int64
	bounces atomic.Int64
	last    atomic.Int64
}

// Watcher is a running set of pin watchers. Methods are safe for concurrent use.
type Watcher struct {
	cfg     Config
	pins    []*watched
	missing []string
	initErr string
	q       chan Event
	stored  atomic.Int64
	dropped atomic.Int64
	cancel  context.CancelFunc // the watchers
	wcancel context.CancelFunc // the writer
	wg      sync.WaitGroup
	wdone   chan struct{}

	mEvents  *prometheus.CounterVec
	mBounces *prometheus.CounterVec
	mDropped prometheus.Counter
	mStored  prometheus.Counter
}

var (
	hostOnce sync.Once
	hostErr  error
)

func defaultLookup(name string) pgpio.PinIO {
	hostOnce.Do(func() { _, hostErr = host.Init() })
	if hostErr != nil {
		return nil
	}
	return gpioreg.ByName(name)
}

// Start opens the configured pins and watches them until Stop. Pins that
// this machine does not have are logged by name and skipped; the gateway
// keeps running. cfg must be normalized and have at least one pin.
func Start(cfg Config, o Options) (*Watcher, error) {
	if o.Store == nil {
		return nil, errors.New("gpio: no store")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	lookup := o.Lookup
	if lookup == nil {
		lookup = defaultLookup
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	w := &Watcher{cfg: cfg, q: make(chan Event, DefaultQueue), wdone: make(chan struct{}),
		mEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_gpio_events_total",
			Help: "GPIO events produced, by pin and kind."}, []string{"pin", "kind"}),
		mBounces: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_gpio_bounces_total",
			Help: "Edges ignored by software debounce, by pin."}, []string{"pin"}),
		mDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_gpio_dropped_total",
			Help: "GPIO events dropped because the append queue was full."}),
		mStored: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_gpio_stored_total",
			Help: "GPIO events durably appended."}),
	}
	if o.Metrics != nil {
		for _, c := range []prometheus.Collector{w.mEvents, w.mBounces, w.mDropped, w.mStored} {
			if err := o.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("gpio: metrics: %w", err)
			}
		}
	}
	for _, pc := range cfg.Pins {
		p := lookup(pc.Pin)
		if p == nil {
			w.missing = append(w.missing, pc.Pin)
			w.pins = append(w.pins, &watched{cfg: pc})
			continue
		}
		if err := p.In(pc.pull(), pc.edge()); err != nil {
			log.Error("gpio: cannot set up pin; skipping it", "pin", pc.Pin, "err", err)
			w.missing = append(w.missing, pc.Pin)
			w.pins = append(w.pins, &watched{cfg: pc})
			continue
		}
		w.pins = append(w.pins, &watched{cfg: pc, pin: p})
	}
	if len(w.missing) > 0 {
		msg := "gpio: this machine has no such GPIO pins (no GPIO driver, or wrong names); they are not watched, the gateway keeps running its other sources"
		if hostErr != nil {
			w.initErr = hostErr.Error()
		}
		log.Warn(msg, "pins", strings.Join(w.missing, ", "), "host_init_err", w.initErr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	wctx, wcancel := context.WithCancel(context.Background())
	w.wcancel = wcancel
	go w.write(wctx, o.Store, log)
	for _, wp := range w.pins {
		if wp.pin == nil {
			continue
		}
		w.wg.Add(1)
		go w.watch(ctx, wp, now, log)
		log.Info("gpio: watching pin", "pin", wp.cfg.Pin, "sensor", wp.cfg.Sensor, "kind", wp.cfg.Kind, "edge", wp.cfg.Edge, "debounce", wp.cfg.Debounce.Duration)
	}
	return w, nil
}

func (w *Watcher) watch(ctx context.Context, wp *watched, now func() time.Time, log *slog.Logger) {
	defer w.wg.Done()
	in := newInterpreter(wp.cfg, wp.pin.Read())
	for ctx.Err() == nil {
		if !wp.pin.WaitForEdge(w.cfg.WaitTimeout.Duration) {
			continue
		}
		t := now()
		b := in.bounces
		ev, ok := in.edge(t, wp.pin.Read())
		if in.bounces != b {
			wp.bounces.Add(1)
			w.mBounces.WithLabelValues(wp.cfg.Pin).Inc()
		}
		if !ok {
			continue
		}
		wp.events.Add(1)
		wp.last.Store(t.UnixNano())
		w.mEvents.WithLabelValues(wp.cfg.Pin, wp.cfg.Kind).Inc()
		select {
		case w.q <- ev:
		default:
			w.dropped.Add(1)
			w.mDropped.Inc()
			log.Warn("gpio: append queue full; event dropped", "pin", wp.cfg.Pin)
		}
	}
}

// write appends events in order, retrying retriable store errors.
func (w *Watcher) write(ctx context.Context, st Appender, log *slog.Logger) {
	defer close(w.wdone)
	for {
		var ev Event
		select {
		case e, ok := <-w.q:
			if !ok {
				return
			}
			ev = e
		case <-ctx.Done():
			return
		}
		data, _ := json.Marshal(ev)
		backoff := 50 * time.Millisecond
		for {
			_, err := st.Put(ctx, w.cfg.Stream, stream.Entry{PartitionKey: ev.Sensor, Data: data})
			if err == nil {
				w.stored.Add(1)
				w.mStored.Inc()
				break
			}
			if errors.Is(err, stream.ErrInvalidArgument) || errors.Is(err, stream.ErrStreamNotFound) || ctx.Err() != nil {
				log.Error("gpio: event not stored", "pin", ev.Pin, "err", err)
				break
			}
			log.Warn("gpio: append failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	}
}

// Status reports the pins and counters.
func (w *Watcher) Status() Status {
	s := Status{Missing: w.missing, Stored: w.stored.Load(), Dropped: w.dropped.Load(), Error: w.initErr}
	for _, wp := range w.pins {
		ps := PinStatus{Pin: wp.cfg.Pin, Sensor: wp.cfg.Sensor, Lane: wp.cfg.Lane, Kind: wp.cfg.Kind,
			Found: wp.pin != nil, Events: wp.events.Load(), Bounces: wp.bounces.Load()}
		if t := wp.last.Load(); t != 0 {
			ps.LastEvent = time.Unix(0, t).UTC()
		}
		s.Pins = append(s.Pins, ps)
	}
	return s
}

// Stop ends the watchers (within one WaitTimeout), lets the writer append
// the queued events until ctx ends, and returns.
func (w *Watcher) Stop(ctx context.Context) error {
	w.cancel()
	exited := make(chan struct{})
	go func() { w.wg.Wait(); close(exited) }()
	select {
	case <-exited:
		close(w.q) // no sender is left: the writer drains and returns
		select {
		case <-w.wdone:
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	w.wcancel()
	<-w.wdone
	for _, wp := range w.pins {
		if wp.pin != nil {
			_ = wp.pin.Halt()
		}
	}
	return ctx.Err()
}
