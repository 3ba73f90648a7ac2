package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/analytics"
	"github.com/kaiten-edge/kaiten/gateway/app"
	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/status"
)

// Edge analytics: continuous SQL queries over the streams. Config section
// "analytics" (see gateway/analytics/sample.yaml); with no section the demo
// query plates_taken_per_minute runs over stream plates into plate-stats.
// Admin endpoint: GET/POST /api/queries, GET/DELETE /api/queries/{name}.
// KAITEN_ANALYTICS_TOKEN overrides analytics.token. Live results are on
// the status board under "analytics".
func init() {
	var cfg analytics.Config
	var demo bool // no queries key: the demo query
	app.Register(app.Component{
		Name:  "analytics",
		Order: 30, // after the sources, before the dashboard (Order 50) reads the board
		Decode: func(node *yaml.Node) error {
			cfg = analytics.Config{}
			if err := config.Decode("analytics", node, &cfg); err != nil {
				return err
			}
			demo = cfg.Queries == nil
			if tok := os.Getenv("KAITEN_ANALYTICS_TOKEN"); tok != "" {
				cfg.Token = tok
			}
			return cfg.Validate()
		},
		Streams: func(declared map[string]bool) ([]app.StreamRef, string) {
			if cfg.Disabled || cfg.Queries == nil {
				return nil, ""
			}
			refs := queryStreams(*cfg.Queries, demo)
			if demo {
				for _, r := range refs {
					if !declared[r.Stream] {
						cfg.Queries = &[]analytics.QueryConfig{}
						return nil, fmt.Sprintf("the demo query %s does not run: stream %q is not in streams (list queries under analytics.queries)",
							analytics.DemoQueryName, r.Stream)
					}
				}
			}
			return refs, ""
		},
		Start: func(ctx context.Context, env *app.Env) (app.StopFunc, error) {
			if cfg.Queries == nil { // Decode was not called (no config loading)
				if err := cfg.Validate(); err != nil {
					return nil, err
				}
			}
			if cfg.Disabled {
				env.Logger.Info("analytics disabled")
				return nil, nil
			}
			dir := cfg.StateDir
			if dir == "" {
				dir = filepath.Join(env.DataDir, "analytics")
			}
			m := analytics.NewManager(analytics.RunnerOptions{Store: env.Store, StateDir: dir,
				SaveInterval: cfg.SaveInterval.Duration, Metrics: analytics.NewMetrics(env.Metrics),
				Logger: env.Logger.With("component", "analytics")})
			if err := m.Start(ctx, *cfg.Queries); err != nil {
				_ = m.Stop(context.Background())
				return nil, err
			}
			m.Register(env.Mux, cfg.Token, cfg.AllowUnauthenticatedRemote)
			env.Status.Set(status.AnalyticsEntry, m.BoardStatus)
			return m.Stop, nil
		},
	})
}

// queryStreams lists the streams each query reads and writes, keyed as
// in the config. Queries are already validated (defaults filled).
func queryStreams(qs []analytics.QueryConfig, demo bool) []app.StreamRef {
	var refs []app.StreamRef
	for i, q := range qs {
		key := fmt.Sprintf("analytics.queries[%d]", i)
		if demo {
			key = "analytics.queries (the demo query " + q.Name + ")"
		}
		check := q
		if p, err := check.Normalize(key); err == nil {
			refs = append(refs, app.StreamRef{Key: key + ".sql", Stream: p.Source, Default: demo})
		}
		refs = append(refs,
			app.StreamRef{Key: key + ".output", Stream: q.Output, Default: demo},
			app.StreamRef{Key: key + ".late_output", Stream: q.LateOutput, Default: demo})
	}
	return refs
}
