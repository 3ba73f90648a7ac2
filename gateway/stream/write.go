package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
)

// op is one unit of work for the writer: an append request or a control
// function (reshard, delete, sweep) that runs between commits.
type op struct {
	put  *putReq
	fn   func() error
	done chan error
}

// putReq is one Put or PutBatch call. The caller validates and hashes the
// entries before sending it, so that work runs in parallel; the writer
// routes, numbers, encodes and commits.
type putReq struct {
	st      *streamState
	entries []Entry
	hashes  []u128
	results []PutResult
	done    chan struct{}
}

var putReqPool = sync.Pool{New: func() any { return &putReq{done: make(chan struct{}, 1)} }}

// routeEntry is one open shard in a stream's routing table.
type routeEntry struct {
	start, end u128
	idx        uint32
}

func (m *streamMeta) routes() []routeEntry {
	var r []routeEntry
	for _, sm := range m.Shards {
		if !sm.Closed {
			r = append(r, routeEntry{sm.start(), sm.end(), sm.Index})
		}
	}
	sort.Slice(r, func(i, j int) bool { return r[i].start.cmp(r[j].start) < 0 })
	return r
}

func route(r []routeEntry, h u128) uint32 {
	i := sort.Search(len(r), func(i int) bool { return r[i].end.cmp(h) >= 0 })
	if i == len(r) {
		i = len(r) - 1
	}
	return r[i].idx
}

// validateEntry checks one entry against the Kinesis limits.
func validateEntry(e *Entry) (u128, error) {
	n := utf8.RuneCountInString(e.PartitionKey)
	if n < 1 || n > MaxPartitionKeyLen {
		return u128{}, fmt.Errorf("%w: partition key has %d characters: want 1 to %d", ErrInvalidArgument, n, MaxPartitionKeyLen)
	}
	if len(e.Data) > MaxRecordSize {
		return u128{}, fmt.Errorf("%w: record data is %d bytes: the limit is %d", ErrInvalidArgument, len(e.Data), MaxRecordSize)
	}
	if e.ExplicitHashKey != "" {
		return parseHashKey(e.ExplicitHashKey)
	}
	return hashPartitionKey(e.PartitionKey), nil
}

// send hands an op to the writer.
func (s *Store) send(ctx context.Context, o op) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	select {
	case s.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// control runs fn on the writer and returns its error.
func (s *Store) control(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	if err := s.send(ctx, op{fn: fn, done: done}); err != nil {
		return err
	}
	return <-done
}

// Put appends one record and returns once it is durable (fsynced).
func (s *Store) Put(ctx context.Context, stream string, e Entry) (PutResult, error) {
	st, err := s.lookup(stream)
	if err != nil {
		return PutResult{}, err
	}
	h, err := validateEntry(&e)
	if err != nil {
		s.m.rejected.Inc()
		return PutResult{}, err
	}
	req := putReqPool.Get().(*putReq)
	req.st = st
	req.entries = append(req.entries[:0], e)
	req.hashes = append(req.hashes[:0], h)
	req.results = append(req.results[:0], PutResult{})
	if err := s.send(ctx, op{put: req}); err != nil {
		putReqPool.Put(req)
		return PutResult{}, err
	}
	<-req.done
	res := req.results[0]
	req.entries[0] = Entry{}
	req.results[0] = PutResult{}
	putReqPool.Put(req)
	if res.Err != nil {
		return PutResult{}, res.Err
	}
	return res, nil
}

// PutBatch appends up to 500 records and returns once all accepted ones are
// durable. The error is for the whole request (unknown stream, too many
// entries or bytes, store closed); per-record failures are in each
// PutResult.Err and never block the other records.
func (s *Store) PutBatch(ctx context.Context, stream string, entries []Entry) ([]PutResult, error) {
	st, err := s.lookup(stream)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 || len(entries) > MaxBatchRecords {
		return nil, fmt.Errorf("%w: %d records in one batch: want 1 to %d", ErrInvalidArgument, len(entries), MaxBatchRecords)
	}
	total := 0
	for i := range entries {
		total += len(entries[i].Data) + len(entries[i].PartitionKey)
	}
	if total > MaxBatchBytes {
		return nil, fmt.Errorf("%w: batch of %d bytes: the limit is %d", ErrInvalidArgument, total, MaxBatchBytes)
	}
	results := make([]PutResult, len(entries))
	req := &putReq{st: st, entries: entries, hashes: make([]u128, len(entries)), results: results, done: make(chan struct{}, 1)}
	valid := 0
	for i := range entries {
		h, err := validateEntry(&entries[i])
		if err != nil {
			results[i].Err = err
			s.m.rejected.Inc()
			continue
		}
		req.hashes[i] = h
		valid++
	}
	if valid == 0 {
		return results, nil
	}
	if err := s.send(ctx, op{put: req}); err != nil {
		return nil, err
	}
	<-req.done
	return results, nil
}

// writer is the single goroutine that changes the database. It gathers
// queued appends into one transaction and one fsync (group commit), and
// runs control functions between commits.
func (s *Store) writer() {
	defer s.wg.Done()
	w := &commitBuf{}
	var batch []*putReq
	var pending *op
	run := func(o op) {
		if o.fn != nil {
			o.done <- o.fn()
			return
		}
		batch = append(batch[:0], o.put)
		n := len(o.put.entries)
	gather:
		for n < s.opts.CommitRecords {
			select {
			case o2 := <-s.ops:
				if o2.fn != nil {
					pending = &o2
					break gather
				}
				batch = append(batch, o2.put)
				n += len(o2.put.entries)
			default:
				break gather
			}
		}
		s.commit(w, batch)
		for i := range batch {
			batch[i] = nil
		}
	}
	for {
		if pending != nil {
			o := *pending
			pending = nil
			run(o)
			continue
		}
		select {
		case o := <-s.ops:
			run(o)
		case <-s.stop:
			// No new sends can start (Close holds closeMu); finish what is queued.
			for {
				select {
				case o := <-s.ops:
					run(o)
					if pending != nil {
						o := *pending
						pending = nil
						run(o)
					}
				default:
					return
				}
			}
		}
	}
}

// commitBuf is the writer's reusable memory.
type commitBuf struct {
	arena   []byte
	seq     seqFormatter
	touched []*shardState
	streams []*streamState
}

// shard write bookkeeping during one commit, kept on the shard itself to
// avoid maps on the hot path (only the writer touches these fields).
type shardPending struct {
	gen      uint64
	lastCtr  uint64
	n, bytes int64
	newFirst uint64
	// The records this commit appends to the shard (counters lastCtr-n+1
	// to lastCtr), all arriving at arrival.
	recs    []*Entry
	arrival int64
}

type streamPending struct {
	gen            uint64
	bytes, records int64
}

// commitState is one group commit in progress.
type commitState struct {
	s     *Store
	w     *commitBuf
	gen   uint64
	txn   *badger.Txn
	err   error
	nowMs int64
}

func (c *commitState) set(e *badger.Entry) {
	if c.err != nil {
		return
	}
	err := c.txn.SetEntry(e)
	if errors.Is(err, badger.ErrTxnTooBig) {
		// Commit what is gathered (synced) and go on in a new transaction;
		// no caller is acknowledged before the last one is synced too.
		if c.err = c.txn.Commit(); c.err != nil {
			return
		}
		c.txn = c.s.db.NewTransaction(true)
		err = c.txn.SetEntry(e)
	}
	if err != nil {
		c.err = err
	}
}

func (c *commitState) del(k []byte) {
	if c.err != nil {
		return
	}
	err := c.txn.Delete(k)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if c.err = c.txn.Commit(); c.err != nil {
			return
		}
		c.txn = c.s.db.NewTransaction(true)
		err = c.txn.Delete(k)
	}
	if err != nil {
		c.err = err
	}
}

// touch starts a shard's bookkeeping for this commit.
func (c *commitState) touch(sh *shardState) *shardPending {
	p := &sh.pend
	if p.gen != c.gen {
		*p = shardPending{gen: c.gen, newFirst: sh.first.Load(), recs: p.recs[:0]}
		c.w.touched = append(c.w.touched, sh)
	}
	return p
}

func (c *commitState) streamPend(st *streamState) *streamPending {
	p := &st.pend
	if p.gen != c.gen {
		*p = streamPending{gen: c.gen}
		c.w.streams = append(c.w.streams, st)
	}
	return p
}

func (s *Store) commit(w *commitBuf, batch []*putReq) {
	s.gen++
	w.touched = w.touched[:0]
	w.streams = w.streams[:0]
	now := s.now()
	c := &commitState{s: s, w: w, gen: s.gen, txn: s.db.NewTransaction(true), nowMs: now.UnixMilli()}
	for _, r := range batch {
		st := r.st
		m := st.meta.Load()
		if m.Status == StatusDeleting {
			for i := range r.results {
				if r.results[i].Err == nil {
					r.results[i].Err = fmt.Errorf("%w: %s", ErrStreamNotFound, st.name)
				}
			}
			continue
		}
		sp := c.streamPend(st)
		for i := range r.entries {
			if r.results[i].Err != nil {
				continue
			}
			e := &r.entries[i]
			sh := st.shard(route(m.route, r.hashes[i]))
			recSize := recordSize(e.PartitionKey, e.Data)
			if !sh.allow(now, len(e.Data)+len(e.PartitionKey)) {
				r.results[i].Err = fmt.Errorf("%w: %s/%s: rate exceeded for shard", ErrThroughputExceeded, st.name, sh.id)
				s.m.throttled.Inc()
				continue
			}
			if err := s.diskRoom(now, recSize); err != nil {
				r.results[i].Err = err
				s.m.full.Inc()
				continue
			}
			if err := c.makeRoom(st, m, recSize); err != nil {
				r.results[i].Err = err
				s.m.full.Inc()
				continue
			}
			p := c.touch(sh)
			if p.n == 0 {
				// One arrival time for the shard's records of this commit,
				// never before the shard's last one.
				p.arrival = max(c.nowMs, sh.lastArrive)
				sh.lastArrive = p.arrival
			}
			ctr := sh.next
			sh.next++
			p.recs = append(p.recs, e)
			p.lastCtr = ctr
			p.n++
			p.bytes += int64(len(e.Data))
			sp.bytes += recSize
			sp.records++
			r.results[i] = PutResult{ShardID: sh.id, SequenceNumber: w.seq.String(seqNum{created: sh.created, counter: ctr, put: uint64(p.arrival / 1000), shard: sh.idx})}
		}
	}
	c.writeBlocks()
	c.finish()
	if c.err != nil {
		err := fmt.Errorf("stream: append: %w", c.err)
		s.log.Error("append failed", "err", c.err)
		for _, r := range batch {
			for i := range r.results {
				if r.results[i].Err == nil {
					r.results[i] = PutResult{Err: err}
				}
			}
			r.done <- struct{}{}
		}
		return
	}
	for _, r := range batch {
		r.done <- struct{}{}
	}
}

// writeBlocks encodes each touched shard's new records into blocks of up to
// maxBlockBytes and adds them to the transaction.
func (c *commitState) writeBlocks() {
	w := c.w
	size := 0
	for _, sh := range w.touched {
		n := 0
		for _, e := range sh.pend.recs {
			n += blockEntryLen(e.PartitionKey, e.Data)
		}
		size += n + (1+n/maxBlockBytes)*(recordKeyLen+blockHeaderMax)
	}
	if cap(w.arena) < size {
		w.arena = make([]byte, size+size/4)
	}
	arena := w.arena[:0]
	for _, sh := range w.touched {
		p := &sh.pend
		recs := p.recs
		ctr := p.lastCtr - uint64(p.n) + 1
		for len(recs) > 0 {
			// As many records as fit the block size (at least one).
			n, bytes := 0, 0
			for n < len(recs) {
				l := blockEntryLen(recs[n].PartitionKey, recs[n].Data)
				if n > 0 && bytes+l > maxBlockBytes {
					break
				}
				n++
				bytes += l
			}
			last := ctr + uint64(n) - 1
			// A block's key and value must not move once handed to Badger:
			// take them from the arena while it has room, else on their own.
			need := recordKeyLen + blockHeaderMax + bytes
			inArena := len(arena)+need <= cap(arena)
			var buf []byte
			if inArena {
				buf = arena[len(arena) : len(arena)+need]
			} else {
				buf = make([]byte, need)
			}
			k := buf[:recordKeyLen]
			putRecordKey(k, sh.owner.id, sh.idx, last)
			v := buf[recordKeyLen:]
			off := putBlockHeader(v, p.arrival, n)
			for _, e := range recs[:n] {
				off += putBlockEntry(v[off:], e.PartitionKey, e.Data)
			}
			v = v[:off]
			if inArena {
				arena = arena[:len(arena)+recordKeyLen+off]
			}
			c.set(badger.NewEntry(k, v))
			recs = recs[n:]
			ctr = last + 1
		}
		clear(p.recs)
		p.recs = p.recs[:0]
	}
}

// finish writes the high-water marks and sizes, commits (one fsync), and
// publishes the new state to readers and waiters.
func (c *commitState) finish() {
	s, w := c.s, c.w
	for _, sh := range w.touched {
		if sh.pend.n == 0 {
			continue
		}
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, sh.pend.lastCtr)
		c.set(badger.NewEntry(highWaterKey(sh.owner.id, sh.idx), b))
	}
	for _, st := range w.streams {
		if st.pend.bytes == 0 && st.pend.records == 0 {
			continue
		}
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b[:8], uint64(st.bytes.Load()+st.pend.bytes))
		binary.BigEndian.PutUint64(b[8:], uint64(st.records.Load()+st.pend.records))
		c.set(badger.NewEntry(sidPrefix(kindStats, st.id), b))
	}
	if c.err == nil {
		c.err = c.txn.Commit()
	} else {
		c.txn.Discard()
	}
	if c.err != nil {
		s.m.commitErrors.Inc()
		return
	}
	s.m.commits.Inc()
	for _, st := range w.streams {
		st.bytes.Add(st.pend.bytes)
		st.records.Add(st.pend.records)
	}
	var n int64
	for _, sh := range w.touched {
		sh.first.Store(sh.pend.newFirst)
		if sh.pend.n > 0 {
			sh.last.Store(sh.pend.lastCtr)
			sh.lastMs.Store(sh.pend.arrival)
			sh.incoming.Add(sh.pend.n)
			sh.inBytes.Add(sh.pend.bytes)
			n += sh.pend.n
			sh.wake()
		}
	}
	if n > 0 {
		s.m.recordsPerCommit.Observe(float64(n))
		s.writeHWM(false)
	}
}

// allow applies the optional per-shard write limits.
func (sh *shardState) allow(now time.Time, n int) bool {
	if sh.recLimit == nil && sh.byteLimit == nil {
		return true
	}
	if sh.recLimit != nil && !sh.recLimit.AllowN(now, 1) {
		return false
	}
	if sh.byteLimit != nil && !sh.byteLimit.AllowN(now, n) {
		return false
	}
	return true
}
