package config

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/kaiten-edge/kaiten/sync/sink"
)

// Destination is one destination type's config: the value under its key
// in a sync entry (s3:, local:, ...), decoded strictly into the type its
// package defines. Zero values mean the destination's defaults.
type Destination interface {
	// Validate checks the config without building anything (no SDK client,
	// no connection, no file). Errors name the key relative to the
	// destination's own, e.g. "bucket: must not be empty".
	Validate() error
	// Build returns the destination, ready for delivery: this is where
	// clients are made. The gateway calls it at start, after Validate.
	Build(env Env) (sink.Sink, error)
}

// Env is what a destination may take from the gateway when it is built.
type Env struct {
	// DataDir is the gateway's data directory; relative paths of a
	// destination's config are read from it.
	DataDir string
	// Logger is the delivery stream's logger, for a destination that logs
	// on its own (a missing table); nil means slog.Default().
	Logger *slog.Logger
}

// Factory is one destination type, as its package registers it.
type Factory struct {
	// Key is the destination's key in a sync entry; also its sink Kind.
	Key string
	// Order places the destination in the lists that error messages and
	// docs show (lower first).
	Order int
	// New returns a zero config to decode the key's value into.
	New func() Destination
	// Sample is the destination's commented sample.yaml: a mapping with
	// the one key Key, every key shown with its default. sync/sample.yaml
	// repeats it under the delivery stream's keys.
	Sample []byte
}

var registry struct {
	mu  sync.RWMutex
	all []Factory
}

// Register adds a destination type. Destination packages call it from
// init; the gateway imports them for that effect (sync/destinations
// imports all of them). It panics on an empty or repeated key, or a
// missing New, which are programming errors.
func Register(f Factory) {
	if f.Key == "" || f.New == nil {
		panic("sync/config: Register needs a Key and a New")
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for _, g := range registry.all {
		if g.Key == f.Key {
			panic(fmt.Sprintf("sync/config: destination %q registered twice", f.Key))
		}
	}
	registry.all = append(registry.all, f)
	slices.SortStableFunc(registry.all, func(a, b Factory) int {
		if a.Order != b.Order {
			return a.Order - b.Order
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// Destinations returns the registered destination types in Order.
func Destinations() []Factory {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return slices.Clone(registry.all)
}

// Lookup returns the destination type registered under key.
func Lookup(key string) (Factory, bool) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	for _, f := range registry.all {
		if f.Key == key {
			return f, true
		}
	}
	return Factory{}, false
}

// destinationKeys lists the registered keys for messages, e.g.
// "local, s3, http_endpoint or kinesis" (sep "or") or
// "local, s3, http_endpoint, kinesis" (sep ",").
func destinationKeys(last string) string {
	var keys []string
	for _, f := range Destinations() {
		keys = append(keys, f.Key)
	}
	if len(keys) < 2 || last == "," {
		return strings.Join(keys, ", ")
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " " + last + " " + keys[len(keys)-1]
}
