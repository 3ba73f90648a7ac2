package main

// The Kinesis Data Streams compatible API on POST / of the HTTP address.

import (
	"context"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/app"
	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/kinesisapi"
)

func init() {
	var cfg kinesisapi.Config
	app.Register(app.Component{
		Name:  "kinesis",
		Order: 10,
		Decode: func(node *yaml.Node) error {
			cfg = kinesisapi.Config{}
			if err := config.Decode("kinesis", node, &cfg); err != nil {
				return err
			}
			return cfg.Validate()
		},
		Start: func(ctx context.Context, env *app.Env) (app.StopFunc, error) {
			if cfg.Disabled {
				env.Logger.Info("kinesis API disabled by kinesis.disabled")
				return nil, nil
			}
			if cfg.Auth.Region == "" {
				// Sign for the region the gateway's ARNs name.
				cfg.Auth.Region = env.Store.Region()
			}
			srv, err := kinesisapi.New(env.Store, kinesisapi.Options{Config: cfg, Logger: env.Logger, Metrics: env.Metrics, DataDir: env.DataDir})
			if err != nil {
				return nil, err
			}
			srv.Register(env.Mux)
			// SubscribeToShard streams last up to 5 minutes: end them as soon
			// as the daemon stops so that the HTTP server's shutdown does not
			// wait for them.
			go func() { <-ctx.Done(); srv.CloseSubscriptions() }()
			env.Status.Set("kinesis", func() any { return srv.Status() })
			env.Announce("Kinesis API", "http://"+env.HTTPAddr+"/ (aws --endpoint-url http://"+env.HTTPAddr+" kinesis ...)")
			env.Logger.Info("kinesis API serving", "endpoint", "http://"+env.HTTPAddr+"/", "auth", srv.Status().Auth)
			return func(context.Context) error {
				srv.CloseSubscriptions()
				env.Status.Remove("kinesis")
				return nil
			}, nil
		},
	})
}
