package stream

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/time/rate"
)

// Store is a durable, sharded stream store on Badger with Kinesis Data
// Streams semantics. All methods are safe for concurrent use.
//
// One goroutine, the writer, owns every change to records and metadata:
// appends, resharding, deletion, retention sweeps and evictions all run on
// it in turn, so sequence numbers, byte counts and shard lineage never race.
// Readers use Badger snapshots and never block the writer.
type Store struct {
	db   *badger.DB
	opts Options
	log  *slog.Logger
	now  func() time.Time

	ops     chan op
	stop    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.RWMutex // held for reading by calls that send to ops
	closed  atomic.Bool

	mu      sync.RWMutex // guards streams and byName
	streams map[uint32]*streamState
	byName  map[string]*streamState
	nextID  uint32

	iterKey []byte
	leaseMu sync.Mutex
	clock   clockGuard
	gen     uint64 // commit generation; writer-only

	hwm    *os.File // see guard.go; writer-only after Open
	hwmBuf []byte
	hwmLen int
	free   uint64 // free-space guard cache; writer-only
	freeAt time.Time
	m      storeMetrics
}

// streamMeta is what is persisted under 'm' name.
type streamMeta struct {
	ID        uint32            `json:"id"`
	Name      string            `json:"name"`
	Status    Status            `json:"status"`
	Retention time.Duration     `json:"retention"`
	CreatedMs int64             `json:"created_ms"`
	MaxBytes  int64             `json:"max_bytes,omitempty"`
	OnFull    FullPolicy        `json:"on_full,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	Shards    []shardMeta       `json:"shards"`
	NextShard uint32            `json:"next_shard"`

	route []routeEntry // open shards by range; derived, set by setMeta
}

type shardMeta struct {
	Index       uint32 `json:"index"`
	Parent      string `json:"parent,omitempty"`
	Adjacent    string `json:"adjacent,omitempty"`
	StartHi     uint64 `json:"start_hi"`
	StartLo     uint64 `json:"start_lo"`
	EndHi       uint64 `json:"end_hi"`
	EndLo       uint64 `json:"end_lo"`
	CreatedSecs uint64 `json:"created_s"`
	Closed      bool   `json:"closed,omitempty"`
	EndCounter  uint64 `json:"end_counter,omitempty"` // last counter once closed
	ClosedMs    int64  `json:"closed_ms,omitempty"`
}

func (m shardMeta) id() string  { return shardID(m.Index) }
func (m shardMeta) start() u128 { return u128{m.StartHi, m.StartLo} }
func (m shardMeta) end() u128   { return u128{m.EndHi, m.EndLo} }
func shardID(idx uint32) string { return fmt.Sprintf("shardId-%012d", idx) }
func (m shardMeta) hashRange() HashKeyRange {
	return HashKeyRange{StartingHashKey: m.start().String(), EndingHashKey: m.end().String()}
}

// streamState is a stream in memory. meta is replaced, never mutated, by
// the writer (copy on write); readers load it atomically.
type streamState struct {
	id     uint32
	name   string
	meta   atomic.Pointer[streamMeta]
	shards sync.Map // shard index -> *shardState

	bytes   atomic.Int64
	records atomic.Int64
	evicted atomic.Int64

	pend streamPending // writer-only bookkeeping of the commit in progress

	changeMu sync.Mutex
	changed  chan struct{} // closed when the shard set changes
}

func (st *streamState) shard(idx uint32) *shardState {
	v, ok := st.shards.Load(idx)
	if !ok {
		return nil
	}
	return v.(*shardState)
}

func (st *streamState) notifyChange() {
	st.changeMu.Lock()
	close(st.changed)
	st.changed = make(chan struct{})
	st.changeMu.Unlock()
}

func (st *streamState) changes() <-chan struct{} {
	st.changeMu.Lock()
	defer st.changeMu.Unlock()
	return st.changed
}

// shardState is a shard in memory.
type shardState struct {
	idx     uint32
	id      string
	owner   *streamState
	created uint64 // seconds, the sequence number's high field
	prefix  []byte
	pend    shardPending // writer-only bookkeeping of the commit in progress

	// Owned by the writer goroutine.
	next       uint64 // next counter to assign
	lastArrive int64  // ms; arrival times never go backwards in a shard
	recLimit   *rate.Limiter
	byteLimit  *rate.Limiter

	// Published after each commit.
	last     atomic.Uint64 // last committed counter, 0 if none
	lastMs   atomic.Int64  // arrival of the last committed record
	first    atomic.Uint64 // lowest counter that may still exist
	incoming atomic.Int64
	inBytes  atomic.Int64

	mu     sync.Mutex
	notify chan struct{} // closed after a commit that adds records
}

func (sh *shardState) wake() {
	sh.mu.Lock()
	close(sh.notify)
	sh.notify = make(chan struct{})
	sh.mu.Unlock()
}

func (sh *shardState) waitChan() <-chan struct{} {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.notify
}

func (o *Options) fill() error {
	if o.Dir == "" {
		return fmt.Errorf("%w: Options.Dir is required", ErrInvalidArgument)
	}
	if o.OnFull == "" {
		o.OnFull = Reject
	}
	if o.OnFull != Reject && o.OnFull != EvictOldest {
		return fmt.Errorf("%w: on_full %q: want reject or evict_oldest", ErrInvalidArgument, o.OnFull)
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "000000000000"
	}
	if o.IteratorTTL <= 0 {
		o.IteratorTTL = DefaultIteratorTTL
	}
	if o.MaxShards <= 0 {
		o.MaxShards = DefaultMaxShards
	}
	if o.CommitRecords <= 0 {
		o.CommitRecords = 4096
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = 8 << 20
	}
	if o.BlockCacheSize <= 0 {
		o.BlockCacheSize = 8 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 4*o.MemTableSize + 4<<20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// badgerOptions tunes Badger for a 512 MB board: small memtables and
// caches, 64 MiB value-log files (a 32-bit address space maps them), two
// compactors, and a sync on every commit.
func badgerOptions(o Options) badger.Options {
	bo := badger.DefaultOptions(o.Dir).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(3).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(16 << 20).
		WithLevelSizeMultiplier(10).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(valueThreshold).
		WithBlockCacheSize(o.BlockCacheSize).
		WithIndexCacheSize(4 << 20).
		WithNumCompactors(2).
		WithCompression(options.None).
		WithChecksumVerificationMode(options.OnTableRead).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithCompactL0OnClose(false).
		WithLogger(badgerLogger{o.Logger.With("component", "badger")})
	// Every level's tables stay at BaseTableSize: compaction builds up to
	// 8+ tables in memory at once, each buffered at twice the table size,
	// so growing tables per level (Badger's default doubles them) is what
	// would blow the memory budget of a small board.
	bo.TableSizeMultiplier = 1
	return bo
}

// valueThreshold: values below it live in the LSM tree, larger ones in
// the value log. Blocks are cut to stay below it (maxBlockBytes), so
// compaction reclaims expired blocks and only a record of 4 KiB or more,
// a block on its own, goes to the value log; big records in the LSM tree
// would cost memtable and compaction memory a small board does not have.
const valueThreshold = 4 << 10

// openBadger opens Badger, turning a panic on damaged files (it panics on
// some truncated tables) into an error.
func openBadger(o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: badger panicked opening the files: %v", ErrCorrupt, r)
		}
	}()
	return badger.Open(o)
}

// Open opens (or creates) the store in opts.Dir. A store that cannot be
// opened is reported with the cause; it is never wiped.
func Open(opts Options) (*Store, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("stream: open: %w", err)
	}
	recorded := readHWM(opts.Dir)
	if err := preflight(opts.Dir, opts.Logger); err != nil && !opts.AcceptDataLoss {
		return nil, fmt.Errorf("stream: open %s: %w (the data is left as it is; see README \"Recovery\")", opts.Dir, err)
	}
	db, err := openBadger(badgerOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("stream: open %s: %w (the data is left as it is; see README \"Recovery\")", opts.Dir, err)
	}
	s := &Store{
		db: db, opts: opts, log: opts.Logger, now: opts.Now,
		ops: make(chan op, 1024), stop: make(chan struct{}),
		streams: map[uint32]*streamState{}, byName: map[string]*streamState{},
	}
	s.m.init()
	s.clock.start = time.Now()
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.checkHWM(recorded); err != nil {
		db.Close()
		return nil, err
	}
	tails, err := s.verifyTails(1024)
	if err != nil && !opts.AcceptDataLoss {
		db.Close()
		return nil, fmt.Errorf("%w (the data is left as it is; see README \"Recovery\")", err)
	}
	if err := s.openHWM(); err != nil {
		db.Close()
		return nil, err
	}
	s.writeHWM(true)
	s.logRecovery(recorded, tails)
	if s.iterKey == nil {
		s.iterKey = randomBytes(32)
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte{kindIterKey}, s.iterKey) }); err != nil {
			db.Close()
			return nil, fmt.Errorf("stream: open: %w", err)
		}
	}
	s.wg.Add(2)
	go s.writer()
	go s.sweeper()
	return s, nil
}

// load reads metadata, counters and sizes.
func (s *Store) load() error {
	return s.db.View(func(txn *badger.Txn) error {
		if it, err := txn.Get([]byte{kindIterKey}); err == nil {
			s.iterKey, err = it.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("stream: load iterator key: %w", err)
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("stream: load iterator key: %w", err)
		}
		if it, err := txn.Get([]byte{kindNextID}); err == nil {
			_ = it.Value(func(v []byte) error {
				if len(v) == 4 {
					s.nextID = binary.BigEndian.Uint32(v)
				}
				return nil
			})
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{kindMeta}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var m streamMeta
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
				return fmt.Errorf("stream: load metadata %q: %w", it.Item().Key()[1:], err)
			}
			st := s.newStreamState(&m)
			if err := s.loadStream(txn, st); err != nil {
				return err
			}
			if m.Status == StatusDeleting {
				// A crash during DeleteStream: finish it after start.
				defer func(name string) {
					go func() { _ = s.DeleteStream(context.Background(), name) }()
				}(m.Name)
			}
			s.streams[m.ID] = st
			s.byName[m.Name] = st
			if m.ID >= s.nextID {
				s.nextID = m.ID + 1
			}
		}
		return nil
	})
}

func (s *Store) newStreamState(m *streamMeta) *streamState {
	st := &streamState{id: m.ID, name: m.Name, changed: make(chan struct{})}
	st.setMeta(m)
	for _, sm := range m.Shards {
		st.shards.Store(sm.Index, s.newShardState(st, sm))
	}
	return st
}

// setMeta publishes new metadata with its routing table.
func (st *streamState) setMeta(m *streamMeta) {
	m.route = m.routes()
	st.meta.Store(m)
}

func (s *Store) newShardState(st *streamState, sm shardMeta) *shardState {
	sh := &shardState{idx: sm.Index, id: sm.id(), owner: st, created: sm.CreatedSecs, prefix: shardPrefix(st.id, sm.Index),
		next: 1, notify: make(chan struct{})}
	sh.first.Store(1)
	if s.opts.ShardWriteRecords > 0 {
		sh.recLimit = rate.NewLimiter(rate.Limit(s.opts.ShardWriteRecords), s.opts.ShardWriteRecords)
	}
	if s.opts.ShardWriteBytes > 0 {
		sh.byteLimit = rate.NewLimiter(rate.Limit(s.opts.ShardWriteBytes), s.opts.ShardWriteBytes)
	}
	return sh
}

// loadStream restores counters, the trim horizon and sizes of one stream.
func (s *Store) loadStream(txn *badger.Txn, st *streamState) error {
	if it, err := txn.Get(sidPrefix(kindStats, st.id)); err == nil {
		_ = it.Value(func(v []byte) error {
			if len(v) == 16 {
				st.bytes.Store(int64(binary.BigEndian.Uint64(v[:8])))
				st.records.Store(int64(binary.BigEndian.Uint64(v[8:])))
			}
			return nil
		})
	}
	var err error
	st.shards.Range(func(_, v any) bool {
		sh := v.(*shardState)
		var hw uint64
		if it, e := txn.Get(highWaterKey(st.id, sh.idx)); e == nil {
			_ = it.Value(func(v []byte) error {
				if len(v) == 8 {
					hw = binary.BigEndian.Uint64(v)
				}
				return nil
			})
		}
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = sh.prefix
		it := txn.NewIterator(opts)
		it.Rewind()
		if it.Valid() {
			b, e := blockAt(it.Item())
			if e != nil {
				err = fmt.Errorf("stream: load %s/%s: %w", st.name, shardID(sh.idx), e)
			}
			sh.first.Store(b.first)
		} else {
			sh.first.Store(hw + 1)
		}
		it.Close()
		opts.Reverse = true
		it = txn.NewIterator(opts)
		seek := append(append([]byte(nil), sh.prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		it.Seek(seek)
		if it.Valid() {
			c := counterFromKey(it.Item().Key())
			if c > hw {
				hw = c
			}
			if e := it.Item().Value(func(v []byte) error {
				sh.lastArrive = arrivalOf(v)
				return nil
			}); e != nil {
				err = fmt.Errorf("stream: load %s/%s: %w", st.name, shardID(sh.idx), e)
			}
		}
		it.Close()
		sh.next = hw + 1
		sh.last.Store(hw)
		sh.lastMs.Store(sh.lastArrive)
		return err == nil
	})
	return err
}

// Region is the region of the store's ARNs (Options.Region).
func (s *Store) Region() string { return s.opts.Region }

// Close waits for in-flight appends, then closes Badger. Further calls
// return ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed.Swap(true) {
		s.closeMu.Unlock()
		return ErrClosed
	}
	close(s.stop)
	s.closeMu.Unlock()
	s.wg.Wait()
	s.writeHWM(true)
	_ = s.hwm.Close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("stream: close: %w", err)
	}
	return nil
}

func (s *Store) lookup(name string) (*streamState, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	s.mu.RLock()
	st := s.byName[name]
	s.mu.RUnlock()
	if st == nil {
		return nil, fmt.Errorf("%w: %s", ErrStreamNotFound, name)
	}
	return st, nil
}

func (s *Store) arn(name string) string {
	return "arn:aws:kinesis:" + s.opts.Region + ":" + s.opts.AccountID + ":stream/" + name
}

// StreamNameFromARN returns the stream name an ARN of this store names.
func (s *Store) StreamNameFromARN(arn string) (string, error) {
	prefix := "arn:aws:kinesis:" + s.opts.Region + ":" + s.opts.AccountID + ":stream/"
	if !strings.HasPrefix(arn, prefix) {
		return "", fmt.Errorf("%w: ARN %q does not name a stream of this gateway (want %s<name>)", ErrInvalidArgument, arn, prefix)
	}
	name := arn[len(prefix):]
	if ValidName(name) != nil {
		return "", fmt.Errorf("%w: ARN %q: bad stream name", ErrInvalidArgument, arn)
	}
	return name, nil
}

// CreateStream creates a stream with cfg.ShardCount even shards.
func (s *Store) CreateStream(ctx context.Context, cfg StreamConfig) error {
	if err := ValidName(cfg.Name); err != nil {
		return err
	}
	if cfg.ShardCount < 1 {
		return fmt.Errorf("%w: shard count %d: want at least 1", ErrInvalidArgument, cfg.ShardCount)
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Retention < time.Minute || cfg.Retention > MaxRetention {
		return fmt.Errorf("%w: retention %s: want 1m to 8760h", ErrInvalidArgument, cfg.Retention)
	}
	if cfg.OnFull == "" {
		cfg.OnFull = Reject
	}
	if cfg.OnFull != Reject && cfg.OnFull != EvictOldest {
		return fmt.Errorf("%w: on_full %q: want reject or evict_oldest", ErrInvalidArgument, cfg.OnFull)
	}
	if cfg.MaxBytes < 0 {
		return fmt.Errorf("%w: max bytes %d is negative", ErrInvalidArgument, cfg.MaxBytes)
	}
	if err := validTags(cfg.Tags, 0); err != nil {
		return err
	}
	return s.control(ctx, func() error {
		s.mu.RLock()
		_, exists := s.byName[cfg.Name]
		s.mu.RUnlock()
		if exists {
			return fmt.Errorf("%w: %s", ErrStreamExists, cfg.Name)
		}
		if s.shardCount()+cfg.ShardCount > s.opts.MaxShards {
			return fmt.Errorf("%w: %d more shards would pass the store's limit of %d", ErrLimitExceeded, cfg.ShardCount, s.opts.MaxShards)
		}
		now := s.now()
		m := &streamMeta{ID: s.nextID, Name: cfg.Name, Status: StatusActive, Retention: cfg.Retention,
			CreatedMs: now.UnixMilli(), MaxBytes: cfg.MaxBytes, OnFull: cfg.OnFull, Tags: copyTags(cfg.Tags)}
		starts := evenRanges(cfg.ShardCount)
		for i, st := range starts {
			end := maxU128
			if i+1 < len(starts) {
				end = starts[i+1].sub1()
			}
			m.Shards = append(m.Shards, shardMeta{Index: uint32(i), StartHi: st.hi, StartLo: st.lo,
				EndHi: end.hi, EndLo: end.lo, CreatedSecs: uint64(now.Unix())})
		}
		m.NextShard = uint32(cfg.ShardCount)
		var idb [4]byte
		binary.BigEndian.PutUint32(idb[:], s.nextID+1)
		err := s.db.Update(func(txn *badger.Txn) error {
			if err := putMeta(txn, m); err != nil {
				return err
			}
			return txn.Set([]byte{kindNextID}, idb[:])
		})
		if err != nil {
			return fmt.Errorf("stream: create %s: %w", cfg.Name, err)
		}
		s.nextID++
		st := s.newStreamState(m)
		s.mu.Lock()
		s.streams[m.ID] = st
		s.byName[m.Name] = st
		s.mu.Unlock()
		return nil
	})
}

func putMeta(txn *badger.Txn, m *streamMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return txn.Set(metaKey(m.Name), b)
}

func (s *Store) shardCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, st := range s.streams {
		n += len(st.meta.Load().Shards)
	}
	return n
}

// DeleteStream deletes a stream and all its records, checkpoints and leases.
func (s *Store) DeleteStream(ctx context.Context, name string) error {
	st, err := s.lookup(name)
	if err != nil {
		return err
	}
	return s.control(ctx, func() error {
		m := *st.meta.Load()
		m.Status = StatusDeleting
		if err := s.db.Update(func(txn *badger.Txn) error { return putMeta(txn, &m) }); err != nil {
			return fmt.Errorf("stream: delete %s: %w", name, err)
		}
		st.setMeta(&m)
		s.mu.Lock()
		delete(s.byName, name)
		delete(s.streams, st.id)
		s.mu.Unlock()
		s.writeHWM(true) // forget its marks before its records go
		for _, k := range []byte{kindRecord, kindHighWater, kindStats, kindCheckpoint, kindLease} {
			if err := s.db.DropPrefix(sidPrefix(k, st.id)); err != nil {
				return fmt.Errorf("stream: delete %s: %w", name, err)
			}
		}
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(metaKey(name)) }); err != nil {
			return fmt.Errorf("stream: delete %s: %w", name, err)
		}
		st.notifyChange()
		st.shards.Range(func(_, v any) bool { v.(*shardState).wake(); return true })
		return nil
	})
}

// DescribeStream describes a stream.
func (s *Store) DescribeStream(name string) (StreamDescription, error) {
	st, err := s.lookup(name)
	if err != nil {
		return StreamDescription{}, err
	}
	m := st.meta.Load()
	d := StreamDescription{Name: m.Name, ARN: s.arn(m.Name), Status: m.Status, Retention: m.Retention,
		Created: msTime(m.CreatedMs), MaxBytes: m.MaxBytes, OnFull: m.OnFull}
	for _, sm := range m.Shards {
		d.Shards = append(d.Shards, s.describeShard(st, sm))
		if !sm.Closed {
			d.OpenShardCount++
		}
	}
	return d, nil
}

func (s *Store) describeShard(st *streamState, sm shardMeta) Shard {
	sh := Shard{ShardID: sm.id(), ParentShardID: sm.Parent, AdjacentParentShardID: sm.Adjacent,
		HashKeyRange:           sm.hashRange(),
		StartingSequenceNumber: seqNum{created: sm.CreatedSecs, counter: 0, put: sm.CreatedSecs, shard: sm.Index}.String()}
	if sm.Closed {
		sh.EndingSequenceNumber = seqNum{created: sm.CreatedSecs, counter: sm.EndCounter, put: uint64(sm.ClosedMs / 1000), shard: sm.Index}.String()
	}
	return sh
}

// ListStreams returns stream names in lexical order.
func (s *Store) ListStreams() []string {
	s.mu.RLock()
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	s.mu.RUnlock()
	sort.Strings(names)
	return names
}

// SetRetention changes a stream's retention period (1 minute to 8,760 h).
// A shorter retention hides expired records from reads at once.
func (s *Store) SetRetention(name string, d time.Duration) error {
	if d < time.Minute || d > MaxRetention {
		return fmt.Errorf("%w: retention %s: want 1m to 8760h", ErrInvalidArgument, d)
	}
	return s.updateMeta(name, func(m *streamMeta) error { m.Retention = d; return nil })
}

// updateMeta applies fn to a copy of the stream's metadata on the writer,
// persists it, and publishes it.
func (s *Store) updateMeta(name string, fn func(m *streamMeta) error) error {
	st, err := s.lookup(name)
	if err != nil {
		return err
	}
	return s.control(context.Background(), func() error {
		cur := st.meta.Load()
		if cur.Status == StatusDeleting {
			return fmt.Errorf("%w: %s", ErrStreamNotFound, name)
		}
		m := *cur
		m.Tags = copyTags(cur.Tags)
		m.Shards = append([]shardMeta(nil), cur.Shards...)
		if err := fn(&m); err != nil {
			return err
		}
		if err := s.db.Update(func(txn *badger.Txn) error { return putMeta(txn, &m) }); err != nil {
			return fmt.Errorf("stream: update %s: %w", name, err)
		}
		st.setMeta(&m)
		return nil
	})
}

var tagKeyRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$`)

func validTags(tags map[string]string, existing int) error {
	if len(tags)+existing > DefaultMaxTags {
		return fmt.Errorf("%w: a stream has at most %d tags", ErrLimitExceeded, DefaultMaxTags)
	}
	for k, v := range tags {
		if !tagKeyRE.MatchString(k) || strings.HasPrefix(k, "aws:") {
			return fmt.Errorf("%w: tag key %q: want 1-128 letters, digits, spaces or _.:/=+-@, not starting with aws:", ErrInvalidArgument, k)
		}
		if len([]rune(v)) > 256 {
			return fmt.Errorf("%w: tag %q: value longer than 256 characters", ErrInvalidArgument, k)
		}
	}
	return nil
}

func copyTags(t map[string]string) map[string]string {
	if len(t) == 0 {
		return nil
	}
	c := make(map[string]string, len(t))
	for k, v := range t {
		c[k] = v
	}
	return c
}

// AddTags adds or overwrites tags.
func (s *Store) AddTags(name string, tags map[string]string) error {
	return s.updateMeta(name, func(m *streamMeta) error {
		n := 0
		for k := range tags {
			if _, ok := m.Tags[k]; !ok {
				n++
			}
		}
		if err := validTags(tags, len(m.Tags)+n-len(tags)); err != nil {
			return err
		}
		if m.Tags == nil {
			m.Tags = map[string]string{}
		}
		for k, v := range tags {
			m.Tags[k] = v
		}
		return nil
	})
}

// RemoveTags removes tags by key; unknown keys are ignored.
func (s *Store) RemoveTags(name string, keys []string) error {
	return s.updateMeta(name, func(m *streamMeta) error {
		for _, k := range keys {
			delete(m.Tags, k)
		}
		return nil
	})
}

// Tags returns a copy of a stream's tags.
func (s *Store) Tags(name string) (map[string]string, error) {
	st, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	t := copyTags(st.meta.Load().Tags)
	if t == nil {
		t = map[string]string{}
	}
	return t, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any)  { b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Debugf(f string, a ...any) {}
