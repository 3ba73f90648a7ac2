package main

// The systemd component: READY=1 once every other component started,
// WATCHDOG=1 pings while /healthz answers, STOPPING=1 when a stop begins.
// Outside systemd ($NOTIFY_SOCKET unset) it does nothing.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/firmware/sdnotify"
	"github.com/kaiten-edge/kaiten/gateway/app"
	"github.com/kaiten-edge/kaiten/gateway/config"
)

// systemdConfig is the systemd section.
type systemdConfig struct {
	// HealthTimeout bounds the /healthz self-check made before each
	// watchdog ping; a failed or slow check withholds the ping. Default: a
	// quarter of the unit's WatchdogSec.
	HealthTimeout config.Duration `yaml:"health_timeout"`
}

var systemdCfg systemdConfig

func init() {
	app.Register(app.Component{
		Name: "systemd",
		// Highest order: starts last, so READY=1 means everything else has
		// started; stops first, so STOPPING=1 goes out as the stop begins.
		Order: 1000,
		Decode: func(n *yaml.Node) error {
			systemdCfg = systemdConfig{}
			if err := config.Decode("systemd", n, &systemdCfg); err != nil {
				return err
			}
			if d := systemdCfg.HealthTimeout.Duration; d != 0 && d < 10*time.Millisecond {
				return config.Errorf("systemd.health_timeout", "%s: want at least 10ms, or 0 for the default", d)
			}
			return nil
		},
		Start: startSystemd,
	})
}

func startSystemd(ctx context.Context, env *app.Env) (app.StopFunc, error) {
	url := "http://" + dialable(env.HTTPAddr) + "/healthz"
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	check := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("healthz: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	}
	svc := sdnotify.Start(ctx, sdnotify.Options{
		Check: check, CheckTimeout: systemdCfg.HealthTimeout.Duration,
		Status: "serving on " + env.HTTPAddr, Logger: env.Logger.With("component", "systemd"),
	})
	pings := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kaiten_systemd_watchdog_pings_total",
		Help: "WATCHDOG=1 notifications sent to systemd.",
	}, func() float64 { return float64(svc.State().Pings) })
	skipped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kaiten_systemd_watchdog_skipped_total",
		Help: "Watchdog pings withheld because the /healthz self-check failed.",
	}, func() float64 { return float64(svc.State().Skipped) })
	for _, c := range []prometheus.Collector{pings, skipped} {
		if err := env.Metrics.Register(c); err != nil {
			svc.Stop()
			return nil, fmt.Errorf("systemd: metrics: %w", err)
		}
	}
	env.Status.Set("systemd", func() any { return svc.State() })
	return func(context.Context) error {
		svc.Stop()
		return nil
	}, nil
}

// dialable turns a listen address such as 0.0.0.0:8080 or [::]:8080 into
// one a local client can dial.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
