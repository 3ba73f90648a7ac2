package stream

import (
	"context"
	"time"
)

// ConsumerConfig configures Consume.
type ConsumerConfig struct {
	Group  string // consumer group name; checkpoints are kept per group
	Stream string
	Owner  string // this worker's id; default a random one
	// StartAtLatest: with no checkpoint, start at LATEST instead of TRIM_HORIZON.
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
	// Ended is true when the shard is closed and this batch holds its last
	// records (possibly none). Once the group's checkpoint covers them, the
	// children become eligible.
	Ended bool
	// Lease is the lease under which this batch was read; pass it to Checkpoint.
	Lease              Lease
	MillisBehindLatest int64
}

// Consume reads a stream as consumer group cfg.Group until ctx ends: every
// shard the group can own, parents before children, each on its own
// goroutine under a lease, starting after the group's checkpoint. fn gets
// batches of one shard in order. Consume never checkpoints by itself: the
// caller calls Checkpoint once its destination acknowledged. If fn returns
// an error, that shard restarts from its last checkpoint after a backoff.
func (s *Store) Consume(ctx context.Context, cfg ConsumerConfig, fn func(context.Context, ShardBatch) error) error {
	return errNotYet
}
