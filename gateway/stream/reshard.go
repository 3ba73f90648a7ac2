package stream

import (
	"context"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"
)

// reshard is a resharding plan built on a copy of the metadata: it closes
// parents and adds children; apply persists and publishes it on the writer.
type reshard struct {
	s     *Store
	st    *streamState
	m     streamMeta
	nowS  uint64
	nowMs int64
	added []shardMeta
}

func (s *Store) newReshard(st *streamState) (*reshard, error) {
	cur := st.meta.Load()
	if cur.Status != StatusActive {
		return nil, fmt.Errorf("%w: %s is %s", ErrStreamBusy, st.name, cur.Status)
	}
	m := *cur
	m.Shards = append([]shardMeta(nil), cur.Shards...)
	now := s.now()
	return &reshard{s: s, st: st, m: m, nowS: uint64(now.Unix()), nowMs: now.UnixMilli()}, nil
}

func (r *reshard) find(id string) (int, error) {
	for i, sm := range r.m.Shards {
		if sm.id() == id {
			if sm.Closed {
				return 0, fmt.Errorf("%w: %s is closed", ErrInvalidArgument, id)
			}
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %s in stream %s", ErrShardNotFound, id, r.st.name)
}

// close ends shard i at its last assigned counter. It runs on the writer,
// so no append is in flight.
func (r *reshard) close(i int) {
	sm := &r.m.Shards[i]
	sm.Closed = true
	sm.ClosedMs = r.nowMs
	if sh := r.st.shard(sm.Index); sh != nil {
		sm.EndCounter = sh.next - 1
	}
}

func (r *reshard) child(start, end u128, parent, adjacent shardMeta) shardMeta {
	created := r.nowS
	// Children's sequence numbers sort after their parents' even when the
	// clock went back.
	for _, p := range []shardMeta{parent, adjacent} {
		if p.CreatedSecs >= created {
			created = p.CreatedSecs + 1
		}
	}
	c := shardMeta{Index: r.m.NextShard, Parent: parent.id(), StartHi: start.hi, StartLo: start.lo,
		EndHi: end.hi, EndLo: end.lo, CreatedSecs: created}
	if adjacent.id() != parent.id() {
		c.Adjacent = adjacent.id()
	}
	r.m.NextShard++
	r.m.Shards = append(r.m.Shards, c)
	r.added = append(r.added, c)
	return c
}

func (r *reshard) split(id string, at u128) error {
	i, err := r.find(id)
	if err != nil {
		return err
	}
	p := r.m.Shards[i]
	if at.cmp(p.start()) <= 0 || at.cmp(p.end()) > 0 {
		return fmt.Errorf("%w: new starting hash key %s is not inside %s's range %s-%s (exclusive of its start)", ErrInvalidArgument, at, id, p.start(), p.end())
	}
	r.close(i)
	r.child(p.start(), at.sub1(), p, p)
	r.child(at, p.end(), p, p)
	return nil
}

func (r *reshard) merge(id, adjID string) (shardMeta, error) {
	i, err := r.find(id)
	if err != nil {
		return shardMeta{}, err
	}
	j, err := r.find(adjID)
	if err != nil {
		return shardMeta{}, err
	}
	a, b := r.m.Shards[i], r.m.Shards[j]
	lo, hi := a, b
	if b.start().cmp(a.start()) < 0 {
		lo, hi = b, a
	}
	if i == j || lo.end().add1().cmp(hi.start()) != 0 {
		return shardMeta{}, fmt.Errorf("%w: %s and %s are not adjacent", ErrInvalidArgument, id, adjID)
	}
	r.close(i)
	r.close(j)
	return r.child(lo.start(), hi.end(), a, b), nil
}

func (r *reshard) open() []shardMeta {
	var o []shardMeta
	for _, sm := range r.m.Shards {
		if !sm.Closed {
			o = append(o, sm)
		}
	}
	sort.Slice(o, func(i, j int) bool { return o[i].start().cmp(o[j].start()) < 0 })
	return o
}

// apply persists the plan and publishes the new shards.
func (r *reshard) apply() error {
	if n := r.s.shardCount() + len(r.added); n > r.s.opts.MaxShards {
		return fmt.Errorf("%w: resharding would make %d shards; the store's limit is %d", ErrLimitExceeded, n, r.s.opts.MaxShards)
	}
	if err := r.s.db.Update(func(txn *badger.Txn) error { return putMeta(txn, &r.m) }); err != nil {
		return fmt.Errorf("stream: reshard %s: %w", r.st.name, err)
	}
	for _, c := range r.added {
		r.st.shards.Store(c.Index, r.s.newShardState(r.st, c))
	}
	r.st.setMeta(&r.m)
	r.st.shards.Range(func(_, v any) bool { v.(*shardState).wake(); return true })
	r.st.notifyChange()
	return nil
}

// SplitShard closes shardID and opens two children split at
// newStartingHashKey (the second child's first key). Parents stay readable
// until retention expires; new writes go to the children.
func (s *Store) SplitShard(ctx context.Context, stream, shardID, newStartingHashKey string) error {
	at, err := parseHashKey(newStartingHashKey)
	if err != nil {
		return err
	}
	return s.reshardWith(ctx, stream, func(r *reshard) error { return r.split(shardID, at) })
}

// MergeShards closes two adjacent shards and opens one child covering both.
func (s *Store) MergeShards(ctx context.Context, stream, shardID, adjacentShardID string) error {
	return s.reshardWith(ctx, stream, func(r *reshard) error {
		_, err := r.merge(shardID, adjacentShardID)
		return err
	})
}

// reshardWith builds a plan with plan on the writer and applies it.
func (s *Store) reshardWith(ctx context.Context, stream string, plan func(r *reshard) error) error {
	st, err := s.lookup(stream)
	if err != nil {
		return err
	}
	return s.control(ctx, func() error {
		r, err := s.newReshard(st)
		if err != nil {
			return err
		}
		if err := plan(r); err != nil {
			return err
		}
		return r.apply()
	})
}

// UpdateShardCount reshards to target open shards of even ranges, as
// Kinesis does: it splits shards at the new boundaries, then merges the
// pieces of each new range (intermediate shards appear closed and empty).
// As in Kinesis, target must lie between half and double the open count.
func (s *Store) UpdateShardCount(ctx context.Context, stream string, target int) error {
	return s.reshardWith(ctx, stream, func(r *reshard) error {
		cur := len(r.open())
		if target < 1 || target > 2*cur || 2*target < cur {
			return fmt.Errorf("%w: target shard count %d: want %d to %d (half to double the %d open shards)", ErrInvalidArgument, target, (cur+1)/2, 2*cur, cur)
		}
		starts := evenRanges(target)
		// Split at every new boundary that falls inside an open shard.
		for _, b := range starts[1:] {
			for _, o := range r.open() {
				if b.cmp(o.start()) > 0 && b.cmp(o.end()) <= 0 {
					if err := r.split(o.id(), b); err != nil {
						return err
					}
					break
				}
			}
		}
		// Merge the pieces of each new range left to right.
		for i, b := range starts {
			end := maxU128
			if i+1 < len(starts) {
				end = starts[i+1].sub1()
			}
			for {
				var pieces []shardMeta
				for _, o := range r.open() {
					if o.start().cmp(b) >= 0 && o.end().cmp(end) <= 0 {
						pieces = append(pieces, o)
					}
				}
				if len(pieces) < 2 {
					break
				}
				if _, err := r.merge(pieces[0].id(), pieces[1].id()); err != nil {
					return err
				}
			}
		}
		// Intermediate shards (children merged again at once) are closed
		// and empty; they keep the lineage complete for consumers.
		return nil
	})
}
