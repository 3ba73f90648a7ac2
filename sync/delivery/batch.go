package delivery

import (
	"context"
	"fmt"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/transform"
)

// deliverBatch saves the batch's intent, transforms, delivers, sends
// failures to the error output and checkpoints.
func (d *Stream) deliverBatch(ctx context.Context, lk *leaseKeeper, pb pendingBatch) error {
	defer pb.raw.release()
	first, last := pb.first, pb.last
	if err := d.saveIntent(lk.shard, intent{First: first, Last: last}); err != nil {
		return err
	}
	id := sink.BatchID(d.cfg.Name, lk.shard, first, last)
	var out []sink.Record
	var failed []sink.FailedRecord
	if !d.lean {
		var err error
		out, failed, err = d.transform(ctx, pb.recs)
		if err != nil {
			return err
		}
	}
	if d.lean || len(out) > 0 {
		more, err := d.deliver(ctx, lk, id, pb, out)
		if err != nil {
			return err
		}
		failed = append(failed, more...)
	}
	if len(failed) > 0 {
		if err := d.errorOutput(ctx, lk.shard, id, pb.firstAt, failed); err != nil {
			return err
		}
	}
	d.renew(lk)
	if err := d.store.Checkpoint(lk.lease, d.cfg.Name, d.cfg.Stream, lk.shard, last); err != nil {
		return fmt.Errorf("checkpoint %s %s: %w", lk.shard, last, err)
	}
	return nil
}

// transform runs the transform, if any; it returns the records to deliver
// and those that failed processing.
func (d *Stream) transform(ctx context.Context, recs []stream.Record) ([]sink.Record, []sink.FailedRecord, error) {
	out := make([]sink.Record, 0, len(recs))
	if d.cfg.Transform == nil {
		for _, r := range recs {
			out = append(out, sink.Record{PartitionKey: r.PartitionKey, SequenceNumber: r.SequenceNumber, ArrivalTime: r.ArrivalTime, Data: r.Data})
		}
		return out, nil, nil
	}
	in := make([]transform.Record, len(recs))
	for i, r := range recs {
		in[i] = transform.Record{ID: r.SequenceNumber, ArrivalTime: r.ArrivalTime, Data: r.Data}
	}
	res, err := d.cfg.Transform.Transform(ctx, in)
	if err == nil && len(res) != len(recs) {
		err = fmt.Errorf("transform returned %d results for %d records", len(res), len(recs))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		res = make([]transform.Result, len(recs))
		for i := range res {
			res[i] = transform.Result{Result: transform.ProcessingFailed, Message: err.Error()}
		}
	}
	var failed []sink.FailedRecord
	var ok, dropped int
	for i, r := range recs {
		sr := sink.Record{PartitionKey: r.PartitionKey, SequenceNumber: r.SequenceNumber, ArrivalTime: r.ArrivalTime, Data: r.Data}
		switch res[i].Result {
		case transform.Ok:
			sr.Data = res[i].Data
			out = append(out, sr)
			ok++
		case transform.Dropped:
			dropped++
		default:
			failed = append(failed, sink.FailedRecord{Record: sr, Code: "ProcessingFailed", Message: res[i].Message, Attempts: 1})
		}
	}
	m := d.cfg.Metrics.Processing
	m.WithLabelValues(d.cfg.Name, transform.Ok).Add(float64(ok))
	m.WithLabelValues(d.cfg.Name, transform.Dropped).Add(float64(dropped))
	m.WithLabelValues(d.cfg.Name, transform.ProcessingFailed).Add(float64(len(failed)))
	d.drop.Add(int64(dropped))
	return out, failed, nil
}
