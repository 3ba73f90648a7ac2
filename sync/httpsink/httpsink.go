// Package httpsink delivers batches to an HTTP endpoint with the Firehose
// HTTP-endpoint delivery protocol (version 1.0): one POST per batch with
// the headers X-Amz-Firehose-Protocol-Version, X-Amz-Firehose-Request-Id,
// X-Amz-Firehose-Source-Arn, X-Amz-Firehose-Access-Key (when configured)
// and X-Amz-Firehose-Common-Attributes (when configured), and the body
//
//	{"requestId":"…","timestamp":ms,"records":[{"data":"base64"},…]}
//
// The batch counts as delivered only on 200 with a JSON answer whose
// requestId matches. The request id is derived from the batch's identity,
// so a retry, even after a restart, reuses it and the endpoint can
// de-duplicate. The delivery stream's backoff (1 s doubling to 2 min, with
// jitter, by default) spaces the retries.
package httpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	_ "embed" // sample.yaml
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/sync/config"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// DefaultTimeout is Firehose's default request timeout.
const DefaultTimeout = 3 * time.Minute

// Config configures the destination: the value of a sync entry's
// http_endpoint key (see sample.yaml). Zero values mean the defaults.
type Config struct {
	// URL is the endpoint (https in production). Required.
	URL string `yaml:"url"`
	// AccessKey is sent as X-Amz-Firehose-Access-Key; empty sends none.
	AccessKey string `yaml:"access_key"`
	// CommonAttributes are sent as X-Amz-Firehose-Common-Attributes.
	CommonAttributes map[string]string `yaml:"common_attributes"`
	// ContentEncoding is "gzip" or "none" ("", the default).
	ContentEncoding string `yaml:"content_encoding"`
	// SourceARN is sent as X-Amz-Firehose-Source-Arn. Default
	// arn:aws:firehose:us-east-1:000000000000:deliverystream/<name>. Not a
	// YAML key.
	SourceARN string `yaml:"-"`
	// Timeout bounds one request, answer included. Default 3 minutes
	// (Firehose's default).
	Timeout gconfig.Duration `yaml:"timeout"`
	// Client, optional, makes the requests. Not a YAML key.
	Client *http.Client `yaml:"-"`
}

// Validate checks the config without building a client; errors name the
// key, e.g. "url: must not be empty".
func (c *Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url: must not be empty"))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url: %q: want an http or https URL", c.URL))
	}
	switch c.ContentEncoding {
	case "", "none", "gzip":
	default:
		errs = append(errs, fmt.Errorf("content_encoding: %q: want none or gzip", c.ContentEncoding))
	}
	return errors.Join(errs...)
}

// Build implements config.Destination.
func (c *Config) Build(config.Env) (sink.Sink, error) { return New(*c) }

//go:embed sample.yaml
var sample []byte

func init() {
	config.Register(config.Factory{Key: "http_endpoint", Order: 30, Sample: sample, New: func() config.Destination { return new(Config) }})
}

// Sink is the HTTP endpoint destination; safe for concurrent use.
type Sink struct {
	cfg    Config
	client *http.Client
	now    func() time.Time
}

// New checks cfg and returns the sink.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ContentEncoding == "none" {
		cfg.ContentEncoding = ""
	}
	if cfg.Timeout.Duration <= 0 {
		cfg.Timeout.Duration = DefaultTimeout
	}
	c := cfg.Client
	if c == nil {
		c = &http.Client{Timeout: cfg.Timeout.Duration}
	}
	return &Sink{cfg: cfg, client: c, now: time.Now}, nil
}

// Kind implements sink.Sink.
func (s *Sink) Kind() string { return "http_endpoint" }

// Request is the protocol's request body.
type Request struct {
	RequestID string          `json:"requestId"`
	Timestamp int64           `json:"timestamp"`
	Records   []RequestRecord `json:"records"`
}

// RequestRecord is one record; Data is base64 in JSON.
type RequestRecord struct {
	Data []byte `json:"data"`
}

// Response is the protocol's response body.
type Response struct {
	RequestID    string `json:"requestId"`
	Timestamp    int64  `json:"timestamp"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}

// CommonAttributesHeader is the header's JSON shape.
type CommonAttributesHeader struct {
	CommonAttributes map[string]string `json:"commonAttributes"`
}

// RequestID is the request id of a batch (a UUID from its identity).
func RequestID(b *sink.Batch) string { return sink.UUID(b.ID) }

// Deliver implements sink.Sink.
func (s *Sink) Deliver(ctx context.Context, b *sink.Batch) error {
	reqID := RequestID(b)
	body := Request{RequestID: reqID, Timestamp: s.now().UnixMilli(), Records: make([]RequestRecord, len(b.Records))}
	for i, r := range b.Records {
		body.Records[i].Data = r.Data
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return sink.Permanent(fmt.Errorf("httpsink: %w", err))
	}
	if s.cfg.ContentEncoding == "gzip" {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(raw)
		if err := zw.Close(); err != nil {
			return fmt.Errorf("httpsink: gzip: %w", err)
		}
		raw = buf.Bytes()
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout.Duration)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, s.cfg.URL, bytes.NewReader(raw))
	if err != nil {
		return sink.Permanent(fmt.Errorf("httpsink: %w", err))
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Kaiten-Firehose/1.0")
	h.Set("X-Amz-Firehose-Protocol-Version", "1.0")
	h.Set("X-Amz-Firehose-Request-Id", reqID)
	arn := s.cfg.SourceARN
	if arn == "" {
		arn = "arn:aws:firehose:us-east-1:000000000000:deliverystream/" + b.DeliveryStream
	}
	h.Set("X-Amz-Firehose-Source-Arn", arn)
	if s.cfg.AccessKey != "" {
		h.Set("X-Amz-Firehose-Access-Key", s.cfg.AccessKey)
	}
	if len(s.cfg.CommonAttributes) > 0 {
		ca, _ := json.Marshal(CommonAttributesHeader{CommonAttributes: s.cfg.CommonAttributes})
		h.Set("X-Amz-Firehose-Common-Attributes", string(ca))
	}
	if s.cfg.ContentEncoding != "" {
		h.Set("Content-Encoding", s.cfg.ContentEncoding)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("httpsink: POST %s: %w", s.cfg.URL, err)
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("httpsink: reading the answer: %w", err)
	}
	var r Response
	_ = json.Unmarshal(ans, &r)
	switch {
	case resp.StatusCode == http.StatusOK:
		if r.RequestID != reqID {
			return fmt.Errorf("httpsink: 200 with requestId %q, want %q", r.RequestID, reqID)
		}
		return nil
	case resp.StatusCode == http.StatusRequestEntityTooLarge, resp.StatusCode == http.StatusBadRequest,
		resp.StatusCode == http.StatusUnsupportedMediaType:
		return sink.Permanent(fmt.Errorf("httpsink: %s: %s", resp.Status, r.ErrorMessage))
	default:
		return fmt.Errorf("httpsink: %s: %s", resp.Status, r.ErrorMessage)
	}
}
