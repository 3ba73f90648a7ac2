package main

import (
	"context"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/dashboard"
	"github.com/kaiten-edge/kaiten/gateway/app"
	"github.com/kaiten-edge/kaiten/gateway/config"
)

// The dashboard: GET / (page), GET /dashboard/ (assets), GET /ws, GET
// /api/dashboard/... on the gateway's HTTP server. Config section
// "dashboard" (see dashboard/sample.yaml); KAITEN_DASHBOARD_TOKEN
// overrides dashboard.token so that a token need not sit in the file.
func init() {
	var cfg dashboard.Config
	app.Register(app.Component{
		Name:  "dashboard",
		Order: 50, // after sources and deliveries, so their status is on the board
		Decode: func(node *yaml.Node) error {
			cfg = dashboard.Config{}
			if err := config.Decode("dashboard", node, &cfg); err != nil {
				return err
			}
			if tok := os.Getenv("KAITEN_DASHBOARD_TOKEN"); tok != "" {
				cfg.Token = tok
			}
			return cfg.Validate()
		},
		Start: func(ctx context.Context, env *app.Env) (app.StopFunc, error) {
			if cfg.Disabled {
				env.Logger.Info("dashboard disabled")
				return nil, nil
			}
			s, err := dashboard.New(cfg, dashboard.Deps{Store: env.Store, Status: env.Status, Metrics: env.Metrics,
				Logger: env.Logger, StoreID: env.StoreID})
			if err != nil {
				return nil, err
			}
			s.Handle(env.Mux)
			s.Start(ctx)
			env.Announce("Dashboard", "http://"+env.HTTPAddr+"/")
			return s.Stop, nil
		},
	})
}
