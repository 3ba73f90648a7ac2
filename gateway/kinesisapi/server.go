package kinesisapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Backend is the part of *stream.Store the API calls. Tests may pass a
// fake; the daemon passes the store.
type Backend interface {
	CreateStream(ctx context.Context, cfg stream.StreamConfig) error
	DeleteStream(ctx context.Context, name string) error
	DescribeStream(name string) (stream.StreamDescription, error)
	ListStreams() []string
	StreamNameFromARN(arn string) (string, error)
	SetRetention(name string, d time.Duration) error
	AddTags(name string, tags map[string]string) error
	RemoveTags(name string, keys []string) error
	Tags(name string) (map[string]string, error)
	Put(ctx context.Context, stream string, e stream.Entry) (stream.PutResult, error)
	PutBatch(ctx context.Context, stream string, entries []stream.Entry) ([]stream.PutResult, error)
	ShardIterator(req stream.IteratorRequest) (string, error)
	GetRecords(ctx context.Context, iterator string, limit int) (stream.GetRecordsResult, error)
	SplitShard(ctx context.Context, stream, shardID, newStartingHashKey string) error
	MergeShards(ctx context.Context, stream, shardID, adjacentShardID string) error
	UpdateShardCount(ctx context.Context, stream string, target int) error
	Wait(ctx context.Context, stream, shardID, after string) error
	LastSequenceNumber(stream, shardID string) (string, error)
}

var _ Backend = (*stream.Store)(nil)

// TargetPrefix is the X-Amz-Target prefix of every Kinesis operation.
const TargetPrefix = "Kinesis_20131202."

// Options configure New. Zero values mean defaults.
type Options struct {
	Config Config
	// Logger gets the API's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, gets the API's Prometheus metrics.
	Metrics prometheus.Registerer
	// Now is the clock for signature checks and metrics. Default time.Now.
	Now func() time.Time
	// DataDir, if set, keeps the enhanced fan-out consumer registry across
	// restarts, in DataDir/kinesis-consumers.json. Empty: memory only.
	DataDir string
}

// Server is the Kinesis Data Streams HTTP API over a Backend. It is an
// http.Handler for POST / (and OPTIONS / for CORS preflight); all methods
// are safe for concurrent use.
type Server struct {
	b    Backend
	cfg  Config
	log  *slog.Logger
	m    *metrics
	now  func() time.Time
	keys map[string]string // access key id -> secret

	inflight *semaphore.Weighted // request body bytes being handled

	cons         consumers
	consFile     string        // the registry's file; "" keeps it in memory
	subscribeFor time.Duration // SubscribeToShard lifetime; 5 minutes
	closing      chan struct{}
	closeOnce    sync.Once
}

// New returns a Server over b. It fails if opts.Config is invalid, the
// consumer registry file cannot be read (ErrConsumersFile) or the metrics
// cannot be registered.
func New(b Backend, opts Options) (*Server, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	s := &Server{b: b, cfg: opts.Config.withDefaults(), log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "kinesis")
	if s.now == nil {
		s.now = time.Now
	}
	s.inflight = semaphore.NewWeighted(int64(s.cfg.MaxInflightBytes))
	s.cons = consumers{byARN: map[string]*consumer{}, active: map[string]bool{}}
	if opts.DataDir != "" {
		s.consFile = filepath.Join(opts.DataDir, ConsumersFile)
	}
	s.subscribeFor = subscriptionLifetime
	s.closing = make(chan struct{})
	s.keys = map[string]string{}
	for _, k := range s.cfg.Auth.AccessKeys {
		s.keys[k.AccessKeyID] = k.SecretAccessKey
	}
	if err := s.loadConsumers(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	s.m = m
	return s, nil
}

// Register routes POST / and OPTIONS / of mux to s. GET / stays free for
// the dashboard.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("POST /{$}", s)
	mux.Handle("OPTIONS /{$}", s)
}

type opFunc func(s *Server, ctx context.Context, c codec, body []byte) (any, error)

// op adapts a typed handler: it decodes the body into In, answering
// SerializationException when the body does not fit the shape.
func op[In any](fn func(s *Server, ctx context.Context, in *In) (any, error)) opFunc {
	return func(s *Server, ctx context.Context, c codec, body []byte) (any, error) {
		in := new(In)
		if err := c.decode(body, in); err != nil {
			return nil, serializationError(err)
		}
		return fn(s, ctx, in)
	}
}

func serializationError(err error) error {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return newErr(ExSerialization, "%s", msg)
}

var operations = map[string]opFunc{
	"CreateStream":                  op((*Server).createStream),
	"DeleteStream":                  op((*Server).deleteStream),
	"DescribeStream":                op((*Server).describeStream),
	"DescribeStreamSummary":         op((*Server).describeStreamSummary),
	"ListStreams":                   op((*Server).listStreams),
	"ListShards":                    op((*Server).listShards),
	"PutRecord":                     op((*Server).putRecord),
	"PutRecords":                    op((*Server).putRecords),
	"GetShardIterator":              op((*Server).getShardIterator),
	"GetRecords":                    op((*Server).getRecords),
	"SplitShard":                    op((*Server).splitShard),
	"MergeShards":                   op((*Server).mergeShards),
	"UpdateShardCount":              op((*Server).updateShardCount),
	"IncreaseStreamRetentionPeriod": op((*Server).increaseRetention),
	"DecreaseStreamRetentionPeriod": op((*Server).decreaseRetention),
	"AddTagsToStream":               op((*Server).addTags),
	"RemoveTagsFromStream":          op((*Server).removeTags),
	"ListTagsForStream":             op((*Server).listTags),
	"RegisterStreamConsumer":        op((*Server).registerStreamConsumer),
	"DescribeStreamConsumer":        op((*Server).describeStreamConsumer),
	"ListStreamConsumers":           op((*Server).listStreamConsumers),
	"DeregisterStreamConsumer":      op((*Server).deregisterStreamConsumer),
	"SubscribeToShard":              op((*Server).subscribeToShard),
}

// Operations lists the operation names the API serves.
func Operations() []string {
	out := make([]string, 0, len(operations))
	for k := range operations {
		out = append(out, k)
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	h := w.Header()
	h.Set("x-amzn-RequestId", uuid.NewString())
	h.Set("x-amz-id-2", id2())
	s.cors(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	c := codecFor(r.Header.Get("Content-Type"))
	name, fn := "", opFunc(nil)
	if t := r.Header.Get("X-Amz-Target"); strings.HasPrefix(t, TargetPrefix) {
		name = t[len(TargetPrefix):]
		fn = operations[name]
	}
	label := name
	if fn == nil {
		label = "unknown"
	}
	out, err := s.serve(w, r, c, name, fn)
	status := http.StatusOK
	if err != nil {
		ae := toAPIError(err)
		if errors.Is(err, stream.ErrFull) {
			s.log.Warn("request refused: storage cap reached", "op", label, "err", err)
		} else if ae.Status >= 500 {
			s.log.Error("request failed", "op", label, "err", err)
		} else {
			s.log.Debug("request refused", "op", label, "type", ae.Type, "msg", ae.Message)
		}
		status = ae.Status
		out = errBody{Type: ae.Type, Message: ae.Message}
		s.m.requests.WithLabelValues(label, ae.Type).Inc()
	} else {
		s.m.requests.WithLabelValues(label, "OK").Inc()
	}
	if sub, ok := out.(*subscription); ok {
		sub.stream(w, r, c)
		return
	}
	s.m.latency.WithLabelValues(label).Observe(s.now().Sub(start).Seconds())
	s.write(w, c, status, out)
}

// bodyReadTimeout bounds how long a client may take to send its body, so a
// stalled upload cannot hold a connection (or memory) forever. It covers
// the body only: net/http lifts it when the body is read to its end (its
// background read of the connection starts with no deadline), so long
// answers such as SubscribeToShard's are not cut.
const bodyReadTimeout = 30 * time.Second

func (s *Server) serve(w http.ResponseWriter, r *http.Request, c codec, name string, fn opFunc) (any, error) {
	if r.ContentLength > int64(s.cfg.MaxBodyBytes) {
		return nil, s.tooLarge()
	}
	// A network deadline: the real clock, whatever s.now says.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	// The body is read before anything is reserved: a client that announces
	// a large body and sends nothing holds only what it sent, never the
	// in-flight budget that every other writer needs.
	body, err := readBody(r, int64(s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, s.tooLarge()
		}
		return nil, newErr(ExSerialization, "reading the request body: %v", err)
	}
	// Hold the body's size in the in-flight budget until the answer is
	// built: decoded records and the store's copy are what costs memory.
	weight := min(max(int64(len(body)), 1), int64(s.cfg.MaxInflightBytes))
	if !s.inflight.TryAcquire(weight) {
		s.m.waiting.Inc()
		err := s.inflight.Acquire(r.Context(), weight)
		s.m.waiting.Dec()
		if err != nil {
			return nil, newErr(ExSerialization, "request abandoned while waiting: %v", err)
		}
	}
	defer s.inflight.Release(weight)
	if err := s.authorize(r, body); err != nil {
		return nil, err
	}
	if fn == nil {
		// AWS sends no message with this one.
		return nil, &apiError{Status: http.StatusBadRequest, Type: ExUnknownOperation}
	}
	return fn(s, r.Context(), c, body)
}

// readBody reads the whole body, at most max bytes, in one allocation
// when the length is known and modest (up to 1 MiB); larger bodies grow
// as their bytes arrive, so an announced length costs nothing by itself.
func readBody(r *http.Request, max int64) ([]byte, error) {
	rd := http.MaxBytesReader(nil, r.Body, max)
	if n := r.ContentLength; n > 0 && n <= max && n <= 1<<20 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(rd)
}

func (s *Server) tooLarge() error {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Type: ExRequestEntityTooLarge,
		Message: "Request body exceeds " + strconv.FormatInt(int64(s.cfg.MaxBodyBytes), 10) + " bytes."}
}

// write sends out (nil: an empty 200 body, as AWS does for operations
// without output).
func (s *Server) write(w http.ResponseWriter, c codec, status int, out any) {
	h := w.Header()
	if out == nil {
		h.Set("Content-Type", c.contentType())
		h.Set("Content-Length", "0")
		w.WriteHeader(status)
		return
	}
	b, err := c.encode(out)
	if err != nil {
		s.log.Error("encoding response", "err", err)
		status = http.StatusInternalServerError
		b, _ = c.encode(errBody{Type: ExInternalFailure, Message: "encoding the response failed"})
	}
	h.Set("Content-Type", c.contentType())
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// cors answers browsers: allowed origins get the headers the AWS SDK for
// JavaScript needs, including the request id headers it reads.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	allowed := ""
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			allowed = "*"
			break
		}
		if strings.EqualFold(o, origin) {
			allowed = origin
			break
		}
	}
	if allowed == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", allowed)
	if allowed != "*" {
		h.Add("Vary", "Origin")
	}
	h.Set("Access-Control-Expose-Headers", "x-amzn-RequestId, x-amz-id-2")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "172800")
	}
}

func id2() string {
	var b [48]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// Status is what the API publishes on the status board under "kinesis".
type Status struct {
	// Auth is "sigv4" (access keys configured), "loopback" (unsigned, from
	// loopback clients only) or "open" (unsigned from anywhere).
	Auth       string   `json:"auth"`
	AccessKeys int      `json:"access_keys"`
	Operations []string `json:"operations"`
}

// Status returns the API's current state; safe for concurrent use.
func (s *Server) Status() Status {
	st := Status{Auth: "loopback", AccessKeys: len(s.keys), Operations: Operations()}
	switch {
	case len(s.keys) > 0:
		st.Auth = "sigv4"
	case s.cfg.Auth.AllowRemoteUnsigned:
		st.Auth = "open"
	}
	sort.Strings(st.Operations)
	return st
}
