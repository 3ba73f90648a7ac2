package kinesisapi

import (
	"context"
	"encoding/base64"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Kinesis API rules the store itself does not enforce.
const (
	maxShardCount      = 100000 // ShardCount / TargetShardCount validation bound
	onDemandShards     = 4      // what an on-demand (or unspecified) stream starts with
	minRetentionHours  = 24
	maxRetentionHours  = 8760
	maxTagsPerCall     = 50
	maxDescribeLimit   = 10000
	defaultDescribeMax = 100
	defaultListTags    = 50
)

// resolve returns the stream name a request names, by StreamName or
// StreamARN (both may be given if they agree).
func (s *Server) resolve(r streamRef) (string, error) {
	switch {
	case r.StreamName == nil && r.StreamARN == nil:
		return "", newErr(ExInvalidArgument, "Either StreamName or StreamARN must be provided.")
	case r.StreamARN == nil:
		return *r.StreamName, nil
	}
	name, err := s.b.StreamNameFromARN(*r.StreamARN)
	if err != nil {
		if errors.Is(err, stream.ErrStreamNotFound) {
			return "", newErr(ExResourceNotFound, "Stream %s not found.", *r.StreamARN)
		}
		return "", newErr(ExInvalidArgument, "StreamARN %s does not name a stream of this gateway.", *r.StreamARN)
	}
	if r.StreamName != nil && *r.StreamName != name {
		return "", newErr(ExInvalidArgument, "StreamARN %s and StreamName %s do not name the same stream.", *r.StreamARN, *r.StreamName)
	}
	return name, nil
}

// streamErr gives ErrStreamNotFound and ErrStreamBusy the messages AWS uses.
func streamErr(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, stream.ErrStreamNotFound):
		return newErr(ExResourceNotFound, "Stream %s not found.", name)
	case errors.Is(err, stream.ErrStreamBusy):
		return newErr(ExResourceInUse, "Stream %s is not currently ACTIVE: %s", name, storeMessage(err))
	}
	return err
}

func retentionHours(d time.Duration) int {
	return int((d + time.Hour - 1) / time.Hour)
}

func (s *Server) createStream(ctx context.Context, in *createStreamInput) (any, error) {
	var v validator
	v.required(in.StreamName != nil, "streamName")
	v.streamName(in.StreamName, "streamName")
	v.intRange(in.ShardCount, "shardCount", 1, maxShardCount)
	if in.StreamModeDetails != nil {
		v.enum(&in.StreamModeDetails.StreamMode, "streamModeDetails.streamMode", "PROVISIONED", "ON_DEMAND")
	}
	validTags(&v, in.Tags, 0)
	if err := v.err(); err != nil {
		return nil, err
	}
	shards := onDemandShards
	if in.ShardCount != nil {
		shards = *in.ShardCount
	} else if in.StreamModeDetails != nil && in.StreamModeDetails.StreamMode == "PROVISIONED" {
		return nil, newErr(ExInvalidArgument, "ShardCount is required for a PROVISIONED stream.")
	}
	err := s.b.CreateStream(ctx, stream.StreamConfig{Name: *in.StreamName, ShardCount: shards, Tags: in.Tags})
	if errors.Is(err, stream.ErrStreamExists) {
		return nil, newErr(ExResourceInUse, "Stream %s already exists.", *in.StreamName)
	}
	return nil, err
}

func (s *Server) deleteStream(ctx context.Context, in *deleteStreamInput) (any, error) {
	name, err := s.validRef(in.streamRef)
	if err != nil {
		return nil, err
	}
	if err := s.b.DeleteStream(ctx, name); err != nil {
		return nil, streamErr(name, err)
	}
	s.consumerStreamDeleted(name)
	s.m.forget(name)
	return nil, nil
}

// validRef validates a stream reference alone and resolves it.
func (s *Server) validRef(r streamRef) (string, error) {
	var v validator
	v.ref(r)
	if err := v.err(); err != nil {
		return "", err
	}
	return s.resolve(r)
}

func (s *Server) describe(name string) (stream.StreamDescription, error) {
	d, err := s.b.DescribeStream(name)
	return d, streamErr(name, err)
}

func shardsOut(shards []stream.Shard) []shardOut {
	out := make([]shardOut, len(shards))
	for i, sh := range shards {
		out[i] = shardOut{ShardId: sh.ShardID, ParentShardId: sh.ParentShardID, AdjacentParentShardId: sh.AdjacentParentShardID,
			HashKeyRange: hashKeyRange(sh.HashKeyRange),
			SequenceNumberRange: sequenceNumberRange{StartingSequenceNumber: sh.StartingSequenceNumber,
				EndingSequenceNumber: sh.EndingSequenceNumber}}
	}
	return out
}

var noMetrics = []enhancedMetrics{{ShardLevelMetrics: []string{}}}

func (s *Server) describeStream(_ context.Context, in *describeStreamInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	v.intRange(in.Limit, "limit", 1, maxDescribeLimit)
	v.shardID(in.ExclusiveStartShardId, "exclusiveStartShardId")
	if err := v.err(); err != nil {
		return nil, err
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	d, err := s.describe(name)
	if err != nil {
		return nil, err
	}
	shards := sortedShards(d.Shards)
	if in.ExclusiveStartShardId != nil {
		shards = after(shards, *in.ExclusiveStartShardId)
	}
	limit := defaultDescribeMax
	if in.Limit != nil {
		limit = *in.Limit
	}
	more := len(shards) > limit
	if more {
		shards = shards[:limit]
	}
	return describeStreamOutput{StreamDescription: streamDescription{
		StreamName: d.Name, StreamARN: d.ARN, StreamStatus: string(d.Status),
		StreamModeDetails: streamModeDetails{StreamMode: "PROVISIONED"},
		Shards:            shardsOut(shards), HasMoreShards: more,
		RetentionPeriodHours:    retentionHours(d.Retention),
		StreamCreationTimestamp: Timestamp{d.Created}, EnhancedMonitoring: noMetrics, EncryptionType: "NONE",
	}}, nil
}

// sortedShards returns the shards ordered by id (ids are zero-padded, so
// this is creation order).
func sortedShards(in []stream.Shard) []stream.Shard {
	out := append([]stream.Shard(nil), in...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].ShardID < out[j].ShardID })
	return out
}

// after returns the shards whose id sorts after id.
func after(shards []stream.Shard, id string) []stream.Shard {
	i := sort.Search(len(shards), func(i int) bool { return shards[i].ShardID > id })
	return shards[i:]
}

func (s *Server) describeStreamSummary(_ context.Context, in *streamRef) (any, error) {
	name, err := s.validRef(*in)
	if err != nil {
		return nil, err
	}
	d, err := s.describe(name)
	if err != nil {
		return nil, err
	}
	open := 0
	for _, sh := range d.Shards {
		if sh.Open() {
			open++
		}
	}
	return describeStreamSummaryOutput{StreamDescriptionSummary: streamDescriptionSummary{
		StreamName: d.Name, StreamARN: d.ARN, StreamStatus: string(d.Status),
		StreamModeDetails:    streamModeDetails{StreamMode: "PROVISIONED"},
		RetentionPeriodHours: retentionHours(d.Retention), StreamCreationTimestamp: Timestamp{d.Created},
		EnhancedMonitoring: noMetrics, EncryptionType: "NONE", OpenShardCount: open,
	}}, nil
}

func (s *Server) listStreams(_ context.Context, in *listStreamsInput) (any, error) {
	var v validator
	v.intRange(in.Limit, "limit", 1, maxDescribeLimit)
	v.streamName(in.ExclusiveStartStreamName, "exclusiveStartStreamName")
	v.str(in.NextToken, "nextToken", 1, 1048576, nil, "")
	if err := v.err(); err != nil {
		return nil, err
	}
	start := ""
	if in.ExclusiveStartStreamName != nil {
		start = *in.ExclusiveStartStreamName
	}
	if in.NextToken != nil {
		if in.ExclusiveStartStreamName != nil {
			return nil, newErr(ExInvalidArgument, "NextToken and ExclusiveStartStreamName cannot be provided together.")
		}
		b, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		if err != nil || len(b) == 0 || !namePattern.Match(b) {
			return nil, newErr(ExInvalidArgument, "Invalid NextToken.")
		}
		start = string(b)
	}
	names := s.b.ListStreams()
	sort.Strings(names)
	i := sort.SearchStrings(names, start)
	if i < len(names) && names[i] == start {
		i++
	}
	names = names[i:]
	limit := DefaultListLimit
	if in.Limit != nil {
		limit = *in.Limit
	}
	out := listStreamsOutput{StreamNames: []string{}, StreamSummaries: []streamSummary{}}
	for _, n := range names {
		if len(out.StreamNames) == limit {
			out.HasMoreStreams = true
			break
		}
		d, err := s.b.DescribeStream(n)
		if err != nil {
			continue // deleted meanwhile
		}
		out.StreamNames = append(out.StreamNames, n)
		out.StreamSummaries = append(out.StreamSummaries, streamSummary{StreamName: d.Name, StreamARN: d.ARN,
			StreamStatus: string(d.Status), StreamModeDetails: streamModeDetails{StreamMode: "PROVISIONED"},
			StreamCreationTimestamp: Timestamp{d.Created}})
	}
	if out.HasMoreStreams {
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(out.StreamNames[len(out.StreamNames)-1]))
	}
	return out, nil
}

func (s *Server) changeRetention(in *retentionInput, increase bool) (any, error) {
	var v validator
	v.ref(in.streamRef)
	if v.required(in.RetentionPeriodHours != nil, "retentionPeriodHours") {
		v.intRange(in.RetentionPeriodHours, "retentionPeriodHours", 1, 1<<30)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	h := *in.RetentionPeriodHours
	if h < minRetentionHours {
		return nil, newErr(ExInvalidArgument, "Minimum allowed retention period is %d hours. Requested retention period (%d hours) is too short.", minRetentionHours, h)
	}
	if h > maxRetentionHours {
		return nil, newErr(ExInvalidArgument, "Maximum allowed retention period is %d hours. Requested retention period (%d hours) is too long.", maxRetentionHours, h)
	}
	d, err := s.describe(name)
	if err != nil {
		return nil, err
	}
	want := time.Duration(h) * time.Hour
	if increase && want < d.Retention {
		return nil, newErr(ExInvalidArgument, "Requested retention period (%d hours) for stream %s can not be shorter than existing retention period (%d hours). Use DecreaseRetentionPeriod API.", h, name, retentionHours(d.Retention))
	}
	if !increase && want > d.Retention {
		return nil, newErr(ExInvalidArgument, "Requested retention period (%d hours) for stream %s can not be longer than existing retention period (%d hours). Use IncreaseRetentionPeriod API.", h, name, retentionHours(d.Retention))
	}
	return nil, streamErr(name, s.b.SetRetention(name, want))
}

func (s *Server) increaseRetention(_ context.Context, in *retentionInput) (any, error) {
	return s.changeRetention(in, true)
}

func (s *Server) decreaseRetention(_ context.Context, in *retentionInput) (any, error) {
	return s.changeRetention(in, false)
}

func validTags(v *validator, tags map[string]string, min int) {
	if len(tags) < min {
		v.fail(nil, "tags", "have length greater than or equal to 1")
	}
	if len(tags) > maxTagsPerCall {
		v.fail(len(tags), "tags", "have length less than or equal to 50")
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		k, val := k, tags[k]
		v.str(&k, "tags", 1, 128, nil, "")
		v.str(&val, "tags."+k, 0, 256, nil, "")
	}
}

func (s *Server) addTags(_ context.Context, in *addTagsInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	if v.required(in.Tags != nil, "tags") {
		validTags(&v, in.Tags, 1)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	err = s.b.AddTags(name, in.Tags)
	if errors.Is(err, stream.ErrLimitExceeded) {
		return nil, newErr(ExLimitExceeded, "Failed to add tags to stream %s: a stream can have at most %d tags.", name, stream.DefaultMaxTags)
	}
	return nil, streamErr(name, err)
}

func (s *Server) removeTags(_ context.Context, in *removeTagsInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	if v.required(in.TagKeys != nil, "tagKeys") {
		if len(in.TagKeys) < 1 || len(in.TagKeys) > maxTagsPerCall {
			v.fail(len(in.TagKeys), "tagKeys", "have length between 1 and 50")
		}
		for i := range in.TagKeys {
			v.str(&in.TagKeys[i], "tagKeys", 1, 128, nil, "")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, streamErr(name, s.b.RemoveTags(name, in.TagKeys))
}

func (s *Server) listTags(_ context.Context, in *listTagsInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	v.str(in.ExclusiveStartTagKey, "exclusiveStartTagKey", 1, 128, nil, "")
	v.intRange(in.Limit, "limit", 1, 50)
	if err := v.err(); err != nil {
		return nil, err
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	tags, err := s.b.Tags(name)
	if err != nil {
		return nil, streamErr(name, err)
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		if in.ExclusiveStartTagKey == nil || strings.Compare(k, *in.ExclusiveStartTagKey) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	limit := defaultListTags
	if in.Limit != nil {
		limit = *in.Limit
	}
	out := listTagsOutput{Tags: []tagOut{}}
	if len(keys) > limit {
		keys, out.HasMoreTags = keys[:limit], true
	}
	for _, k := range keys {
		out.Tags = append(out.Tags, tagOut{Key: k, Value: tags[k]})
	}
	return out, nil
}
