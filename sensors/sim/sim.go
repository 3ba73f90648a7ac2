package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kaiten-edge/kaiten/gateway/config"
)

// Defaults for zero config values.
const (
	DefaultLanes     = 6
	DefaultRate      = 0.5 // plates placed per second per lane at peak
	DefaultFaults    = 0.01
	DefaultHeartbeat = 10 * time.Second
	DefaultTick      = 100 * time.Millisecond
)

// Config is the sim section.
type Config struct {
	// Enabled: default on with the embedded broker (the demo) and off with
	// an external broker, so a production config never gets fake plates
	// unless it asks. --no-sim turns it off.
	Enabled *bool `yaml:"enabled"`
	// Broker is the MQTT broker URL to publish to. Default the gateway's
	// own broker (the embedded one, or mqtt.broker).
	Broker string `yaml:"broker"`
	// Username and Password for the broker; default none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Store is the store id in topics and payloads. Default store_id.
	Store string `yaml:"store"`
	// Lanes is the number of conveyor lanes. Default 6.
	Lanes int `yaml:"lanes"`
	// Rate is plates placed per second per lane at peak hours (lunch,
	// dinner); other hours get a share of it. Default 0.5, which gives
	// about 3 plate messages per second per lane at peak and 1 at night.
	Rate float64 `yaml:"rate"`
	// Faults is the chance per sensor per heartbeat of a 30-120 s fault.
	// Default 0.01; negative turns faults off.
	Faults float64 `yaml:"faults"`
	// Heartbeat is the sensor status interval. Default 10s.
	Heartbeat config.Duration `yaml:"heartbeat"`
	// Seed makes runs repeatable; 0 picks one from the clock.
	Seed uint64 `yaml:"seed"`
	// Speed runs simulated time faster than the clock (the belt, the
	// heartbeats and the hour of day), for load tests: 100 gives about
	// 2,000 messages per second with 6 lanes at peak. Default 1, at most 1000.
	Speed float64 `yaml:"speed"`
	// GPIO also feeds each lane's first IR beam into simulated GPIO pins
	// (SIM-LANE1, ...; sensor laneN-beam) watched by the real gpio
	// watcher, so stream gpio gets traffic too. Default: on when the gpio
	// section lists no real pins.
	GPIO *bool `yaml:"gpio"`
}

// Normalize fills defaults and validates; errors name the key.
func (c *Config) Normalize(storeID string) error {
	var errs []error
	if c.Store == "" {
		c.Store = storeID
	}
	if c.Lanes < 0 || c.Lanes > 64 {
		errs = append(errs, config.Errorf("sim.lanes", "%d: want 1 to 64", c.Lanes))
	} else if c.Lanes == 0 {
		c.Lanes = DefaultLanes
	}
	if c.Rate < 0 || c.Rate > 1000 {
		errs = append(errs, config.Errorf("sim.rate", "%g: want 0 to 1000 plates per second per lane", c.Rate))
	} else if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Faults > 1 {
		errs = append(errs, config.Errorf("sim.faults", "%g: want a probability up to 1", c.Faults))
	} else if c.Faults == 0 {
		c.Faults = DefaultFaults
	} else if c.Faults < 0 {
		c.Faults = 0
	}
	if c.Speed < 0 || c.Speed > 1000 {
		errs = append(errs, config.Errorf("sim.speed", "%g: want 0 to 1000", c.Speed))
	} else if c.Speed == 0 {
		c.Speed = 1
	}
	if c.Heartbeat.Duration == 0 {
		c.Heartbeat.Duration = DefaultHeartbeat
	}
	return errors.Join(errs...)
}

// Status is the "sim" entry of the status board.
type Status struct {
	Broker    string `json:"broker"`
	Store     string `json:"store"`
	Lanes     int    `json:"lanes"`
	Connected int    `json:"connected_lanes"`
	Published int64  `json:"published"`
	Failed    int64  `json:"failed"`
}

// Sim is a running simulator.
type Sim struct {
	cfg       Config
	clients   []paho.Client
	published atomic.Int64
	failed    atomic.Int64
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	pubs      prometheus.Counter
}

// Options are Start's optional parts.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics, if set, gets kaiten_sim_published_total.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	// OnBeam, if set, is called (from the simulator's goroutine; it must not
	// block) with the lane name each time a plate breaks the lane's first
	// IR beam, so that simulated GPIO lines can see it too.
	OnBeam func(lane string)
}

// Start connects one MQTT client per lane (as a lane's sensor node would)
// to broker and publishes in real time until Stop. cfg must be normalized.
func Start(cfg Config, broker string, o Options) (*Sim, error) {
	now, reg, log := o.Now, o.Metrics, o.Logger
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.Broker != "" {
		broker = cfg.Broker
	}
	if broker == "" {
		return nil, errors.New("sim: no broker to publish to")
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s := &Sim{cfg: cfg, pubs: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_sim_published_total",
		Help: "MQTT messages the simulator published and the broker acknowledged."})}
	if reg != nil {
		if err := reg.Register(s.pubs); err != nil {
			return nil, fmt.Errorf("sim: metrics: %w", err)
		}
	}
	belt := NewBelt(cfg.Store, cfg.Lanes, cfg.Rate, cfg.Faults, cfg.Heartbeat.Duration, seed)
	s.cfg.Broker = broker
	for _, ln := range belt.Lanes() {
		o := paho.NewClientOptions().AddBroker(broker).
			SetClientID(fmt.Sprintf("kaiten-sim-%s-lane%s", cfg.Store, ln)).
			// Clean session off: publishes made while (re)connecting wait in
			// the client and go out once connected (with a clean session
			// paho drops them and never completes their tokens).
			SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
			SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(10 * time.Second).
			SetKeepAlive(30 * time.Second)
		if cfg.Username != "" {
			o.SetUsername(cfg.Username).SetPassword(cfg.Password)
		}
		c := paho.NewClient(o)
		c.Connect()
		s.clients = append(s.clients, c)
	}
	lanes := belt.Lanes()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	queues := make([]chan []Message, len(s.clients))
	for i := range s.clients {
		queues[i] = make(chan []Message, 64)
		s.wg.Add(1)
		go s.publishLoop(ctx, s.clients[i], queues[i], log)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Keep each step at most 1s of simulated time (a twentieth of a
		// lap), however fast the simulation runs; 5ms ticks at the least.
		tick := max(DefaultTick/time.Duration(math.Ceil(cfg.Speed/10)), 5*time.Millisecond)
		t := time.NewTicker(tick)
		defer t.Stop()
		start := now()
		simNow := func() time.Time {
			return start.Add(time.Duration(float64(now().Sub(start)) * cfg.Speed))
		}
		last := start
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n := simNow()
			msgs := belt.Step(n, n.Sub(last))
			last = n
			for i, m := range msgs {
				if len(m) == 0 {
					continue
				}
				if o.OnBeam != nil {
					for _, x := range m {
						if x.Beam {
							o.OnBeam(lanes[i])
						}
					}
				}
				select {
				case queues[i] <- m:
				default: // the broker is slower than the belt: drop, as a sensor node would
					s.failed.Add(int64(len(m)))
				}
			}
		}
	}()
	log.Info("sim: conveyor-belt store publishing", "broker", broker, "store", cfg.Store, "lanes", cfg.Lanes, "rate", cfg.Rate, "speed", cfg.Speed)
	return s, nil
}

func (s *Sim) publishLoop(ctx context.Context, c paho.Client, q chan []Message, log *slog.Logger) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case msgs := <-q:
			// One tick's messages go out back to back (in order, QoS 1),
			// then the loop waits for their acknowledgements.
			toks := make([]paho.Token, len(msgs))
			for i, m := range msgs {
				toks[i] = c.Publish(m.Topic, 1, false, m.Payload)
			}
			for i, tok := range toks {
				timeout := time.NewTimer(time.Minute)
				select {
				case <-tok.Done():
				case <-timeout.C: // a sensor node gives up on a reading
				case <-ctx.Done():
					timeout.Stop()
					return
				}
				timeout.Stop()
				if err := tok.Error(); err != nil || !isDone(tok) {
					s.failed.Add(1)
					log.Debug("sim: publish failed", "topic", msgs[i].Topic, "err", err)
					continue
				}
				s.published.Add(1)
				s.pubs.Inc()
			}
		}
	}
}

// Status reports what the simulator has done.
func (s *Sim) Status() Status {
	st := Status{Broker: s.cfg.Broker, Store: s.cfg.Store, Lanes: s.cfg.Lanes,
		Published: s.published.Load(), Failed: s.failed.Load()}
	for _, c := range s.clients {
		if c.IsConnectionOpen() {
			st.Connected++
		}
	}
	return st
}

// Stop ends publishing and disconnects.
func (s *Sim) Stop() {
	s.cancel()
	s.wg.Wait()
	for _, c := range s.clients {
		c.Disconnect(100)
	}
}

func isDone(t paho.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}
