package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kaiten-edge/kaiten/gateway/access"
	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Version is stamped in by the build (-ldflags -X).
var Version = "dev"

// Main is the kaiten command: `kaiten run [flags]`, `kaiten check-config
// --config FILE`, `kaiten version`, `kaiten help`, and every command added
// with RegisterCommand. It writes only to stdout and stderr and returns
// the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, "kaiten", Version)
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "run", "check-config":
	default:
		if c, ok := lookupCommand(args[0]); ok {
			return c.Run(args[1:], stdout, stderr)
		}
		fmt.Fprintf(stderr, "kaiten: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("kaiten "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f Flags
	f.Register(fs)
	comps := registered()
	for _, c := range comps {
		if c.Flags != nil {
			c.Flags(fs)
		}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	f.Visited = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.Visited[fl.Name] = true })
	cfg, err := Load(f.Config, comps)
	if err != nil {
		fmt.Fprintln(stderr, "kaiten:", err)
		return 2
	}
	if args[0] == "check-config" {
		fmt.Fprintln(stdout, "config ok")
		for _, n := range cfg.Notes {
			fmt.Fprintln(stdout, "note:", n)
		}
		return 0
	}
	cfg.ApplyFlags(f)
	logger := newLogger(cfg.Log, stderr)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := Run(ctx, cfg, comps, logger, stdout); err != nil {
		logger.Error("kaiten stopped with an error", "err", err)
		return 1
	}
	return 0
}

// Flags are the daemon's own command-line flags.
type Flags struct {
	Config   string
	DataDir  string
	HTTPAddr string
	// Visited holds the names of flags given on the command line.
	Visited map[string]bool
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Config, "config", "", "YAML config file (none: run the embedded demo defaults)")
	fs.StringVar(&f.DataDir, "data-dir", "", "data directory (overrides data_dir; default ./kaiten-data)")
	fs.StringVar(&f.HTTPAddr, "http-addr", "", "HTTP listen address for the Kinesis API, dashboard and metrics (overrides http.addr; default 127.0.0.1:8080)")
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run opens the store, creates the configured streams, serves HTTP and
// starts the components; it returns when ctx ends and everything stopped.
func Run(ctx context.Context, cfg *Config, comps []Component, logger *slog.Logger, stdout io.Writer) error {
	for _, n := range cfg.Notes {
		logger.Info("config: " + n)
	}
	if cfg.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("run: data dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := cfg.Store.Options(filepath.Join(cfg.DataDir, "store"), logger)
	st, err := stream.Open(opts)
	if err != nil {
		return fmt.Errorf("run: open store in %s: %w", opts.Dir, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			logger.Error("closing store", "err", err)
		} else {
			logger.Info("store closed")
		}
	}()
	if err := reg.Register(stream.NewCollector(st)); err != nil {
		return fmt.Errorf("run: metrics: %w", err)
	}
	for i, sc := range cfg.Streams {
		err := st.CreateStream(ctx, sc.StreamConfig())
		switch {
		case err == nil:
			logger.Info("stream created", "stream", sc.Name, "shards", sc.Shards)
		case errors.Is(err, stream.ErrStreamExists):
			// Config changes never destroy data: an existing stream keeps its
			// shards; only retention follows the config.
			if sc.Retention.Duration > 0 {
				if err := st.SetRetention(sc.Name, sc.Retention.Duration); err != nil {
					return fmt.Errorf("run: streams[%d].retention: %w", i, err)
				}
			}
		default:
			return fmt.Errorf("run: streams[%d]: %w", i, err)
		}
	}

	mux := http.NewServeMux()
	board := &status.Board{}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// Degraded still answers 200: the gateway runs and keeps its
		// backlog, and a restart (the watchdog's answer) would not fix a
		// missing table.
		if d := board.Degraded(); len(d) > 0 {
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "degraded", "version": Version, "degraded": d})
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok","version":"`+Version+`"}`)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(board.Snapshot()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(buf.Bytes())
	})
	board.Set("store", func() any { return st.Stats() })
	if cfg.HTTP.Pprof {
		// The profiler administers (a profile or trace costs CPU for as long
		// as the client asks) and has no credentials: loopback only.
		const why = "the profiler answers only on this board: use ssh -L 8080:127.0.0.1:8080"
		for _, p := range []struct {
			path string
			h    http.HandlerFunc
		}{{"/debug/pprof/", pprof.Index}, {"/debug/pprof/profile", pprof.Profile},
			{"/debug/pprof/symbol", pprof.Symbol}, {"/debug/pprof/trace", pprof.Trace}} {
			mux.Handle("GET "+p.path, access.LoopbackOnly(p.h, why))
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("run: http.addr %s: %w", cfg.HTTP.Addr, err)
	}
	env := &Env{Store: st, Mux: mux, Metrics: reg, Logger: logger, Status: board,
		DataDir: cfg.DataDir, HTTPAddr: ln.Addr().String(), StoreID: cfg.StoreID}

	compCtx, stopComps := context.WithCancel(ctx)
	defer stopComps()
	var stops []StopFunc
	var names []string
	stopAll := func() {
		stopComps()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.Duration)
		defer cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](sctx); err != nil {
				logger.Error("stopping component", "component", names[i], "err", err)
			}
		}
	}
	for _, c := range comps {
		if c.Start == nil {
			continue
		}
		stop, err := c.Start(compCtx, env)
		if err != nil {
			ln.Close()
			stopAll()
			return fmt.Errorf("run: start %s: %w", c.Name, err)
		}
		if stop != nil {
			stops = append(stops, stop)
			names = append(names, c.Name)
		}
	}

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	logger.Info("kaiten running", "version", Version, "http", "http://"+env.HTTPAddr, "data_dir", cfg.DataDir)
	printBanner(stdout, env, cfg.DataDir)

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-srvErr:
		stopAll()
		return fmt.Errorf("run: http server: %w", err)
	}
	// Stop taking requests first, then stop components (sources finish
	// their in-flight appends), then the deferred store close.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.Duration)
	_ = srv.Shutdown(sctx)
	cancel()
	stopAll()
	return nil
}

// printBanner writes what is running: the components' own lines (in start
// order) between the metrics URL, which the frame always serves, and the
// data directory.
func printBanner(w io.Writer, env *Env, dataDir string) {
	env.bannerMu.Lock()
	lines := append([]string(nil), env.banner...)
	env.bannerMu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "Kaiten %s is running.\n  %-13shttp://%s/metrics\n", Version, "Metrics:", env.HTTPAddr)
	for _, l := range lines {
		b.WriteString(l)
	}
	fmt.Fprintf(&b, "  %-13s%s\nPress Ctrl+C to stop.\n", "Data:", dataDir)
	_, _ = w.Write(b.Bytes())
}

// usage lists every command: the built-in ones, then the registered ones.
func usage(w io.Writer) {
	lines := []string{
		"kaiten run [--config FILE] [--data-dir DIR] [--http-addr HOST:PORT] ...  (kaiten run --help lists every flag)",
		"kaiten check-config --config FILE",
		"kaiten version",
		"kaiten help",
	}
	regMu.Lock()
	for _, c := range commands {
		lines = append(lines, c.Usage)
	}
	regMu.Unlock()
	fmt.Fprintln(w, "usage: "+strings.Join(lines, "\n       "))
}
