package stream

import (
	"context"
	"errors"
	"time"
)

// This file is the Store's public surface. Bodies land in store.go and
// friends; until then each returns errNotYet.

var errNotYet = errors.New("stream: not implemented yet")

// Store is a durable, sharded stream store on Badger with Kinesis Data
// Streams semantics. All methods are safe for concurrent use.
type Store struct{}

// Open opens (or creates) the store in opts.Dir.
func Open(opts Options) (*Store, error) { return nil, errNotYet }

// Close waits for in-flight appends, then closes Badger. Further calls
// return ErrClosed.
func (s *Store) Close() error { return errNotYet }

// CreateStream creates a stream with cfg.ShardCount even shards.
func (s *Store) CreateStream(ctx context.Context, cfg StreamConfig) error { return errNotYet }

// DeleteStream deletes a stream and all its records and checkpoints.
func (s *Store) DeleteStream(ctx context.Context, name string) error { return errNotYet }

// DescribeStream describes a stream.
func (s *Store) DescribeStream(name string) (StreamDescription, error) {
	return StreamDescription{}, errNotYet
}

// ListStreams returns stream names in lexical order.
func (s *Store) ListStreams() []string { return nil }

// StreamNameFromARN returns the stream name an ARN of this store names.
func (s *Store) StreamNameFromARN(arn string) (string, error) { return "", errNotYet }

// SetRetention changes a stream's retention period.
func (s *Store) SetRetention(name string, d time.Duration) error { return errNotYet }

// AddTags adds or overwrites tags.
func (s *Store) AddTags(name string, tags map[string]string) error { return errNotYet }

// RemoveTags removes tags by key.
func (s *Store) RemoveTags(name string, keys []string) error { return errNotYet }

// Tags returns a stream's tags.
func (s *Store) Tags(name string) (map[string]string, error) { return nil, errNotYet }

// Put appends one record and returns once it is durable (fsynced).
func (s *Store) Put(ctx context.Context, stream string, e Entry) (PutResult, error) {
	return PutResult{}, errNotYet
}

// PutBatch appends up to 500 records and returns once all accepted ones are
// durable. The error is for the whole request (unknown stream, too many
// entries, store closed); per-record failures are in each PutResult.Err and
// never block the other records.
func (s *Store) PutBatch(ctx context.Context, stream string, entries []Entry) ([]PutResult, error) {
	return nil, errNotYet
}

// ShardIterator returns an opaque shard iterator (valid Options.IteratorTTL).
func (s *Store) ShardIterator(req IteratorRequest) (string, error) { return "", errNotYet }

// GetRecords reads from a shard iterator. limit 0 means 10,000.
func (s *Store) GetRecords(ctx context.Context, iterator string, limit int) (GetRecordsResult, error) {
	return GetRecordsResult{}, errNotYet
}

// Read is the in-process read of one shard; see ReadRequest.
func (s *Store) Read(ctx context.Context, req ReadRequest) (ReadResult, error) {
	return ReadResult{}, errNotYet
}

// Wait blocks until the shard holds a record after the sequence number
// after ("" = any record), or the shard is closed, or ctx ends. It does not
// poll: appends wake it.
func (s *Store) Wait(ctx context.Context, stream, shardID, after string) error { return errNotYet }

// LastSequenceNumber is the newest sequence number in a shard, "" if empty.
// A consumer that starts at LATEST reads after it.
func (s *Store) LastSequenceNumber(stream, shardID string) (string, error) { return "", errNotYet }

// SplitShard closes shardID and opens two children split at newStartingHashKey.
func (s *Store) SplitShard(ctx context.Context, stream, shardID, newStartingHashKey string) error {
	return errNotYet
}

// MergeShards closes two adjacent shards and opens one child covering both.
func (s *Store) MergeShards(ctx context.Context, stream, shardID, adjacentShardID string) error {
	return errNotYet
}

// UpdateShardCount reshards to target open shards of even ranges, through
// splits and merges as Kinesis does.
func (s *Store) UpdateShardCount(ctx context.Context, stream string, target int) error {
	return errNotYet
}

// Checkpoint records that group has processed shardID up to and including
// seq. With a non-zero lease, it fails with ErrLeaseLost unless the lease is
// still held.
func (s *Store) Checkpoint(lease Lease, group, stream, shardID, seq string) error { return errNotYet }

// GetCheckpoint returns the group's checkpoint for a shard, "" if none.
func (s *Store) GetCheckpoint(group, stream, shardID string) (string, error) { return "", errNotYet }

// AcquireLease takes the shard for owner for ttl, unless another owner holds
// an unexpired lease (ErrLeaseHeld).
func (s *Store) AcquireLease(group, stream, shardID, owner string, ttl time.Duration) (Lease, error) {
	return Lease{}, errNotYet
}

// RenewLease extends a held lease; ErrLeaseLost if it was taken over.
func (s *Store) RenewLease(l Lease, ttl time.Duration) (Lease, error) { return Lease{}, errNotYet }

// ReleaseLease gives a lease up.
func (s *Store) ReleaseLease(l Lease) error { return errNotYet }

// Stats returns a snapshot of sizes and traffic.
func (s *Store) Stats() Stats { return Stats{} }
