// Package sink is the contract between a delivery stream (sync/delivery) and
// its destination (sync/s3sink, sync/httpsink, sync/kinesissink,
// sync/localsink). It holds only types, the error classification and the
// helpers every object-store destination shares (object keys, encoding), so
// that destinations and the engine import it and never each other.
package sink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Record is one record of a batch, after transformation.
type Record struct {
	PartitionKey   string
	SequenceNumber string
	// ArrivalTime is the approximate arrival time in the source stream.
	ArrivalTime time.Time
	Data        []byte
}

// Batch is what a delivery stream hands to its destination. Its identity,
// ID, is derived from (delivery stream, shard, first and last sequence
// number) only, so a retry of the same batch, in this process or after a
// restart, carries the same ID, the same object key and the same request id.
type Batch struct {
	// ID is a stable 32-hex-digit id; see BatchID.
	ID             string
	DeliveryStream string
	// Version is the delivery stream's configuration version (Firehose's
	// DeliveryStreamVersion); it appears in object keys. Default 1.
	Version int
	// Stream and ShardID name where the records were read.
	Stream   string
	ShardID  string
	FirstSeq string
	LastSeq  string
	// Time is the approximate arrival time of the first record read into
	// the batch: object keys and time prefixes use it, not the wall clock,
	// so that a retry after a restart produces the same key.
	Time time.Time
	// Records are the records to deliver, in shard order.
	Records []Record
	// Body is the encoded object (records joined by the delimiter, then
	// compressed) for destinations that implement BodySink; nil otherwise.
	Body []byte
	// Ext is the object name extension of Body's compression (".gz", ...).
	Ext string
	// ContentEncoding is "gzip", "snappy", "zip" or "" for Body.
	ContentEncoding string
	// Acked is scratch state owned by the destination: a destination that
	// can deliver part of a batch (Kinesis PutRecords) marks what is done,
	// and a retry of the same *Batch sends only the rest. The engine
	// retries with the same *Batch value and never touches Acked.
	Acked []bool
	// Attempts counts delivery attempts so far, including the current one.
	Attempts int
}

// Sink is a destination. Deliver returns nil only once the destination has
// durably acknowledged every record of b; the engine checkpoints the source
// stream only then. Deliver must be idempotent for a given b.ID (a retried
// object overwrites itself, a retried request reuses its id). Deliver is
// called concurrently for batches of different shards, never concurrently
// for the same batch.
//
// Errors: a *RecordErrors for records that failed permanently while the rest
// was acknowledged; an error wrapping ErrPermanent when the whole batch can
// never be delivered (e.g. HTTP 413); anything else is transient and the
// engine retries it with backoff.
type Sink interface {
	Deliver(ctx context.Context, b *Batch) error
	// Kind names the destination type for metrics and status:
	// "s3", "http_endpoint", "kinesis" or "local".
	Kind() string
}

// BodySink is a Sink that takes one encoded object per batch (Body, Ext,
// ContentEncoding filled in by the engine), as S3 and the local directory do.
type BodySink interface {
	Sink
	WantsBody() bool
}

// HealthSink is a Sink that can tell why it cannot take batches although
// its server answers: a problem an operator must fix (a missing table, a
// column mismatch), for which the engine's retries wait while the backlog
// stays in the stream.
type HealthSink interface {
	Sink
	// Check looks for such a problem now and returns it, or nil. The
	// engine calls it once when a delivery stream starts, so the problem
	// is reported before the first batch; it must return within its own
	// timeout.
	Check(ctx context.Context) error
	// Degraded returns the problem the last check or delivery found, ""
	// when there is none. Safe for concurrent use; it must not block.
	Degraded() string
}

// ErrorSink is a Sink with its own error output (Firehose's error output
// prefix). A delivery stream whose destination is not an ErrorSink, or whose
// error output fails, writes failed records to the dead-letter stream.
type ErrorSink interface {
	DeliverErrors(ctx context.Context, b *ErrorBatch) error
}

// FailedRecord is a record that goes to the error output.
type FailedRecord struct {
	Record
	// Code is a short error code: ProcessingFailed, Oversize, Permanent,
	// RetryExpired, ...
	Code string
	// Message says why, in words.
	Message  string
	Attempts int
}

// ErrorBatch is a batch of failed records. Its ID is derived from the batch
// it came from, so that a retry overwrites itself too.
type ErrorBatch struct {
	ID             string
	DeliveryStream string
	Version        int
	Stream         string
	ShardID        string
	Time           time.Time
	// OutputType is Firehose's !{firehose:error-output-type}:
	// "processing-failed" for transform failures, "delivery-failed" otherwise.
	OutputType string
	Records    []FailedRecord
}

// ErrPermanent marks an error that retrying cannot fix.
var ErrPermanent = errors.New("sink: permanent failure")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (p permanentError) Error() string        { return p.err.Error() }
func (p permanentError) Unwrap() []error      { return []error{p.err, ErrPermanent} }
func (p permanentError) Is(target error) bool { return target == ErrPermanent }

// RecordErrors reports records that failed permanently; every record of the
// batch not listed was acknowledged.
type RecordErrors struct {
	// Failed maps an index into Batch.Records to its error.
	Failed map[int]RecordError
}

// RecordError is why one record failed.
type RecordError struct {
	Code    string
	Message string
}

func (e *RecordErrors) Error() string {
	return fmt.Sprintf("sink: %d records failed permanently", len(e.Failed))
}

// BatchID derives a batch's identity from where its records came from.
func BatchID(deliveryStream, shardID, firstSeq, lastSeq string) string {
	h := sha256.Sum256([]byte(deliveryStream + "\x00" + shardID + "\x00" + firstSeq + "\x00" + lastSeq))
	return hex.EncodeToString(h[:16])
}

// UUID formats a 32-hex-digit id as 8-4-4-4-12, the shape of Firehose's
// request ids and random strings.
func UUID(id string) string {
	if len(id) != 32 {
		return id
	}
	return id[0:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32]
}

// ObjectKey is the Firehose S3 key of a batch:
// prefix + YYYY/MM/DD/HH/ + name-version-YYYY-MM-DD-HH-MM-SS-id + ext, where
// the time is the batch's Time in UTC. When prefix holds a !{timestamp:...}
// expression, no YYYY/MM/DD/HH/ is added, as in Firehose.
func ObjectKey(prefix string, b *Batch) string {
	return objectKey(prefix, b.DeliveryStream, b.Version, b.Time, b.ID, "", b.Ext)
}

// ErrorObjectKey is the key of an error batch: errorPrefix (default
// "<output type>/") + YYYY/MM/DD/HH/ + name-version-time-id.
func ErrorObjectKey(errorPrefix string, b *ErrorBatch) string {
	if errorPrefix == "" {
		errorPrefix = b.OutputType + "/"
	}
	return objectKey(errorPrefix, b.DeliveryStream, b.Version, b.Time, b.ID, b.OutputType, "")
}

func objectKey(prefix, name string, version int, t time.Time, id, outputType, ext string) string {
	t = t.UTC()
	p, hadTime := ExpandPrefix(prefix, t, outputType)
	if !hadTime {
		p += t.Format("2006/01/02/15/")
	}
	if version == 0 {
		version = 1
	}
	return fmt.Sprintf("%s%s-%d-%s-%s%s", p, name, version, t.Format("2006-01-02-15-04-05"), UUID(id), ext)
}

// ExpandPrefix replaces Firehose's prefix expressions: !{timestamp:PATTERN}
// (a Java DateTimeFormatter pattern of yyyy, MM, dd, HH, mm, ss and literal
// characters) and !{firehose:error-output-type}. !{firehose:random-string}
// becomes nothing: keys here are derived from the batch so that retries
// overwrite. It reports whether a timestamp expression was present.
func ExpandPrefix(prefix string, t time.Time, outputType string) (string, bool) {
	var out strings.Builder
	hadTime := false
	for {
		i := strings.Index(prefix, "!{")
		if i < 0 {
			out.WriteString(prefix)
			break
		}
		j := strings.IndexByte(prefix[i:], '}')
		if j < 0 {
			out.WriteString(prefix)
			break
		}
		out.WriteString(prefix[:i])
		expr := prefix[i+2 : i+j]
		prefix = prefix[i+j+1:]
		switch {
		case strings.HasPrefix(expr, "timestamp:"):
			hadTime = true
			out.WriteString(FormatJavaTime(strings.TrimPrefix(expr, "timestamp:"), t.UTC()))
		case expr == "firehose:error-output-type":
			out.WriteString(outputType)
		case expr == "firehose:random-string":
		default:
			out.WriteString("!{" + expr + "}")
		}
	}
	return out.String(), hadTime
}

// ValidatePrefix checks the prefix expressions ExpandPrefix understands.
func ValidatePrefix(prefix string) error {
	for {
		i := strings.Index(prefix, "!{")
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(prefix[i:], '}')
		if j < 0 {
			return fmt.Errorf("unclosed !{ expression")
		}
		expr := prefix[i+2 : i+j]
		switch {
		case strings.HasPrefix(expr, "timestamp:"):
		case expr == "firehose:error-output-type", expr == "firehose:random-string":
		default:
			return fmt.Errorf("unknown expression !{%s}: want !{timestamp:PATTERN}, !{firehose:error-output-type} or !{firehose:random-string}", expr)
		}
		prefix = prefix[i+j+1:]
	}
}

// FormatJavaTime formats t with the letters of a Java DateTimeFormatter
// pattern that object prefixes use: yyyy, yy, MM, dd, HH, mm, ss; text in
// single quotes and any other character is copied.
func FormatJavaTime(pattern string, t time.Time) string {
	var out strings.Builder
	for i := 0; i < len(pattern); {
		c := pattern[i]
		if c == '\'' {
			j := strings.IndexByte(pattern[i+1:], '\'')
			if j < 0 {
				out.WriteString(pattern[i+1:])
				break
			}
			out.WriteString(pattern[i+1 : i+1+j])
			i += j + 2
			continue
		}
		n := 1
		for i+n < len(pattern) && pattern[i+n] == c {
			n++
		}
		switch {
		case c == 'y' && n == 2:
			fmt.Fprintf(&out, "%02d", t.Year()%100)
		case c == 'y':
			fmt.Fprintf(&out, "%04d", t.Year())
		case c == 'M':
			fmt.Fprintf(&out, "%02d", int(t.Month()))
		case c == 'd':
			fmt.Fprintf(&out, "%02d", t.Day())
		case c == 'H':
			fmt.Fprintf(&out, "%02d", t.Hour())
		case c == 'm':
			fmt.Fprintf(&out, "%02d", t.Minute())
		case c == 's':
			fmt.Fprintf(&out, "%02d", t.Second())
		default:
			out.WriteString(pattern[i : i+n])
		}
		i += n
	}
	return out.String()
}
