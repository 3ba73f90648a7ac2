package delivery

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/transform"
)

// Limits of the buffering hints, as in Firehose.
const (
	MinBufferSize     = 1 << 20
	MaxBufferSize     = 128 << 20
	MaxBufferInterval = 900 * time.Second
)

// Defaults for zero Config values.
const (
	DefaultBufferSize     = 5 << 20
	DefaultBufferInterval = 300 * time.Second
	DefaultRetryInitial   = time.Second
	DefaultRetryMax       = 2 * time.Minute
	DefaultDeadLetter     = stream.NameDeadLetter
	DefaultReadLimit      = 5000
)

// Config configures one delivery stream. Zero values mean the defaults.
type Config struct {
	// Name is the delivery stream's name and its consumer group. Required.
	Name string
	// Stream is the source stream. Required.
	Stream string
	// Version appears in object keys (Firehose's DeliveryStreamVersion).
	// Default 1.
	Version int
	// StartAtLatest: a new delivery stream (no checkpoint yet) starts at the
	// stream's end instead of its oldest record.
	StartAtLatest bool
	// BufferSize is the size hint in bytes of raw record data per shard
	// batch; a batch is delivered once it holds this much. Default 5 MiB;
	// Firehose allows 1 to 128 MiB (Validate checks).
	BufferSize int64
	// BufferInterval is the interval hint: a batch is delivered once its
	// first record has waited this long. Default 300 s; a negative value
	// means 0 (deliver what each read returns). Firehose allows 0 to 900 s.
	BufferInterval time.Duration
	// Delimiter is written after every record in object destinations
	// (e.g. "\n"); empty means none.
	Delimiter []byte
	// Compression for object destinations: sink.None, Gzip, Snappy or Zip.
	Compression string
	// Transform, optional, runs before delivery.
	Transform transform.Transformer
	// Sink is the destination. Required.
	Sink sink.Sink
	// RetryInitial and RetryMax bound the backoff between attempts; each
	// wait is drawn between half and all of the current step, which doubles
	// from RetryInitial up to RetryMax. Defaults 1 s and 2 min.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// RetryDuration is how long a batch is retried before its records go to
	// the error output (code RetryExpired). Default: until the batch's
	// oldest record would leave the source stream's retention, less 5
	// minutes (at least 1 minute).
	RetryDuration time.Duration
	// DeadLetter is the stream failed records go to when the destination
	// has no error output of its own or it fails. Default "deadletter".
	DeadLetter string
	// StateDir keeps the per-shard delivery intents (see the package doc).
	// Empty disables them: a crash between acknowledgement and checkpoint
	// may then deliver a batch twice under different identities.
	StateDir string
	// ReadLimit caps the records per read (a batch may pass the size hint
	// by one read). Default 5,000.
	ReadLimit int
	// StatusInterval is how often backlog and freshness are measured.
	// Default 2 s.
	StatusInterval time.Duration
	// Logger gets the logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics, shared by the delivery streams of one registry. Default: a
	// set registered nowhere.
	Metrics *Metrics
	// Clock drives every deadline, wait and timestamp (see Clock). Default:
	// the wall clock.
	Clock Clock
}

// Validate checks the config; errors name the field as the YAML key.
func (c *Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: must not be empty"))
	}
	if c.Stream == "" {
		errs = append(errs, errors.New("stream: must not be empty"))
	}
	if c.BufferSize != 0 && (c.BufferSize < MinBufferSize || c.BufferSize > MaxBufferSize) {
		errs = append(errs, fmt.Errorf("buffer.size: %d: want 1MiB to 128MiB", c.BufferSize))
	}
	if c.BufferInterval > MaxBufferInterval {
		errs = append(errs, fmt.Errorf("buffer.interval: %s: want 0s to 900s", c.BufferInterval))
	}
	if err := sink.ValidCompression(c.Compression); err != nil {
		errs = append(errs, fmt.Errorf("compression: %w", err))
	}
	if c.Sink == nil {
		errs = append(errs, errors.New("destination: one of s3, http_endpoint, kinesis or local is required"))
	}
	return errors.Join(errs...)
}
