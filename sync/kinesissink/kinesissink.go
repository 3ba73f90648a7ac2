// Package kinesissink delivers batches upstream with Kinesis PutRecords, to
// AWS or to another Kaiten acting as a regional hub, through the
// aws-sdk-go-v2 Kinesis client. Partition keys are kept; a partial failure
// (FailedRecordCount > 0) retries only the records that failed, and sends
// nothing newer until they are in, so records of one partition key keep
// their order as long as the upstream fails a shard's records from some
// point of a request on (as throttling does).
//
// PutRecords has no request id, so an upstream Kinesis can hold a record
// twice when a gateway crashes after the upstream acknowledged and before
// the checkpoint; within one process, retries never resend an
// acknowledged record.
package kinesissink

import (
	"context"
	_ "embed" // sample.yaml
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/sync/config"
	"github.com/kaiten-edge/kaiten/sync/internal/awscfg"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// Limits of PutRecords, as in Kinesis.
const (
	maxRecords      = 500
	maxRequestBytes = 5 << 20
	maxRecordBytes  = 1 << 20
	maxKeyChars     = 256
)

// DefaultTimeout bounds one request when the config sets no timeout.
const DefaultTimeout = time.Minute

// Config configures the destination: the value of a sync entry's kinesis
// key (see sample.yaml). Zero values mean the defaults.
type Config struct {
	// StreamName or StreamARN names the upstream stream; one is required.
	StreamName string `yaml:"stream_name"`
	StreamARN  string `yaml:"stream_arn"`
	// Access holds endpoint (another Kaiten: http://hub:8080; empty: AWS),
	// region, access_key_id, secret_access_key (empty, with none in the
	// environment either: placeholder keys that an unauthenticated Kaiten
	// accepts) and timeout (default 1 minute).
	awscfg.Access `yaml:",inline"`
}

// Validate checks the config without building a client; errors name the
// key.
func (c *Config) Validate() error {
	if c.StreamName == "" && c.StreamARN == "" {
		return errors.New("stream_name: one of stream_name or stream_arn is required")
	}
	return nil
}

// Build implements config.Destination: it makes the Kinesis client.
func (c *Config) Build(config.Env) (sink.Sink, error) { return New(*c) }

//go:embed sample.yaml
var sample []byte

func init() {
	config.Register(config.Factory{Key: "kinesis", Order: 40, Sample: sample, New: func() config.Destination { return new(Config) }})
}

// API is the part of the Kinesis client the sink calls.
type API interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Sink is the Kinesis destination; safe for concurrent use.
type Sink struct {
	cfg    Config
	client API
}

// New checks cfg and builds the client (SDK retries off: the delivery
// stream retries, and only the failed records).
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Access = cfg.Access.WithDefaults(DefaultTimeout)
	ak, sk, tok := cfg.Keys()
	if ak == "" && sk == "" {
		ak, sk = "kaiten", "kaiten"
	}
	opts := kinesis.Options{
		Region:      cfg.Region,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, tok),
		HTTPClient:  &http.Client{Timeout: cfg.Timeout.Duration},
		Retryer:     aws.NopRetryer{},
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	return &Sink{cfg: cfg, client: kinesis.New(opts)}, nil
}

// NewWithClient uses a given client.
func NewWithClient(cfg Config, client API) *Sink { return &Sink{cfg: cfg, client: client} }

// Kind implements sink.Sink.
func (s *Sink) Kind() string { return "kinesis" }

// Deliver implements sink.Sink. Records already acknowledged in an earlier
// attempt of the same batch (b.Acked) are not sent again. Records that
// Kinesis can never take (data over 1 MiB, a partition key of 0 or more
// than 256 characters) are reported in a *sink.RecordErrors once the rest
// is acknowledged.
func (s *Sink) Deliver(ctx context.Context, b *sink.Batch) error {
	if len(b.Acked) != len(b.Records) {
		b.Acked = make([]bool, len(b.Records))
	}
	bad := map[int]sink.RecordError{}
	var todo []int
	for i, r := range b.Records {
		if b.Acked[i] {
			continue
		}
		switch n := utf8.RuneCountInString(r.PartitionKey); {
		case len(r.Data) > maxRecordBytes:
			bad[i] = sink.RecordError{Code: "Oversize", Message: fmt.Sprintf("record of %d bytes is over the Kinesis limit of 1 MiB", len(r.Data))}
			continue
		case n == 0 || n > maxKeyChars:
			bad[i] = sink.RecordError{Code: "InvalidPartitionKey", Message: fmt.Sprintf("partition key of %d characters: want 1 to 256", n)}
			continue
		}
		todo = append(todo, i)
	}
	var firstErr error
	failed := 0
	for len(todo) > 0 {
		n, size := 0, 0
		for n < len(todo) && n < maxRecords {
			r := b.Records[todo[n]]
			sz := len(r.Data) + len(r.PartitionKey)
			if n > 0 && size+sz > maxRequestBytes {
				break
			}
			size += sz
			n++
		}
		chunk := todo[:n]
		todo = todo[n:]
		in := &kinesis.PutRecordsInput{Records: make([]types.PutRecordsRequestEntry, len(chunk))}
		if s.cfg.StreamARN != "" {
			in.StreamARN = aws.String(s.cfg.StreamARN)
		} else {
			in.StreamName = aws.String(s.cfg.StreamName)
		}
		for j, i := range chunk {
			r := b.Records[i]
			in.Records[j] = types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: aws.String(r.PartitionKey)}
		}
		out, err := s.client.PutRecords(ctx, in)
		if err != nil {
			firstErr = fmt.Errorf("kinesissink: PutRecords: %w", err)
			failed += len(chunk) + len(todo)
			break
		}
		if len(out.Records) != len(chunk) {
			firstErr = fmt.Errorf("kinesissink: PutRecords answered %d entries for %d", len(out.Records), len(chunk))
			failed += len(chunk) + len(todo)
			break
		}
		for j, res := range out.Records {
			if res.ErrorCode == nil {
				b.Acked[chunk[j]] = true
				continue
			}
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("kinesissink: record failed: %s: %s", aws.ToString(res.ErrorCode), aws.ToString(res.ErrorMessage))
			}
		}
		if failed > 0 {
			// Send nothing after a partial failure: the retry sends the
			// failed records first, so later records of the same partition
			// key never overtake them.
			failed += len(todo)
			break
		}
	}
	if failed > 0 {
		return fmt.Errorf("%w (%d of %d records still to send)", firstErr, failed, len(b.Records))
	}
	if len(bad) > 0 {
		return &sink.RecordErrors{Failed: bad}
	}
	return nil
}
