package kinesisapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// nextTokenTTL is how long a ListShards NextToken stays valid, as in AWS.
const nextTokenTTL = 5 * time.Minute

var shardFilterTypes = []string{"AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP", "FROM_TIMESTAMP"}

// listShardsToken is what a ListShards NextToken carries (base64 JSON).
type listShardsToken struct {
	Stream   string `json:"s"`
	After    string `json:"a"`
	Filter   string `json:"f,omitempty"`
	FilterID string `json:"i,omitempty"`
	FilterTS int64  `json:"t,omitempty"` // ms
	Max      int    `json:"m"`
	Issued   int64  `json:"n"` // ms
}

func (s *Server) listShards(_ context.Context, in *listShardsInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	v.str(in.NextToken, "nextToken", 1, 1048576, nil, "")
	v.shardID(in.ExclusiveStartShardId, "exclusiveStartShardId")
	v.intRange(in.MaxResults, "maxResults", 1, maxDescribeLimit)
	if in.ShardFilter != nil {
		if v.required(in.ShardFilter.Type != nil, "shardFilter.type") {
			v.enum(in.ShardFilter.Type, "shardFilter.type", shardFilterTypes...)
		}
		v.shardID(in.ShardFilter.ShardId, "shardFilter.shardId")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	var tok listShardsToken
	if in.NextToken != nil {
		if in.StreamName != nil || in.StreamARN != nil {
			return nil, newErr(ExInvalidArgument, "NextToken and StreamName cannot be provided together.")
		}
		if in.ExclusiveStartShardId != nil || in.ShardFilter != nil || in.StreamCreationTimestamp != nil {
			return nil, newErr(ExInvalidArgument, "NextToken cannot be combined with ExclusiveStartShardId, ShardFilter or StreamCreationTimestamp.")
		}
		raw, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		if err != nil || json.Unmarshal(raw, &tok) != nil || !namePattern.MatchString(tok.Stream) {
			return nil, newErr(ExInvalidArgument, "Invalid NextToken.")
		}
		if age := s.now().Sub(time.UnixMilli(tok.Issued)); age > nextTokenTTL || age < -nextTokenTTL {
			return nil, newErr(ExExpiredNextToken, "The NextToken has expired; tokens are valid for %s.", nextTokenTTL)
		}
	} else {
		name, err := s.resolve(in.streamRef)
		if err != nil {
			return nil, err
		}
		tok = listShardsToken{Stream: name, Max: DefaultListShardsMax}
		if in.ExclusiveStartShardId != nil {
			tok.After = *in.ExclusiveStartShardId
		}
		if f := in.ShardFilter; f != nil {
			tok.Filter = *f.Type
			switch tok.Filter {
			case "AFTER_SHARD_ID":
				if f.ShardId == nil {
					return nil, newErr(ExInvalidArgument, "ShardFilter.ShardId is required for the AFTER_SHARD_ID filter.")
				}
				tok.FilterID = *f.ShardId
			case "AT_TIMESTAMP", "FROM_TIMESTAMP":
				if f.Timestamp == nil {
					return nil, newErr(ExInvalidArgument, "ShardFilter.Timestamp is required for the %s filter.", tok.Filter)
				}
				tok.FilterTS = f.Timestamp.UnixMilli()
			}
		}
	}
	if in.MaxResults != nil {
		tok.Max = *in.MaxResults
	}
	d, err := s.describe(tok.Stream)
	if err != nil {
		return nil, err
	}
	if in.StreamCreationTimestamp != nil && !in.StreamCreationTimestamp.Equal(d.Created.Truncate(time.Millisecond)) &&
		in.StreamCreationTimestamp.Unix() != d.Created.Unix() {
		return nil, newErr(ExResourceNotFound, "Stream %s with creation time %s not found.", tok.Stream, in.StreamCreationTimestamp.Format(time.RFC3339))
	}
	shards := after(filterShards(sortedShards(d.Shards), tok, d.Created), tok.After)
	out := listShardsOutput{}
	if len(shards) > tok.Max {
		shards = shards[:tok.Max]
		tok.After = shards[len(shards)-1].ShardID
		tok.Issued = s.now().UnixMilli()
		raw, _ := json.Marshal(tok)
		out.NextToken = base64.RawURLEncoding.EncodeToString(raw)
	}
	out.Shards = shardsOut(shards)
	return out, nil
}

// filterShards applies a ShardFilter. Shard open and close times come from
// the sequence numbers (see seqTimes); a shard whose times cannot be read
// counts as open at every instant.
func filterShards(shards []stream.Shard, tok listShardsToken, created time.Time) []stream.Shard {
	ids := make(map[string]bool, len(shards))
	for _, sh := range shards {
		ids[sh.ShardID] = true
	}
	atHorizon := func(sh stream.Shard) bool { return !ids[sh.ParentShardID] && !ids[sh.AdjacentParentShardID] }
	ts := time.UnixMilli(tok.FilterTS)
	openAt := func(sh stream.Shard) bool {
		start, ok1 := seqTime(sh.StartingSequenceNumber, false)
		if ok1 && start.After(ts) && !atHorizon(sh) {
			return false
		}
		if sh.Open() {
			return true
		}
		end, ok2 := seqTime(sh.EndingSequenceNumber, true)
		return !ok2 || end.After(ts)
	}
	var out []stream.Shard
	for _, sh := range shards {
		keep := true
		switch tok.Filter {
		case "AFTER_SHARD_ID":
			keep = sh.ShardID > tok.FilterID
		case "AT_LATEST":
			keep = sh.Open()
		case "AT_TRIM_HORIZON":
			keep = atHorizon(sh)
		case "AT_TIMESTAMP":
			if ts.Before(created) {
				keep = atHorizon(sh)
			} else {
				keep = openAt(sh)
			}
		case "FROM_TIMESTAMP":
			if !ts.Before(created) {
				keep = sh.Open()
				if !keep {
					end, ok := seqTime(sh.EndingSequenceNumber, true)
					keep = !ok || end.After(ts)
				}
			}
		}
		if keep {
			out = append(out, sh)
		}
	}
	return out
}

// seqTime reads a time from a sequence number in the layout real Kinesis
// uses (47 hex digits: 2, shard creation time, shard index digit, counter,
// 00, put time, shard index, 2): the shard creation time, or with put the
// time the record was put. ok is false for other layouts.
func seqTime(seq string, put bool) (time.Time, bool) {
	n, ok := new(big.Int).SetString(seq, 10)
	if !ok {
		return time.Time{}, false
	}
	h := n.Text(16)
	if len(h) != 47 || h[0] != '2' {
		return time.Time{}, false
	}
	field := h[1:10]
	if put {
		field = h[29:38]
	}
	sec, err := strconv.ParseInt(field, 16, 64)
	if err != nil || sec == 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

func (s *Server) splitShard(ctx context.Context, in *splitShardInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	if v.required(in.ShardToSplit != nil, "shardToSplit") {
		v.shardID(in.ShardToSplit, "shardToSplit")
	}
	if v.required(in.NewStartingHashKey != nil, "newStartingHashKey") {
		v.hashKey(in.NewStartingHashKey, "newStartingHashKey")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, shardErr(name, *in.ShardToSplit, s.b.SplitShard(ctx, name, *in.ShardToSplit, *in.NewStartingHashKey))
}

func shardErr(name, shard string, err error) error {
	if errors.Is(err, stream.ErrShardNotFound) {
		return newErr(ExResourceNotFound, "Could not find shard %s in stream %s.", shard, name)
	}
	return streamErr(name, err)
}

func (s *Server) mergeShards(ctx context.Context, in *mergeShardsInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	if v.required(in.ShardToMerge != nil, "shardToMerge") {
		v.shardID(in.ShardToMerge, "shardToMerge")
	}
	if v.required(in.AdjacentShardToMerge != nil, "adjacentShardToMerge") {
		v.shardID(in.AdjacentShardToMerge, "adjacentShardToMerge")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	name, err := s.resolve(in.streamRef)
	if err != nil {
		return nil, err
	}
	err = s.b.MergeShards(ctx, name, *in.ShardToMerge, *in.AdjacentShardToMerge)
	if errors.Is(err, stream.ErrShardNotFound) {
		return nil, newErr(ExResourceNotFound, "Could not find shard %s or %s in stream %s.", *in.ShardToMerge, *in.AdjacentShardToMerge, name)
	}
	return nil, streamErr(name, err)
}

func (s *Server) updateShardCount(ctx context.Context, in *updateShardCountInput) (any, error) {
	var v validator
	v.ref(in.streamRef)
	if v.required(in.TargetShardCount != nil, "targetShardCount") {
		v.intRange(in.TargetShardCount, "targetShardCount", 1, maxShardCount)
	}
	if v.required(in.ScalingType != nil, "scalingType") {
		v.enum(in.ScalingType, "scalingType", "UNIFORM_SCALING")
	}
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
	cur, target := d.OpenShardCount, *in.TargetShardCount
	if cur == 0 {
		for _, sh := range d.Shards {
			if sh.Open() {
				cur++
			}
		}
	}
	if target > 2*cur {
		return nil, newErr(ExLimitExceeded, "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: %d Target shard count: %d", cur, target)
	}
	if 2*target < cur {
		return nil, newErr(ExLimitExceeded, "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: %d Target shard count: %d", cur, target)
	}
	if err := s.b.UpdateShardCount(ctx, name, target); err != nil {
		return nil, streamErr(name, err)
	}
	return updateShardCountOutput{StreamName: name, StreamARN: d.ARN, CurrentShardCount: cur, TargetShardCount: target}, nil
}
