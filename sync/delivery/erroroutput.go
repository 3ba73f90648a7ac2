package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// reread reads a shard's records from first to last (inclusive) back from
// the stream.
func (d *Stream) reread(ctx context.Context, shardID, first, last string) ([]sink.Record, error) {
	var out []sink.Record
	after, _ := d.store.GetCheckpoint(d.cfg.Name, d.cfg.Stream, shardID)
	for {
		res, err := d.store.Read(ctx, stream.ReadRequest{Stream: d.cfg.Stream, ShardID: shardID, After: after, Limit: 10000})
		if err != nil {
			return nil, fmt.Errorf("reading the failed batch back: %w", err)
		}
		for _, r := range res.Records {
			if seqCmp(r.SequenceNumber, first) < 0 {
				continue
			}
			if seqCmp(r.SequenceNumber, last) > 0 {
				return out, nil
			}
			out = append(out, sink.Record{PartitionKey: r.PartitionKey, SequenceNumber: r.SequenceNumber, ArrivalTime: r.ArrivalTime, Data: r.Data})
			if r.SequenceNumber == last {
				return out, nil
			}
		}
		if len(res.Records) == 0 {
			return out, nil // the rest left the stream's retention
		}
		after = res.Records[len(res.Records)-1].SequenceNumber
	}
}

// errorOutput writes failed records to the destination's error output, or
// to the dead-letter stream when there is none or it fails. It returns an
// error only when ctx ends: the dead-letter stream is local and retried.
func (d *Stream) errorOutput(ctx context.Context, shardID, id string, t time.Time, failed []sink.FailedRecord) error {
	byType := map[string][]sink.FailedRecord{}
	for _, f := range failed {
		typ := "delivery-failed"
		if f.Code == "ProcessingFailed" {
			typ = "processing-failed"
		}
		byType[typ] = append(byType[typ], f)
		d.cfg.Metrics.ErrorOutput.WithLabelValues(d.cfg.Name, f.Code).Inc()
	}
	d.errRecs.Add(int64(len(failed)))
	for typ, recs := range byType {
		eb := &sink.ErrorBatch{ID: sink.BatchID(id, typ, "", ""), DeliveryStream: d.cfg.Name, Version: d.cfg.Version,
			Stream: d.cfg.Stream, ShardID: shardID, Time: t, OutputType: typ, Records: recs}
		if es, ok := d.cfg.Sink.(sink.ErrorSink); ok {
			err := es.DeliverErrors(ctx, eb)
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Warn("error output failed; writing to the dead-letter stream", "dead_letter", d.cfg.DeadLetter, "err", err)
		}
		if err := d.deadLetter(ctx, eb); err != nil {
			return err
		}
	}
	return nil
}

func (d *Stream) deadLetter(ctx context.Context, eb *sink.ErrorBatch) error {
	var entries []stream.Entry
	for _, f := range eb.Records {
		entries = append(entries, stream.DeadLetter{
			Source: "sync", Topic: d.cfg.Name, Reason: f.Code + ": " + f.Message,
			Data: f.Data, TS: d.cfg.Clock.Now().UTC().Format(time.RFC3339Nano),
			Origin: &stream.DeadLetterOrigin{Stream: eb.Stream, ShardID: eb.ShardID, SequenceNumber: f.SequenceNumber, PartitionKey: f.PartitionKey},
		}.Entry())
	}
	step := d.cfg.RetryInitial
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && n < stream.MaxBatchRecords && size+len(entries[n].Data)+4 <= stream.MaxBatchBytes {
			size += len(entries[n].Data) + 4
			n++
		}
		n = max(n, 1)
		res, err := d.store.PutBatch(ctx, d.cfg.DeadLetter, entries[:n])
		if err == nil {
			var retry []stream.Entry
			for i, r := range res {
				if r.Err != nil {
					err = r.Err
					retry = append(retry, entries[i])
				}
			}
			entries = append(retry, entries[n:]...)
			if err == nil {
				step = d.cfg.RetryInitial
				continue
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.noteError(fmt.Errorf("dead-letter stream %s: %w", d.cfg.DeadLetter, err))
		d.log.Error("writing failed records to the dead-letter stream; retrying", "dead_letter", d.cfg.DeadLetter, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.cfg.Clock.After(step):
		}
		step = min(step*2, d.cfg.RetryMax)
	}
	return nil
}
