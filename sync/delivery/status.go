package delivery

import (
	"context"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// Status is a delivery stream's state as the status board shows it.
type Status struct {
	Name        string `json:"name"`
	Stream      string `json:"stream"`
	Destination string `json:"destination"`
	// Online is false while deliveries fail (the destination is away).
	Online bool `json:"online"`
	// BacklogRecords: records in the source stream not yet delivered (-1
	// if unknown).
	BacklogRecords int64 `json:"backlog_records"`
	// FreshnessSeconds: age of the oldest undelivered record; 0 when
	// everything is delivered.
	FreshnessSeconds float64   `json:"freshness_seconds"`
	DeliveredRecords int64     `json:"delivered_records"`
	DeliveredBytes   int64     `json:"delivered_bytes"`
	DeliveredBatches int64     `json:"delivered_batches"`
	DroppedRecords   int64     `json:"dropped_records"`
	ErrorRecords     int64     `json:"error_output_records"`
	LastDelivery     time.Time `json:"last_delivery,omitzero"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorTime    time.Time `json:"last_error_time,omitzero"`
	// Degraded says why the destination cannot take batches although it
	// answers (sink.HealthSink: a missing table, a column mismatch); the
	// backlog waits in the stream until an operator fixes it.
	Degraded string `json:"degraded,omitempty"`
}

func (d *Stream) noteError(err error) {
	d.mu.Lock()
	d.lastErr = err.Error()
	d.lastErrAt = d.cfg.Clock.Now()
	d.mu.Unlock()
}

// Status returns the current state.
func (d *Stream) Status() Status {
	var degraded string
	if hs, ok := d.cfg.Sink.(sink.HealthSink); ok {
		degraded = hs.Degraded()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return Status{Degraded: degraded,
		Name: d.cfg.Name, Stream: d.cfg.Stream, Destination: d.kind, Online: d.online.Load(),
		BacklogRecords: d.backlog, FreshnessSeconds: d.freshness.Seconds(),
		DeliveredRecords: d.delivered.Load(), DeliveredBytes: d.bytes.Load(), DeliveredBatches: d.batches.Load(),
		DroppedRecords: d.drop.Load(), ErrorRecords: d.errRecs.Load(),
		LastDelivery: d.lastOK, LastError: d.lastErr, LastErrorTime: d.lastErrAt,
	}
}

// checkHealth asks a sink.HealthSink for a problem once at start, so that
// a missing table is reported before the first batch.
func (d *Stream) checkHealth(ctx context.Context) {
	hs, ok := d.cfg.Sink.(sink.HealthSink)
	if !ok {
		return
	}
	if err := hs.Check(ctx); err != nil && ctx.Err() == nil {
		d.noteError(err)
		d.log.Warn("destination not ready at start; the backlog waits in the stream", "err", err)
	}
}

func (d *Stream) statusLoop(ctx context.Context) {
	for {
		d.measure(ctx)
		select {
		case <-ctx.Done():
			return
		case <-d.cfg.Clock.After(d.cfg.StatusInterval):
		}
	}
}

// measure computes backlog and freshness from the store: for every shard,
// the records after the group's checkpoint, and the arrival time of the
// first of them (the oldest record not yet delivered).
func (d *Stream) measure(ctx context.Context) {
	desc, err := d.store.DescribeStream(d.cfg.Stream)
	if err != nil {
		return
	}
	now := d.cfg.Clock.Now()
	var backlog int64
	var fresh time.Duration
	for _, sh := range desc.Shards {
		ck, err := d.store.GetCheckpoint(d.cfg.Name, d.cfg.Stream, sh.ShardID)
		if err != nil {
			return
		}
		res, err := d.store.Read(ctx, stream.ReadRequest{Stream: d.cfg.Stream, ShardID: sh.ShardID, After: ck, Limit: 1})
		if err != nil || len(res.Records) == 0 {
			continue
		}
		if age := now.Sub(res.Records[0].ArrivalTime); age > fresh {
			fresh = age
		}
		if backlog >= 0 {
			if n := d.shardBacklog(ctx, sh.ShardID, ck, res.Records[0].SequenceNumber); n >= 0 {
				backlog += n
			} else {
				backlog = -1
			}
		}
	}
	d.mu.Lock()
	d.retention = desc.Retention
	d.backlog = backlog
	d.freshness = fresh
	d.mu.Unlock()
	d.setGauges()
}

// shardBacklog counts the shard's undelivered records, starting with
// first (the first record after the checkpoint ck): from the counters in
// the sequence numbers when they use the Kinesis layout, or by reading
// (up to 100,000) otherwise. It returns -1 when it cannot tell.
func (d *Stream) shardBacklog(ctx context.Context, shardID, ck, first string) int64 {
	if c0, ok := seqCounter(first); ok {
		if last, err := d.store.LastSequenceNumber(d.cfg.Stream, shardID); err == nil {
			if c1, ok := seqCounter(last); ok && c1 >= c0 {
				return int64(c1-c0) + 1
			}
		}
	}
	var count int64
	after := ck
	for count < 100000 {
		res, err := d.store.Read(ctx, stream.ReadRequest{Stream: d.cfg.Stream, ShardID: shardID, After: after, Limit: 10000, MaxBytes: 1 << 20})
		if err != nil {
			return -1
		}
		count += int64(len(res.Records))
		if len(res.Records) == 0 {
			break
		}
		after = res.Records[len(res.Records)-1].SequenceNumber
	}
	return count
}

func (d *Stream) setGauges() {
	st := d.Status()
	m := d.cfg.Metrics
	m.BacklogRecords.WithLabelValues(d.cfg.Name, d.kind).Set(float64(st.BacklogRecords))
	m.DataFreshness.WithLabelValues(d.cfg.Name, d.kind).Set(st.FreshnessSeconds)
	on := 0.0
	if st.Online {
		on = 1
	}
	m.Online.WithLabelValues(d.cfg.Name, d.kind).Set(on)
}
