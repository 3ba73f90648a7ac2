// Package s3sink delivers batches as objects to S3-compatible storage (AWS
// S3, versitygw, Ceph RGW, Garage, MinIO, ...) with the aws-sdk-go-v2 S3
// client and SigV4 credentials. Keys follow Firehose:
// prefix/YYYY/MM/DD/HH/name-version-YYYY-MM-DD-HH-MM-SS-id.ext, derived from
// the batch's identity, so a retried batch overwrites its own object.
package s3sink

import (
	"bytes"
	"context"
	_ "embed" // sample.yaml
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/kaiten-edge/kaiten/sync/config"
	"github.com/kaiten-edge/kaiten/sync/internal/awscfg"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// DefaultTimeout bounds one request when the config sets no timeout.
const DefaultTimeout = 2 * time.Minute

// Config configures the destination: the value of a sync entry's s3 key
// (see sample.yaml). Zero values mean the defaults.
type Config struct {
	// Bucket is required.
	Bucket string `yaml:"bucket"`
	// Prefix is the key prefix, with Firehose's !{timestamp:…} expressions;
	// without one, YYYY/MM/DD/HH/ (UTC) is appended.
	Prefix string `yaml:"prefix"`
	// ErrorPrefix is the error output's prefix; default
	// "<error-output-type>/".
	ErrorPrefix string `yaml:"error_prefix"`
	// PathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key (most S3-compatible servers want it).
	PathStyle bool `yaml:"path_style"`
	// Access holds endpoint (empty: AWS), region, access_key_id,
	// secret_access_key and timeout (default 2 minutes).
	awscfg.Access `yaml:",inline"`
}

// Validate checks the config without building a client; errors name the
// key, e.g. "bucket: must not be empty".
func (c *Config) Validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket: must not be empty"))
	}
	if err := sink.ValidatePrefix(c.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("prefix: %w", err))
	}
	if err := sink.ValidatePrefix(c.ErrorPrefix); err != nil {
		errs = append(errs, fmt.Errorf("error_prefix: %w", err))
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint: %q: want a URL such as http://127.0.0.1:7070", c.Endpoint))
		}
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs = append(errs, errors.New("secret_access_key: set both access_key_id and secret_access_key, or neither"))
	}
	return errors.Join(errs...)
}

// Build implements config.Destination: it makes the S3 client.
func (c *Config) Build(config.Env) (sink.Sink, error) { return New(*c) }

// withDefaults fills in the defaults of zero values.
func (c Config) withDefaults() Config {
	c.Access = c.Access.WithDefaults(DefaultTimeout)
	return c
}

//go:embed sample.yaml
var sample []byte

func init() {
	config.Register(config.Factory{Key: "s3", Order: 20, Sample: sample, New: func() config.Destination { return new(Config) }})
}

// API is the part of the S3 client the sink calls.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Sink is the S3 destination; safe for concurrent use.
type Sink struct {
	cfg    Config
	client API
	now    func() time.Time
}

// New checks cfg and builds the S3 client. The SDK's own retries are off:
// the delivery stream retries with its backoff and the batch's stable key.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Sink{cfg: cfg, client: NewClient(cfg), now: time.Now}, nil
}

// NewWithClient uses a given client (tests, or a caller's own options).
func NewWithClient(cfg Config, client API) *Sink {
	return &Sink{cfg: cfg, client: client, now: time.Now}
}

// NewClient returns an S3 client for cfg: static SigV4 credentials, the
// endpoint and addressing style, no SDK retries, checksums only where the
// operation requires them (S3-compatible servers differ in what they take).
func NewClient(cfg Config) *s3.Client {
	cfg = cfg.withDefaults()
	ak, sk, tok := cfg.Keys()
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	opts := s3.Options{
		Region:                     cfg.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(ak, sk, tok),
		UsePathStyle:               cfg.PathStyle,
		HTTPClient:                 &http.Client{Transport: tr, Timeout: cfg.Timeout.Duration},
		Retryer:                    aws.NopRetryer{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	return s3.New(opts)
}

// Kind implements sink.Sink.
func (s *Sink) Kind() string { return "s3" }

// WantsBody implements sink.BodySink.
func (s *Sink) WantsBody() bool { return true }

// Key is the object key Deliver writes b to.
func (s *Sink) Key(b *sink.Batch) string { return sink.ObjectKey(s.cfg.Prefix, b) }

// Deliver implements sink.Sink: one PutObject of b.Body.
func (s *Sink) Deliver(ctx context.Context, b *sink.Batch) error {
	return s.put(ctx, s.Key(b), b.Body)
}

// DeliverErrors implements sink.ErrorSink: one JSON-lines object under the
// error prefix.
func (s *Sink) DeliverErrors(ctx context.Context, b *sink.ErrorBatch) error {
	return s.put(ctx, sink.ErrorObjectKey(s.cfg.ErrorPrefix, b), sink.EncodeErrors(b, s.now().UnixMilli()))
}

func (s *Sink) put(ctx context.Context, key string, body []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		return classify(fmt.Errorf("s3sink: put s3://%s/%s: %w", s.cfg.Bucket, key, err))
	}
	return nil
}

// classify marks the errors that retrying cannot fix as permanent: a 400
// or 413 about the request itself. Credentials, missing buckets (403, 404)
// and throttling stay transient: an operator can fix them and the backlog
// then drains.
func classify(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "EntityTooLarge", "InvalidArgument", "KeyTooLongError", "InvalidDigest", "MetadataTooLarge":
			return sink.Permanent(err)
		case "RequestTimeout", "RequestTimeTooSkewed", "ExpiredToken", "SlowDown", "InternalError":
			return err
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusRequestEntityTooLarge, http.StatusLengthRequired:
			return sink.Permanent(err)
		}
	}
	return err
}
