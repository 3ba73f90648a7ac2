package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// makeRoom enforces the stream's and the store's byte caps for a record of
// need bytes, evicting the oldest records where the policy says so.
func (c *commitState) makeRoom(st *streamState, m *streamMeta, need int64) error {
	if m.MaxBytes > 0 {
		over := st.bytes.Load() + c.streamPend(st).bytes + need - m.MaxBytes
		if over > 0 {
			if m.OnFull != EvictOldest || need > m.MaxBytes {
				return fmt.Errorf("%w: stream %s holds %d bytes of its cap of %d", ErrFull, st.name, st.bytes.Load()+c.streamPend(st).bytes, m.MaxBytes)
			}
			if freed := c.evict(st, over+m.MaxBytes/100); freed < over {
				return fmt.Errorf("%w: stream %s: nothing left to evict", ErrFull, st.name)
			}
		}
	}
	max := c.s.opts.MaxBytes
	if max <= 0 {
		return nil
	}
	over := c.s.pendingTotal(c.gen) + need - max
	if over <= 0 {
		return nil
	}
	if c.s.opts.OnFull != EvictOldest || need > max {
		return fmt.Errorf("%w: the store holds %d bytes of its cap of %d", ErrFull, c.s.pendingTotal(c.gen), max)
	}
	for over > 0 {
		victim := c.s.oldestStream(c)
		if victim == nil {
			break
		}
		freed := c.evict(victim, over+max/100)
		if freed == 0 {
			break
		}
		over -= freed
	}
	if over > 0 {
		return fmt.Errorf("%w: the store is full and nothing is left to evict", ErrFull)
	}
	return nil
}

// pendingTotal is the logical size of all streams including the commit in
// progress.
func (s *Store) pendingTotal(gen uint64) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var t int64
	for _, st := range s.streams {
		t += st.bytes.Load()
		if st.pend.gen == gen {
			t += st.pend.bytes
		}
	}
	return t
}

// firstOf returns the first live record of a shard at or after the
// commit's view of its trim horizon.
func (c *commitState) firstOf(txn *badger.Txn, sh *shardState) (ctr uint64, arrival int64, ok bool) {
	from := sh.first.Load()
	if sh.pend.gen == c.gen {
		from = sh.pend.newFirst
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = sh.prefix
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(recordKey(sh.owner.id, sh.idx, from))
	if !it.Valid() {
		return 0, 0, false
	}
	b, err := blockAt(it.Item())
	if err != nil {
		return 0, 0, false
	}
	return max(b.first, from), b.arrivalMs, true
}

// oldestStream is the stream whose oldest record is the oldest in the store.
func (s *Store) oldestStream(c *commitState) *streamState {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *streamState
	var bestMs int64
	for _, st := range s.streams {
		st.shards.Range(func(_, v any) bool {
			if _, a, ok := c.firstOf(txn, v.(*shardState)); ok && (best == nil || a < bestMs) {
				best, bestMs = st, a
			}
			return true
		})
	}
	return best
}

// evict deletes the oldest records of st, across its shards in arrival
// order, until need bytes are freed or nothing is left; it returns the
// bytes freed.
func (c *commitState) evict(st *streamState, need int64) int64 {
	txn := c.s.db.NewTransaction(false)
	defer txn.Discard()
	var freed int64
	for freed < need {
		var best *shardState
		var bestMs int64
		st.shards.Range(func(_, v any) bool {
			sh := v.(*shardState)
			if _, a, ok := c.firstOf(txn, sh); ok && (best == nil || a < bestMs) {
				best, bestMs = sh, a
			}
			return true
		})
		if best == nil {
			break
		}
		n, _ := c.deleteFrom(txn, best, func(int64) bool { return freed < need }, 1000, &freed)
		if n == 0 {
			break
		}
		st.evicted.Add(n)
		c.s.m.evicted.Add(float64(n))
	}
	return freed
}

// deleteFrom deletes records of sh from its trim horizon, a block at a
// time, while more(arrival) says so and fewer than max records are
// deleted; it adds the bytes to *freed and returns the number of records
// and bytes deleted.
func (c *commitState) deleteFrom(txn *badger.Txn, sh *shardState, more func(arrival int64) bool, max int, freed *int64) (int64, int64) {
	p := c.touch(sh)
	sp := c.streamPend(sh.owner)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = sh.prefix
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	var n, bytes int64
	for it.Seek(recordKey(sh.owner.id, sh.idx, p.newFirst)); it.Valid() && n < int64(max); it.Next() {
		item := it.Item()
		key := counterFromKey(item.Key())
		var b block
		var size int64
		err := item.Value(func(v []byte) error {
			// A damaged block still goes when its time comes (by the arrival
			// time in its header, if that is readable), its size a guess.
			b, size = block{first: p.newFirst, last: key, arrivalMs: arrivalOf(v)}, int64(len(v))
			pb, err := parseBlock(key, v)
			if err != nil {
				return err
			}
			if size, err = pb.size(); err != nil {
				return err
			}
			b = pb
			return nil
		})
		if err != nil {
			c.s.log.Warn("deleting a damaged block", "stream", sh.owner.name, "shard", sh.id, "err", err)
		}
		if !more(b.arrivalMs) {
			break
		}
		c.del(item.KeyCopy(nil))
		if c.err != nil {
			break
		}
		recs := int64(b.last - b.first + 1)
		n += recs
		bytes += size
		*freed += size
		p.newFirst = b.last + 1
		sp.bytes -= size
		sp.records -= recs
	}
	return n, bytes
}

// clockGuard measures how far the wall clock has jumped forward while the
// process ran, so that retention never deletes data early when a Pi
// without a real-time clock syncs NTP (see doc.go).
type clockGuard struct {
	mu       sync.Mutex
	start    time.Time // carries the monotonic reading
	lastWall time.Time
	lastMono time.Duration
	offset   time.Duration
}

func (g *clockGuard) observe(wall time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	mono := time.Since(g.start)
	if !g.lastWall.IsZero() {
		expected := g.lastWall.Add(mono - g.lastMono)
		if jump := wall.Sub(expected); jump > time.Minute {
			g.offset += jump
		}
	}
	g.lastWall, g.lastMono = wall, mono
	return g.offset
}

// cutoffMs is the arrival time before which a record of a stream with the
// given retention has expired.
func (s *Store) cutoffMs(retention time.Duration) int64 {
	now := s.now()
	off := s.clock.observe(now)
	return now.Add(-retention - off).UnixMilli()
}

// sweeper runs retention and value-log GC on a schedule.
func (s *Store) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.Sweep(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Warn("retention sweep failed", "err", err)
			}
		}
	}
}

// Sweep deletes expired records and fully expired closed shards now, then
// runs Badger's value-log GC. It runs every Options.SweepInterval by
// itself; it returns the number of records deleted.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	var total int64
	for _, name := range s.ListStreams() {
		st, err := s.lookup(name)
		if err != nil {
			continue
		}
		for {
			var n int64
			err := s.control(ctx, func() error {
				var err error
				n, err = s.sweepStream(st)
				return err
			})
			if err != nil {
				return total, err
			}
			total += n
			if n < 20000 {
				break
			}
		}
	}
	s.m.expired.Add(float64(total))
	if total > 0 {
		for i := 0; i < 8; i++ {
			if s.closed.Load() || s.db.RunValueLogGC(0.5) != nil {
				break
			}
		}
	}
	return total, nil
}

// sweepStream runs on the writer: it deletes up to 20,000 expired records
// of one stream and drops closed shards whose data has all expired.
func (s *Store) sweepStream(st *streamState) (int64, error) {
	m := st.meta.Load()
	if m.Status == StatusDeleting {
		return 0, nil
	}
	cut := s.cutoffMs(m.Retention)
	s.gen++
	c := &commitState{s: s, w: &commitBuf{}, gen: s.gen, txn: s.db.NewTransaction(true), nowMs: s.now().UnixMilli()}
	read := s.db.NewTransaction(false)
	defer read.Discard()
	var n int64
	var freed int64
	st.shards.Range(func(_, v any) bool {
		d, _ := c.deleteFrom(read, v.(*shardState), func(a int64) bool { return a < cut }, 20000-int(n), &freed)
		n += d
		return n < 20000
	})
	c.finish()
	if c.err != nil {
		return 0, fmt.Errorf("stream: sweep %s: %w", st.name, c.err)
	}
	// Drop closed shards that hold nothing and closed before the cutoff.
	var drop []uint32
	for _, sm := range m.Shards {
		if !sm.Closed || sm.ClosedMs >= cut {
			continue
		}
		sh := st.shard(sm.Index)
		if sh != nil && sh.first.Load() > sm.EndCounter {
			drop = append(drop, sm.Index)
		}
	}
	if len(drop) > 0 {
		nm := *m
		nm.Shards = nil
		for _, sm := range m.Shards {
			keep := true
			for _, d := range drop {
				if sm.Index == d {
					keep = false
				}
			}
			if keep {
				nm.Shards = append(nm.Shards, sm)
			}
		}
		if err := s.db.Update(func(txn *badger.Txn) error {
			for _, d := range drop {
				if err := txn.Delete(highWaterKey(st.id, d)); err != nil {
					return err
				}
			}
			return putMeta(txn, &nm)
		}); err != nil {
			return n, fmt.Errorf("stream: sweep %s: %w", st.name, err)
		}
		st.setMeta(&nm)
		for _, d := range drop {
			st.shards.Delete(d)
		}
		st.notifyChange()
	}
	return n, nil
}
