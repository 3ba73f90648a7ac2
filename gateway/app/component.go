// Package app is the daemon's frame: it loads the YAML config, opens the
// stream store, serves HTTP (/healthz, /metrics, /api/status) and starts
// every registered component in order, then stops them in reverse order on
// SIGINT or SIGTERM.
//
// A component (MQTT ingest, the Kinesis API, a delivery stream, the
// dashboard, ...) registers itself from a wire_*.go file in the main package
// with Register. It owns one top-level config section, may add command-line
// flags, and gets an Env when it starts. Components never import each
// other; what one needs to show another goes through Env.Status.
package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Env is what a starting component gets. Everything in it is shared:
// register HTTP handlers on Mux under your own path prefix and metrics on
// Metrics with your own name prefix.
type Env struct {
	Store   *stream.Store
	Mux     *http.ServeMux
	Metrics *prometheus.Registry
	Logger  *slog.Logger
	Status  *status.Board
	// DataDir is the gateway's data directory; the store lives in DataDir/store.
	DataDir string
	// HTTPAddr is the address the HTTP server actually listens on
	// (host:port, with the real port when the flag asked for port 0).
	HTTPAddr string
	// StoreID is the store's identity from the config (default "demo-store").
	StoreID string

	bannerMu sync.Mutex
	banner   []string
}

// Announce adds a line to the start-up banner, which Run prints to the
// writer Main was given once every component started, e.g.
// Announce("MQTT broker", "tcp://127.0.0.1:1883 (embedded)"). Only what
// runs announces itself, so the banner lists only what is running. Safe
// for concurrent use.
func (e *Env) Announce(label, text string) {
	e.bannerMu.Lock()
	defer e.bannerMu.Unlock()
	e.banner = append(e.banner, fmt.Sprintf("  %-13s%s\n", label+":", text))
}

// StreamRef is a stream a component reads or writes, with the config key
// that names it (e.g. "analytics.queries[0].output").
type StreamRef struct {
	Key    string
	Stream string
	// Default marks a stream the key names by default (the key is not in
	// the config), so the error can say where it came from.
	Default bool
}

// StopFunc stops a component; it should finish in-flight work before ctx ends.
type StopFunc func(ctx context.Context) error

// Component is one part of the daemon.
type Component struct {
	// Name is the component's top-level config section (e.g. "mqtt").
	Name string
	// Order sorts start-up: lower starts first and stops last. Sources that
	// write into streams should start after the streams exist (Order > 0).
	Order int
	// Flags, if set, adds command-line flags. It runs before the config is
	// read; flag values should override config values in Decode or Start.
	Flags func(fs *flag.FlagSet)
	// Decode reads the component's section; node is nil when the section is
	// absent (use defaults). Decode must validate and return errors that
	// name the key, e.g. `mqtt.routes[0].topic: must not be empty`.
	Decode func(node *yaml.Node) error
	// Streams, if set, runs once every section is decoded, with the names
	// the streams section declares (the demo streams when it is absent),
	// and returns the streams the component will read or write, each with
	// the config key that names it. Load refuses a reference to a stream
	// that is not declared, so check-config catches what run would trip
	// on. A demo default (a section left out of the config) whose streams
	// are not all declared stands down here instead of running against
	// streams that will not exist, and standDown says which and why:
	// check-config prints it and Run logs it (INFO) at start.
	Streams func(declared map[string]bool) (refs []StreamRef, standDown string)
	// Start starts the component. It must not block; long-running work goes
	// into goroutines that end when ctx ends or stop is called.
	Start func(ctx context.Context, env *Env) (StopFunc, error)
}

var (
	regMu      sync.Mutex
	components []Component
)

// Register adds a component. It is meant to be called from init functions
// in the main package; it panics on a duplicate name.
func Register(c Component) {
	regMu.Lock()
	defer regMu.Unlock()
	for _, o := range components {
		if o.Name == c.Name {
			panic("app: component registered twice: " + c.Name)
		}
	}
	components = append(components, c)
}

// Registered returns the registered components in start order (what Main
// loads and runs), for tests that drive Load and Run themselves.
func Registered() []Component { return registered() }

func registered() []Component {
	regMu.Lock()
	defer regMu.Unlock()
	out := append([]Component(nil), components...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	return out
}

// Command is an extra `kaiten NAME ...` subcommand (e.g. firstboot). run
// gets the arguments after NAME and returns the exit code.
type Command struct {
	Name  string
	Usage string // one line, shown in kaiten's usage
	Run   func(args []string, stdout, stderr io.Writer) int
}

var commands []Command

// RegisterCommand adds a subcommand; call it from an init function.
func RegisterCommand(c Command) {
	regMu.Lock()
	defer regMu.Unlock()
	commands = append(commands, c)
}

func lookupCommand(name string) (Command, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	for _, c := range commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}
