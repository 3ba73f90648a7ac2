package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Options are what Start needs besides the config.
type Options struct {
	// Store receives the records. Required.
	Store Appender
	// Metrics, if set, gets the kaiten_mqtt_* series.
	Metrics prometheus.Registerer
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Fallback lets the embedded broker move to a free port when
	// Config.Embedded.Addr is taken (set it when the address is the
	// default, not one the operator asked for).
	Fallback bool
}

// Ingest is a running MQTT ingest. Its methods are safe for concurrent use.
type Ingest struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	w      *writer
	cancel context.CancelFunc
	broker *broker
	sub    *subscriber

	stopOnce sync.Once
	stopErr  error
}

// describer is implemented by *stream.Store; Start uses it, when
// available, to check that every target stream exists.
type describer interface {
	DescribeStream(name string) (stream.StreamDescription, error)
}

// Start validates cfg (see Config.Normalize, which it calls with storeID)
// and starts ingest: the embedded broker when cfg.Broker is empty, else a
// subscriber on the external broker (connecting in the background, so an
// unreachable broker does not stop the gateway). It does not block.
func Start(cfg Config, storeID string, o Options) (*Ingest, error) {
	if o.Store == nil {
		return nil, errors.New("mqtt: no store")
	}
	if err := cfg.Normalize(storeID); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if d, ok := o.Store.(describer); ok {
		check := map[string]string{cfg.DeadLetterStream: "mqtt.deadletter_stream"}
		for i, r := range cfg.Routes {
			check[r.Stream] = fmt.Sprintf("mqtt.routes[%d].stream", i)
		}
		for s, key := range check {
			if _, err := d.DescribeStream(s); err != nil {
				return nil, fmt.Errorf("%s: stream %q: %w (add it to the streams section)", key, s, err)
			}
		}
	}
	rt, err := newRouter(&cfg)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, fmt.Errorf("mqtt: metrics: %w", err)
	}
	in := &Ingest{cfg: cfg, log: log, m: m}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	in.w = newWriter(o.Store, rt, cfg.Queue, int64(cfg.QueueBytes), cfg.Batch, log, m)
	go in.w.run(ctx)
	if cfg.Broker == "" {
		in.broker, err = startBroker(cfg.Embedded.Addr, o.Fallback, cfg.Embedded, in.w, log)
		if err != nil {
			in.w.stop()
			cancel()
			<-in.w.exited
			return nil, err
		}
		m.setConnected(true)
		m.isSubscribed.Store(true)
		log.Info("mqtt: embedded broker listening", "addr", in.broker.addr, "routes", len(cfg.Routes))
		return in, nil
	}
	in.sub, err = startSubscriber(ctx, &in.cfg, in.w, log, m)
	if err != nil {
		in.w.stop()
		cancel()
		<-in.w.exited
		return nil, err
	}
	log.Info("mqtt: subscribing on external broker", "broker", redact(cfg.Broker), "client_id", cfg.ClientID, "routes", len(cfg.Routes))
	return in, nil
}

// Addr is the embedded broker's listen address (host:port), "" when an
// external broker is used.
func (in *Ingest) Addr() string {
	if in.broker == nil {
		return ""
	}
	return in.broker.addr
}

// BrokerURL is where a publisher (the simulator) reaches the broker.
func (in *Ingest) BrokerURL() string {
	if in.broker != nil {
		return "tcp://" + in.broker.addr
	}
	return in.cfg.Broker
}

// Credentials returns a username and password that a local publisher
// (the simulator) can use on the embedded broker: the first configured
// user, or empty strings when the broker accepts anyone.
func (in *Ingest) Credentials() (username, password string) {
	if in.broker == nil || len(in.cfg.Embedded.Users) == 0 {
		return "", ""
	}
	u := in.cfg.Embedded.Users[0]
	return u.Username, u.Password
}

// Status is the state shown on the status board as "mqtt".
func (in *Ingest) Status() Status {
	s := in.m.status()
	if in.broker != nil {
		s.Mode, s.Broker = "embedded", in.broker.addr
	} else {
		s.Mode, s.Broker = "external", redact(in.cfg.Broker)
	}
	return s
}

// Stop stops taking messages, finishes the appends already queued (until
// ctx ends), acknowledges them, and closes the broker or the connection.
// Messages not appended by then stay unacknowledged and are sent again.
func (in *Ingest) Stop(ctx context.Context) error {
	in.stopOnce.Do(func() { in.stopErr = in.stop(ctx) })
	return in.stopErr
}

func (in *Ingest) stop(ctx context.Context) error {
	in.w.stop()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			in.cancel()
		case <-done:
		}
	}()
	<-in.w.exited
	close(done)
	var err error
	if in.sub != nil {
		in.sub.close()
	}
	if in.broker != nil {
		// Every verdict is in: send the PUBACKs still owed before closing.
		// Those not sent by the time ctx ends are not an error: the
		// clients send those messages again.
		if ferr := in.broker.hook.flush(ctx); ferr != nil {
			in.log.Warn("mqtt: stopped before every stored message was acknowledged; publishers will resend them", "err", ferr)
		}
		err = in.broker.close()
	}
	in.cancel()
	in.m.setConnected(false)
	return err
}
