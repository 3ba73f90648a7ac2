package main

// Sensor ingest: the mqtt, gpio and sim components (sensors/...).
//
//	mqtt (Order 10): embedded broker (default 127.0.0.1:1883, falling back to
//	     a free port if the default is taken) or a subscriber on --mqtt-broker;
//	     writes to streams plates and deadletter by default.
//	gpio (Order 10): only when gpio.pins is set; writes to stream gpio.
//	sim  (Order 20): publishes to the gateway's broker; on by default with
//	     the embedded broker, off with an external one, off with --no-sim.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/app"
	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/sensors/gpio"
	"github.com/kaiten-edge/kaiten/sensors/mqtt"
	"github.com/kaiten-edge/kaiten/sensors/sim"
)

var ingest struct {
	mqtt       mqtt.Config
	gpio       gpio.Config
	sim        sim.Config
	flagBroker string
	flagAddr   string
	noSim      bool

	mu        sync.Mutex
	brokerURL string // where the simulator publishes: set by the mqtt component
	embedded  bool
}

func init() {
	app.Register(app.Component{
		Name:  "mqtt",
		Order: 10,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ingest.flagBroker, "mqtt-broker", "", "external MQTT broker URL, e.g. tcp://127.0.0.1:1883 (overrides mqtt.broker; default: run the embedded broker)")
			fs.StringVar(&ingest.flagAddr, "mqtt-addr", "", "listen address HOST:PORT of the embedded MQTT broker (overrides mqtt.embedded.addr; default 127.0.0.1:1883)")
			fs.BoolVar(&ingest.noSim, "no-sim", false, "do not run the conveyor-belt simulator")
		},
		Decode: func(node *yaml.Node) error {
			if err := config.Decode("mqtt", node, &ingest.mqtt); err != nil {
				return err
			}
			check := ingest.mqtt // validated again with the real store id at start
			check.Routes = append([]mqtt.Route(nil), check.Routes...)
			return check.Normalize("check")
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
			ingest.mu.Lock()
			ingest.brokerURL, ingest.embedded = in.BrokerURL(), in.Addr() != ""
			ingest.mu.Unlock()
			if in.Addr() != "" {
				fmt.Fprintf(os.Stdout, "  MQTT broker: tcp://%s (embedded)\n", in.Addr())
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
			if err := config.Decode("gpio", node, &ingest.gpio); err != nil {
				return err
			}
			return ingest.gpio.Normalize()
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
	app.Register(app.Component{
		Name:  "sim",
		Order: 20,
		Decode: func(node *yaml.Node) error {
			if err := config.Decode("sim", node, &ingest.sim); err != nil {
				return err
			}
			check := ingest.sim
			return check.Normalize("check")
		},
		Start: func(ctx context.Context, env *app.Env) (app.StopFunc, error) {
			cfg := ingest.sim
			if err := cfg.Normalize(env.StoreID); err != nil {
				return nil, err
			}
			ingest.mu.Lock()
			broker, embedded := ingest.brokerURL, ingest.embedded
			ingest.mu.Unlock()
			on := embedded
			if cfg.Enabled != nil {
				on = *cfg.Enabled
			}
			if ingest.noSim || !on {
				env.Logger.Info("sim: simulator off", "no_sim_flag", ingest.noSim)
				return nil, nil
			}
			s, err := sim.Start(cfg, broker, nil, env.Metrics, env.Logger)
			if err != nil {
				return nil, err
			}
			env.Status.Set("sim", func() any { return s.Status() })
			return func(ctx context.Context) error {
				env.Status.Remove("sim")
				s.Stop()
				return nil
			}, nil
		},
	})
}
