package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Config is the daemon's own part of the YAML file. Every key is documented
// in deploy/kaiten.example.yaml with its default.
type Config struct {
	// DataDir holds the store and local deliveries. Default ./kaiten-data.
	DataDir string `yaml:"data_dir"`
	// StoreID names this shop; it appears in records and object keys.
	// Default "demo-store".
	StoreID string      `yaml:"store_id"`
	HTTP    HTTPConfig  `yaml:"http"`
	Log     LogConfig   `yaml:"log"`
	Store   StoreConfig `yaml:"store"`
	// Streams are created at start when missing. Existing streams keep
	// their shards and data; only their retention follows the config.
	Streams []StreamSpec `yaml:"streams"`
	// ShutdownTimeout bounds a clean stop. Default 20s.
	ShutdownTimeout config.Duration `yaml:"shutdown_timeout"`
	// MemoryLimit is the Go runtime's soft memory limit, so the collector
	// works harder before a small board runs short. Default 96MiB; 0 keeps
	// the runtime's default; the GOMEMLIMIT environment variable wins.
	MemoryLimit config.ByteSize `yaml:"memory_limit"`
	// Notes are what Load found worth saying without refusing the config:
	// the demo defaults that stand down, and why (not a YAML key).
	Notes []string `yaml:"-"`
}

// HTTPConfig is the http section.
type HTTPConfig struct {
	// Addr is where the Kinesis API, dashboard and metrics listen.
	// Default 127.0.0.1:8080.
	Addr string `yaml:"addr"`
	// Pprof serves Go's profiler at /debug/pprof/ (for diagnosing memory
	// or CPU on a board). Default false.
	Pprof bool `yaml:"pprof"`
}

// LogConfig is the log section.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// StoreConfig is the store section: Badger and store-wide limits.
type StoreConfig struct {
	MaxBytes          config.ByteSize `yaml:"max_bytes"`           // store-wide cap; 0 = none
	OnFull            string          `yaml:"on_full"`             // reject (default) or evict_oldest
	Region            string          `yaml:"region"`              // for ARNs; default us-east-1
	AccountID         string          `yaml:"account_id"`          // for ARNs; default 000000000000
	ShardWriteRecords int             `yaml:"shard_write_records"` // per shard per second; 0 = off
	ShardWriteBytes   config.ByteSize `yaml:"shard_write_bytes"`   // per shard per second; 0 = off
	SweepInterval     config.Duration `yaml:"sweep_interval"`      // retention sweep; default 1m
	MemTableSize      config.ByteSize `yaml:"memtable_size"`       // default 8MiB
	BlockCacheSize    config.ByteSize `yaml:"block_cache_size"`    // default 8MiB
	MaxShards         int             `yaml:"max_shards"`          // default 256
	// MinFreeBytes is the free disk space kept in reserve: appends are
	// refused (retriable) below it. Default 4 memtables plus 4MiB.
	MinFreeBytes config.ByteSize `yaml:"min_free_bytes"`
	// AcceptDataLoss starts a store whose files lost acknowledged records
	// (it refuses otherwise); set it once to recover, then remove it.
	AcceptDataLoss bool `yaml:"accept_data_loss"`
}

// Options turns the section into stream.Options.
func (c StoreConfig) Options(dir string, logger *slog.Logger) stream.Options {
	return stream.Options{
		Dir: dir, MaxBytes: int64(c.MaxBytes), OnFull: stream.FullPolicy(c.OnFull),
		Region: c.Region, AccountID: c.AccountID,
		ShardWriteRecords: c.ShardWriteRecords, ShardWriteBytes: int(c.ShardWriteBytes),
		SweepInterval: c.SweepInterval.Duration, MemTableSize: int64(c.MemTableSize),
		BlockCacheSize: int64(c.BlockCacheSize), MaxShards: c.MaxShards, Logger: logger,
		MinFreeBytes: int64(c.MinFreeBytes), AcceptDataLoss: c.AcceptDataLoss,
	}
}

// StreamSpec is one entry of the streams list.
type StreamSpec struct {
	Name      string          `yaml:"name"`
	Shards    int             `yaml:"shards"`    // default 1
	Retention config.Duration `yaml:"retention"` // default 24h; 1m to 8760h
	MaxBytes  config.ByteSize `yaml:"max_bytes"` // 0 = no per-stream cap
	OnFull    string          `yaml:"on_full"`   // reject (default) or evict_oldest
}

// StreamConfig converts the spec.
func (s StreamSpec) StreamConfig() stream.StreamConfig {
	return stream.StreamConfig{Name: s.Name, ShardCount: s.Shards, Retention: s.Retention.Duration,
		MaxBytes: int64(s.MaxBytes), OnFull: stream.FullPolicy(s.OnFull)}
}

// DefaultStreams are created when the config has no streams section: what
// the embedded demo (simulator, MQTT routes, analytics) writes to.
var DefaultStreams = []StreamSpec{
	{Name: stream.NamePlates, Shards: 4},     // plate events from MQTT sensors and the simulator
	{Name: stream.NameGPIO, Shards: 1},       // events from GPIO lines wired to the board
	{Name: stream.NameDeadLetter, Shards: 1}, // ingest input that could not be stored as asked, with the reason
	{Name: stream.NamePlateStats, Shards: 1}, // results of the demo's continuous query
}

// Defaults returns the config used when no file is given.
func Defaults() *Config {
	return &Config{
		DataDir: "kaiten-data", StoreID: "demo-store",
		HTTP:            HTTPConfig{Addr: "127.0.0.1:8080"},
		Log:             LogConfig{Level: "info", Format: "text"},
		Streams:         append([]StreamSpec(nil), DefaultStreams...),
		ShutdownTimeout: config.Duration{Duration: 20 * time.Second},
		MemoryLimit:     96 << 20,
	}
}

// Load reads the file at path (or nothing, when path is ""), fills defaults,
// lets each component decode its own section, and validates. Errors name
// the key.
func Load(path string, comps []Component) (*Config, error) {
	cfg := Defaults()
	sections := map[string]*yaml.Node{}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		if len(doc.Content) > 0 {
			root := doc.Content[0]
			if root.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("config %s: the top level must be a mapping of sections", path)
			}
			for i := 0; i+1 < len(root.Content); i += 2 {
				sections[root.Content[i].Value] = root.Content[i+1]
			}
		}
	}
	own := map[string]any{
		"data_dir": &cfg.DataDir, "store_id": &cfg.StoreID, "http": &cfg.HTTP, "log": &cfg.Log,
		"store": &cfg.Store, "shutdown_timeout": &cfg.ShutdownTimeout, "memory_limit": &cfg.MemoryLimit,
	}
	known := map[string]bool{"streams": true}
	for k := range own {
		known[k] = true
	}
	for _, c := range comps {
		known[c.Name] = true
	}
	for k, n := range sections {
		if !known[k] {
			return nil, fmt.Errorf("config: line %d: unknown section %q", n.Line, k)
		}
	}
	for k, v := range own {
		if err := config.Decode(k, sections[k], v); err != nil {
			return nil, err
		}
	}
	if n, ok := sections["streams"]; ok {
		cfg.Streams = nil
		if err := config.Decode("streams", n, &cfg.Streams); err != nil {
			return nil, err
		}
	}
	for _, c := range comps {
		if c.Decode != nil {
			if err := c.Decode(sections[c.Name]); err != nil {
				return nil, err
			}
		}
	}
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, cfg.CheckStreamRefs(comps)
}

// CheckStreamRefs checks, in one place, that every stream a component
// refers to (query sources and outputs, delivery sources, dead-letter
// streams, MQTT routes) is declared in streams. Errors name the key.
func (c *Config) CheckStreamRefs(comps []Component) error {
	declared := map[string]bool{}
	for _, s := range c.Streams {
		declared[s.Name] = true
	}
	var errs []error
	for _, comp := range comps {
		if comp.Streams == nil {
			continue
		}
		refs, standDown := comp.Streams(declared)
		if standDown != "" {
			c.Notes = append(c.Notes, comp.Name+": "+standDown)
		}
		for _, r := range refs {
			if declared[r.Stream] {
				continue
			}
			from := ""
			if r.Default {
				from = " (the default)"
			}
			errs = append(errs, config.Errorf(r.Key, "stream %q%s is not in streams: add it there (streams are created at start) or name a listed one", r.Stream, from))
		}
	}
	return errors.Join(errs...)
}

// ApplyFlags lets command-line flags override the file.
func (c *Config) ApplyFlags(f Flags) {
	if f.DataDir != "" {
		c.DataDir = f.DataDir
	}
	if f.HTTPAddr != "" {
		c.HTTP.Addr = f.HTTPAddr
	}
}

// withDefaults fills the zero values the file may leave after decoding
// (a shutdown timeout set to 0, a stream's shard count).
func (c *Config) withDefaults() {
	if c.ShutdownTimeout.Duration <= 0 {
		c.ShutdownTimeout.Duration = 20 * time.Second
	}
	for i := range c.Streams {
		if c.Streams[i].Shards == 0 {
			c.Streams[i].Shards = 1
		}
	}
}

// Validate checks the daemon's own keys; it changes nothing.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, config.Errorf("data_dir", "must not be empty"))
	}
	if c.HTTP.Addr == "" {
		errs = append(errs, config.Errorf("http.addr", "must not be empty"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, config.Errorf("log.level", "%q: want debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, config.Errorf("log.format", "%q: want text or json", c.Log.Format))
	}
	if err := validPolicy(c.Store.OnFull); err != nil {
		errs = append(errs, config.Errorf("store.on_full", "%v", err))
	}
	if c.Store.ShardWriteRecords < 0 {
		errs = append(errs, config.Errorf("store.shard_write_records", "must not be negative"))
	}
	seen := map[string]bool{}
	for i, s := range c.Streams {
		key := fmt.Sprintf("streams[%d]", i)
		if stream.ValidName(s.Name) != nil {
			errs = append(errs, config.Errorf(key+".name", "%q: want %s", s.Name, stream.NameRule))
		}
		if seen[s.Name] {
			errs = append(errs, config.Errorf(key+".name", "%q is listed twice", s.Name))
		}
		seen[s.Name] = true
		if s.Shards < 0 || s.Shards > stream.DefaultMaxShards {
			errs = append(errs, config.Errorf(key+".shards", "%d: want 1 to %d", s.Shards, stream.DefaultMaxShards))
		}
		if r := s.Retention.Duration; r != 0 && (r < time.Minute || r > stream.MaxRetention) {
			errs = append(errs, config.Errorf(key+".retention", "%s: want 1m to 8760h", r))
		}
		if err := validPolicy(s.OnFull); err != nil {
			errs = append(errs, config.Errorf(key+".on_full", "%v", err))
		}
	}
	return errors.Join(errs...)
}

func validPolicy(p string) error {
	switch stream.FullPolicy(p) {
	case "", stream.Reject, stream.EvictOldest:
		return nil
	}
	return fmt.Errorf("%q: want reject or evict_oldest", p)
}
