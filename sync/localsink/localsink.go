// Package localsink is the default destination: a directory on the
// gateway's own disk, laid out exactly like the S3 keys
// (prefix/YYYY/MM/DD/HH/name-version-time-id.gz), so a new user sees what an
// S3 bucket would hold and can copy the tree to one as it is.
package localsink

import (
	"context"
	_ "embed" // sample.yaml
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kaiten-edge/kaiten/internal/atomicfile"
	"github.com/kaiten-edge/kaiten/sync/config"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// DefaultDir is the directory, relative to the data directory, when the
// config names none.
const DefaultDir = "delivered"

// Config configures the destination: the value of a sync entry's local key
// (see sample.yaml). Zero values mean the defaults.
type Config struct {
	// Dir is the root directory; relative to the data directory. Default
	// "delivered".
	Dir string `yaml:"dir"`
	// Prefix is the key prefix, with Firehose's !{timestamp:…} expressions.
	Prefix string `yaml:"prefix"`
	// ErrorPrefix is the error output's prefix; default
	// "<error-output-type>/".
	ErrorPrefix string `yaml:"error_prefix"`
}

// Validate checks the config without touching the disk; errors name the
// key.
func (c *Config) Validate() error {
	var errs []error
	if err := sink.ValidatePrefix(c.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("prefix: %w", err))
	}
	if err := sink.ValidatePrefix(c.ErrorPrefix); err != nil {
		errs = append(errs, fmt.Errorf("error_prefix: %w", err))
	}
	return errors.Join(errs...)
}

// Build implements config.Destination: a relative Dir is read from
// env.DataDir. Nothing is created before the first batch.
func (c *Config) Build(env config.Env) (sink.Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	dir := c.Dir
	if dir == "" {
		dir = DefaultDir
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(env.DataDir, dir)
	}
	return &Sink{Dir: dir, Prefix: c.Prefix, ErrorPrefix: c.ErrorPrefix}, nil
}

//go:embed sample.yaml
var sample []byte

func init() {
	config.Register(config.Factory{Key: "local", Order: 10, Sample: sample, New: func() config.Destination { return new(Config) }})
}

// Sink writes each batch as one file under Dir. A file appears whole or
// not at all (written to a temporary name, synced, renamed), and a retried
// batch replaces its own file. Safe for concurrent use.
type Sink struct {
	// Dir is the root directory. Required.
	Dir string
	// Prefix is the key prefix, with Firehose's !{timestamp:…} expressions.
	Prefix string
	// ErrorPrefix is the error output's prefix; default
	// "<error-output-type>/" ("processing-failed/" or "delivery-failed/").
	ErrorPrefix string
	// Now is the clock for attemptEndingTimestamp. Default time.Now.
	Now func() time.Time
}

// Kind implements sink.Sink.
func (s *Sink) Kind() string { return "local" }

// WantsBody implements sink.BodySink.
func (s *Sink) WantsBody() bool { return true }

// Deliver implements sink.Sink.
func (s *Sink) Deliver(ctx context.Context, b *sink.Batch) error {
	return s.write(sink.ObjectKey(s.Prefix, b), b.Body)
}

// DeliverErrors implements sink.ErrorSink.
func (s *Sink) DeliverErrors(ctx context.Context, b *sink.ErrorBatch) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return s.write(sink.ErrorObjectKey(s.ErrorPrefix, b), sink.EncodeErrors(b, now().UnixMilli()))
}

func (s *Sink) write(key string, body []byte) error {
	if s.Dir == "" {
		return sink.Permanent(errors.New("localsink: no directory configured"))
	}
	rel := filepath.FromSlash(key)
	if filepath.IsAbs(rel) || strings.HasPrefix(filepath.Clean(rel), "..") {
		return sink.Permanent(fmt.Errorf("localsink: key %q leaves the directory", key))
	}
	path := filepath.Join(s.Dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("localsink: %w", err)
	}
	if err := atomicfile.WriteFile(path, body, 0o640); err != nil {
		return fmt.Errorf("localsink: %w", err)
	}
	return nil
}
