package main

// Sensor ingest: the mqtt, gpio and sim components (sensors/...).
//
//	mqtt (Order 10): embedded broker (default 127.0.0.1:1883, falling back to
//	     a free port if the default is taken) or a subscriber on --mqtt-broker;
//	     writes to streams plates and deadletter by default.
//	gpio (Order 10): only when gpio.pins is set; writes to stream gpio.
//	sim  (Order 20): publishes to the gateway's broker; on by default with
//	     the embedded broker, off with an external one, off with --no-sim.
//	     With no real gpio pins it also drives simulated break-beams
//	     (SIM-LANE1..N) through the real gpio watcher into stream gpio.

import (
	"context"
	"flag"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/app"
	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/sensors/gpio"
	"github.com/kaiten-edge/kaiten/sensors/mqtt"
	"github.com/kaiten-edge/kaiten/sensors/sim"
)

// ingestConfig is what the three components decode from their sections
// and flags.
type ingestConfig struct {
	mqtt       mqtt.Config
	gpio       gpio.Config
	sim        sim.Config
	flagBroker string
	flagAddr   string
	noSim      bool
}

// brokerLink hands the broker the mqtt component started (or connects to)
// to the simulator, which starts after it and publishes there.
type brokerLink struct {
	mu       sync.Mutex
	url      string
	embedded bool
	user     string // credentials for the embedded broker, if it has users
	password string
}

func (l *brokerLink) set(url string, embedded bool, user, password string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.url, l.embedded, l.user, l.password = url, embedded, user, password
}

func (l *brokerLink) get() (url string, embedded bool, user, password string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.url, l.embedded, l.user, l.password
}

func init() {
	ingest := &ingestConfig{}
	broker := &brokerLink{}
	app.Register(app.Component{
		Name:  "mqtt",
		Order: 10,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ingest.flagBroker, "mqtt-broker", "", "external MQTT broker URL, e.g. tcp://127.0.0.1:1883 (overrides mqtt.broker; default: run the embedded broker)")
			fs.StringVar(&ingest.flagAddr, "mqtt-addr", "", "listen address HOST:PORT of the embedded MQTT broker (overrides mqtt.embedded.addr; default 127.0.0.1:1883)")
			fs.BoolVar(&ingest.noSim, "no-sim", false, "do not run the conveyor-belt simulator")
		},
		Decode: func(node *yaml.Node) error {
			ingest.mqtt = mqtt.Config{} // a second Load (tests, firstboot) starts afresh
			if err := config.Decode("mqtt", node, &ingest.mqtt); err != nil {
				return err
			}
			check := ingest.mqtt     // validated again with the real store id at start
			if check.Routes != nil { // do not fill defaults into the shared slice
				check.Routes = append(make([]mqtt.Route, 0, len(check.Routes)), check.Routes...)
			}
			// Flags were parsed first: check-config judges what run would start.
			if ingest.flagBroker != "" {
				check.Broker = ingest.flagBroker
			}
			if ingest.flagAddr != "" {
				check.Embedded.Addr = ingest.flagAddr
			}
			return check.Normalize("check")
		},
		Streams: func(map[string]bool) ([]app.StreamRef, string) {
			routes, def := ingest.mqtt.Routes, ingest.mqtt.Routes == nil
			if def {
				routes = mqtt.DefaultRoutes()
			}
			dl := ingest.mqtt.DeadLetterStream
			refs := []app.StreamRef{{Key: "mqtt.deadletter_stream", Stream: dl}}
			if dl == "" {
				refs[0] = app.StreamRef{Key: "mqtt.deadletter_stream", Stream: mqtt.DefaultDeadLetterStream, Default: true}
			}
			for i, r := range routes {
				refs = append(refs, app.StreamRef{Key: fmt.Sprintf("mqtt.routes[%d].stream", i), Stream: r.Stream, Default: def})
			}
			return refs, ""
		},
		Start: func(ctx context.Context, env *app.Env) (app.StopFunc, error) {
			cfg := ingest.mqtt
			if ingest.flagBroker != "" {
				cfg.Broker = ingest.flagBroker
			}
			fallback := cfg.Embedded.Addr == ""
			if ingest.flagAddr != "" {
				cfg.Embedded.Addr, fallback = ingest.flagAddr, false
			}
			in, err := mqtt.Start(cfg, env.StoreID, mqtt.Options{Store: env.Store, Metrics: env.Metrics,
				Logger: env.Logger, Fallback: fallback})
			if err != nil {
				return nil, err
			}
			user, password := in.Credentials()
			broker.set(in.BrokerURL(), in.Addr() != "", user, password)
			if in.Addr() != "" {
				env.Announce("MQTT broker", "tcp://"+in.Addr()+" (embedded)")
			}
			env.Status.Set("mqtt", func() any { return in.Status() })
			return func(ctx context.Context) error {
				env.Status.Remove("mqtt")
				return in.Stop(ctx)
			}, nil
		},
	})
	app.Register(app.Component{
		Name:  "gpio",
		Order: 10,
		Decode: func(node *yaml.Node) error {
			ingest.gpio = gpio.Config{}
			if err := config.Decode("gpio", node, &ingest.gpio); err != nil {
				return err
			}
			return ingest.gpio.Normalize()
		},
		Streams: func(map[string]bool) ([]app.StreamRef, string) {
			if len(ingest.gpio.Pins) == 0 {
				return nil, ""
			}
			return []app.StreamRef{{Key: "gpio.stream", Stream: ingest.gpio.Stream}}, ""
		},
		Start: func(ctx context.Context, env *app.Env) (app.StopFunc, error) {
			if len(ingest.gpio.Pins) == 0 {
				return nil, nil
			}
			w, err := gpio.Start(ingest.gpio, gpio.Options{Store: env.Store, Metrics: env.Metrics, Logger: env.Logger})
			if err != nil {
				return nil, err
			}
			env.Status.Set("gpio", func() any { return w.Status() })
			return func(ctx context.Context) error {
				env.Status.Remove("gpio")
				return w.Stop(ctx)
			}, nil
		},
	})
	// The simulated beams are a demo default when sim.gpio is not set and
	// no real pins are: they stand down when the gpio stream is not declared.
	var beamsIdle bool
	app.Register(app.Component{
		Name:  "sim",
		Order: 20,
		Decode: func(node *yaml.Node) error {
			ingest.sim, beamsIdle = sim.Config{}, false
			if err := config.Decode("sim", node, &ingest.sim); err != nil {
				return err
			}
			check := ingest.sim
			return check.Normalize("check")
		},
		Streams: func(declared map[string]bool) ([]app.StreamRef, string) {
			if g := ingest.sim.GPIO; g != nil {
				if *g {
					return []app.StreamRef{{Key: "sim.gpio", Stream: gpio.DefaultStream, Default: true}}, ""
				}
				return nil, ""
			}
			beamsIdle = len(ingest.gpio.Pins) == 0 && !declared[gpio.DefaultStream]
			if beamsIdle {
				return nil, "no simulated beams: stream \"" + gpio.DefaultStream + "\" is not in streams (set sim.gpio to choose)"
			}
			return nil, ""
		},
		Start: func(ctx context.Context, env *app.Env) (app.StopFunc, error) {
			cfg := ingest.sim
			if err := cfg.Normalize(env.StoreID); err != nil {
				return nil, err
			}
			url, embedded, user, password := broker.get()
			if cfg.Broker == "" && cfg.Username == "" {
				cfg.Username, cfg.Password = user, password
			}
			on := embedded
			if cfg.Enabled != nil {
				on = *cfg.Enabled
			}
			if ingest.noSim || !on {
				env.Logger.Info("sim: simulator off", "no_sim_flag", ingest.noSim)
				return nil, nil
			}
			opts := sim.Options{Metrics: env.Metrics, Logger: env.Logger}
			var beams *gpio.Watcher
			realPins := len(ingest.gpio.Pins) > 0
			if (cfg.GPIO == nil && !realPins && !beamsIdle) || (cfg.GPIO != nil && *cfg.GPIO) {
				var err error
				beams, opts.OnBeam, err = simBeams(cfg.Lanes, realPins, env)
				if err != nil {
					return nil, err
				}
			}
			s, err := sim.Start(cfg, url, opts)
			if err != nil {
				if beams != nil {
					_ = beams.Stop(ctx)
				}
				return nil, err
			}
			env.Status.Set("sim", func() any { return s.Status() })
			return func(ctx context.Context) error {
				env.Status.Remove("sim")
				s.Stop()
				if beams != nil {
					if !realPins {
						env.Status.Remove("gpio")
					} else {
						env.Status.Remove("gpio-sim")
					}
					return beams.Stop(ctx)
				}
				return nil
			}, nil
		},
	})
}

// simBeams starts the real gpio watcher on the simulator's beams
// SIM-LANE1.. (one per lane, sensor laneN-beam) and returns the function
// the simulator calls when a plate breaks a lane's beam. realPins says
// that a gpio section watches real pins too.
func simBeams(lanes int, realPins bool, env *app.Env) (*gpio.Watcher, func(string), error) {
	beams := sim.NewBeams(lanes)
	cfg, err := beams.GPIOConfig()
	if err != nil {
		return nil, nil, err
	}
	// Real pins (sim.gpio forced on next to a gpio section) keep the gpio
	// metrics and status name; the simulated ones then go without metrics
	// under "gpio-sim".
	opts := gpio.Options{Store: env.Store, Metrics: env.Metrics, Logger: env.Logger, Lookup: beams.Lookup}
	board := "gpio"
	if realPins {
		opts.Metrics, board = nil, "gpio-sim"
	}
	w, err := gpio.Start(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	env.Status.Set(board, func() any { return w.Status() })
	return w, beams.Break, nil
}
