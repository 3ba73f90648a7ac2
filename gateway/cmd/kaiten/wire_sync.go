package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/app"
	syncconfig "github.com/kaiten-edge/kaiten/sync/config"
	"github.com/kaiten-edge/kaiten/sync/delivery"
	_ "github.com/kaiten-edge/kaiten/sync/destinations" // registers s3, http_endpoint, kinesis, local, postgres
	"github.com/kaiten-edge/kaiten/sync/localsink"
)

// The "sync" section: a list of Firehose-style delivery streams (see
// sync/sample.yaml). Absent, it is one delivery stream, plates-archive,
// from the plates stream to <data dir>/delivered/ every 30 s.
var (
	syncSection = syncconfig.Default()
	syncOff     bool
	syncDemo    = true // no sync section: the demo's plates-archive
)

func init() {
	app.Register(app.Component{
		Name:  "sync",
		Order: 40, // before the dashboard (50), so the sync status is on the board
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&syncOff, "no-sync", false, "start no delivery stream (overrides the sync section)")
		},
		Decode: func(node *yaml.Node) error {
			syncSection, syncDemo = syncconfig.Default(), true
			if node == nil {
				return nil
			}
			s, err := syncconfig.Decode(node)
			if err != nil {
				return err
			}
			syncSection, syncDemo = s, false
			return nil
		},
		Streams: syncStreams,
		Start:   startSync,
	})
}

// syncStreams lists each delivery stream's source and dead-letter stream.
// The demo's delivery stream stands down when they are not declared.
func syncStreams(declared map[string]bool) ([]app.StreamRef, string) {
	if syncOff {
		return nil, ""
	}
	var refs []app.StreamRef
	for i, d := range syncSection {
		key := fmt.Sprintf("sync[%d]", i)
		dl := app.StreamRef{Key: key + ".dead_letter", Stream: d.DeadLetter}
		if d.DeadLetter == "" {
			dl.Stream, dl.Default = delivery.DefaultDeadLetter, true
		}
		refs = append(refs, app.StreamRef{Key: key + ".stream", Stream: d.Stream}, dl)
	}
	if syncDemo {
		for _, r := range refs {
			if !declared[r.Stream] {
				syncSection = nil
				return nil, fmt.Sprintf("the demo delivery stream plates-archive does not run: stream %q is not in streams (list delivery streams under sync)", r.Stream)
			}
		}
	}
	return refs, ""
}

func startSync(ctx context.Context, env *app.Env) (app.StopFunc, error) {
	if syncOff || len(syncSection) == 0 {
		return nil, nil
	}
	metrics, err := delivery.NewMetrics(env.Metrics)
	if err != nil {
		return nil, fmt.Errorf("sync: metrics: %w", err)
	}
	var streams []*delivery.Stream
	var cfgs []delivery.Config
	for i, d := range syncSection {
		cfg, err := d.Build(env.DataDir, &delivery.Config{Logger: env.Logger.With("component", "sync"), Metrics: metrics})
		if err != nil {
			return nil, fmt.Errorf("sync[%d]: %w", i, err)
		}
		ds, err := delivery.New(env.Store, cfg)
		if err != nil {
			return nil, fmt.Errorf("sync[%d]: %w", i, err)
		}
		streams = append(streams, ds)
		cfgs = append(cfgs, cfg)
	}
	env.Status.Set("sync", func() any {
		out := make([]delivery.Status, len(streams))
		for i, ds := range streams {
			out[i] = ds.Status()
		}
		return out
	})
	env.Status.SetHealth("sync", func() []string {
		var out []string
		for _, ds := range streams {
			if d := ds.Status().Degraded; d != "" {
				out = append(out, ds.Name()+": "+d)
			}
		}
		return out
	})
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, ds := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ds.Run(rctx); err != nil {
				env.Logger.Error("delivery stream stopped", "delivery_stream", ds.Name(), "err", err)
			}
		}()
		env.Logger.Info("delivery stream started", "delivery_stream", ds.Name(), "stream", ds.Status().Stream, "destination", ds.Status().Destination)
	}
	for _, c := range cfgs {
		if ls, ok := c.Sink.(*localsink.Sink); ok {
			env.Announce("Deliveries", fmt.Sprintf("%s (%s from stream %s, every %s)", ls.Dir, c.Name, c.Stream, c.BufferInterval))
		}
	}
	return func(sctx context.Context) error {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-sctx.Done():
			return errors.New("sync: delivery streams did not stop in time")
		}
	}, nil
}
