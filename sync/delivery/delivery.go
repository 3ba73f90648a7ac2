// Package delivery is the Firehose-style delivery stream engine: it reads
// one stream as a consumer group (shard order, resharding lineage, leases
// and checkpoints from the store), buffers each shard's records until a
// size or interval hint, transforms, encodes (delimiter, compression),
// delivers to a sink.Sink with capped exponential backoff and jitter, sends
// what fails permanently to the error output, and checkpoints only after
// the destination acknowledged.
//
// Exactness: a batch is one shard's records from a first to a last
// sequence number; its identity (sink.BatchID) comes from (delivery stream,
// shard, first, last). Before the first attempt the batch's range is saved
// (synced) in Config.StateDir; after a restart the same range is rebuilt
// from the stream, so a destination that overwrites by id (S3 keys, HTTP
// request ids) never holds a record twice. A restart logs, at INFO, each
// in-flight batch it rebuilt this way.
//
// Time: one Clock (Config.Clock) drives the interval hint, the retry
// backoff and duration, lease renewal, the status loop and every
// timestamp, so tests can hold it still and move it.
//
// Files, one job each: delivery.go (Stream, New, Run, the per-shard
// callback), config.go (Config, defaults, Validate), buffer.go (per-shard
// buffers and when they flush), batch.go (one batch: intent, transform,
// deliver, error output, checkpoint), retry.go (attempts with backoff and
// the retry deadline), lease.go (renewing a shard's lease during long
// retries), erroroutput.go (the destination's error output and the
// dead-letter stream), status.go (Status, backlog and freshness), intent.go
// (delivery intents on disk), clock.go, metrics.go, chunks.go (pooled
// buffer pieces), seq.go (sequence number arithmetic).
package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// Store is what a delivery stream needs from the stream store;
// *stream.Store implements it.
type Store interface {
	Consume(ctx context.Context, cfg stream.ConsumerConfig, fn func(context.Context, stream.ShardBatch) error) error
	Checkpoint(lease stream.Lease, group, stream, shardID, seq string) error
	GetCheckpoint(group, stream, shardID string) (string, error)
	DescribeStream(name string) (stream.StreamDescription, error)
	Read(ctx context.Context, req stream.ReadRequest) (stream.ReadResult, error)
	PutBatch(ctx context.Context, stream string, entries []stream.Entry) ([]stream.PutResult, error)
	LastSequenceNumber(stream, shardID string) (string, error)
	RenewLease(l stream.Lease, ttl time.Duration) (stream.Lease, error)
}

// Stream is one running delivery stream. Its methods are safe for
// concurrent use.
type Stream struct {
	cfg   Config
	store Store
	log   *slog.Logger
	kind  string
	// lean: the destination takes one object per batch and there is no
	// transform, so the buffer keeps only the joined data (a record's
	// sequence number and key would cost more memory than its data).
	lean bool

	mu        sync.Mutex
	shards    map[string]*shardState
	lastErr   string
	lastErrAt time.Time
	lastOK    time.Time
	backlog   int64
	freshness time.Duration
	retention time.Duration

	inflight sync.WaitGroup

	online                          atomic.Bool
	delivered, bytes, batches, drop atomic.Int64
	errRecs                         atomic.Int64
}

// shardState is owned by the goroutine Consume runs for the shard; the
// fields under "status" are also read by Status under Stream.mu.
type shardState struct {
	id string
	// The buffer: whole records (recs), or, in lean mode, only the data
	// joined with the delimiter (raw) plus what identifies the batch.
	recs    []stream.Record
	raw     chunks
	n       int
	first   string
	firstAt time.Time
	size    int64
	started time.Time
	last    string // the last sequence number buffered
	lease   stream.Lease
	intent  *intent
	loaded  bool
	// inflight gets the result of the batch being delivered (at most one
	// per shard, so the next one fills while it uploads); nil if none.
	inflight chan error
}

// New checks cfg and returns a delivery stream; Run starts it.
func New(store Store, cfg Config) (*Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Version == 0 {
		cfg.Version = 1
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.BufferInterval == 0 {
		cfg.BufferInterval = DefaultBufferInterval
	}
	if cfg.BufferInterval < 0 {
		cfg.BufferInterval = 0
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = DefaultRetryInitial
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RetryMax < cfg.RetryInitial {
		cfg.RetryMax = cfg.RetryInitial
	}
	if cfg.DeadLetter == "" {
		cfg.DeadLetter = DefaultDeadLetter
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = DefaultReadLimit
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	d := &Stream{cfg: cfg, store: store, kind: cfg.Sink.Kind(), shards: map[string]*shardState{},
		log: cfg.Logger.With("delivery_stream", cfg.Name, "stream", cfg.Stream, "destination", cfg.Sink.Kind())}
	if bs, ok := cfg.Sink.(sink.BodySink); ok && bs.WantsBody() && cfg.Transform == nil {
		d.lean = true
	}
	d.online.Store(true)
	d.backlog = -1
	return d, nil
}

// Name is the delivery stream's name.
func (d *Stream) Name() string { return d.cfg.Name }

// Run delivers until ctx ends. It restarts the consumer after store errors
// (e.g. the source stream does not exist yet) with a backoff, and returns
// nil when ctx ends.
func (d *Stream) Run(ctx context.Context) error {
	d.setGauges()
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		d.statusLoop(ctx)
	}()
	defer func() { <-statusDone }()
	checkDone := make(chan struct{})
	go func() {
		defer close(checkDone)
		d.checkHealth(ctx)
	}()
	defer func() { <-checkDone }()
	idle := d.cfg.BufferInterval / 4
	idle = min(max(idle, 50*time.Millisecond), time.Second)
	wait := time.Second
	for {
		err := d.store.Consume(ctx, stream.ConsumerConfig{
			// One process holds a data directory, so a fixed owner is safe and
			// lets a restarted gateway take its leases back at once instead
			// of waiting for the dead process's leases to expire.
			Group: d.cfg.Name, Stream: d.cfg.Stream, Owner: "sync-" + d.cfg.Name, StartAtLatest: d.cfg.StartAtLatest,
			Limit: d.cfg.ReadLimit, Idle: idle, LeaseTTL: leaseTTL,
		}, d.handle)
		d.inflight.Wait()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.noteError(fmt.Errorf("consume %s: %w", d.cfg.Stream, err))
			d.log.Warn("consumer stopped; restarting", "err", err, "in", wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.cfg.Clock.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func (d *Stream) shard(id string) *shardState {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.shards[id]
	if st == nil {
		st = &shardState{id: id}
		d.shards[id] = st
	}
	return st
}

// handle is Consume's callback for one shard's batch.
func (d *Stream) handle(ctx context.Context, b stream.ShardBatch) error {
	st := d.shard(b.ShardID)
	if err := pollInflight(st); err != nil {
		d.resetShard(st)
		return err
	}
	if len(b.Records) > 0 && st.last != "" && seqCmp(b.Records[0].SequenceNumber, st.last) <= 0 {
		// Consume went back to the checkpoint: what is buffered comes
		// again (and the batch in flight is rebuilt from its intent).
		_ = waitInflight(st)
		d.resetShard(st)
	}
	if b.Lease.Token != st.lease.Token || b.Lease.Expires.After(st.lease.Expires) {
		st.lease = b.Lease
	}
	if !st.loaded {
		st.loaded = true
		st.intent = d.loadIntent(st.id)
	}
	err := d.add(ctx, st, b)
	if err == nil && b.Ended {
		// The shard's last records: checkpoint them before its children.
		err = waitInflight(st)
	}
	if err != nil {
		_ = waitInflight(st)
		d.resetShard(st)
		return err
	}
	return nil
}

// waitInflight waits for the shard's batch in flight, if any, and returns
// its error.
func waitInflight(st *shardState) error {
	if st.inflight == nil {
		return nil
	}
	err := <-st.inflight
	st.inflight = nil
	return err
}

// pollInflight returns the error of a batch in flight that has finished.
func pollInflight(st *shardState) error {
	if st.inflight == nil {
		return nil
	}
	select {
	case err := <-st.inflight:
		st.inflight = nil
		return err
	default:
		return nil
	}
}
