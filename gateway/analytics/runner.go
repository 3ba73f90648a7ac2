package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Store is the part of the stream store a query uses.
type Store interface {
	Consume(ctx context.Context, cfg stream.ConsumerConfig, fn func(context.Context, stream.ShardBatch) error) error
	PutBatch(ctx context.Context, stream string, entries []stream.Entry) ([]stream.PutResult, error)
	Checkpoint(lease stream.Lease, group, stream, shardID, seq string) error
	DescribeStream(name string) (stream.StreamDescription, error)
	LastSequenceNumber(stream, shardID string) (string, error)
	Read(ctx context.Context, req stream.ReadRequest) (stream.ReadResult, error)
}

// RunnerOptions are what a Runner shares with the others.
type RunnerOptions struct {
	Store    Store
	StateDir string
	// SaveInterval: see Config.SaveInterval. Default 10 s.
	SaveInterval time.Duration
	Metrics      *Metrics // nil: a private, unregistered set
	Logger       *slog.Logger
	// Now is the wall clock (idle watermark, dead-letter ts). Default time.Now.
	Now func() time.Time
	// Idle is the consumer's idle call interval. Default 1 s.
	Idle time.Duration
}

// maxAhead: with event time, a record stamped further than this in the
// future (a sensor with a wrong clock) is skipped and counted, so that it
// cannot close every open window at once.
const maxAhead = time.Hour

// batchLimit is the consumer's batch size; maxPending is how many results
// a query working through a backlog gathers before it writes them;
// checkpointInterval is how often the store's checkpoints move.
const (
	batchLimit         = 5000
	maxPending         = 5000
	checkpointInterval = 30 * time.Second
)

// Runner runs one continuous query as consumer group analytics-<name>.
// Its methods are safe for concurrent use.
type Runner struct {
	cfg   QueryConfig
	plan  *Plan
	opts  RunnerOptions
	log   *slog.Logger
	group string
	path  string
	fp    string

	mu             sync.Mutex
	eng            *Engine
	pending        []pendingOut
	outPos         map[string]map[string]string
	unsure         bool // a put failed in a way that may have written: reconcile before the next
	leases         map[string]stream.Lease
	checkpointed   map[string]string
	behind         map[string]int64
	dirty          bool
	lastSave       time.Time
	lastCheckpoint time.Time
	recent         []json.RawMessage
	lastStats      Stats
	errMsg         string
	state          string

	snap     atomic.Pointer[status.Query]
	maxLead  int64         // ms; see handle
	progress chan struct{} // closed and replaced when the watermark moves

	cancel context.CancelFunc
	done   chan struct{}
}

// maxHold bounds how long handle holds back a shard that is far ahead;
// shards are held back only while more than maxOpen windows are open.
const (
	maxHold = time.Second
	maxOpen = 10_000
)

func fingerprint(q QueryConfig) string {
	return fmt.Sprintf("%s\x00%s\x00%d", strings.TrimSpace(q.SQL), q.EventTime, q.AllowedLateness.Milliseconds())
}

// NewRunner validates q and restores its saved state, reconciling any
// results that were in flight when the process stopped. It reads nothing
// yet; Start does.
func NewRunner(ctx context.Context, q QueryConfig, o RunnerOptions) (*Runner, error) {
	plan, err := q.Normalize("query " + q.Name)
	if err != nil {
		return nil, err
	}
	if o.SaveInterval <= 0 {
		o.SaveInterval = DefaultSaveInterval
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Idle <= 0 {
		o.Idle = time.Second
	}
	r := &Runner{cfg: q, plan: plan, opts: o, log: o.Logger.With("query", q.Name),
		group: "analytics-" + q.Name, path: statePath(o.StateDir, q.Name), fp: fingerprint(q),
		leases: map[string]stream.Lease{}, checkpointed: map[string]string{}, behind: map[string]int64{},
		state: "starting", done: make(chan struct{}), progress: make(chan struct{})}
	extent := plan.Window.Size
	if plan.Window.Kind == Session {
		extent = plan.Window.Gap
	}
	r.maxLead = max(4*extent+q.AllowedLateness.Milliseconds(), 10_000)
	var ev []string
	if q.EventTime != "" {
		ev = strings.Split(q.EventTime, ".")
	}
	r.eng = NewEngine(plan, EngineOptions{Query: q.Name, EventTime: ev, Lateness: q.AllowedLateness.Duration,
		IdleGrace: 2 * o.Idle, MaxAhead: maxAhead})
	if err := os.MkdirAll(o.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("analytics %s: state dir: %w", q.Name, err)
	}
	st, err := loadState(r.path)
	if err != nil {
		return nil, fmt.Errorf("analytics %s: %w", q.Name, err)
	}
	if st != nil {
		es := st.Engine
		if es == nil {
			es = &EngineState{}
		}
		if st.Fingerprint != r.fp {
			r.log.Warn("analytics: the query changed since its state was saved; open windows are dropped, progress is kept")
			es = &EngineState{Watermark: es.Watermark, Shards: es.Shards}
		}
		if err := r.eng.Restore(es); err != nil {
			return nil, fmt.Errorf("analytics %s: %w", q.Name, err)
		}
		for id, s := range es.Shards {
			r.checkpointed[id] = s.Pos // the store's checkpoint is at most this; re-writing it is harmless
		}
		r.pending, r.outPos, r.unsure = st.Pending, st.OutPos, len(st.Pending) > 0
		r.lastStats = r.eng.Stats()
		if err := r.flush(ctx); err != nil {
			r.log.Warn("analytics: results from before the restart are not all written yet; will retry", "err", err)
		}
	}
	return r, nil
}

// Plan returns the compiled query.
func (r *Runner) Plan() *Plan { return r.plan }

// Config returns the query's normalized config.
func (r *Runner) Config() QueryConfig { return r.cfg }

// Start runs the query until ctx ends or Stop is called.
func (r *Runner) Start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	go r.loop(ctx)
}

// Stop stops reading, saves the state, and waits (up to ctx) for the end.
func (r *Runner) Stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("analytics %s: stop: %w", r.cfg.Name, ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = "stopped"
	defer r.publish()
	if r.dirty {
		if err := r.save(); err != nil {
			return err
		}
	}
	r.checkpoint(true)
	return nil
}

func (r *Runner) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.publish()
	if err == nil {
		r.errMsg, r.state = "", "running"
		return
	}
	r.errMsg, r.state = err.Error(), "error"
}

func (r *Runner) loop(ctx context.Context) {
	defer close(r.done)
	backoff := time.Second
	for ctx.Err() == nil {
		d, err := r.opts.Store.DescribeStream(r.plan.Source)
		if err != nil {
			err = fmt.Errorf("source stream %q: %w", r.plan.Source, err)
		}
		for _, out := range []string{r.cfg.Output, r.cfg.LateOutput} {
			if _, oerr := r.opts.Store.DescribeStream(out); err == nil && oerr != nil {
				err = fmt.Errorf("output stream %q: %w (list it under streams)", out, oerr)
			}
		}
		if err != nil {
			r.setErr(err)
		} else {
			r.mu.Lock()
			keep := map[string]bool{}
			for _, sh := range d.Shards {
				keep[sh.ShardID] = true
				if sh.Open() {
					r.eng.Track(sh.ShardID)
				}
			}
			r.eng.Prune(keep)
			r.mu.Unlock()
			r.setErr(nil)
			// A fixed owner: the store is open in one process only (Badger's
			// directory lock) and a query runs once in it, so after kill -9
			// the restarted query takes its leases back at once instead of
			// waiting for the dead process's leases to expire.
			err = r.opts.Store.Consume(ctx, stream.ConsumerConfig{Group: r.group, Stream: r.plan.Source,
				Owner: r.group, StartAtLatest: r.cfg.StartAtLatest, Idle: r.opts.Idle, Limit: batchLimit}, r.handle)
			if ctx.Err() != nil {
				return
			}
			r.setErr(fmt.Errorf("consume %q: %w", r.plan.Source, err))
		}
		r.log.Warn("analytics: query is not running; retrying", "err", r.Status().Error, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// handle is the consumer function: it applies a batch, and saves, emits
// and checkpoints when windows closed or the save interval passed.
func (r *Runner) handle(ctx context.Context, b stream.ShardBatch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A shard far ahead of the watermark (the others are slower, e.g. while
	// working through a backlog) waits a little for them: otherwise it
	// would open windows the watermark cannot close yet, and memory and
	// the state file would grow with them. The wait is bounded, so a shard
	// that never reports cannot stop the others.
	deadline := time.Now().Add(maxHold)
	for len(b.Records) > 0 && r.eng.OpenWindows() > maxOpen && r.eng.Lead(b.ShardID) > r.maxLead && time.Now().Before(deadline) {
		ch := r.progress
		r.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
		r.mu.Lock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	defer r.publish()
	wm := r.eng.Watermark()
	err := r.apply(ctx, b)
	if r.eng.Watermark() != wm {
		close(r.progress)
		r.progress = make(chan struct{})
	}
	switch {
	case err != nil && ctx.Err() == nil:
		r.errMsg, r.state = err.Error(), "error"
	case err == nil && r.state == "error":
		r.errMsg, r.state = "", "running"
	}
	return err
}

// apply is handle with r.mu held.
func (r *Runner) apply(ctx context.Context, b stream.ShardBatch) error {
	now := r.opts.Now()
	r.leases[b.ShardID] = b.Lease
	r.behind[b.ShardID] = b.MillisBehindLatest
	before := r.eng.Position(b.ShardID)
	r.eng.SetNow(now)
	r.eng.Process(b.ShardID, b.Records)
	if b.Ended {
		// The children continue this shard: they hold the watermark from
		// now on, so that the records they took over are not late while
		// the consumer has not reached them yet.
		if d, err := r.opts.Store.DescribeStream(r.plan.Source); err == nil {
			for _, sh := range d.Shards {
				if sh.ParentShardID == b.ShardID || sh.AdjacentParentShardID == b.ShardID {
					r.eng.Track(sh.ShardID)
				}
			}
		}
		r.eng.EndShard(b.ShardID)
	} else if len(b.Records) == 0 {
		r.eng.Idle(b.ShardID, now)
	}
	if r.eng.Position(b.ShardID) != before || b.Ended {
		r.dirty = true
	}
	for _, e := range r.eng.Take() {
		r.enqueue(e, now)
		r.dirty = true
	}
	r.account()
	// Results go out at once while the query keeps up with its source (a
	// batch shorter than the limit: the shard is read to its tip); while it
	// works through a backlog (full batches) they are gathered for up to
	// SaveInterval (or maxPending of them), so one save covers many
	// windows.
	live := len(r.pending) > 0 && len(b.Records) < batchLimit
	if live || len(r.pending) >= maxPending || b.Ended || (r.dirty && now.Sub(r.lastSave) >= r.opts.SaveInterval) {
		if err := r.save(); err != nil {
			return err
		}
		if err := r.flush(ctx); err != nil {
			return err
		}
		// The store's checkpoint only saves re-reading after a restart (the
		// state file is the truth) and costs an fsync per shard: move it
		// now and then, and at the end of a closed shard, whose children
		// wait for it.
		if b.Ended || now.Sub(r.lastCheckpoint) >= checkpointInterval {
			r.checkpoint(false)
			r.lastCheckpoint = now
		}
	}
	return nil
}

// enqueue turns an engine emit into an outbox record.
func (r *Runner) enqueue(e Emit, now time.Time) {
	if !e.Late {
		r.pending = append(r.pending, pendingOut{Stream: r.cfg.Output, Key: r.cfg.Name, Data: e.Data})
		r.recent = append(r.recent, json.RawMessage(e.Data))
		if len(r.recent) > r.cfg.Recent {
			r.recent = r.recent[len(r.recent)-r.cfg.Recent:]
		}
		return
	}
	wm := "none"
	if e.WM != math.MinInt64 {
		wm = formatMillis(e.WM)
	}
	d := stream.DeadLetter{Source: "analytics", Topic: r.plan.Source + "/" + e.Shard + "/" + e.Seq,
		Reason: fmt.Sprintf("late for query %s: event time %s is behind the watermark %s", r.cfg.Name, formatMillis(e.Time), wm),
		Data:   e.Data, TS: formatMillis(now.UnixMilli())}
	dl := d.Entry()
	r.pending = append(r.pending, pendingOut{Stream: r.cfg.LateOutput, Key: dl.PartitionKey, Data: dl.Data})
}

// account moves the engine's counters into the metrics.
func (r *Runner) account() {
	s := r.eng.Stats()
	m, q := r.opts.Metrics, r.cfg.Name
	m.in.WithLabelValues(q).Add(float64(s.In - r.lastStats.In))
	m.out.WithLabelValues(q).Add(float64(s.Out - r.lastStats.Out))
	m.late.WithLabelValues(q).Add(float64(s.Late - r.lastStats.Late))
	for k, v := range s.Skipped {
		if d := v - r.lastStats.Skipped[k]; d > 0 {
			m.skipped.WithLabelValues(q, k).Add(float64(d))
		}
	}
	r.lastStats = s
	var behind int64
	for _, v := range r.behind {
		behind = max(behind, v)
	}
	m.behind.WithLabelValues(q).Set(float64(behind))
	m.open.WithLabelValues(q).Set(float64(r.eng.OpenWindows()))
	if wm := r.eng.Watermark(); wm != math.MinInt64 {
		m.watermark.WithLabelValues(q).Set(float64(wm) / 1000)
	}
}

// save writes the engine and the outbox. When the outbox was empty, it
// first notes the output shards' positions, so that a restart can tell
// which of the pending records are already in their streams.
func (r *Runner) save() error {
	if len(r.pending) > 0 && r.outPos == nil {
		pos := map[string]map[string]string{}
		for _, p := range r.pending {
			if pos[p.Stream] != nil {
				continue
			}
			d, err := r.opts.Store.DescribeStream(p.Stream)
			if err != nil {
				return fmt.Errorf("analytics %s: output stream %q: %w", r.cfg.Name, p.Stream, err)
			}
			pos[p.Stream] = map[string]string{}
			for _, sh := range d.Shards {
				seq, err := r.opts.Store.LastSequenceNumber(p.Stream, sh.ShardID)
				if err != nil {
					return fmt.Errorf("analytics %s: output stream %q: %w", r.cfg.Name, p.Stream, err)
				}
				pos[p.Stream][sh.ShardID] = seq
			}
		}
		r.outPos = pos
	}
	es, err := r.eng.Snapshot()
	if err != nil {
		return fmt.Errorf("analytics %s: %w", r.cfg.Name, err)
	}
	st := &stateFile{Version: stateVersion, Query: r.cfg.Name, Fingerprint: r.fp, Engine: es,
		Pending: r.pending, OutPos: r.outPos}
	if err := saveState(r.path, st); err != nil {
		return fmt.Errorf("analytics %s: %w", r.cfg.Name, err)
	}
	r.dirty = false
	r.lastSave = r.opts.Now()
	return nil
}

// reconcile drops from the outbox what is already in the output streams
// after the positions noted when the outbox was first saved.
func (r *Runner) reconcile(ctx context.Context) error {
	have := map[string]map[string]int{}
	for name, shards := range r.outPos {
		d, err := r.opts.Store.DescribeStream(name)
		if err != nil {
			return fmt.Errorf("reconcile %q: %w", name, err)
		}
		set := map[string]int{}
		for _, sh := range d.Shards {
			after := shards[sh.ShardID]
			for {
				rr, err := r.opts.Store.Read(ctx, stream.ReadRequest{Stream: name, ShardID: sh.ShardID, After: after, Limit: 1000})
				if err != nil {
					return fmt.Errorf("reconcile %q: %w", name, err)
				}
				for _, rec := range rr.Records {
					set[string(rec.Data)]++
				}
				if len(rr.Records) == 0 {
					break
				}
				after = rr.Records[len(rr.Records)-1].SequenceNumber
			}
		}
		have[name] = set
	}
	keep := r.pending[:0]
	dropped := 0
	for _, p := range r.pending {
		if set := have[p.Stream]; set != nil && set[string(p.Data)] > 0 {
			set[string(p.Data)]--
			dropped++
			continue
		}
		keep = append(keep, p)
	}
	r.pending = keep
	if dropped > 0 {
		r.log.Info("analytics: results already written before the restart are not written again", "records", dropped)
	}
	return nil
}

// flush puts the outbox into its streams in order. On failure the rest
// stays in the outbox (in memory and in the saved file) for the next try.
func (r *Runner) flush(ctx context.Context) error {
	if len(r.pending) == 0 {
		r.outPos, r.unsure = nil, false
		return nil
	}
	if r.unsure {
		if err := r.reconcile(ctx); err != nil {
			return err
		}
		r.unsure = false
	}
	for len(r.pending) > 0 {
		name := r.pending[0].Stream
		n, size := 0, 0
		for n < len(r.pending) && n < stream.MaxBatchRecords && r.pending[n].Stream == name {
			sz := len(r.pending[n].Data) + len(r.pending[n].Key)
			if n > 0 && size+sz > stream.MaxBatchBytes {
				break
			}
			size += sz
			n++
		}
		entries := make([]stream.Entry, n)
		for i := range entries {
			entries[i] = stream.Entry{PartitionKey: r.pending[i].Key, Data: r.pending[i].Data}
		}
		res, err := r.opts.Store.PutBatch(ctx, name, entries)
		if err != nil {
			r.unsure = true
			return fmt.Errorf("analytics %s: put %d results to %q: %w", r.cfg.Name, n, name, err)
		}
		// Keep the outbox in order: stop at the first failed record.
		ok := 0
		for ok < len(res) && res[ok].Err == nil {
			ok++
		}
		if ok < len(res) {
			// Records after the failed one may have been written: reconcile first next time.
			failed := res[ok].Err
			r.pending = r.pending[ok:]
			r.unsure = true
			return fmt.Errorf("analytics %s: put result to %q: %w", r.cfg.Name, name, failed)
		}
		r.pending = r.pending[n:]
	}
	r.pending, r.outPos = nil, nil
	r.dirty = true // the saved file still lists the outbox; the next save clears it
	return nil
}

// checkpoint moves the store's checkpoints up to the saved positions.
//
// With stopped set, the consumer has ended and released its leases; the
// checkpoints are written without a lease (a query runs once per store).
func (r *Runner) checkpoint(stopped bool) {
	for id, lease := range r.leases {
		if stopped {
			lease = stream.Lease{}
		}
		pos := r.eng.Position(id)
		if pos == "" || pos == r.checkpointed[id] {
			continue
		}
		if err := r.opts.Store.Checkpoint(lease, r.group, r.plan.Source, id, pos); err != nil {
			if !errors.Is(err, stream.ErrLeaseLost) {
				r.log.Warn("analytics: checkpoint", "shard", id, "err", err)
			}
			continue
		}
		r.checkpointed[id] = pos
	}
}

// Status returns the query's live state as of its last batch. It never
// waits for the query (which may be in an fsync): it reads a snapshot.
func (r *Runner) Status() status.Query {
	if p := r.snap.Load(); p != nil {
		return *p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status()
}

// publish refreshes the status snapshot; r.mu is held.
func (r *Runner) publish() {
	qs := r.status()
	r.snap.Store(&qs)
}

// status builds the status; r.mu is held.
func (r *Runner) status() status.Query {
	s := r.eng.Stats()
	qs := status.Query{Name: r.cfg.Name, SQL: r.plan.SQL, Source: r.plan.Source, Output: r.cfg.Output,
		Window: describeWindow(r.plan.Window), Columns: r.plan.Columns, EventTime: r.cfg.EventTime,
		LatenessMs: r.cfg.AllowedLateness.Milliseconds(), State: r.state, Error: r.errMsg,
		OpenWindows: r.eng.OpenWindows(), In: s.In, Out: s.Out, Late: s.Late, Filtered: s.Filtered,
		Recent: append([]json.RawMessage{}, r.recent...)}
	if len(s.Skipped) > 0 {
		qs.Skipped = s.Skipped
	}
	if wm := r.eng.Watermark(); wm != math.MinInt64 {
		qs.Watermark = formatMillis(wm)
	}
	for _, v := range r.behind {
		qs.BehindMs = max(qs.BehindMs, v)
	}
	return qs
}

func describeWindow(w Window) string {
	d := func(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }
	switch w.Kind {
	case Tumbling:
		return "tumbling " + d(w.Size)
	case Hopping:
		return "hopping " + d(w.Size) + " every " + d(w.Slide)
	case Session:
		return "session gap " + d(w.Gap)
	}
	return ""
}
