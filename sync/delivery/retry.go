package delivery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// deliver sends one batch until the destination acknowledges it, a
// permanent error, or the retry duration ends. It returns the records that
// go to the error output; its error is only ctx's.
func (d *Stream) deliver(ctx context.Context, lk *leaseKeeper, id string, pb pendingBatch, recs []sink.Record) ([]sink.FailedRecord, error) {
	shardID := lk.shard
	b := &sink.Batch{ID: id, DeliveryStream: d.cfg.Name, Version: d.cfg.Version, Stream: d.cfg.Stream,
		ShardID: shardID, FirstSeq: pb.first, LastSeq: pb.last, Time: pb.firstAt, Records: recs}
	count := len(recs)
	if bs, ok := d.cfg.Sink.(sink.BodySink); ok && bs.WantsBody() {
		var body []byte
		var err error
		name := d.cfg.Name + "-" + sink.UUID(id)
		if d.lean {
			body, err = sink.Encode(pb.raw.records(), nil, d.cfg.Compression, name)
			count = pb.n
		} else {
			body, err = sink.Encode(recs, d.cfg.Delimiter, d.cfg.Compression, name)
		}
		if err != nil {
			return nil, err
		}
		b.Body, b.Ext, b.ContentEncoding = body, sink.Ext(d.cfg.Compression), d.cfg.Compression
	}
	// failAll sends the whole batch to the error output; in lean mode its
	// records are read back from the stream (they are still there: the
	// checkpoint has not moved past them).
	failAll := func(code, msg string) ([]sink.FailedRecord, error) {
		all := recs
		if d.lean {
			var err error
			if all, err = d.reread(ctx, shardID, pb.first, pb.last); err != nil {
				return nil, err
			}
		}
		out := make([]sink.FailedRecord, len(all))
		for i, r := range all {
			out[i] = sink.FailedRecord{Record: r, Code: code, Message: msg, Attempts: b.Attempts}
		}
		return out, nil
	}
	deadline := d.retryDeadline(pb.firstAt)
	step := d.cfg.RetryInitial
	m := d.cfg.Metrics
	for {
		b.Attempts++
		err := d.cfg.Sink.Deliver(ctx, b)
		var rerr *sink.RecordErrors
		switch {
		case err == nil || errors.As(err, &rerr):
			var failed []sink.FailedRecord
			n := count
			if rerr != nil {
				for i, e := range rerr.Failed {
					if i >= 0 && i < len(recs) {
						failed = append(failed, sink.FailedRecord{Record: recs[i], Code: e.Code, Message: e.Message, Attempts: b.Attempts})
					}
				}
				n -= len(failed)
			}
			d.succeeded(b, n)
			return failed, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		m.DeliveryFailures.WithLabelValues(d.cfg.Name, d.kind).Inc()
		d.noteError(err)
		if errors.Is(err, sink.ErrPermanent) {
			d.log.Error("batch failed permanently; records go to the error output", "shard", shardID, "batch", id, "records", count, "err", err)
			return failAll("Permanent", err.Error())
		}
		d.online.Store(false)
		d.cfg.Metrics.Online.WithLabelValues(d.cfg.Name, d.kind).Set(0)
		if !d.cfg.Clock.Now().Before(deadline) {
			d.log.Error("batch retried until its retry duration ended; records go to the error output", "shard", shardID, "batch", id, "attempts", b.Attempts, "err", err)
			return failAll("RetryExpired", fmt.Sprintf("after %d attempts: %v", b.Attempts, err))
		}
		wait := step/2 + rand.N(step/2+1)
		d.log.Warn("delivery failed; retrying", "shard", shardID, "batch", id, "attempt", b.Attempts, "in", wait, "err", err)
		if !d.sleep(ctx, lk, wait) {
			return nil, ctx.Err()
		}
		step = min(step*2, d.cfg.RetryMax)
	}
}

// sleep waits for wait or ctx, renewing the shard's lease on the way; it
// reports false when ctx ended.
func (d *Stream) sleep(ctx context.Context, lk *leaseKeeper, wait time.Duration) bool {
	end := d.cfg.Clock.Now().Add(wait)
	for {
		d.renew(lk)
		left := end.Sub(d.cfg.Clock.Now())
		if left <= 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-d.cfg.Clock.After(min(left, 5*time.Second)):
		}
	}
}

func (d *Stream) succeeded(b *sink.Batch, n int) {
	var size int
	if b.Body != nil {
		size = len(b.Body)
	} else {
		for _, r := range b.Records {
			size += len(r.Data)
		}
	}
	m := d.cfg.Metrics
	m.DeliverySuccess.WithLabelValues(d.cfg.Name, d.kind).Inc()
	m.DeliveryRecords.WithLabelValues(d.cfg.Name, d.kind).Add(float64(n))
	m.DeliveryBytes.WithLabelValues(d.cfg.Name, d.kind).Add(float64(size))
	m.Online.WithLabelValues(d.cfg.Name, d.kind).Set(1)
	d.delivered.Add(int64(n))
	d.bytes.Add(int64(size))
	d.batches.Add(1)
	d.online.Store(true)
	d.mu.Lock()
	d.lastOK = d.cfg.Clock.Now()
	d.mu.Unlock()
	d.log.Debug("batch delivered", "shard", b.ShardID, "batch", b.ID, "records", n, "bytes", size, "attempts", b.Attempts)
}

func (d *Stream) retryDeadline(oldest time.Time) time.Time {
	now := d.cfg.Clock.Now()
	if d.cfg.RetryDuration > 0 {
		return now.Add(d.cfg.RetryDuration)
	}
	d.mu.Lock()
	ret := d.retention
	d.mu.Unlock()
	if ret <= 0 {
		ret = stream.DefaultRetention
	}
	dl := oldest.Add(ret - 5*time.Minute)
	if dl.Before(now.Add(time.Minute)) {
		dl = now.Add(time.Minute)
	}
	return dl
}
