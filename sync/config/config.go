// Package config is the "sync" section of the gateway's YAML and the
// registry of destination types. The section is a list of delivery streams
// (Spec): name, source stream, buffering, transform, compression, retry,
// dead-letter stream, and one destination. This package owns those keys;
// each destination's key (local, s3, http_endpoint, kinesis) belongs to the
// destination's package, which defines its config type, defaults,
// Validate and sample.yaml and registers a Factory (see Register). The
// registry imports no destination: sync/destinations imports them all for
// their registration.
//
// Validate checks an entry and its destination's config without building
// anything; Build, at start, also builds the destination (its SDK client)
// and returns the delivery.Config. sync/sample.yaml documents every key
// with its default.
package config

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/delivery"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/transform"
)

// Section is the whole "sync" section.
type Section []Spec

// Spec is one delivery stream as the sync section describes it: its
// source, buffering, transform, encoding, retry and one destination. Build
// turns it into the delivery.Config a delivery.Stream runs with.
type Spec struct {
	Name    string `yaml:"name"`
	Stream  string `yaml:"stream"`
	StartAt string `yaml:"start_at"` // trim_horizon (default) or latest
	Version int    `yaml:"version"`  // default 1
	Buffer  struct {
		Size     gconfig.ByteSize  `yaml:"size"`     // default 5MiB; 1MiB to 128MiB
		Interval *gconfig.Duration `yaml:"interval"` // default 300s; 0s to 900s
	} `yaml:"buffer"`
	RecordDelimiter string `yaml:"record_delimiter"` // newline (default) or none
	Compression     string `yaml:"compression"`      // gzip (default), snappy, zip or none
	Retry           struct {
		Initial  gconfig.Duration `yaml:"initial"`  // default 1s
		Max      gconfig.Duration `yaml:"max"`      // default 2m
		Duration gconfig.Duration `yaml:"duration"` // default: within the source stream's retention
	} `yaml:"retry"`
	DeadLetter string     `yaml:"dead_letter"` // default deadletter
	Transform  *Transform `yaml:"transform"`
	// Destination holds the entry's other keys: exactly one must be a
	// registered destination's key (local, s3, http_endpoint, kinesis),
	// whose value the destination's package decodes (see Destination).
	Destination map[string]yaml.Node `yaml:",inline"`
}

// Transform is the optional transform: http or builtin, not both.
type Transform struct {
	HTTP *struct {
		URL     string           `yaml:"url"`
		Timeout gconfig.Duration `yaml:"timeout"` // default 60s
		Retries int              `yaml:"retries"` // default 3; -1 for none
	} `yaml:"http"`
	Builtin *struct {
		Fields []struct {
			From string `yaml:"from"`
			To   string `yaml:"to"`
		} `yaml:"fields"`
		DropIf string `yaml:"drop_if"`
	} `yaml:"builtin"`
}

// Decode strictly decodes a sync section from its YAML node and
// validates it; errors name the key ("sync[0].s3.bucket: …").
func Decode(node *yaml.Node) (Section, error) {
	var s Section
	if err := gconfig.Decode("sync", node, &s); err != nil {
		return nil, err
	}
	return s, s.Validate()
}

// Default is the delivery stream `make run` gets with no sync section:
// the plates stream, as JSON lines, gzip, to <data dir>/delivered/ every
// 30 s, so a new user sees files within a minute.
func Default() Section {
	d := Spec{Name: "plates-archive", Stream: stream.NamePlates,
		Destination: map[string]yaml.Node{"local": {Kind: yaml.MappingNode, Tag: "!!map"}}}
	d.Buffer.Interval = &gconfig.Duration{Duration: 30 * time.Second}
	return Section{d}
}

// Validate checks every entry without building anything (no SDK client,
// no connection); errors name the key, e.g. "sync[0].s3.bucket: must not
// be empty".
func (s Section) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, d := range s {
		key := fmt.Sprintf("sync[%d]", i)
		if seen[d.Name] && d.Name != "" {
			errs = append(errs, gconfig.Errorf(key+".name", "%q is listed twice", d.Name))
		}
		seen[d.Name] = true
		if err := d.Validate(); err != nil {
			errs = append(errs, PrefixKey(key, err))
		}
	}
	return errors.Join(errs...)
}

// PrefixKey puts key and a dot before every error joined in err, so
// that errors naming a key relative to a nested config name it from the
// outside: PrefixKey("staging.s3", "bucket: …") is "staging.s3.bucket: …".
func PrefixKey(key string, err error) error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, PrefixKey(key, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s.%w", key, err)
}

// Validate checks the entry and its destination's config without building
// the destination. Errors name the key relative to the entry.
func (d Spec) Validate() error {
	_, _, err := d.config("data", nil)
	return err
}

// Build returns the delivery.Config (without logger and metrics unless
// base has them) for an entry, with its destination built. dataDir roots
// the local destination's relative dir and the delivery intents. Errors
// name the key relative to the entry.
func (d Spec) Build(dataDir string, base *delivery.Config) (delivery.Config, error) {
	c, dest, err := d.config(dataDir, base)
	if err != nil {
		return c, err
	}
	key, _ := d.destinationKey()
	s, err := dest.Build(Env{DataDir: dataDir, Logger: c.Logger})
	if err != nil {
		return c, fmt.Errorf("%s.%w", key, err)
	}
	c.Sink = s
	return c, nil
}

// config checks the entry and returns its delivery.Config without a sink,
// and its destination's decoded, valid config.
func (d Spec) config(dataDir string, base *delivery.Config) (delivery.Config, Destination, error) {
	var c delivery.Config
	if base != nil {
		c = *base
	}
	var errs []error
	c.Name, c.Stream, c.Version = d.Name, d.Stream, d.Version
	if d.Name == "" {
		errs = append(errs, errors.New("name: must not be empty"))
	} else if !validName(d.Name) {
		errs = append(errs, fmt.Errorf("name: %q: want 1-64 characters of a-z A-Z 0-9 _ . -", d.Name))
	}
	if d.Version < 0 {
		errs = append(errs, errors.New("version: must not be negative"))
	}
	switch d.StartAt {
	case "", "trim_horizon":
	case "latest":
		c.StartAtLatest = true
	default:
		errs = append(errs, fmt.Errorf("start_at: %q: want trim_horizon or latest", d.StartAt))
	}
	c.BufferSize = int64(d.Buffer.Size)
	if d.Buffer.Interval != nil {
		c.BufferInterval = d.Buffer.Interval.Duration
		if c.BufferInterval == 0 {
			c.BufferInterval = -1 // Firehose's 0 s: no waiting
		}
	}
	switch d.RecordDelimiter {
	case "", "newline":
		c.Delimiter = []byte("\n")
	case "none":
	default:
		errs = append(errs, fmt.Errorf("record_delimiter: %q: want newline or none", d.RecordDelimiter))
	}
	switch d.Compression {
	case "":
		c.Compression = sink.Gzip
	case "none":
		c.Compression = sink.None
	default:
		c.Compression = d.Compression
	}
	c.RetryInitial, c.RetryMax, c.RetryDuration = d.Retry.Initial.Duration, d.Retry.Max.Duration, d.Retry.Duration.Duration
	c.DeadLetter = d.DeadLetter
	if d.Transform != nil {
		t, err := d.Transform.build()
		if err != nil {
			errs = append(errs, err)
		}
		c.Transform = t
	}
	dest, err := d.destination()
	if err != nil {
		errs = append(errs, err)
	}
	// The engine's own checks (buffer hints, compression) with a stand-in
	// for the destination, which is built only at start.
	probe := c
	probe.Sink = unbuilt{}
	if e := probe.Validate(); e != nil {
		errs = append(errs, e)
	}
	if d.Name != "" && validName(d.Name) {
		c.StateDir = filepath.Join(dataDir, "sync", d.Name)
	}
	return c, dest, errors.Join(errs...)
}

// destinationKey returns the entry's destination key: the first, in the
// registry's order, of the registered keys the entry sets, and how many
// it sets. A key with no value (local:) counts as not set.
func (d Spec) destinationKey() (string, int) {
	var first string
	n := 0
	for _, f := range Destinations() {
		node, ok := d.Destination[f.Key]
		if !ok || node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
			continue
		}
		if n == 0 {
			first = f.Key
		}
		n++
	}
	return first, n
}

// destination decodes and validates the entry's destination config.
func (d Spec) destination() (Destination, error) {
	var errs []error
	keys := make([]string, 0, len(d.Destination))
	for k := range d.Destination {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := Lookup(k); !ok {
			n := d.Destination[k]
			errs = append(errs, fmt.Errorf("%s: line %d: field %s not found: want a delivery stream key or one destination of %s", k, n.Line, k, destinationKeys(",")))
		}
	}
	key, n := d.destinationKey()
	switch {
	case n > 1:
		errs = append(errs, fmt.Errorf("destination: set only one of %s", destinationKeys(",")))
	case n == 0:
		errs = append(errs, fmt.Errorf("destination: one of %s is required", destinationKeys("or")))
		return nil, errors.Join(errs...)
	}
	f, _ := Lookup(key)
	dest := f.New()
	node := d.Destination[key]
	if err := gconfig.Decode(key, &node, dest); err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	if err := dest.Validate(); err != nil {
		errs = append(errs, PrefixKey(key, err))
	}
	return dest, errors.Join(errs...)
}

// unbuilt stands for a destination that is not built yet.
type unbuilt struct{}

func (unbuilt) Deliver(context.Context, *sink.Batch) error {
	return errors.New("sync/config: destination not built")
}
func (unbuilt) Kind() string { return "unbuilt" }

func (t *Transform) build() (transform.Transformer, error) {
	switch {
	case t.HTTP != nil && t.Builtin != nil:
		return nil, errors.New("transform: set http or builtin, not both")
	case t.HTTP != nil:
		u, err := url.Parse(t.HTTP.URL)
		if t.HTTP.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("transform.http.url: %q: want an http or https URL", t.HTTP.URL)
		}
		return &transform.HTTP{URL: t.HTTP.URL, Timeout: t.HTTP.Timeout.Duration, Retries: t.HTTP.Retries}, nil
	case t.Builtin != nil:
		var fields []transform.Field
		for _, f := range t.Builtin.Fields {
			fields = append(fields, transform.Field{From: f.From, To: f.To})
		}
		b, err := transform.NewBuiltin(fields, t.Builtin.DropIf)
		if err != nil {
			return nil, fmt.Errorf("transform.builtin.%w", err)
		}
		return b, nil
	}
	return nil, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}
