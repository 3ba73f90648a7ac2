package kinesisapi

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/smithy-go/eventstream"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Enhanced fan-out: registered stream consumers and SubscribeToShard, which
// pushes records over an AWS event stream (application/vnd.amazon.eventstream)
// for up to 5 minutes per call, as Kinesis does.
//
// The consumer registry lives in memory and, when the server has a data
// directory, in a file there (consumers_file.go): consumers outlive a
// restart, as in Kinesis, and go with their stream.

const (
	maxConsumersPerStream = 20
	subscriptionLifetime  = 5 * time.Minute
	heartbeatEvery        = 5 * time.Second
	eventStreamType       = "application/vnd.amazon.eventstream"
)

var (
	consumerNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
	consumerARNPattern  = regexp.MustCompile(`^arn:aws.*:kinesis:.*:\d{12}:.*stream/[a-zA-Z0-9_.-]+/consumer/[a-zA-Z0-9_.-]+:[0-9]+$`)
)

type consumer struct {
	name, arn, streamARN, stream string
	created                      time.Time
}

// consumers is the registry. Safe for concurrent use.
type consumers struct {
	mu     sync.Mutex
	byARN  map[string]*consumer
	active map[string]bool // consumer ARN + " " + shard id: a live subscription
}

type consumerOut struct {
	ConsumerName              string    `json:"ConsumerName"`
	ConsumerARN               string    `json:"ConsumerARN"`
	ConsumerStatus            string    `json:"ConsumerStatus"`
	ConsumerCreationTimestamp Timestamp `json:"ConsumerCreationTimestamp"`
}

type consumerDescriptionOut struct {
	consumerOut
	StreamARN string `json:"StreamARN"`
}

func (c *consumer) out() consumerOut {
	return consumerOut{ConsumerName: c.name, ConsumerARN: c.arn, ConsumerStatus: "ACTIVE", ConsumerCreationTimestamp: Timestamp{c.created}}
}

type registerConsumerInput struct {
	StreamARN    *string `json:"StreamARN,omitempty"`
	ConsumerName *string `json:"ConsumerName,omitempty"`
}

type consumerRefInput struct {
	StreamARN    *string `json:"StreamARN,omitempty"`
	ConsumerName *string `json:"ConsumerName,omitempty"`
	ConsumerARN  *string `json:"ConsumerARN,omitempty"`
}

type listConsumersInput struct {
	StreamARN               *string    `json:"StreamARN,omitempty"`
	NextToken               *string    `json:"NextToken,omitempty"`
	MaxResults              *int       `json:"MaxResults,omitempty"`
	StreamCreationTimestamp *Timestamp `json:"StreamCreationTimestamp,omitempty"`
}

type startingPosition struct {
	Type           *string    `json:"Type,omitempty"`
	SequenceNumber *string    `json:"SequenceNumber,omitempty"`
	Timestamp      *Timestamp `json:"Timestamp,omitempty"`
}

type subscribeInput struct {
	ConsumerARN      *string           `json:"ConsumerARN,omitempty"`
	ShardId          *string           `json:"ShardId,omitempty"`
	StartingPosition *startingPosition `json:"StartingPosition,omitempty"`
}

type subscribeEvent struct {
	Records                    []recordOut     `json:"Records"`
	ContinuationSequenceNumber string          `json:"ContinuationSequenceNumber"`
	MillisBehindLatest         int64           `json:"MillisBehindLatest"`
	ChildShards                []childShardOut `json:"ChildShards,omitempty"`
}

func (v *validator) consumerName(s *string, member string) {
	v.str(s, member, 1, 128, consumerNamePattern, "[a-zA-Z0-9_.-]+")
}

func (v *validator) consumerARN(s *string, member string) {
	v.str(s, member, 1, 2048, consumerARNPattern, `^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+`)
}

// streamByARN resolves a stream ARN and checks the stream exists.
func (s *Server) streamByARN(arn string) (stream.StreamDescription, error) {
	name, err := s.resolve(streamRef{StreamARN: &arn})
	if err != nil {
		return stream.StreamDescription{}, err
	}
	return s.describe(name)
}

// lookupConsumer returns a registered consumer, forgetting it instead when
// its stream no longer exists (or was re-created under the same name).
func (s *Server) lookupConsumer(arn string) (*consumer, error) {
	s.cons.mu.Lock()
	c := s.cons.byARN[arn]
	s.cons.mu.Unlock()
	if c == nil {
		return nil, newErr(ExResourceNotFound, "Consumer %s not found.", arn)
	}
	if d, err := s.b.DescribeStream(c.stream); err != nil || !sameStream(d.ARN, d.Created, c) {
		s.forgetConsumers(func(o *consumer) bool { return o.arn == arn })
		return nil, newErr(ExResourceNotFound, "Consumer %s not found.", arn)
	}
	return c, nil
}

func (s *Server) registerStreamConsumer(_ context.Context, in *registerConsumerInput) (any, error) {
	var v validator
	if v.required(in.StreamARN != nil, "streamARN") {
		v.streamARN(in.StreamARN, "streamARN")
	}
	if v.required(in.ConsumerName != nil, "consumerName") {
		v.consumerName(in.ConsumerName, "consumerName")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	d, err := s.streamByARN(*in.StreamARN)
	if err != nil {
		return nil, err
	}
	s.pruneConsumers(d)
	s.cons.mu.Lock()
	defer s.cons.mu.Unlock()
	n := 0
	for _, c := range s.cons.byARN {
		if c.streamARN == d.ARN {
			n++
			if c.name == *in.ConsumerName {
				return nil, newErr(ExResourceInUse, "Consumer %s already exists for stream %s.", c.name, d.Name)
			}
		}
	}
	if n >= maxConsumersPerStream {
		return nil, newErr(ExLimitExceeded, "Stream %s already has %d registered consumers, the limit.", d.Name, maxConsumersPerStream)
	}
	now := s.now().UTC().Truncate(time.Second)
	c := &consumer{name: *in.ConsumerName, streamARN: d.ARN, stream: d.Name, created: now,
		arn: d.ARN + "/consumer/" + *in.ConsumerName + ":" + strconv.FormatInt(now.Unix(), 10)}
	s.cons.byARN[c.arn] = c
	if err := s.saveConsumersLocked(); err != nil {
		delete(s.cons.byARN, c.arn)
		return nil, s.registryNotSaved("registering consumer "+c.name, err)
	}
	return struct {
		Consumer consumerOut `json:"Consumer"`
	}{c.out()}, nil
}

// pruneConsumers forgets consumers of an earlier stream of the same name.
func (s *Server) pruneConsumers(d stream.StreamDescription) {
	s.forgetConsumers(func(c *consumer) bool { return c.streamARN == d.ARN && !sameStream(d.ARN, d.Created, c) })
}

// forgetConsumers drops the consumers gone matches, and saves the registry
// if any went. A failed save is logged: the file then still lists them,
// and the next load drops them again.
func (s *Server) forgetConsumers(gone func(*consumer) bool) {
	s.cons.mu.Lock()
	defer s.cons.mu.Unlock()
	n := 0
	for arn, c := range s.cons.byARN {
		if gone(c) {
			delete(s.cons.byARN, arn)
			n++
		}
	}
	if n == 0 {
		return
	}
	if err := s.saveConsumersLocked(); err != nil {
		s.log.Error("saving the consumer registry", "err", err)
	}
}

// consumerFromRef finds a consumer by ConsumerARN, or by StreamARN and
// ConsumerName.
func (s *Server) consumerFromRef(in *consumerRefInput) (*consumer, error) {
	var v validator
	v.streamARN(in.StreamARN, "streamARN")
	v.consumerName(in.ConsumerName, "consumerName")
	v.consumerARN(in.ConsumerARN, "consumerARN")
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.ConsumerARN != nil {
		return s.lookupConsumer(*in.ConsumerARN)
	}
	if in.StreamARN == nil || in.ConsumerName == nil {
		return nil, newErr(ExInvalidArgument, "Either ConsumerARN or both StreamARN and ConsumerName must be provided.")
	}
	s.cons.mu.Lock()
	var arn string
	for _, c := range s.cons.byARN {
		if c.streamARN == *in.StreamARN && c.name == *in.ConsumerName {
			arn = c.arn
		}
	}
	s.cons.mu.Unlock()
	if arn == "" {
		return nil, newErr(ExResourceNotFound, "Consumer %s under stream %s not found.", *in.ConsumerName, *in.StreamARN)
	}
	return s.lookupConsumer(arn)
}

func (s *Server) describeStreamConsumer(_ context.Context, in *consumerRefInput) (any, error) {
	c, err := s.consumerFromRef(in)
	if err != nil {
		return nil, err
	}
	return struct {
		ConsumerDescription consumerDescriptionOut `json:"ConsumerDescription"`
	}{consumerDescriptionOut{consumerOut: c.out(), StreamARN: c.streamARN}}, nil
}

func (s *Server) deregisterStreamConsumer(_ context.Context, in *consumerRefInput) (any, error) {
	c, err := s.consumerFromRef(in)
	if err != nil {
		return nil, err
	}
	s.cons.mu.Lock()
	defer s.cons.mu.Unlock()
	if s.cons.byARN[c.arn] != c {
		return nil, nil // deregistered meanwhile
	}
	delete(s.cons.byARN, c.arn)
	if err := s.saveConsumersLocked(); err != nil {
		s.cons.byARN[c.arn] = c
		return nil, s.registryNotSaved("deregistering consumer "+c.name, err)
	}
	return nil, nil
}

// registryNotSaved logs why the registry file could not be written and
// answers a retriable InternalFailure that names no path of the gateway.
func (s *Server) registryNotSaved(op string, err error) error {
	s.log.Error(op+": the consumer registry could not be saved", "err", err)
	return &apiError{Status: http.StatusInternalServerError, Type: ExInternalFailure,
		Message: "The gateway could not save its consumer registry; retry later."}
}

func (s *Server) listStreamConsumers(_ context.Context, in *listConsumersInput) (any, error) {
	var v validator
	if v.required(in.StreamARN != nil, "streamARN") {
		v.streamARN(in.StreamARN, "streamARN")
	}
	v.intRange(in.MaxResults, "maxResults", 1, 10000)
	v.str(in.NextToken, "nextToken", 1, 1048576, nil, "")
	if err := v.err(); err != nil {
		return nil, err
	}
	d, err := s.streamByARN(*in.StreamARN)
	if err != nil {
		return nil, err
	}
	s.pruneConsumers(d)
	s.cons.mu.Lock()
	var list []consumerOut
	for _, c := range s.cons.byARN {
		if c.streamARN == d.ARN {
			list = append(list, c.out())
		}
	}
	s.cons.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ConsumerName < list[j].ConsumerName })
	if in.NextToken != nil {
		i := sort.Search(len(list), func(i int) bool { return list[i].ConsumerName > *in.NextToken })
		list = list[i:]
	}
	out := struct {
		Consumers []consumerOut `json:"Consumers"`
		NextToken string        `json:"NextToken,omitempty"`
	}{Consumers: []consumerOut{}}
	max := 100
	if in.MaxResults != nil {
		max = *in.MaxResults
	}
	if len(list) > max {
		list = list[:max]
		out.NextToken = list[max-1].ConsumerName
	}
	out.Consumers = append(out.Consumers, list...)
	return out, nil
}

// subscription is SubscribeToShard's answer: ServeHTTP streams it.
type subscription struct {
	s        *Server
	c        codec
	cons     *consumer
	shard    string
	iterator string
	cont     string // ContinuationSequenceNumber so far
}

func (s *Server) subscribeToShard(_ context.Context, in *subscribeInput) (any, error) {
	var v validator
	if v.required(in.ConsumerARN != nil, "consumerARN") {
		v.consumerARN(in.ConsumerARN, "consumerARN")
	}
	if v.required(in.ShardId != nil, "shardId") {
		v.shardID(in.ShardId, "shardId")
	}
	if v.required(in.StartingPosition != nil, "startingPosition") {
		if v.required(in.StartingPosition.Type != nil, "startingPosition.type") {
			v.enum(in.StartingPosition.Type, "startingPosition.type", iteratorTypes...)
		}
		v.seq(in.StartingPosition.SequenceNumber, "startingPosition.sequenceNumber")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	c, err := s.lookupConsumer(*in.ConsumerARN)
	if err != nil {
		return nil, err
	}
	pos := in.StartingPosition
	req := stream.IteratorRequest{Stream: c.stream, ShardID: *in.ShardId, Type: stream.IteratorType(*pos.Type), SequenceNumber: deref(pos.SequenceNumber)}
	if pos.Timestamp != nil {
		req.Timestamp = pos.Timestamp.Time
	}
	switch req.Type {
	case stream.AtSequenceNumber, stream.AfterSequenceNumber:
		if pos.SequenceNumber == nil {
			return nil, newErr(ExInvalidArgument, "StartingPosition.SequenceNumber is required for %s.", req.Type)
		}
	case stream.AtTimestamp:
		if pos.Timestamp == nil {
			return nil, newErr(ExInvalidArgument, "StartingPosition.Timestamp is required for AT_TIMESTAMP.")
		}
	}
	it, err := s.b.ShardIterator(req)
	if errors.Is(err, stream.ErrShardNotFound) {
		return nil, newErr(ExResourceNotFound, "Shard %s in stream %s does not exist.", *in.ShardId, c.stream)
	}
	if err != nil {
		return nil, streamErr(c.stream, err)
	}
	sub := &subscription{s: s, cons: c, shard: *in.ShardId, iterator: it, cont: req.SequenceNumber}
	if sub.cont == "" {
		if last, err := s.b.LastSequenceNumber(c.stream, sub.shard); err == nil && last != "" && req.Type == stream.Latest {
			sub.cont = last
		} else if d, err := s.b.DescribeStream(c.stream); err == nil {
			for _, sh := range d.Shards {
				if sh.ShardID == sub.shard {
					sub.cont = sh.StartingSequenceNumber
				}
			}
		}
	}
	key := c.arn + " " + sub.shard
	s.cons.mu.Lock()
	defer s.cons.mu.Unlock()
	if s.cons.active[key] {
		return nil, newErr(ExResourceInUse, "Another active subscription exists for consumer %s on shard %s.", c.name, sub.shard)
	}
	s.cons.active[key] = true
	return sub, nil
}

// stream writes the event stream: the initial response, then one
// SubscribeToShardEvent per batch of records (or every 5 s while there is
// nothing), until the subscription's lifetime passes, the shard ends, the
// client goes away or the server closes.
func (sub *subscription) stream(w http.ResponseWriter, r *http.Request, c codec) {
	s := sub.s
	defer func() {
		s.cons.mu.Lock()
		delete(s.cons.active, sub.cons.arn+" "+sub.shard)
		s.cons.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(r.Context(), s.subscribeFor)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", eventStreamType)
	w.WriteHeader(http.StatusOK)
	enc := eventstream.NewEncoder()
	send := func(kind, typ string, v any) error {
		payload, err := c.encode(v)
		if err != nil {
			return err
		}
		var msg eventstream.Message
		if kind == "exception" {
			msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue("exception"))
			msg.Headers.Set(eventstream.ExceptionTypeHeader, eventstream.StringValue(typ))
		} else {
			msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue("event"))
			msg.Headers.Set(eventstream.EventTypeHeader, eventstream.StringValue(typ))
		}
		ct := c.contentType()
		if ct == ContentTypeJSON {
			ct = "application/json"
		}
		msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue(ct))
		msg.Payload = payload
		if err := enc.Encode(w, msg); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send("event", "initial-response", struct{}{}); err != nil {
		return
	}
	last := time.Time{}
	for ctx.Err() == nil {
		res, err := s.b.GetRecords(ctx, sub.iterator, 0)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ae := toAPIError(err)
			_ = send("exception", ae.Type, errBody{Type: ae.Type, Message: ae.Message})
			return
		}
		ev := subscribeEvent{Records: make([]recordOut, len(res.Records)), MillisBehindLatest: res.MillisBehindLatest}
		for i, rec := range res.Records {
			if rec.Data == nil {
				rec.Data = []byte{}
			}
			ev.Records[i] = recordOut{SequenceNumber: rec.SequenceNumber, ApproximateArrivalTimestamp: Timestamp{rec.ArrivalTime}, Data: rec.Data, PartitionKey: rec.PartitionKey}
			sub.cont = rec.SequenceNumber
		}
		for _, ch := range res.ChildShards {
			ev.ChildShards = append(ev.ChildShards, childShardOut{ShardId: ch.ShardID, ParentShards: ch.ParentShards, HashKeyRange: hashKeyRange(ch.HashKeyRange)})
		}
		ev.ContinuationSequenceNumber = sub.cont
		ended := res.NextShardIterator == ""
		if len(ev.Records) > 0 || ended || s.now().Sub(last) >= heartbeatEvery {
			if ended {
				// AWS signals the end of a shard with a null continuation.
				ev.ContinuationSequenceNumber = ""
			}
			if err := send("event", "SubscribeToShardEvent", eventPayload(ev, ended)); err != nil {
				return
			}
			last = s.now()
			s.m.subscribeRecords.Add(float64(len(ev.Records)))
		}
		if ended {
			return
		}
		sub.iterator = res.NextShardIterator
		if len(res.Records) == 0 {
			after, _ := s.b.LastSequenceNumber(sub.cons.stream, sub.shard)
			wctx, wcancel := context.WithTimeout(ctx, time.Second)
			_ = s.b.Wait(wctx, sub.cons.stream, sub.shard, after)
			wcancel()
		}
	}
}

// eventPayload leaves ContinuationSequenceNumber out at a shard's end.
func eventPayload(ev subscribeEvent, ended bool) any {
	if !ended {
		return ev
	}
	return struct {
		Records            []recordOut     `json:"Records"`
		MillisBehindLatest int64           `json:"MillisBehindLatest"`
		ChildShards        []childShardOut `json:"ChildShards"`
	}{ev.Records, ev.MillisBehindLatest, ev.ChildShards}
}

// CloseSubscriptions ends every SubscribeToShard stream (at shutdown, so
// that the HTTP server does not wait 5 minutes for them). Later
// subscriptions end at once too.
func (s *Server) CloseSubscriptions() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// consumerStreamDeleted forgets the consumers of a deleted stream.
func (s *Server) consumerStreamDeleted(name string) {
	s.forgetConsumers(func(c *consumer) bool { return c.stream == name })
}
