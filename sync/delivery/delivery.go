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
// request ids) never holds a record twice.
package delivery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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
	DefaultDeadLetter     = "deadletter"
	DefaultReadLimit      = 5000
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

// Lease upkeep while a batch is retried for longer than Consume's lease:
// Consume renews between calls only, so the delivery stream renews the
// shard's lease itself when less than leaseRenewAt is left.
const (
	leaseTTL     = 30 * time.Second
	leaseRenewAt = 20 * time.Second
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
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
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

// Status is a delivery stream's state as the status board shows it.
type Status struct {
	Name        string `json:"name"`
	Stream      string `json:"stream"`
	Destination string `json:"destination"`
	// Online is false while deliveries fail (the destination is away).
	Online bool `json:"online"`
	// BacklogRecords: records in the source stream not yet delivered (-1
	// if unknown).
	BacklogRecords int64 `json:"backlog_records"`
	// FreshnessSeconds: age of the oldest undelivered record; 0 when
	// everything is delivered.
	FreshnessSeconds float64   `json:"freshness_seconds"`
	DeliveredRecords int64     `json:"delivered_records"`
	DeliveredBytes   int64     `json:"delivered_bytes"`
	DeliveredBatches int64     `json:"delivered_batches"`
	DroppedRecords   int64     `json:"dropped_records"`
	ErrorRecords     int64     `json:"error_output_records"`
	LastDelivery     time.Time `json:"last_delivery,omitzero"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorTime    time.Time `json:"last_error_time,omitzero"`
}

// DeliveryStream is one running delivery stream. Its methods are safe for
// concurrent use.
type DeliveryStream struct {
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
// fields under "status" are also read by Status under DeliveryStream.mu.
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

// leaseKeeper is the lease a batch in flight checkpoints with; it renews
// its own copy.
type leaseKeeper struct {
	shard string
	lease stream.Lease
}

// New checks cfg and returns a delivery stream; Run starts it.
func New(store Store, cfg Config) (*DeliveryStream, error) {
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &DeliveryStream{cfg: cfg, store: store, kind: cfg.Sink.Kind(), shards: map[string]*shardState{},
		log: cfg.Logger.With("delivery_stream", cfg.Name, "stream", cfg.Stream, "destination", cfg.Sink.Kind())}
	if bs, ok := cfg.Sink.(sink.BodySink); ok && bs.WantsBody() && cfg.Transform == nil {
		d.lean = true
	}
	d.online.Store(true)
	d.backlog = -1
	return d, nil
}

// Name is the delivery stream's name.
func (d *DeliveryStream) Name() string { return d.cfg.Name }

// Run delivers until ctx ends. It restarts the consumer after store errors
// (e.g. the source stream does not exist yet) with a backoff, and returns
// nil when ctx ends.
func (d *DeliveryStream) Run(ctx context.Context) error {
	d.setGauges()
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		d.statusLoop(ctx)
	}()
	defer func() { <-statusDone }()
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
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func (d *DeliveryStream) shard(id string) *shardState {
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
func (d *DeliveryStream) handle(ctx context.Context, b stream.ShardBatch) error {
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

func (d *DeliveryStream) add(ctx context.Context, st *shardState, b stream.ShardBatch) error {
	var inBytes int64
	for _, r := range b.Records {
		inBytes += int64(len(r.Data))
		if in := st.intent; in != nil {
			if st.n == 0 && r.SequenceNumber != in.First {
				st.intent = nil // the intent was delivered and checkpointed, or is gone
			} else if seqCmp(r.SequenceNumber, in.Last) > 0 {
				st.intent = nil // its last record is gone: nothing to match
			}
		}
		d.buffer(st, r)
		if in := st.intent; in != nil && r.SequenceNumber == in.Last {
			if err := d.flush(ctx, st); err != nil {
				return err
			}
			st.intent = nil
		}
	}
	if len(b.Records) > 0 {
		d.cfg.Metrics.IncomingRecords.WithLabelValues(d.cfg.Name).Add(float64(len(b.Records)))
		d.cfg.Metrics.IncomingBytes.WithLabelValues(d.cfg.Name).Add(float64(inBytes))
	}
	if st.n == 0 || (st.intent != nil && !b.Ended) {
		return nil
	}
	if b.Ended || st.size >= d.cfg.BufferSize || d.due(st, b.CaughtUp) {
		return d.flush(ctx, st)
	}
	return nil
}

// due reports whether the shard's buffer has waited out the interval hint.
// The interval counts from when the first record was buffered, as in
// Firehose, and also from when it arrived in the stream once the shard is
// caught up: at the end of a backlog the last partial batch holds records
// older than the interval already, and waiting once more would only delay
// them (while reading the backlog, batches still fill to the size hint).
// An arrival time ahead of the clock (it was set back) counts as new.
func (d *DeliveryStream) due(st *shardState, caughtUp bool) bool {
	now := d.cfg.Now()
	if now.Sub(st.started) >= d.cfg.BufferInterval {
		return true
	}
	return caughtUp && now.Sub(st.firstAt) >= d.cfg.BufferInterval
}

func (d *DeliveryStream) buffer(st *shardState, r stream.Record) {
	if st.n == 0 {
		st.started = d.cfg.Now()
		st.first, st.firstAt = r.SequenceNumber, r.ArrivalTime
	}
	st.n++
	if d.lean {
		st.raw.write(r.Data)
		st.raw.write(d.cfg.Delimiter)
	} else {
		st.recs = append(st.recs, r)
	}
	st.size += int64(len(r.Data))
	st.last = r.SequenceNumber
}

// pendingBatch is a shard's buffer handed to delivery.
type pendingBatch struct {
	recs        []stream.Record // full mode
	raw         chunks          // lean mode
	n           int
	first, last string
	firstAt     time.Time
}

func (d *DeliveryStream) resetShard(st *shardState) {
	st.raw.release()
	st.recs, st.raw, st.n = nil, nil, 0
	st.size = 0
	st.last = ""
	st.loaded = false
	st.intent = nil
}

// flush starts delivering the shard's buffer as one batch, once the
// previous batch of the shard is done (its error is returned then). The
// batch checkpoints itself when the destination acknowledged it.
func (d *DeliveryStream) flush(ctx context.Context, st *shardState) error {
	if err := waitInflight(st); err != nil {
		return err
	}
	pb := pendingBatch{recs: st.recs, raw: st.raw, n: st.n, first: st.first, last: st.last, firstAt: st.firstAt}
	st.recs, st.raw, st.n, st.size = nil, nil, 0, 0
	lk := &leaseKeeper{shard: st.id, lease: st.lease}
	ch := make(chan error, 1)
	st.inflight = ch
	d.inflight.Add(1)
	go func() {
		defer d.inflight.Done()
		ch <- d.deliverBatch(ctx, lk, pb)
	}()
	return nil
}

// deliverBatch saves the batch's intent, transforms, delivers, sends
// failures to the error output and checkpoints.
func (d *DeliveryStream) deliverBatch(ctx context.Context, lk *leaseKeeper, pb pendingBatch) error {
	defer pb.raw.release()
	first, last := pb.first, pb.last
	if err := d.saveIntent(lk.shard, intent{First: first, Last: last}); err != nil {
		return err
	}
	id := sink.BatchID(d.cfg.Name, lk.shard, first, last)
	var out []sink.Record
	var failed []sink.FailedRecord
	if !d.lean {
		var err error
		out, failed, err = d.transform(ctx, pb.recs)
		if err != nil {
			return err
		}
	}
	if d.lean || len(out) > 0 {
		more, err := d.deliver(ctx, lk, id, pb, out)
		if err != nil {
			return err
		}
		failed = append(failed, more...)
	}
	if len(failed) > 0 {
		if err := d.errorOutput(ctx, lk.shard, id, pb.firstAt, failed); err != nil {
			return err
		}
	}
	d.renew(lk)
	if err := d.store.Checkpoint(lk.lease, d.cfg.Name, d.cfg.Stream, lk.shard, last); err != nil {
		return fmt.Errorf("checkpoint %s %s: %w", lk.shard, last, err)
	}
	return nil
}

// transform runs the transform, if any; it returns the records to deliver
// and those that failed processing.
func (d *DeliveryStream) transform(ctx context.Context, recs []stream.Record) ([]sink.Record, []sink.FailedRecord, error) {
	out := make([]sink.Record, 0, len(recs))
	if d.cfg.Transform == nil {
		for _, r := range recs {
			out = append(out, sink.Record{PartitionKey: r.PartitionKey, SequenceNumber: r.SequenceNumber, ArrivalTime: r.ArrivalTime, Data: r.Data})
		}
		return out, nil, nil
	}
	in := make([]transform.Record, len(recs))
	for i, r := range recs {
		in[i] = transform.Record{ID: r.SequenceNumber, ArrivalTime: r.ArrivalTime, Data: r.Data}
	}
	res, err := d.cfg.Transform.Transform(ctx, in)
	if err == nil && len(res) != len(recs) {
		err = fmt.Errorf("transform returned %d results for %d records", len(res), len(recs))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		res = make([]transform.Result, len(recs))
		for i := range res {
			res[i] = transform.Result{Result: transform.ProcessingFailed, Message: err.Error()}
		}
	}
	var failed []sink.FailedRecord
	var ok, dropped int
	for i, r := range recs {
		sr := sink.Record{PartitionKey: r.PartitionKey, SequenceNumber: r.SequenceNumber, ArrivalTime: r.ArrivalTime, Data: r.Data}
		switch res[i].Result {
		case transform.Ok:
			sr.Data = res[i].Data
			out = append(out, sr)
			ok++
		case transform.Dropped:
			dropped++
		default:
			failed = append(failed, sink.FailedRecord{Record: sr, Code: "ProcessingFailed", Message: res[i].Message, Attempts: 1})
		}
	}
	m := d.cfg.Metrics.Processing
	m.WithLabelValues(d.cfg.Name, transform.Ok).Add(float64(ok))
	m.WithLabelValues(d.cfg.Name, transform.Dropped).Add(float64(dropped))
	m.WithLabelValues(d.cfg.Name, transform.ProcessingFailed).Add(float64(len(failed)))
	d.drop.Add(int64(dropped))
	return out, failed, nil
}

// deliver sends one batch until the destination acknowledges it, a
// permanent error, or the retry duration ends. It returns the records that
// go to the error output; its error is only ctx's.
func (d *DeliveryStream) deliver(ctx context.Context, lk *leaseKeeper, id string, pb pendingBatch, recs []sink.Record) ([]sink.FailedRecord, error) {
	shardID := lk.shard
	b := &sink.Batch{ID: id, DeliveryStream: d.cfg.Name, Version: d.cfg.Version, Stream: d.cfg.Stream,
		ShardID: shardID, FirstSeq: pb.first, LastSeq: pb.last, Time: pb.firstAt, Records: recs}
	count := len(recs)
	if bs, ok := d.cfg.Sink.(sink.BodySink); ok && bs.WantsBody() {
		var body []byte
		var err error
		name := d.cfg.Name + "-" + sink.UUID(id)
		if d.lean {
			body, err = sink.Encode(pb.raw.records(), nil, d.cfg.Compression, name)
			count = pb.n
		} else {
			body, err = sink.Encode(recs, d.cfg.Delimiter, d.cfg.Compression, name)
		}
		if err != nil {
			return nil, err
		}
		b.Body, b.Ext, b.ContentEncoding = body, sink.Ext(d.cfg.Compression), d.cfg.Compression
	}
	// failAll sends the whole batch to the error output; in lean mode its
	// records are read back from the stream (they are still there: the
	// checkpoint has not moved past them).
	failAll := func(code, msg string) ([]sink.FailedRecord, error) {
		all := recs
		if d.lean {
			var err error
			if all, err = d.reread(ctx, shardID, pb.first, pb.last); err != nil {
				return nil, err
			}
		}
		out := make([]sink.FailedRecord, len(all))
		for i, r := range all {
			out[i] = sink.FailedRecord{Record: r, Code: code, Message: msg, Attempts: b.Attempts}
		}
		return out, nil
	}
	deadline := d.retryDeadline(pb.firstAt)
	step := d.cfg.RetryInitial
	m := d.cfg.Metrics
	for {
		b.Attempts++
		err := d.cfg.Sink.Deliver(ctx, b)
		var rerr *sink.RecordErrors
		switch {
		case err == nil || errors.As(err, &rerr):
			var failed []sink.FailedRecord
			n := count
			if rerr != nil {
				for i, e := range rerr.Failed {
					if i >= 0 && i < len(recs) {
						failed = append(failed, sink.FailedRecord{Record: recs[i], Code: e.Code, Message: e.Message, Attempts: b.Attempts})
					}
				}
				n -= len(failed)
			}
			d.succeeded(b, n)
			return failed, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		m.DeliveryFailures.WithLabelValues(d.cfg.Name, d.kind).Inc()
		d.noteError(err)
		if errors.Is(err, sink.ErrPermanent) {
			d.log.Error("batch failed permanently; records go to the error output", "shard", shardID, "batch", id, "records", count, "err", err)
			return failAll("Permanent", err.Error())
		}
		d.online.Store(false)
		d.cfg.Metrics.Online.WithLabelValues(d.cfg.Name, d.kind).Set(0)
		if !d.cfg.Now().Before(deadline) {
			d.log.Error("batch retried until its retry duration ended; records go to the error output", "shard", shardID, "batch", id, "attempts", b.Attempts, "err", err)
			return failAll("RetryExpired", fmt.Sprintf("after %d attempts: %v", b.Attempts, err))
		}
		wait := step/2 + rand.N(step/2+1)
		d.log.Warn("delivery failed; retrying", "shard", shardID, "batch", id, "attempt", b.Attempts, "in", wait, "err", err)
		if !d.sleep(ctx, lk, wait) {
			return nil, ctx.Err()
		}
		step = min(step*2, d.cfg.RetryMax)
	}
}

// sleep waits for wait or ctx, renewing the shard's lease on the way; it
// reports false when ctx ended.
func (d *DeliveryStream) sleep(ctx context.Context, lk *leaseKeeper, wait time.Duration) bool {
	end := time.Now().Add(wait)
	for {
		d.renew(lk)
		left := time.Until(end)
		if left <= 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(left, 5*time.Second)):
		}
	}
}

// renew extends the shard's lease when it runs low. A lease that was taken
// over stays as it is: the checkpoint then fails with ErrLeaseLost and the
// shard restarts from its checkpoint, rebuilding the same batch.
func (d *DeliveryStream) renew(lk *leaseKeeper) {
	if lk.lease.Token == 0 || time.Until(lk.lease.Expires) > leaseRenewAt {
		return
	}
	l, err := d.store.RenewLease(lk.lease, leaseTTL)
	if err != nil {
		d.log.Warn("renewing the shard lease", "shard", lk.shard, "err", err)
		return
	}
	lk.lease = l
}

// reread reads a shard's records from first to last (inclusive) back from
// the stream.
func (d *DeliveryStream) reread(ctx context.Context, shardID, first, last string) ([]sink.Record, error) {
	var out []sink.Record
	after, _ := d.store.GetCheckpoint(d.cfg.Name, d.cfg.Stream, shardID)
	for {
		res, err := d.store.Read(ctx, stream.ReadRequest{Stream: d.cfg.Stream, ShardID: shardID, After: after, Limit: 10000})
		if err != nil {
			return nil, fmt.Errorf("reading the failed batch back: %w", err)
		}
		for _, r := range res.Records {
			if seqCmp(r.SequenceNumber, first) < 0 {
				continue
			}
			if seqCmp(r.SequenceNumber, last) > 0 {
				return out, nil
			}
			out = append(out, sink.Record{PartitionKey: r.PartitionKey, SequenceNumber: r.SequenceNumber, ArrivalTime: r.ArrivalTime, Data: r.Data})
			if r.SequenceNumber == last {
				return out, nil
			}
		}
		if len(res.Records) == 0 {
			return out, nil // the rest left the stream's retention
		}
		after = res.Records[len(res.Records)-1].SequenceNumber
	}
}

func (d *DeliveryStream) succeeded(b *sink.Batch, n int) {
	var size int
	if b.Body != nil {
		size = len(b.Body)
	} else {
		for _, r := range b.Records {
			size += len(r.Data)
		}
	}
	m := d.cfg.Metrics
	m.DeliverySuccess.WithLabelValues(d.cfg.Name, d.kind).Inc()
	m.DeliveryRecords.WithLabelValues(d.cfg.Name, d.kind).Add(float64(n))
	m.DeliveryBytes.WithLabelValues(d.cfg.Name, d.kind).Add(float64(size))
	m.Online.WithLabelValues(d.cfg.Name, d.kind).Set(1)
	d.delivered.Add(int64(n))
	d.bytes.Add(int64(size))
	d.batches.Add(1)
	d.online.Store(true)
	d.mu.Lock()
	d.lastOK = d.cfg.Now()
	d.mu.Unlock()
	d.log.Debug("batch delivered", "shard", b.ShardID, "batch", b.ID, "records", n, "bytes", size, "attempts", b.Attempts)
}

func (d *DeliveryStream) retryDeadline(oldest time.Time) time.Time {
	now := d.cfg.Now()
	if d.cfg.RetryDuration > 0 {
		return now.Add(d.cfg.RetryDuration)
	}
	d.mu.Lock()
	ret := d.retention
	d.mu.Unlock()
	if ret <= 0 {
		ret = stream.DefaultRetention
	}
	dl := oldest.Add(ret - 5*time.Minute)
	if dl.Before(now.Add(time.Minute)) {
		dl = now.Add(time.Minute)
	}
	return dl
}

// errorOutput writes failed records to the destination's error output, or
// to the dead-letter stream when there is none or it fails. It returns an
// error only when ctx ends: the dead-letter stream is local and retried.
func (d *DeliveryStream) errorOutput(ctx context.Context, shardID, id string, t time.Time, failed []sink.FailedRecord) error {
	byType := map[string][]sink.FailedRecord{}
	for _, f := range failed {
		typ := "delivery-failed"
		if f.Code == "ProcessingFailed" {
			typ = "processing-failed"
		}
		byType[typ] = append(byType[typ], f)
		d.cfg.Metrics.ErrorOutput.WithLabelValues(d.cfg.Name, f.Code).Inc()
	}
	d.errRecs.Add(int64(len(failed)))
	for typ, recs := range byType {
		eb := &sink.ErrorBatch{ID: sink.BatchID(id, typ, "", ""), DeliveryStream: d.cfg.Name, Version: d.cfg.Version,
			Stream: d.cfg.Stream, ShardID: shardID, Time: t, OutputType: typ, Records: recs}
		if es, ok := d.cfg.Sink.(sink.ErrorSink); ok {
			err := es.DeliverErrors(ctx, eb)
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Warn("error output failed; writing to the dead-letter stream", "dead_letter", d.cfg.DeadLetter, "err", err)
		}
		if err := d.deadLetter(ctx, eb); err != nil {
			return err
		}
	}
	return nil
}

// deadLetterRecord is the team's dead-letter JSON, plus the record's origin.
type deadLetterRecord struct {
	Source         string `json:"source"`
	Topic          string `json:"topic"`
	Reason         string `json:"reason"`
	DataB64        string `json:"data_b64"`
	TS             string `json:"ts"`
	Stream         string `json:"stream"`
	ShardID        string `json:"shard_id"`
	SequenceNumber string `json:"sequence_number"`
	PartitionKey   string `json:"partition_key"`
}

func (d *DeliveryStream) deadLetter(ctx context.Context, eb *sink.ErrorBatch) error {
	var entries []stream.Entry
	for _, f := range eb.Records {
		raw, _ := json.Marshal(deadLetterRecord{
			Source: "sync", Topic: d.cfg.Name, Reason: f.Code + ": " + f.Message,
			DataB64: base64.StdEncoding.EncodeToString(f.Data), TS: d.cfg.Now().UTC().Format(time.RFC3339Nano),
			Stream: eb.Stream, ShardID: eb.ShardID, SequenceNumber: f.SequenceNumber, PartitionKey: f.PartitionKey,
		})
		entries = append(entries, stream.Entry{PartitionKey: "sync", Data: raw})
	}
	step := d.cfg.RetryInitial
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && n < stream.MaxBatchRecords && size+len(entries[n].Data)+4 <= stream.MaxBatchBytes {
			size += len(entries[n].Data) + 4
			n++
		}
		n = max(n, 1)
		res, err := d.store.PutBatch(ctx, d.cfg.DeadLetter, entries[:n])
		if err == nil {
			var retry []stream.Entry
			for i, r := range res {
				if r.Err != nil {
					err = r.Err
					retry = append(retry, entries[i])
				}
			}
			entries = append(retry, entries[n:]...)
			if err == nil {
				step = d.cfg.RetryInitial
				continue
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.noteError(fmt.Errorf("dead-letter stream %s: %w", d.cfg.DeadLetter, err))
		d.log.Error("writing failed records to the dead-letter stream; retrying", "dead_letter", d.cfg.DeadLetter, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
		step = min(step*2, d.cfg.RetryMax)
	}
	return nil
}

func (d *DeliveryStream) noteError(err error) {
	d.mu.Lock()
	d.lastErr = err.Error()
	d.lastErrAt = d.cfg.Now()
	d.mu.Unlock()
}

// Status returns the current state.
func (d *DeliveryStream) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Status{
		Name: d.cfg.Name, Stream: d.cfg.Stream, Destination: d.kind, Online: d.online.Load(),
		BacklogRecords: d.backlog, FreshnessSeconds: d.freshness.Seconds(),
		DeliveredRecords: d.delivered.Load(), DeliveredBytes: d.bytes.Load(), DeliveredBatches: d.batches.Load(),
		DroppedRecords: d.drop.Load(), ErrorRecords: d.errRecs.Load(),
		LastDelivery: d.lastOK, LastError: d.lastErr, LastErrorTime: d.lastErrAt,
	}
}

func (d *DeliveryStream) statusLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.StatusInterval)
	defer t.Stop()
	for {
		d.measure(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// measure computes backlog and freshness from the store: for every shard,
// the records after the group's checkpoint, and the arrival time of the
// first of them (the oldest record not yet delivered).
func (d *DeliveryStream) measure(ctx context.Context) {
	desc, err := d.store.DescribeStream(d.cfg.Stream)
	if err != nil {
		return
	}
	now := d.cfg.Now()
	var backlog int64
	var fresh time.Duration
	for _, sh := range desc.Shards {
		ck, err := d.store.GetCheckpoint(d.cfg.Name, d.cfg.Stream, sh.ShardID)
		if err != nil {
			return
		}
		res, err := d.store.Read(ctx, stream.ReadRequest{Stream: d.cfg.Stream, ShardID: sh.ShardID, After: ck, Limit: 1})
		if err != nil || len(res.Records) == 0 {
			continue
		}
		if age := now.Sub(res.Records[0].ArrivalTime); age > fresh {
			fresh = age
		}
		if backlog >= 0 {
			if n := d.shardBacklog(ctx, sh.ShardID, ck, res.Records[0].SequenceNumber); n >= 0 {
				backlog += n
			} else {
				backlog = -1
			}
		}
	}
	d.mu.Lock()
	d.retention = desc.Retention
	d.backlog = backlog
	d.freshness = fresh
	d.mu.Unlock()
	d.setGauges()
}

// shardBacklog counts the shard's undelivered records, starting with
// first (the first record after the checkpoint ck): from the counters in
// the sequence numbers when they use the Kinesis layout, or by reading
// (up to 100,000) otherwise. It returns -1 when it cannot tell.
func (d *DeliveryStream) shardBacklog(ctx context.Context, shardID, ck, first string) int64 {
	if c0, ok := seqCounter(first); ok {
		if last, err := d.store.LastSequenceNumber(d.cfg.Stream, shardID); err == nil {
			if c1, ok := seqCounter(last); ok && c1 >= c0 {
				return int64(c1-c0) + 1
			}
		}
	}
	var count int64
	after := ck
	for count < 100000 {
		res, err := d.store.Read(ctx, stream.ReadRequest{Stream: d.cfg.Stream, ShardID: shardID, After: after, Limit: 10000, MaxBytes: 1 << 20})
		if err != nil {
			return -1
		}
		count += int64(len(res.Records))
		if len(res.Records) == 0 {
			break
		}
		after = res.Records[len(res.Records)-1].SequenceNumber
	}
	return count
}

func (d *DeliveryStream) setGauges() {
	st := d.Status()
	m := d.cfg.Metrics
	m.BacklogRecords.WithLabelValues(d.cfg.Name, d.kind).Set(float64(st.BacklogRecords))
	m.DataFreshness.WithLabelValues(d.cfg.Name, d.kind).Set(st.FreshnessSeconds)
	on := 0.0
	if st.Online {
		on = 1
	}
	m.Online.WithLabelValues(d.cfg.Name, d.kind).Set(on)
}
