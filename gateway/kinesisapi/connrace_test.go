package kinesisapi

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// stalledWriter plays a loaded machine on the client's side: the
// goroutine of net/http that writes a request body is held, its bytes
// already sent, until the SDK has the response headers, as if the
// scheduler had left it off the CPU that long. The SDK then reads the
// response body only once the writer is done: past the transport's 4 KiB
// buffer, the body is still in the socket.
type stalledWriter struct {
	mu      sync.Mutex
	armed   bool
	fired   bool          // the middleware ran for this arm()
	parked  chan struct{} // closed when the writer is held
	release chan struct{} // closed once the SDK has the response
	closed  chan struct{} // closed when an armed connection closes
}

func (s *stalledWriter) arm() {
	s.mu.Lock()
	s.armed, s.fired = true, false
	s.parked, s.release, s.closed = make(chan struct{}), make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
}

// middleware runs right after the SDK's HTTP handler returned, which has
// closed the request body: it lets the writer go and waits for what it does.
func (s *stalledWriter) middleware(st *middleware.Stack) error {
	return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("stalledWriter", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleDeserialize(ctx, in)
		s.mu.Lock()
		parked, release, closed, fired := s.parked, s.release, s.closed, s.fired
		s.fired = true // once per arm(): a retry runs this again
		s.mu.Unlock()
		if release != nil && !fired {
			select {
			case <-parked:
			case <-time.After(2 * time.Second):
			}
			close(release)
			select {
			case <-closed:
			case <-time.After(2 * time.Second): // the race did not happen
			}
		}
		return out, md, err
	}), middleware.After)
}

type stalledConn struct {
	net.Conn
	s    *stalledWriter
	once sync.Once
}

func (c *stalledConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	s := c.s
	s.mu.Lock()
	stall := s.armed && !bytes.HasPrefix(p, []byte("POST "))
	parked, release := s.parked, s.release
	if stall {
		s.armed = false
	}
	s.mu.Unlock()
	if stall {
		close(parked)
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}
	return n, err
}

func (c *stalledConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		if c.s.closed != nil {
			close(c.s.closed)
			c.s.closed = nil
		}
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// TestSDKConnectionRaceIsClientSide reproduces the "use of closed network
// connection" that GetRecords and SubscribeToShard showed on loaded CI
// machines, and pins down where it comes from: the client, not the API.
//
// The Go SDK closes a request's body as soon as the response headers are
// in. net/http's writer goroutine, after sending exactly Content-Length
// bytes, still checks the body for extra bytes; the SDK's closed body then
// answers io.EOF as an error, and the transport treats that as a failed
// write and closes the connection, under the response body the SDK is
// still reading. It takes an answer that arrives before the writer
// goroutine runs again: microseconds on loopback, so a loaded machine and a
// gateway on the same host (AWS is a network away). The server did nothing
// wrong: it read the whole request and sent the whole answer.
//
// A consumer with the SDK's default retryer never sees it (the SDK retries
// "use of closed network connection"); a client built with
// RetryMaxAttempts 1 does.
func TestSDKConnectionRaceIsClientSide(t *testing.T) {
	g := newGateway(t, Config{})
	sw := &stalledWriter{}
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stalledConn{Conn: c, s: sw}, nil
		}
	})
	client := func(attempts int) *kinesis.Client {
		return testutil.KinesisClient(g.url, testutil.KinesisSDKRetries(attempts), testutil.KinesisHTTPClient(hc))
	}
	ctx := ctxT(t)
	c := client(0) // the SDK's default retries, for the setup
	name := aws.String("race")
	must[*kinesis.CreateStreamOutput](t)(c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)}))
	recs := make([]types.PutRecordsRequestEntry, 64)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: bytes.Repeat([]byte{'r'}, 4<<10)}
	}
	must[*kinesis.PutRecordsOutput](t)(c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: name, Records: recs}))
	it := must[*kinesis.GetShardIteratorOutput](t)(c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: name,
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})).ShardIterator
	stalled := func(o *kinesis.Options) { o.APIOptions = append(o.APIOptions, sw.middleware) }

	// One attempt: the connection is closed on the client's side mid-answer.
	sw.arm()
	_, err := client(1).GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it}, stalled)
	if !testutil.SDKConnRace(err) {
		t.Fatalf("GetRecords with a stalled writer goroutine: got %v, want the client's own net.ErrClosed", err)
	}
	// The API answered in full: the same iterator reads every record (with
	// the SDK's retries: the race also happens unprovoked, now and then).
	out := must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it}))
	if len(out.Records) != len(recs) {
		t.Fatalf("read %d records, want %d", len(out.Records), len(recs))
	}

	// The SDK's default retryer (3 attempts) rides over it.
	sw.arm()
	out = must[*kinesis.GetRecordsOutput](t)(c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it}, stalled))
	if len(out.Records) != len(recs) {
		t.Fatalf("with retries: read %d records, want %d", len(out.Records), len(recs))
	}
}
