package stream

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
)

// shardOf finds a shard of a stream by id.
func (s *Store) shardOf(stream, id string) (*streamState, *shardState, shardMeta, error) {
	st, err := s.lookup(stream)
	if err != nil {
		return nil, nil, shardMeta{}, err
	}
	for _, sm := range st.meta.Load().Shards {
		if sm.id() == id {
			if sh := st.shard(sm.Index); sh != nil {
				return st, sh, sm, nil
			}
		}
	}
	return nil, nil, shardMeta{}, fmt.Errorf("%w: %s in stream %s", ErrShardNotFound, id, stream)
}

// seqInShard parses a sequence number and checks it belongs to the shard.
func seqInShard(seq string, sh *shardState) (seqNum, error) {
	sn, err := parseSeq(seq)
	if err != nil {
		return sn, err
	}
	if sn.shard != sh.idx || sn.created != sh.created&mask36 {
		return sn, fmt.Errorf("%w: sequence number %s does not belong to %s", ErrInvalidArgument, seq, sh.id)
	}
	return sn, nil
}

// position resolves an iterator request to the next counter to read.
func (s *Store) position(req IteratorRequest) (*streamState, *shardState, uint64, error) {
	st, sh, _, err := s.shardOf(req.Stream, req.ShardID)
	if err != nil {
		return nil, nil, 0, err
	}
	switch req.Type {
	case TrimHorizon:
		return st, sh, sh.first.Load(), nil
	case Latest:
		return st, sh, sh.last.Load() + 1, nil
	case AtSequenceNumber, AfterSequenceNumber:
		if req.SequenceNumber == "" {
			return nil, nil, 0, fmt.Errorf("%w: %s needs a starting sequence number", ErrInvalidArgument, req.Type)
		}
		sn, err := seqInShard(req.SequenceNumber, sh)
		if err != nil {
			return nil, nil, 0, err
		}
		ctr := sn.counter
		if req.Type == AfterSequenceNumber {
			ctr++
		}
		if ctr > sh.last.Load()+1 {
			return nil, nil, 0, fmt.Errorf("%w: sequence number %s is beyond the newest record of %s", ErrInvalidArgument, req.SequenceNumber, sh.id)
		}
		return st, sh, ctr, nil
	case AtTimestamp:
		if req.Timestamp.IsZero() {
			return nil, nil, 0, fmt.Errorf("%w: AT_TIMESTAMP needs a timestamp", ErrInvalidArgument)
		}
		ctr, err := s.seekTime(sh, req.Timestamp.UnixMilli())
		return st, sh, ctr, err
	}
	return nil, nil, 0, fmt.Errorf("%w: iterator type %q: want TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP", ErrInvalidArgument, req.Type)
}

// seekTime finds the first record whose arrival time is at or after ms.
// Arrival times never decrease within a shard, so a binary search over the
// counters finds it.
func (s *Store) seekTime(sh *shardState, ms int64) (uint64, error) {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	opts := badger.DefaultIteratorOptions
	opts.Prefix = sh.prefix
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	lo, hi := sh.first.Load(), sh.last.Load()+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		it.Seek(recordKey(sh.owner.id, sh.idx, mid))
		if !it.Valid() {
			hi = mid
			continue
		}
		b, err := blockAt(it.Item())
		if err != nil {
			return 0, fmt.Errorf("stream: seek time: %w", err)
		}
		switch {
		case b.first >= hi:
			hi = mid
		case b.arrivalMs >= ms:
			// All of the block's records arrived at once.
			hi = max(b.first, lo)
		default:
			lo = min(b.last+1, hi)
		}
	}
	return lo, nil
}

// ShardIterator returns an opaque shard iterator valid for
// Options.IteratorTTL.
func (s *Store) ShardIterator(req IteratorRequest) (string, error) {
	st, sh, ctr, err := s.position(req)
	if err != nil {
		return "", err
	}
	return s.encodeIterator(st.id, sh.idx, ctr), nil
}

// Iterator tokens: an 8-byte header 00..01, then AES-GCM (nonce, sealed
// payload) of created-ms(8) stream-id(4) shard(4) counter(8), base64.
func (s *Store) aead() cipher.AEAD {
	b, err := aes.NewCipher(s.iterKey)
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

func (s *Store) encodeIterator(sid, shard uint32, ctr uint64) string {
	var plain [24]byte
	binary.BigEndian.PutUint64(plain[0:8], uint64(s.now().UnixMilli()))
	binary.BigEndian.PutUint32(plain[8:12], sid)
	binary.BigEndian.PutUint32(plain[12:16], shard)
	binary.BigEndian.PutUint64(plain[16:24], ctr)
	g := s.aead()
	out := make([]byte, 8, 8+g.NonceSize()+len(plain)+g.Overhead())
	out[7] = 1
	nonce := randomBytes(g.NonceSize())
	out = append(out, nonce...)
	out = g.Seal(out, nonce, plain[:], out[:8])
	return base64.StdEncoding.EncodeToString(out)
}

func (s *Store) decodeIterator(tok string) (created time.Time, sid, shard uint32, ctr uint64, err error) {
	raw, err := base64.StdEncoding.DecodeString(tok)
	g := s.aead()
	if err != nil || len(raw) < 8+g.NonceSize()+24+g.Overhead() || raw[7] != 1 {
		return time.Time{}, 0, 0, 0, fmt.Errorf("%w: not a shard iterator of this gateway", ErrInvalidIterator)
	}
	for _, b := range raw[:7] {
		if b != 0 {
			return time.Time{}, 0, 0, 0, fmt.Errorf("%w: not a shard iterator of this gateway", ErrInvalidIterator)
		}
	}
	ns := g.NonceSize()
	plain, err := g.Open(nil, raw[8:8+ns], raw[8+ns:], raw[:8])
	if err != nil || len(plain) != 24 {
		return time.Time{}, 0, 0, 0, fmt.Errorf("%w: the iterator was altered or comes from another gateway", ErrInvalidIterator)
	}
	created = time.UnixMilli(int64(binary.BigEndian.Uint64(plain[0:8])))
	return created, binary.BigEndian.Uint32(plain[8:12]), binary.BigEndian.Uint32(plain[12:16]), binary.BigEndian.Uint64(plain[16:24]), nil
}

// IteratorInfo names the stream and shard a shard iterator reads, without
// checking its age.
func (s *Store) IteratorInfo(iterator string) (streamName, shard string, err error) {
	_, sid, idx, _, err := s.decodeIterator(iterator)
	if err != nil {
		return "", "", err
	}
	s.mu.RLock()
	st := s.streams[sid]
	s.mu.RUnlock()
	if st == nil {
		return "", "", fmt.Errorf("%w: the iterator's stream was deleted", ErrStreamNotFound)
	}
	return st.name, shardID(idx), nil
}

// GetRecords reads from a shard iterator. limit 0 means 10,000; at most
// 10 MiB of data is returned.
func (s *Store) GetRecords(ctx context.Context, iterator string, limit int) (GetRecordsResult, error) {
	if s.closed.Load() {
		return GetRecordsResult{}, ErrClosed
	}
	created, sid, shard, ctr, err := s.decodeIterator(iterator)
	if err != nil {
		return GetRecordsResult{}, err
	}
	if age := s.now().Sub(created); age > s.opts.IteratorTTL || age < -s.opts.IteratorTTL {
		return GetRecordsResult{}, fmt.Errorf("%w: the iterator is %s old (limit %s)", ErrIteratorExpired, age.Round(time.Second), s.opts.IteratorTTL)
	}
	if limit < 0 || limit > MaxGetRecords {
		return GetRecordsResult{}, fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalidArgument, limit, MaxGetRecords)
	}
	if limit == 0 {
		limit = MaxGetRecords
	}
	s.mu.RLock()
	st := s.streams[sid]
	s.mu.RUnlock()
	if st == nil {
		return GetRecordsResult{}, fmt.Errorf("%w: the iterator's stream was deleted", ErrStreamNotFound)
	}
	sh := st.shard(shard)
	if sh == nil {
		return GetRecordsResult{}, fmt.Errorf("%w: the iterator's shard expired", ErrShardNotFound)
	}
	rr, next, err := s.readShard(st, sh, ctr, limit, MaxGetRecordsBytes)
	if err != nil {
		return GetRecordsResult{}, err
	}
	out := GetRecordsResult{Records: rr.Records, MillisBehindLatest: rr.MillisBehindLatest, ChildShards: rr.Children}
	if !rr.Ended {
		out.NextShardIterator = s.encodeIterator(sid, shard, next)
	}
	s.m.readRecords.Add(float64(len(rr.Records)))
	if n := len(rr.Records); n > 0 {
		s.m.iteratorAge.Observe(float64(s.now().UnixMilli() - rr.Records[n-1].ArrivalTime.UnixMilli()))
	}
	return out, nil
}

// Read is the in-process read of one shard; see ReadRequest.
func (s *Store) Read(ctx context.Context, req ReadRequest) (ReadResult, error) {
	st, sh, _, err := s.shardOf(req.Stream, req.ShardID)
	if err != nil {
		return ReadResult{}, err
	}
	from := sh.first.Load()
	if req.After != "" {
		sn, err := seqInShard(req.After, sh)
		if err != nil {
			return ReadResult{}, err
		}
		if sn.counter+1 > from {
			from = sn.counter + 1
		}
	}
	limit, maxBytes := req.Limit, req.MaxBytes
	if limit <= 0 {
		limit = 1000
	}
	if maxBytes <= 0 {
		maxBytes = MaxGetRecordsBytes
	}
	rr, _, err := s.readShard(st, sh, from, limit, maxBytes)
	return rr, err
}

// readShard reads records from counter from on; it returns the counter to
// read next.
func (s *Store) readShard(st *streamState, sh *shardState, from uint64, limit, maxBytes int) (rr ReadResult, nextCtr uint64, err error) {
	defer func() {
		// Badger panics on some damaged blocks; a read must fail, not the process.
		if r := recover(); r != nil {
			rr, nextCtr, err = ReadResult{}, from, fmt.Errorf("%w: %s/%s: reading damaged data: %v", ErrCorrupt, st.name, sh.id, r)
		}
	}()
	m := st.meta.Load()
	var sm shardMeta
	for _, x := range m.Shards {
		if x.Index == sh.idx {
			sm = x
		}
	}
	if f := sh.first.Load(); from < f {
		from = f
	}
	cut := s.cutoffMs(m.Retention)
	last := sh.last.Load()
	var out ReadResult
	next := from
	if from <= last {
		txn := s.db.NewTransaction(false)
		defer txn.Discard()
		opts := badger.DefaultIteratorOptions
		opts.Prefix = sh.prefix
		// One value is a block of records: reading it in the loop beats
		// Badger's prefetch goroutines.
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		bytes := 0
		// Values are copied into an arena that grows by new chunks, never by
		// copying: each record's data and key alias it (data capped so an
		// append by the caller reallocates). The first chunk is sized for
		// what the read may return (a follower reading one new record takes
		// a block, not 256 KiB). Sequence numbers go into a second arena.
		want := min(uint64(limit), last-from+1)
		var arena []byte
		chunk := int(min(want*160, 256<<10, uint64(maxBytes)+valueThreshold))
		take := func(n int) []byte {
			if len(arena)+n > cap(arena) {
				arena = make([]byte, 0, max(n, chunk))
				chunk = 256 << 10
			}
			arena = arena[:len(arena)+n]
			return arena[len(arena)-n : len(arena) : len(arena)]
		}
		var seqs []byte
		var f seqFormatter
		out.Records = make([]Record, 0, want)
	blocks:
		for it.Seek(recordKey(st.id, sh.idx, from)); it.Valid() && len(out.Records) < limit; it.Next() {
			item := it.Item()
			key := counterFromKey(item.Key())
			var b block
			err := item.Value(func(v []byte) error {
				var err error
				if b, err = parseBlock(key, v); err != nil || b.first > last || b.last < from || b.arrivalMs < cut {
					return err
				}
				if b.body == nil || b.first >= from {
					b.v = take(len(v))
					copy(b.v, v)
					if b.body != nil {
						b.body = b.v[len(v)-len(b.body):]
					}
					return nil
				}
				// Copy from the first record wanted on.
				r := b.reader()
				for r.ctr < from {
					if _, _, _, _, err := r.next(); err != nil {
						return err
					}
				}
				b.body = take(len(b.body) - r.off)
				copy(b.body, r.b.body[r.off:])
				b.first = from
				return nil
			})
			if err != nil {
				return ReadResult{}, from, fmt.Errorf("stream: read %s/%s at %d: %w", st.name, sh.id, key, err)
			}
			if b.first > last {
				break
			}
			if b.last < from {
				continue
			}
			if b.arrivalMs < cut {
				next = b.last + 1
				continue // expired: hidden at once, deleted by the next sweep
			}
			put := uint64(b.arrivalMs / 1000)
			arrival := msTime(b.arrivalMs)
			r := b.reader()
			for len(out.Records) < limit {
				ctr, pk, data, ok, err := r.next()
				if err != nil {
					return ReadResult{}, from, fmt.Errorf("stream: read %s/%s at %d: %w", st.name, sh.id, r.ctr, err)
				}
				if !ok || ctr > last {
					break
				}
				if bytes+len(data) > maxBytes && len(out.Records) > 0 {
					break blocks
				}
				bytes += len(data)
				next = ctr + 1
				d := f.digits(seqNum{created: sh.created, counter: ctr, put: put, shard: sh.idx})
				if len(seqs)+len(d) > cap(seqs) {
					seqs = make([]byte, 0, max(min(limit-len(out.Records), 256)*len(d), len(d)))
				}
				seqs = append(seqs, d...)
				out.Records = append(out.Records, Record{
					SequenceNumber: unsafe.String(&seqs[len(seqs)-len(d)], len(d)),
					PartitionKey:   pk, Data: data, ArrivalTime: arrival,
				})
			}
		}
		if len(out.Records) < limit && next <= last && !it.Valid() {
			next = last + 1
		}
	}
	if n := len(out.Records); n > 0 && next <= last {
		out.MillisBehindLatest = max(0, sh.lastMs.Load()-out.Records[n-1].ArrivalTime.UnixMilli())
	}
	out.CaughtUp = next > last
	if sm.Closed && next > sm.EndCounter {
		out.Ended = true
		out.Children = childrenOf(m, sm.id())
	}
	return out, next, nil
}

func childrenOf(m *streamMeta, id string) []ChildShard {
	var out []ChildShard
	for _, c := range m.Shards {
		if c.Parent == id || c.Adjacent == id {
			parents := []string{c.Parent}
			if c.Adjacent != "" {
				parents = append(parents, c.Adjacent)
			}
			out = append(out, ChildShard{ShardID: c.id(), ParentShards: parents, HashKeyRange: c.hashRange()})
		}
	}
	return out
}

// Wait blocks until the shard holds a record after the sequence number
// after ("" = any record), or the shard is closed, or the stream is
// deleted, or ctx ends (then it returns ctx.Err()). Appends wake it; it
// does not poll.
func (s *Store) Wait(ctx context.Context, stream, shardID, after string) error {
	st, sh, _, err := s.shardOf(stream, shardID)
	if err != nil {
		return err
	}
	var ctr uint64
	if after != "" {
		sn, err := seqInShard(after, sh)
		if err != nil {
			return err
		}
		ctr = sn.counter
	}
	for {
		ch := sh.waitChan()
		if sh.last.Load() > ctr || s.closed.Load() {
			return nil
		}
		m := st.meta.Load()
		if m.Status == StatusDeleting {
			return fmt.Errorf("%w: %s", ErrStreamNotFound, stream)
		}
		for _, sm := range m.Shards {
			if sm.Index == sh.idx && sm.Closed {
				return nil
			}
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

// LastSequenceNumber is the newest sequence number in a shard, "" if the
// shard never held a record. A consumer that starts at LATEST reads after it.
func (s *Store) LastSequenceNumber(stream, shardID string) (string, error) {
	_, sh, _, err := s.shardOf(stream, shardID)
	if err != nil {
		return "", err
	}
	last := sh.last.Load()
	if last == 0 {
		return "", nil
	}
	return seqNum{created: sh.created, counter: last, put: uint64(sh.lastMs.Load() / 1000), shard: sh.idx}.String(), nil
}
