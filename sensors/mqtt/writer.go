package mqtt

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Appender is the part of the stream store the pipeline calls;
// *stream.Store implements it. PutBatch must return only once every
// accepted record is durable.
type Appender interface {
	PutBatch(ctx context.Context, stream string, entries []stream.Entry) ([]stream.PutResult, error)
}

// ErrStopped is returned for messages offered after the writer stopped;
// they are not acknowledged, so the broker or publisher sends them again.
var ErrStopped = errors.New("mqtt: ingest stopped")

type item struct {
	msg  Message
	done func(error) // called once, from the writer goroutine

	stream string
	entry  stream.Entry
	class  string // dead-letter class, "" when routed normally
	hash   uint64
	ok     bool
	err    error
}

// writer is the single goroutine that appends messages in arrival order,
// in batches: while one append is being made durable, the next messages
// queue up, so one fsync covers many messages (group commit).
type writer struct {
	app     Appender
	rt      *router
	batch   int
	log     *slog.Logger
	m       *metrics
	in      chan *item
	budget  *semaphore.Weighted // payload bytes queued or being appended
	maxItem int64
	quit    chan struct{} // closed by stop: no new messages
	quitCtx context.Context
	unquit  context.CancelFunc
	exited  chan struct{} // closed when run returned
	seed    maphash.Seed
	recent  map[uint64]struct{}
	ring    []uint64
	ringPos int
}

const recentHashes = 8192

func newWriter(app Appender, rt *router, queue int, queueBytes int64, batch int, log *slog.Logger, m *metrics) *writer {
	qctx, cancel := context.WithCancel(context.Background())
	return &writer{app: app, rt: rt, batch: batch, log: log, m: m,
		in: make(chan *item, queue), budget: semaphore.NewWeighted(queueBytes), maxItem: queueBytes,
		quit: make(chan struct{}), quitCtx: qctx, unquit: cancel, exited: make(chan struct{}),
		seed: maphash.MakeSeed(), recent: make(map[uint64]struct{}, recentHashes), ring: make([]uint64, recentHashes)}
}

// stop closes the intake: submit returns ErrStopped from now on.
func (w *writer) stop() {
	close(w.quit)
	w.unquit()
}

// submit queues m; done is called once the message is durable (nil) or
// given up (non-nil: do not acknowledge). It blocks while the queue is full
// and returns ErrStopped (without calling done) once the writer stops.
func (w *writer) submit(ctx context.Context, m Message, done func(error)) error {
	select {
	case <-w.quit:
		return ErrStopped
	default:
	}
	n := min(int64(len(m.Payload))+1, w.maxItem)
	if err := w.budget.Acquire(w.quitCtx, n); err != nil {
		return ErrStopped
	}
	it := &item{msg: m, done: func(err error) { w.budget.Release(n); done(err) }}
	select {
	case w.in <- it:
		return nil
	case <-w.quit:
		w.budget.Release(n)
		return ErrStopped
	case <-ctx.Done():
		w.budget.Release(n)
		return ctx.Err()
	}
}

// store submits m and waits until it is durable.
func (w *writer) store(ctx context.Context, m Message) error {
	ch := make(chan error, 1)
	if err := w.submit(ctx, m, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-w.exited:
		select {
		case err := <-ch:
			return err
		default:
			return ErrStopped
		}
	}
}

// run appends until quit is closed, then finishes what is queued (bounded
// by ctx, which also bounds every append) and returns.
func (w *writer) run(ctx context.Context) {
	defer close(w.exited)
	batch := make([]*item, 0, w.batch)
	for {
		batch = batch[:0]
		select {
		case it := <-w.in:
			batch = append(batch, it)
		case <-w.quit:
			w.drain(ctx, batch)
			return
		case <-ctx.Done():
			w.failQueued(ctx.Err())
			return
		}
	fill:
		for len(batch) < w.batch {
			select {
			case it := <-w.in:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		w.process(ctx, batch)
	}
}

func (w *writer) drain(ctx context.Context, batch []*item) {
	for {
		batch = batch[:0]
	fill:
		for len(batch) < w.batch {
			select {
			case it := <-w.in:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		w.process(ctx, batch)
	}
}

func (w *writer) failQueued(err error) {
	for {
		select {
		case it := <-w.in:
			it.done(err)
		default:
			return
		}
	}
}

// process appends one batch, retrying retriable failures with backoff
// until they succeed or ctx ends. Input the store refuses as invalid is
// dead-lettered instead. done is called in arrival order per round.
func (w *writer) process(ctx context.Context, items []*item) {
	w.m.batchSize.Observe(float64(len(items)))
	now := time.Now()
	for _, it := range items {
		w.m.received.Inc()
		w.m.nReceived.Add(1)
		if it.msg.Received.IsZero() {
			it.msg.Received = now
		}
		it.stream, it.entry, it.class = w.rt.convert(&it.msg)
		it.hash = maphash.Bytes(w.seed, it.msg.Payload) ^ maphash.String(w.seed, it.msg.Topic)
		if it.msg.Dup {
			w.m.redelivered.Inc()
			w.m.nRedelivered.Add(1)
		}
		// A copy of a recent record: the broker redelivered it (DUP), or a
		// publisher sent it again after losing the broker's PUBACK (the
		// broker then forwards it as a new message).
		if _, seen := w.recent[it.hash]; seen {
			w.m.duplicates.Inc()
			w.m.nDup.Add(1)
		} else if it.class == "" {
			// Remembered now, so that two copies in one batch count too.
			w.remember(it.hash)
		}
	}
	w.m.lastMessage.Store(now.UnixNano())
	pending := items
	backoff := 50 * time.Millisecond
	for len(pending) > 0 {
		start := time.Now()
		w.appendRound(ctx, pending)
		w.m.appendSecs.Observe(time.Since(start).Seconds())
		rest := pending[:0:0]
		var lastErr error
		for _, it := range pending {
			switch {
			case it.ok:
				w.finish(it)
			case it.err != nil:
				rest = append(rest, it)
				lastErr = it.err
			}
		}
		if len(rest) == 0 {
			w.m.setError(nil)
			return
		}
		if ctx.Err() != nil {
			for _, it := range rest {
				it.done(fmt.Errorf("mqtt: append: %w", ctx.Err()))
			}
			return
		}
		w.m.retries.Inc()
		w.m.setError(lastErr)
		w.log.Warn("mqtt: append failed, retrying; messages stay unacknowledged", "messages", len(rest), "retry_in", backoff, "err", lastErr)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(backoff*2, 5*time.Second)
		for _, it := range rest {
			it.err = nil
		}
		pending = rest
	}
}

func (w *writer) finish(it *item) {
	if it.class != "" {
		w.m.deadlettered.WithLabelValues(it.class).Inc()
		w.m.nDead.Add(1)
		w.log.Debug("mqtt: dead-lettered", "topic", it.msg.Topic, "class", it.class)
	} else {
		w.m.stored.WithLabelValues(it.stream).Inc()
		w.m.nStored.Add(1)
	}
	it.done(nil)
}

func (w *writer) remember(h uint64) {
	if old := w.ring[w.ringPos]; old != 0 {
		delete(w.recent, old)
	}
	w.ring[w.ringPos] = h
	w.recent[h] = struct{}{}
	w.ringPos = (w.ringPos + 1) % len(w.ring)
}

// appendRound appends every pending item once, grouped by stream in
// arrival order, and sets each item's ok or err.
func (w *writer) appendRound(ctx context.Context, pending []*item) {
	var order []string
	groups := map[string][]*item{}
	for _, it := range pending {
		if _, ok := groups[it.stream]; !ok {
			order = append(order, it.stream)
		}
		groups[it.stream] = append(groups[it.stream], it)
	}
	for _, s := range order {
		g := groups[s]
		for len(g) > 0 {
			n, bytes := 0, 0
			for n < len(g) && n < stream.MaxBatchRecords {
				sz := len(g[n].entry.Data) + len(g[n].entry.PartitionKey)
				if n > 0 && bytes+sz > stream.MaxBatchBytes {
					break
				}
				bytes += sz
				n++
			}
			w.appendChunk(ctx, s, g[:n])
			g = g[n:]
		}
	}
}

func (w *writer) appendChunk(ctx context.Context, s string, chunk []*item) {
	entries := make([]stream.Entry, len(chunk))
	for i, it := range chunk {
		entries[i] = it.entry
	}
	res, err := w.app.PutBatch(ctx, s, entries)
	if err == nil && len(res) != len(chunk) {
		err = fmt.Errorf("mqtt: append to %s: store returned %d results for %d records", s, len(res), len(chunk))
	}
	if err != nil {
		permanent := errors.Is(err, stream.ErrStreamNotFound) || errors.Is(err, stream.ErrInvalidArgument)
		for _, it := range chunk {
			if permanent && it.class == "" {
				w.reject(it, err)
			}
			it.err = fmt.Errorf("mqtt: append to %s: %w", s, err)
		}
		return
	}
	for i, r := range res {
		it := chunk[i]
		switch {
		case r.Err == nil:
			it.ok = true
		case errors.Is(r.Err, stream.ErrInvalidArgument) && it.class == "":
			w.reject(it, r.Err)
			it.err = r.Err
		default:
			it.err = r.Err
		}
	}
}

// reject turns a routed item the store refused as invalid into a dead
// letter, appended in the next round.
func (w *writer) reject(it *item, err error) {
	it.stream, it.entry, it.class = w.rt.dead(&it.msg, ReasonRejected, err.Error())
}
