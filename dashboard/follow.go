package dashboard

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// follower reads every shard of one stream in process and hands the
// records to fn, without checkpoints and without polling for records: each
// shard goroutine reads with Store.Read and blocks in Store.Wait when it is
// caught up. With since set, it first replays the records that arrived
// since then (an AT_TIMESTAMP shard iterator), so a live view rebuilds its
// window after a restart; otherwise it starts at the latest record. A
// closed shard hands over to its children. A stream that does not exist
// yet, or is deleted, is waited for (DescribeStream every retry interval;
// that is metadata, not a record poll).
type follower struct {
	store  *stream.Store
	stream string
	since  func() time.Time // nil: start at latest
	limit  int
	fn     func(shardID string, recs []stream.Record, live bool)
	log    *slog.Logger
	retry  time.Duration
	// gap is the least time between two reads of one shard: records that
	// arrive meanwhile are read together, so a busy stream costs one read
	// per gap instead of one per group commit. A live view pushed every
	// second loses nothing. 0 reads at every wake-up.
	gap time.Duration
	// sample, if set, makes the follower skip ahead: when a read comes back
	// full (limit records), it continues after the newest record instead,
	// calling sample. The raw tail uses it so that a busy stream costs a
	// bounded read per gap; views that count records must not.
	sample func(shardID string)
	// started is when run began: replayed records that arrived after it
	// are live, not history (a shard may start replaying a moment later).
	started time.Time
}

func (f *follower) run(ctx context.Context) {
	f.started = time.Now()
	if f.retry <= 0 {
		f.retry = 2 * time.Second
	}
	if f.limit <= 0 {
		f.limit = 500
	}
	for ctx.Err() == nil {
		desc, err := f.store.DescribeStream(f.stream)
		if err != nil {
			if !errors.Is(err, stream.ErrStreamNotFound) {
				f.log.Warn("dashboard: describe stream", "stream", f.stream, "err", err)
			}
			if !sleepCtx(ctx, f.retry) {
				return
			}
			continue
		}
		f.runShards(ctx, desc)
		// Every shard goroutine ended: the stream was deleted (or ctx
		// ended). Start over, at the latest record of whatever comes next.
		f.since = nil
		if !sleepCtx(ctx, f.retry) {
			return
		}
	}
}

func (f *follower) runShards(ctx context.Context, desc stream.StreamDescription) {
	var (
		mu      sync.Mutex
		started = map[string]bool{}
		wg      sync.WaitGroup
	)
	var start func(shardID string, fromStart bool, since time.Time)
	start = func(shardID string, fromStart bool, since time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if started[shardID] {
			return
		}
		started[shardID] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			children := f.shard(ctx, shardID, fromStart, since)
			for _, c := range children {
				start(c.ShardID, true, time.Time{})
			}
		}()
	}
	var since time.Time
	if f.since != nil {
		since = f.since()
	}
	for _, sh := range desc.Shards {
		switch {
		case !since.IsZero():
			start(sh.ShardID, false, since)
		case sh.Open():
			start(sh.ShardID, false, time.Time{})
		}
	}
	wg.Wait()
}

// shard follows one shard until it ends (returning its children), the
// stream goes away, or ctx ends.
func (f *follower) shard(ctx context.Context, shardID string, fromStart bool, since time.Time) []stream.ChildShard {
	after := ""
	if !fromStart {
		last, err := f.store.LastSequenceNumber(f.stream, shardID)
		if err != nil {
			f.gone(err, shardID)
			return nil
		}
		after = last
		if !since.IsZero() {
			read, ended, ok := f.replay(ctx, shardID, since)
			if !ok {
				return nil
			}
			if read != "" {
				after = read
			}
			if ended {
				// A closed shard replayed to its end: its children are in
				// the description too and were started by the caller.
				return nil
			}
		}
	}
	backoff := 100 * time.Millisecond
	var lastRead time.Time
	for {
		if wait := f.gap - time.Since(lastRead); f.gap > 0 && wait > 0 {
			if !sleepCtx(ctx, wait) {
				return nil
			}
		}
		lastRead = time.Now()
		// The newest sequence number before the read: if the read finds
		// nothing after `after`, everything up to it has expired, and
		// waiting after it (not after `after`) keeps Wait from returning
		// at once for records Read will never show.
		newest, err := f.store.LastSequenceNumber(f.stream, shardID)
		if err != nil {
			if ctx.Err() != nil || f.gone(err, shardID) {
				return nil
			}
		}
		res, err := f.store.Read(ctx, stream.ReadRequest{Stream: f.stream, ShardID: shardID, After: after, Limit: f.limit})
		if err != nil {
			if ctx.Err() != nil || f.gone(err, shardID) {
				return nil
			}
			f.log.Warn("dashboard: read", "stream", f.stream, "shard", shardID, "err", err)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if n := len(res.Records); n > 0 {
			f.fn(shardID, res.Records, true)
			after = res.Records[n-1].SequenceNumber
			if f.sample != nil && n >= f.limit && !res.Ended {
				if newest, err := f.store.LastSequenceNumber(f.stream, shardID); err == nil && newest != "" {
					after = newest
					f.sample(shardID)
				}
			}
		}
		if res.Ended {
			return res.Children
		}
		if len(res.Records) == 0 {
			if newest != "" {
				after = newest
			}
			if err := f.store.Wait(ctx, f.stream, shardID, after); err != nil {
				if ctx.Err() != nil || f.gone(err, shardID) {
					return nil
				}
				f.log.Warn("dashboard: wait", "stream", f.stream, "shard", shardID, "err", err)
				if !sleepCtx(ctx, backoff) {
					return nil
				}
				backoff = min(backoff*2, 5*time.Second)
			}
		}
	}
}

// replay reads the shard from since up to now through a shard iterator. It
// returns the last sequence number read ("" if none), whether the shard is
// closed and fully read, and false if following should stop.
func (f *follower) replay(ctx context.Context, shardID string, since time.Time) (last string, ended, ok bool) {
	it, err := f.store.ShardIterator(stream.IteratorRequest{Stream: f.stream, ShardID: shardID, Type: stream.AtTimestamp, Timestamp: since})
	if err != nil {
		if f.gone(err, shardID) {
			return "", false, false
		}
		f.log.Warn("dashboard: replay", "stream", f.stream, "shard", shardID, "err", err)
		return "", false, ctx.Err() == nil
	}
	for ctx.Err() == nil {
		res, err := f.store.GetRecords(ctx, it, f.limit)
		if err != nil {
			if f.gone(err, shardID) {
				return last, false, false
			}
			f.log.Warn("dashboard: replay", "stream", f.stream, "shard", shardID, "err", err)
			return last, false, ctx.Err() == nil
		}
		if n := len(res.Records); n > 0 {
			// Arrival times never decrease within a shard: the records
			// from the first one at or after the start on are live.
			i := sort.Search(n, func(i int) bool { return !res.Records[i].ArrivalTime.Before(f.started) })
			if i > 0 {
				f.fn(shardID, res.Records[:i], false)
			}
			if i < n {
				f.fn(shardID, res.Records[i:], true)
			}
			last = res.Records[n-1].SequenceNumber
		}
		if res.NextShardIterator == "" {
			return last, true, true
		}
		if len(res.Records) == 0 && res.MillisBehindLatest == 0 {
			return last, false, true
		}
		it = res.NextShardIterator
	}
	return last, false, false
}

// gone reports whether err means the stream or shard no longer exists (or
// the store closed), which ends the shard's goroutine.
func (f *follower) gone(err error, shardID string) bool {
	return errors.Is(err, stream.ErrStreamNotFound) || errors.Is(err, stream.ErrShardNotFound) ||
		errors.Is(err, stream.ErrClosed)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
