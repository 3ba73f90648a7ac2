package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ConsumerConfig configures Consume.
type ConsumerConfig struct {
	Group  string // consumer group name; checkpoints are kept per group
	Stream string
	Owner  string // this worker's id; default a random one
	// StartAtLatest: a shard that exists when Consume starts and has no
	// checkpoint is read from LATEST instead of TRIM_HORIZON. Shards born
	// later (children) are always read from their start.
	StartAtLatest bool
	// LeaseTTL is how long a shard lease lasts without renewal. Default 30 s.
	LeaseTTL time.Duration
	// Limit caps records per batch. Default 1,000.
	Limit int
	// Idle: fn is called with an empty batch at least this often while a
	// shard has nothing new, so a buffering consumer can flush on time.
	// Default 1 s.
	Idle time.Duration
}

// ShardBatch is what Consume hands to its function.
type ShardBatch struct {
	ShardID string
	Records []Record
	// Ended is true when the shard is closed and every record in it has been
	// handed over (this batch may hold the last ones, or none). Once the
	// group's checkpoint covers them, the children become eligible.
	Ended bool
	// Children names the shards that continue this one, set with Ended.
	Children []ChildShard
	// Lease is the lease under which this batch was read; pass it to
	// Checkpoint. Consume renews it in the background for as long as the
	// shard is being consumed, also while fn runs.
	Lease              Lease
	MillisBehindLatest int64
	// CaughtUp is true when this batch ends at the shard's last record as
	// it was when read: a consumer draining a backlog knows it is through.
	CaughtUp bool
}

// Consume reads a stream as consumer group cfg.Group until ctx ends: every
// shard the group can own, parents before children, each on its own
// goroutine under a lease, starting after the group's checkpoint. fn gets
// the batches of one shard in order, never concurrently for one shard.
// Consume never checkpoints by itself: the caller calls Checkpoint once its
// destination acknowledged. If fn returns an error, that shard restarts
// from its last checkpoint after a backoff. Consume returns ctx.Err() when
// ctx ends, or ErrStreamNotFound if the stream is deleted.
func (s *Store) Consume(ctx context.Context, cfg ConsumerConfig, fn func(context.Context, ShardBatch) error) error {
	if cfg.Owner == "" {
		cfg.Owner = fmt.Sprintf("worker-%x", randomBytes(6))
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Limit <= 0 {
		cfg.Limit = 1000
	}
	if cfg.Idle <= 0 {
		cfg.Idle = time.Second
	}
	st, err := s.lookup(cfg.Stream)
	if err != nil {
		return err
	}
	initial := map[string]bool{}
	for _, sm := range st.meta.Load().Shards {
		initial[sm.id()] = true
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	type result struct {
		id       string
		finished bool
	}
	done := make(chan result)
	running := map[string]bool{}
	finished := map[string]bool{}
	retry := time.NewTicker(cfg.LeaseTTL / 3)
	defer retry.Stop()
	for {
		changes := st.changes()
		m := st.meta.Load()
		if m.Status == StatusDeleting {
			return fmt.Errorf("%w: %s", ErrStreamNotFound, cfg.Stream)
		}
		present := map[string]shardMeta{}
		for _, sm := range m.Shards {
			present[sm.id()] = sm
		}
		for _, sm := range m.Shards {
			id := sm.id()
			if running[id] || finished[id] {
				continue
			}
			if sm.Closed && s.groupFinished(cfg.Group, st, sm) {
				finished[id] = true
				continue
			}
			ready := true
			for _, p := range []string{sm.Parent, sm.Adjacent} {
				if p == "" {
					continue
				}
				pm, ok := present[p]
				if ok && !finished[p] && !(pm.Closed && s.groupFinished(cfg.Group, st, pm)) {
					ready = false
				}
			}
			if !ready {
				continue
			}
			running[id] = true
			wg.Add(1)
			go func(sm shardMeta, latest bool) {
				defer wg.Done()
				fin := s.consumeShard(ctx, cfg, st, sm, latest, fn)
				select {
				case done <- result{sm.id(), fin}:
				case <-ctx.Done():
				}
			}(sm, cfg.StartAtLatest && initial[id])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-done:
			running[r.id] = false
			if r.finished {
				finished[r.id] = true
			}
		case <-changes:
		case <-retry.C:
		}
	}
}

// groupFinished reports whether the group's checkpoint covers every record
// of a closed shard (or none is left within retention).
func (s *Store) groupFinished(group string, st *streamState, sm shardMeta) bool {
	if !sm.Closed {
		return false
	}
	sh := st.shard(sm.Index)
	if sh == nil {
		return true
	}
	from := sh.first.Load()
	if ck, err := s.GetCheckpoint(group, st.name, sm.id()); err == nil && ck != "" {
		if sn, err := seqInShard(ck, sh); err == nil && sn.counter+1 > from {
			from = sn.counter + 1
		}
	}
	if from > sm.EndCounter {
		return true
	}
	rr, _, err := s.readShard(st, sh, from, 1, 1)
	return err == nil && len(rr.Records) == 0 && rr.Ended
}

// consumeShard runs one shard under a lease; it reports whether the shard
// is finished for the group (closed and fully checkpointed).
func (s *Store) consumeShard(ctx context.Context, cfg ConsumerConfig, st *streamState, sm shardMeta, latest bool, fn func(context.Context, ShardBatch) error) bool {
	id := sm.id()
	lease, err := s.AcquireLease(cfg.Group, cfg.Stream, id, cfg.Owner, cfg.LeaseTTL)
	if err != nil {
		if !errors.Is(err, ErrLeaseHeld) && ctx.Err() == nil {
			s.log.Warn("consumer: lease", "group", cfg.Group, "shard", id, "err", err)
		}
		return false
	}
	defer func() { _ = s.ReleaseLease(lease) }()
	sh := st.shard(sm.Index)
	if sh == nil {
		return true
	}
	start := func() uint64 {
		ck, err := s.GetCheckpoint(cfg.Group, cfg.Stream, id)
		if err == nil && ck != "" {
			if sn, err := seqInShard(ck, sh); err == nil {
				return sn.counter + 1
			}
		}
		if latest {
			return sh.last.Load() + 1
		}
		return sh.first.Load()
	}
	pos := start()
	latest = false
	// Renew the lease in the background, so a handler that retries its
	// destination for minutes keeps it (renewal keeps the token, so the
	// Lease handed out stays valid for Checkpoint).
	ctx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go func() {
		t := time.NewTicker(cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := s.RenewLease(lease, cfg.LeaseTTL); err != nil {
					s.log.Warn("consumer: lost lease", "group", cfg.Group, "shard", id, "err", err)
					stopRenew() // ends the loop below: another owner has the shard
					return
				}
			}
		}
	}()
	backoff := time.Second
	for ctx.Err() == nil {
		rr, next, err := s.readShard(st, sh, pos, cfg.Limit, MaxGetRecordsBytes)
		if err != nil {
			s.log.Error("consumer: read", "group", cfg.Group, "shard", id, "err", err)
			if !sleepCtx(ctx, backoff) {
				return false
			}
			continue
		}
		if len(rr.Records) == 0 && !rr.Ended {
			wctx, cancel := context.WithTimeout(ctx, cfg.Idle)
			_ = s.waitCounter(wctx, st, sh, pos-1)
			cancel()
			if sh.last.Load() >= pos || ctx.Err() != nil {
				continue
			}
		}
		err = fn(ctx, ShardBatch{ShardID: id, Records: rr.Records, Ended: rr.Ended, Children: rr.Children, Lease: lease, MillisBehindLatest: rr.MillisBehindLatest, CaughtUp: rr.CaughtUp})
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			s.log.Warn("consumer: handler failed; restarting the shard from its checkpoint", "group", cfg.Group, "shard", id, "err", err, "backoff", backoff)
			if !sleepCtx(ctx, backoff) {
				return false
			}
			backoff = min(backoff*2, 30*time.Second)
			pos = start()
			continue
		}
		backoff = time.Second
		pos = next
		if rr.Ended {
			if s.groupFinished(cfg.Group, st, st.metaShard(sm.Index)) {
				return true
			}
			// The caller still buffers the last records: give it idle
			// calls until it checkpoints them.
			if !sleepCtx(ctx, cfg.Idle) {
				return false
			}
		}
	}
	return false
}

func (st *streamState) metaShard(idx uint32) shardMeta {
	for _, sm := range st.meta.Load().Shards {
		if sm.Index == idx {
			return sm
		}
	}
	return shardMeta{Index: idx, Closed: true}
}

// waitCounter waits until the shard holds a counter above after, it is
// closed, or ctx ends.
func (s *Store) waitCounter(ctx context.Context, st *streamState, sh *shardState, after uint64) error {
	for {
		ch := sh.waitChan()
		if sh.last.Load() > after || st.metaShard(sh.idx).Closed {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return ErrClosed
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
