package kinesisapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// validEntry checks one record; prefix names it in messages ("" for
// PutRecord, "records.N.member." for PutRecords) and is only built when a
// check fails.
func validEntry(v *validator, prefix func() string, pk *string, data []byte, hashKey *string) {
	if pk != nil && len(*pk) >= 1 && len(*pk) <= stream.MaxPartitionKeyLen && data != nil && len(data) <= stream.MaxRecordSize && hashKey == nil {
		return // the common case, valid at a glance (byte length bounds rune count)
	}
	validEntrySlow(v, prefix(), pk, data, hashKey)
}

func validEntrySlow(v *validator, prefix string, pk *string, data []byte, hashKey *string) {
	if v.required(pk != nil, prefix+"partitionKey") {
		v.str(pk, prefix+"partitionKey", 1, stream.MaxPartitionKeyLen, nil, "")
	}
	if v.required(data != nil, prefix+"data") && len(data) > stream.MaxRecordSize {
		v.fail(fmt.Sprintf("<%d bytes>", len(data)), prefix+"data", fmt.Sprintf("have length less than or equal to %d", stream.MaxRecordSize))
	}
	v.hashKey(hashKey, prefix+"explicitHashKey")
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Server) putRecord(ctx context.Context, in *putRecordInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	validEntry(&v, func() string { return "" }, in.PartitionKey, in.Data, in.ExplicitHashKey)
	v.seq(in.SequenceNumberForOrdering, "sequenceNumberForOrdering")
	if err := v.err(); err != nil {
		return nil, err
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	res, err := s.b.Put(ctx, name, stream.Entry{PartitionKey: *in.PartitionKey, ExplicitHashKey: deref(in.ExplicitHashKey), Data: in.Data})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		if errors.Is(err, stream.ErrThroughputExceeded) {
			s.m.writeThrottled.WithLabelValues(name).Inc()
			return nil, newErr(ExThroughputExceeded, "Rate exceeded for a shard of stream %s: %s", name, storeMessage(err))
		}
		return nil, streamErr(name, err)
	}
	n := float64(len(in.Data))
	s.m.putRecordSuccess.WithLabelValues(name).Inc()
	s.m.putRecordBytes.WithLabelValues(name).Add(n)
	s.m.incomingRecords.WithLabelValues(name).Inc()
	s.m.incomingBytes.WithLabelValues(name).Add(n)
	return putRecordOutput{ShardId: res.ShardID, SequenceNumber: res.SequenceNumber}, nil
}

func (s *Server) putRecords(ctx context.Context, in *putRecordsInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	if v.required(in.Records != nil, "records") {
		switch {
		case len(in.Records) < 1:
			v.fail("[]", "records", "have length greater than or equal to 1")
		case len(in.Records) > stream.MaxBatchRecords:
			v.fail(fmt.Sprintf("<%d records>", len(in.Records)), "records", fmt.Sprintf("have length less than or equal to %d", stream.MaxBatchRecords))
		}
	}
	total := 0
	for i := range in.Records {
		e := &in.Records[i]
		if len(v.errs) < 10 { // AWS lists a handful, not hundreds
			validEntry(&v, func() string { return fmt.Sprintf("records.%d.member.", i+1) }, e.PartitionKey, e.Data, e.ExplicitHashKey)
		}
		total += len(e.Data) + len(deref(e.PartitionKey))
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if total > stream.MaxBatchBytes {
		return nil, newErr(ExInvalidArgument, "Records size exceeds 5 MB limit")
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	entries := make([]stream.Entry, len(in.Records))
	for i, e := range in.Records {
		entries[i] = stream.Entry{PartitionKey: *e.PartitionKey, ExplicitHashKey: deref(e.ExplicitHashKey), Data: e.Data}
	}
	results, err := s.b.PutBatch(ctx, name, entries)
	if err != nil {
		return nil, streamErr(name, err)
	}
	if len(results) != len(entries) {
		return nil, fmt.Errorf("putrecords: store returned %d results for %d records", len(results), len(entries))
	}
	out := putRecordsOutput{Records: make([]putRecordsResultEntry, len(results))}
	var okBytes, ok, throttled, failed int
	for i, r := range results {
		if r.Err == nil {
			out.Records[i] = putRecordsResultEntry{ShardId: r.ShardID, SequenceNumber: r.SequenceNumber}
			ok++
			okBytes += len(entries[i].Data)
			continue
		}
		code, msg := recordErrorCode(r.Err)
		if code == ExThroughputExceeded {
			throttled++
			msg = fmt.Sprintf("Rate exceeded for a shard of stream %s.", name)
			if r.ShardID != "" {
				msg = fmt.Sprintf("Rate exceeded for shard %s in stream %s.", r.ShardID, name)
			}
		} else {
			failed++
		}
		out.Records[i] = putRecordsResultEntry{ErrorCode: code, ErrorMessage: msg}
		out.FailedRecordCount++
	}
	m := s.m
	m.putRecordsTotal.WithLabelValues(name).Add(float64(len(results)))
	m.putRecordsOK.WithLabelValues(name).Add(float64(ok))
	m.putRecordsBytes.WithLabelValues(name).Add(float64(okBytes))
	m.incomingRecords.WithLabelValues(name).Add(float64(ok))
	m.incomingBytes.WithLabelValues(name).Add(float64(okBytes))
	if ok > 0 {
		m.putRecordsSuccess.WithLabelValues(name).Inc()
	}
	if throttled > 0 {
		m.putRecordsThrottl.WithLabelValues(name).Add(float64(throttled))
		m.writeThrottled.WithLabelValues(name).Add(float64(throttled))
	}
	if failed > 0 {
		m.putRecordsFailed.WithLabelValues(name).Add(float64(failed))
	}
	return out, nil
}

var iteratorTypes = []string{"AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER", "AT_TIMESTAMP", "TRIM_HORIZON", "LATEST"}

func (s *Server) getShardIterator(_ context.Context, in *getShardIteratorInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	if v.required(in.ShardId != nil, "shardId") {
		v.shardID(in.ShardId, "shardId")
	}
	if v.required(in.ShardIteratorType != nil, "shardIteratorType") {
		v.enum(in.ShardIteratorType, "shardIteratorType", iteratorTypes...)
	}
	v.seq(in.StartingSequenceNumber, "startingSequenceNumber")
	if err := v.err(); err != nil {
		return nil, err
	}
	typ := *in.ShardIteratorType
	switch typ {
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		if in.StartingSequenceNumber == nil {
			return nil, newErr(ExInvalidArgument, "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified %s and no StartingSequenceNumber.", typ)
		}
	case "AT_TIMESTAMP":
		if in.Timestamp == nil {
			return nil, newErr(ExInvalidArgument, "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.")
		}
	default:
		if in.StartingSequenceNumber != nil {
			return nil, newErr(ExInvalidArgument, "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified %s and also a StartingSequenceNumber.", typ)
		}
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	req := stream.IteratorRequest{Stream: name, ShardID: *in.ShardId, Type: stream.IteratorType(typ), SequenceNumber: deref(in.StartingSequenceNumber)}
	if in.Timestamp != nil {
		req.Timestamp = in.Timestamp.Time
	}
	it, err := s.b.ShardIterator(req)
	if errors.Is(err, stream.ErrShardNotFound) {
		return nil, newErr(ExResourceNotFound, "Shard %s in stream %s does not exist.", *in.ShardId, name)
	}
	if err != nil {
		return nil, streamErr(name, err)
	}
	return getShardIteratorOutput{ShardIterator: it}, nil
}

func (s *Server) getRecords(ctx context.Context, in *getRecordsInput) (any, error) {
	var v validator
	if v.required(in.ShardIterator != nil, "shardIterator") {
		v.str(in.ShardIterator, "shardIterator", 1, 512, nil, "")
	}
	v.intRange(in.Limit, "limit", 1, stream.MaxGetRecords)
	v.streamARN(in.StreamARN, "streamARN")
	if err := v.err(); err != nil {
		return nil, err
	}
	limit := 0
	if in.Limit != nil {
		limit = *in.Limit
	}
	res, err := s.b.GetRecords(ctx, *in.ShardIterator, limit)
	if err != nil {
		switch {
		case errors.Is(err, stream.ErrThroughputExceeded):
			s.m.readThrottled.Inc()
		case errors.Is(err, stream.ErrInvalidIterator):
			return nil, newErr(ExInvalidArgument, "Invalid ShardIterator.")
		case errors.Is(err, stream.ErrIteratorExpired):
			return nil, &apiError{Status: http.StatusBadRequest, Type: ExExpiredIterator, Message: "Iterator expired: " + storeMessage(err)}
		}
		return nil, err
	}
	out := getRecordsOutput{Records: make([]recordOut, len(res.Records)), NextShardIterator: res.NextShardIterator,
		MillisBehindLatest: res.MillisBehindLatest}
	n := 0
	for i, r := range res.Records {
		if r.Data == nil {
			r.Data = []byte{} // "" on the wire, never null
		}
		out.Records[i] = recordOut{SequenceNumber: r.SequenceNumber, ApproximateArrivalTimestamp: Timestamp{r.ArrivalTime},
			Data: r.Data, PartitionKey: r.PartitionKey}
		n += len(r.Data)
	}
	for _, c := range res.ChildShards {
		out.ChildShards = append(out.ChildShards, childShardOut{ShardId: c.ShardID, ParentShards: c.ParentShards,
			HashKeyRange: hashKeyRange(c.HashKeyRange)})
	}
	s.m.getRecordsSuccess.Inc()
	s.m.getRecordsRecords.Add(float64(len(res.Records)))
	s.m.getRecordsBytes.Add(float64(n))
	if len(res.Records) > 0 {
		age := s.now().Sub(res.Records[len(res.Records)-1].ArrivalTime).Milliseconds()
		s.m.iteratorAge.Set(float64(max(age, 0)))
	}
	return out, nil
}
