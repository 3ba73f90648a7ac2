package delivery

import (
	"context"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

func (d *Stream) add(ctx context.Context, st *shardState, b stream.ShardBatch) error {
	var inBytes int64
	for _, r := range b.Records {
		inBytes += int64(len(r.Data))
		if in := st.intent; in != nil {
			if st.n == 0 && r.SequenceNumber != in.First {
				st.intent = nil // the intent was delivered and checkpointed, or is gone
			} else if seqCmp(r.SequenceNumber, in.Last) > 0 {
				st.intent = nil // its last record is gone: nothing to match
				d.log.Warn("the in-flight batch cannot be rebuilt whole: its last record left the stream; its records go out in a new batch",
					"shard", st.id, "first_sequence_number", in.First, "last_sequence_number", in.Last)
			}
		}
		d.buffer(st, r)
		if in := st.intent; in != nil && r.SequenceNumber == in.Last {
			// A restart (or a consumer restart) recovered the batch that was
			// in flight: say so, for an operator reading the journal.
			d.log.Info("rebuilt the in-flight batch from its delivery intent; delivering it again under the same identity",
				"shard", st.id, "first_sequence_number", in.First, "last_sequence_number", in.Last, "records", st.n,
				"batch", sink.BatchID(d.cfg.Name, st.id, in.First, in.Last))
			if err := d.flush(ctx, st); err != nil {
				return err
			}
			st.intent = nil
		}
	}
	if len(b.Records) > 0 {
		d.cfg.Metrics.IncomingRecords.WithLabelValues(d.cfg.Name).Add(float64(len(b.Records)))
		d.cfg.Metrics.IncomingBytes.WithLabelValues(d.cfg.Name).Add(float64(inBytes))
	}
	if st.n == 0 || (st.intent != nil && !b.Ended) {
		return nil
	}
	if b.Ended || st.size >= d.cfg.BufferSize || d.due(st, b.CaughtUp) {
		return d.flush(ctx, st)
	}
	return nil
}

// due reports whether the shard's buffer has waited out the interval hint.
// The interval counts from when the first record was buffered, as in
// Firehose, and also from when it arrived in the stream once the shard is
// caught up: at the end of a backlog the last partial batch holds records
// older than the interval already, and waiting once more would only delay
// them (while reading the backlog, batches still fill to the size hint).
// An arrival time ahead of the clock (it was set back) counts as new.
func (d *Stream) due(st *shardState, caughtUp bool) bool {
	now := d.cfg.Clock.Now()
	if now.Sub(st.started) >= d.cfg.BufferInterval {
		return true
	}
	return caughtUp && now.Sub(st.firstAt) >= d.cfg.BufferInterval
}

func (d *Stream) buffer(st *shardState, r stream.Record) {
	if st.n == 0 {
		st.started = d.cfg.Clock.Now()
		st.first, st.firstAt = r.SequenceNumber, r.ArrivalTime
	}
	st.n++
	if d.lean {
		st.raw.write(r.Data)
		st.raw.write(d.cfg.Delimiter)
	} else {
		st.recs = append(st.recs, r)
	}
	st.size += int64(len(r.Data))
	st.last = r.SequenceNumber
}

// pendingBatch is a shard's buffer handed to delivery.
type pendingBatch struct {
	recs        []stream.Record // full mode
	raw         chunks          // lean mode
	n           int
	first, last string
	firstAt     time.Time
}

func (d *Stream) resetShard(st *shardState) {
	st.raw.release()
	st.recs, st.raw, st.n = nil, nil, 0
	st.size = 0
	st.last = ""
	st.loaded = false
	st.intent = nil
}

// flush starts delivering the shard's buffer as one batch, once the
// previous batch of the shard is done (its error is returned then). The
// batch checkpoints itself when the destination acknowledged it.
func (d *Stream) flush(ctx context.Context, st *shardState) error {
	if err := waitInflight(st); err != nil {
		return err
	}
	pb := pendingBatch{recs: st.recs, raw: st.raw, n: st.n, first: st.first, last: st.last, firstAt: st.firstAt}
	st.recs, st.raw, st.n, st.size = nil, nil, 0, 0
	lk := &leaseKeeper{shard: st.id, lease: st.lease}
	ch := make(chan error, 1)
	st.inflight = ch
	d.inflight.Add(1)
	go func() {
		defer d.inflight.Done()
		ch <- d.deliverBatch(ctx, lk, pb)
	}()
	return nil
}
