// Package stream is Kaiten's durable, sharded stream store: Amazon Kinesis
// Data Streams semantics on Badger, sized for a Raspberry Pi.
//
// # Model
//
// A stream has shards; each shard owns a contiguous range of the 128-bit
// hash-key space. A record's partition key is hashed with MD5 (big-endian)
// onto that space unless an explicit hash key is given; the open shard whose
// range holds the hash takes the record. Within a shard, records get
// strictly increasing sequence numbers in the layout real Kinesis uses (see
// seq.go), so tools that parse Kinesis sequence numbers accept them.
//
// # Durability
//
// Put and PutBatch return only after the fsync that covers their records.
// One writer goroutine gathers every queued append (up to
// Options.CommitRecords) into one Badger transaction and one fsync: group
// commit. Throughput comes from batching, never from skipping the sync.
// Resharding, deletion, retention sweeps and evictions run on the same
// goroutine between commits, so they never race with appends.
//
// # Storage
//
// The records one commit appends to one shard are stored as blocks of up
// to 4 KiB, each one Badger entry keyed by its last counter (keys.go):
// a commit's records have consecutive counters and one arrival time, so a
// block needs neither per record. Badger's cost per entry (iterator steps,
// key copies, allocations) is paid per block, not per record. Retention
// and eviction delete whole blocks.
//
// # Clocks
//
// A Pi has no real-time clock: it boots with a saved time and jumps when NTP
// syncs. Nothing here depends on the wall clock moving forward:
//
//   - ordering within a shard comes from a per-shard counter persisted with
//     every commit, never from time;
//   - a record's arrival time is max(now, previous arrival in the shard), so
//     arrival times never decrease within a shard. After the clock jumps
//     back, new records carry the last arrival time until the clock catches
//     up. AT_TIMESTAMP therefore returns the first record whose (never
//     decreasing) arrival time is at or after the timestamp, found by binary
//     search;
//   - retention measures age against the wall clock minus every forward jump
//     seen while the process runs (a jump is the wall clock moving more than
//     a minute faster than the monotonic clock). A forward jump of a year
//     does not expire anything early; the records simply live longer by the
//     jump until the next restart. A backward jump only keeps records longer.
//
// # Retention and caps
//
// Expired records disappear from reads at once and from disk at the next
// sweep (Options.SweepInterval), followed by Badger's value-log GC. Closed
// shards whose records have all expired are dropped from the stream. Byte
// caps (per stream and store-wide) count keys plus data; when a cap is
// reached the policy either rejects new records with ErrFull (retriable;
// nothing stored is touched) or evicts the oldest records first (whole
// blocks, so up to one block more than needed).
//
// # Consumers
//
// In-process consumers either read by sequence number (Read and Wait, which
// wakes on appends instead of polling) or let Consume drive them: it walks
// shard lineage (a child is read only after the group has checkpointed
// everything of its parents), holds a lease per shard, and hands batches to
// a function; the caller checkpoints after its destination acknowledged.
//
// # Shared contracts
//
// What the sources, sync, the analytics queries and the dashboard agree on
// about streams is defined here once, so that a change to it is a compile
// error in every package that relies on it: the stream-name rule
// (ValidName, ErrInvalidName, NameRule), the names of the demo's streams
// (NamePlates, NameGPIO, NameDeadLetter, NamePlateStats) and the
// dead-letter record (DeadLetter, its Encode and DecodeDeadLetter).
package stream
