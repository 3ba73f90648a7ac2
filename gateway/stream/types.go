package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Sentinel errors. Callers branch on them with errors.Is; the returned error
// usually wraps one of these with the operation and the detail.
var (
	// ErrStreamNotFound is returned when the named stream does not exist
	// (Kinesis: ResourceNotFoundException).
	ErrStreamNotFound = errors.New("stream: stream not found")
	// ErrShardNotFound is returned when the shard id names no shard of the
	// stream (Kinesis: ResourceNotFoundException).
	ErrShardNotFound = errors.New("stream: shard not found")
	// ErrStreamExists is returned by CreateStream when the name is taken
	// (Kinesis: ResourceInUseException).
	ErrStreamExists = errors.New("stream: stream already exists")
	// ErrStreamBusy is returned when the stream is not ACTIVE for an operation
	// that needs it to be, e.g. a reshard while another one runs
	// (Kinesis: ResourceInUseException).
	ErrStreamBusy = errors.New("stream: stream is not active")
	// ErrInvalidArgument is returned for a request that breaks a rule: names,
	// key lengths, record sizes, hash keys, sequence numbers, shard ranges
	// (Kinesis: InvalidArgumentException or ValidationException).
	ErrInvalidArgument = errors.New("stream: invalid argument")
	// ErrInvalidName is returned by ValidName (and CreateStream) for a
	// stream name that breaks NameRule. It wraps ErrInvalidArgument.
	ErrInvalidName = fmt.Errorf("%w: stream name", ErrInvalidArgument)
	// ErrInvalidDeadLetter is returned by DecodeDeadLetter for bytes that
	// are not a dead-letter record.
	ErrInvalidDeadLetter = errors.New("stream: invalid dead-letter record")
	// ErrLimitExceeded is returned when a count limit is hit: shards per store,
	// streams per store (Kinesis: LimitExceededException).
	ErrLimitExceeded = errors.New("stream: limit exceeded")
	// ErrFull is returned for a record refused because a disk cap is reached
	// and the policy is reject. It is retriable: nothing stored was touched.
	ErrFull = errors.New("stream: storage cap reached")
	// ErrThroughputExceeded is returned for a record refused by the per-shard
	// write limit (Kinesis: ProvisionedThroughputExceededException).
	ErrThroughputExceeded = errors.New("stream: shard throughput exceeded")
	// ErrIteratorExpired is returned by GetRecords for an iterator older than
	// the iterator lifetime (Kinesis: ExpiredIteratorException).
	ErrIteratorExpired = errors.New("stream: shard iterator expired")
	// ErrInvalidIterator is returned for an iterator that does not decode or
	// fails authentication (Kinesis: InvalidArgumentException).
	ErrInvalidIterator = errors.New("stream: invalid shard iterator")
	// ErrLeaseHeld is returned by AcquireLease when another owner holds an
	// unexpired lease on the shard.
	ErrLeaseHeld = errors.New("stream: lease held by another owner")
	// ErrLeaseLost is returned by RenewLease or Checkpoint when the caller no
	// longer owns the lease.
	ErrLeaseLost = errors.New("stream: lease lost")
	// ErrClosed is returned by every method once Close has been called.
	ErrClosed = errors.New("stream: store closed")
)

// Limits, as in Kinesis Data Streams.
const (
	MaxRecordSize       = 1 << 20 // data blob bytes
	MaxPartitionKeyLen  = 256     // Unicode characters
	MaxBatchRecords     = 500     // entries per PutBatch
	MaxBatchBytes       = 5 << 20 // bytes per PutBatch (data plus keys)
	MaxStreamNameLen    = 128
	MaxGetRecords       = 10000    // records per GetRecords
	MaxGetRecordsBytes  = 10 << 20 // bytes per GetRecords
	MinRetention        = time.Hour
	DefaultRetention    = 24 * time.Hour
	MaxRetention        = 8760 * time.Hour
	DefaultIteratorTTL  = 5 * time.Minute
	DefaultMaxShards    = 256
	DefaultMaxTags      = 50
	MaxShardIDSuffixLen = 12
)

// Status is a stream's lifecycle state, as Kinesis names it.
type Status string

// Stream states.
const (
	StatusCreating Status = "CREATING"
	StatusActive   Status = "ACTIVE"
	StatusUpdating Status = "UPDATING"
	StatusDeleting Status = "DELETING"
)

// FullPolicy says what happens when a disk cap is reached.
type FullPolicy string

// Policies on a full cap.
const (
	// Reject refuses new records with ErrFull; nothing stored is touched.
	Reject FullPolicy = "reject"
	// EvictOldest deletes the oldest records (closed shards first) to make room.
	EvictOldest FullPolicy = "evict_oldest"
)

// IteratorType is where a shard iterator starts, as in Kinesis.
type IteratorType string

// Iterator types.
const (
	TrimHorizon         IteratorType = "TRIM_HORIZON"
	Latest              IteratorType = "LATEST"
	AtSequenceNumber    IteratorType = "AT_SEQUENCE_NUMBER"
	AfterSequenceNumber IteratorType = "AFTER_SEQUENCE_NUMBER"
	AtTimestamp         IteratorType = "AT_TIMESTAMP"
)

// Options configure a Store. The zero value of every field means its
// default, filled in by Open.
type Options struct {
	// Dir is the Badger directory. Required.
	Dir string
	// MaxBytes caps the logical bytes (keys plus data) of all streams
	// together; 0 means no store-wide cap.
	MaxBytes int64
	// OnFull is the store-wide policy when MaxBytes is reached. Default Reject.
	OnFull FullPolicy
	// Region and AccountID appear in stream ARNs. Defaults "us-east-1" and
	// "000000000000".
	Region    string
	AccountID string
	// IteratorTTL is how long a shard iterator stays valid. Default 5 minutes.
	IteratorTTL time.Duration
	// MaxShards caps open plus closed shards over all streams. Default 256.
	MaxShards int
	// ShardWriteRecords and ShardWriteBytes are per-shard write limits per
	// second (Kinesis: 1,000 and 1 MiB). 0 means off, the edge default.
	ShardWriteRecords int
	ShardWriteBytes   int
	// CommitRecords caps how many records one group commit gathers before it
	// syncs. Default 4,096.
	CommitRecords int
	// SweepInterval is how often retention and value-log GC run. Default 1 minute.
	SweepInterval time.Duration
	// MemTableSize and BlockCacheSize tune Badger for small boards.
	// Defaults 8 MiB and 8 MiB.
	MemTableSize   int64
	BlockCacheSize int64
	// MinFreeBytes is the free disk space kept in reserve: appends fail
	// with ErrFull below it (Badger writes through memory-mapped files, and
	// a full filesystem would kill the process). Default 4 memtables plus
	// 4 MiB; negative turns the guard off.
	MinFreeBytes int64
	// AcceptDataLoss lets Open start a store whose files lost acknowledged
	// records (ErrCorrupt otherwise). The loss is logged; sequence numbers
	// of lost records are never handed out again. For recovery only.
	AcceptDataLoss bool
	// Logger receives the store's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the wall clock, for tests. Default time.Now.
	Now func() time.Time
}

// StreamConfig describes a stream to create.
type StreamConfig struct {
	// Name: 1-128 characters of [a-zA-Z0-9_.-].
	Name string
	// ShardCount: at least 1. The hash-key space is split into even ranges.
	ShardCount int
	// Retention: how long records stay readable. 0 means 24 h. The store
	// accepts anything from 1 minute to 8,760 h (the Kinesis API layer applies
	// Kinesis' 24 h minimum itself).
	Retention time.Duration
	// MaxBytes caps this stream's logical bytes; 0 means no per-stream cap.
	MaxBytes int64
	// OnFull is the policy when MaxBytes is reached; default Reject.
	OnFull FullPolicy
	// Tags to attach at creation.
	Tags map[string]string
}

// HashKeyRange is an inclusive range of 128-bit hash keys, as decimal strings.
type HashKeyRange struct {
	StartingHashKey string
	EndingHashKey   string
}

// Shard describes one shard, open or closed.
type Shard struct {
	ShardID               string
	ParentShardID         string // "" if none
	AdjacentParentShardID string // "" if none
	HashKeyRange          HashKeyRange
	// StartingSequenceNumber is the smallest sequence number the shard can
	// hold; EndingSequenceNumber is "" while the shard is open.
	StartingSequenceNumber string
	EndingSequenceNumber   string
}

// Open reports whether the shard still takes writes.
func (s Shard) Open() bool { return s.EndingSequenceNumber == "" }

// StreamDescription is what DescribeStream returns.
type StreamDescription struct {
	Name      string
	ARN       string
	Status    Status
	Retention time.Duration
	Created   time.Time
	// Shards lists every shard still within retention, open and closed,
	// in creation order.
	Shards         []Shard
	OpenShardCount int
	MaxBytes       int64
	OnFull         FullPolicy
}

// Entry is one record to put.
type Entry struct {
	// PartitionKey: 1-256 Unicode characters. Its MD5 picks the shard unless
	// ExplicitHashKey is set.
	PartitionKey string
	// ExplicitHashKey: optional decimal 128-bit key that overrides the MD5.
	ExplicitHashKey string
	// Data: at most 1 MiB. The store copies it; the caller may reuse it.
	Data []byte
}

// PutResult is one record's outcome.
type PutResult struct {
	ShardID        string
	SequenceNumber string
	// Err is nil on success; otherwise it wraps ErrInvalidArgument, ErrFull,
	// ErrThroughputExceeded or a storage error.
	Err error
}

// Record is one stored record.
type Record struct {
	SequenceNumber string
	PartitionKey   string
	Data           []byte
	// ArrivalTime is the approximate arrival time, in milliseconds. Within a
	// shard it never goes backwards (see doc.go on clocks).
	ArrivalTime time.Time
}

// IteratorRequest asks for a shard iterator.
type IteratorRequest struct {
	Stream         string
	ShardID        string
	Type           IteratorType
	SequenceNumber string    // for AT_ and AFTER_SEQUENCE_NUMBER
	Timestamp      time.Time // for AT_TIMESTAMP
}

// ChildShard names a shard that continues a closed one.
type ChildShard struct {
	ShardID      string
	ParentShards []string
	HashKeyRange HashKeyRange
}

// GetRecordsResult is what GetRecords returns.
type GetRecordsResult struct {
	Records []Record
	// NextShardIterator is "" once a closed shard has been read to its end.
	NextShardIterator  string
	MillisBehindLatest int64
	// ChildShards is set once a closed shard has been read to its end.
	ChildShards []ChildShard
}

// ReadRequest is an in-process read of one shard, the analogue of a shard
// iterator that never expires.
type ReadRequest struct {
	Stream  string
	ShardID string
	// After is the sequence number to read after; "" reads from the trim
	// horizon (the oldest record still within retention).
	After string
	// Limit caps the records returned; 0 means 1,000.
	Limit int
	// MaxBytes caps the data bytes returned (at least one record is returned
	// if any is there); 0 means 10 MiB.
	MaxBytes int
}

// ReadResult is what Read returns.
type ReadResult struct {
	Records []Record
	// Ended is true when the shard is closed and every record in it has been
	// returned; Children then names the shards to read next.
	Ended              bool
	Children           []ChildShard
	MillisBehindLatest int64
	// CaughtUp is true when the read returned everything the shard held
	// when it was read (more may have arrived since).
	CaughtUp bool
}

// Lease is a consumer's claim on one shard for one consumer group.
type Lease struct {
	Group   string
	Stream  string
	ShardID string
	Owner   string
	Expires time.Time
	// Token changes every time the lease changes hands; RenewLease and
	// Checkpoint compare it.
	Token uint64
}

// StreamStats is a snapshot of a stream's size and traffic.
type StreamStats struct {
	Name      string
	Bytes     int64 // logical bytes stored (keys plus data)
	Records   int64 // records stored
	MaxBytes  int64
	Retention time.Duration
	Shards    []ShardStats
	// Evicted counts records deleted by evict_oldest since the store opened.
	Evicted int64
}

// ShardStats is a snapshot of one shard.
type ShardStats struct {
	ShardID string
	Open    bool
	// LastSequenceNumber is the newest record's sequence number, "" if none.
	LastSequenceNumber string
	// LastArrival is the newest record's arrival time, zero if none.
	LastArrival time.Time
	// Incoming counts records appended to this shard since the store opened.
	Incoming      int64
	IncomingBytes int64
}

// Stats is a snapshot of the whole store.
type Stats struct {
	Streams  []StreamStats
	Bytes    int64 // logical bytes in all streams
	MaxBytes int64 // store-wide cap, 0 if none
	// DiskBytes is the space the store's files take on disk now (allocated
	// blocks; Badger's own size estimate lags by up to a minute).
	DiskBytes int64
}
