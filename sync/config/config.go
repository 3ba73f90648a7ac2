// Package config is the "sync" section of the gateway's YAML: a list of
// delivery streams, each with its buffering, transform, compression, retry
// and one destination. sample.yaml in sync/ documents every key with its
// default. Build turns one entry into a delivery.Config with its sink.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/sync/delivery"
	"github.com/kaiten-edge/kaiten/sync/httpsink"
	"github.com/kaiten-edge/kaiten/sync/kinesissink"
	"github.com/kaiten-edge/kaiten/sync/localsink"
	"github.com/kaiten-edge/kaiten/sync/s3sink"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/transform"
)

// Section is the whole "sync" section.
type Section []Spec

// Spec is one delivery stream as the sync section describes it: its
// source, buffering, transform, encoding, retry and one destination. Build
// turns it into the delivery.Config a delivery.Stream runs with.
type Spec struct {
	Name    string `yaml:"name"`
	Stream  string `yaml:"stream"`
	StartAt string `yaml:"start_at"` // trim_horizon (default) or latest
	Version int    `yaml:"version"`  // default 1
	Buffer  struct {
		Size     gconfig.ByteSize  `yaml:"size"`     // default 5MiB; 1MiB to 128MiB
		Interval *gconfig.Duration `yaml:"interval"` // default 300s; 0s to 900s
	} `yaml:"buffer"`
	RecordDelimiter string `yaml:"record_delimiter"` // newline (default) or none
	Compression     string `yaml:"compression"`      // gzip (default), snappy, zip or none
	Retry           struct {
		Initial  gconfig.Duration `yaml:"initial"`  // default 1s
		Max      gconfig.Duration `yaml:"max"`      // default 2m
		Duration gconfig.Duration `yaml:"duration"` // default: within the source stream's retention
	} `yaml:"retry"`
	DeadLetter   string     `yaml:"dead_letter"` // default deadletter
	Transform    *Transform `yaml:"transform"`
	Local        *Local     `yaml:"local"`
	S3           *S3        `yaml:"s3"`
	HTTPEndpoint *HTTP      `yaml:"http_endpoint"`
	Kinesis      *Kinesis   `yaml:"kinesis"`
}

// Transform is the optional transform: http or builtin, not both.
type Transform struct {
	HTTP *struct {
		URL     string           `yaml:"url"`
		Timeout gconfig.Duration `yaml:"timeout"` // default 60s
		Retries int              `yaml:"retries"` // default 3; -1 for none
	} `yaml:"http"`
	Builtin *struct {
		Fields []struct {
			From string `yaml:"from"`
			To   string `yaml:"to"`
		} `yaml:"fields"`
		DropIf string `yaml:"drop_if"`
	} `yaml:"builtin"`
}

// Local is the local directory destination.
type Local struct {
	Dir         string `yaml:"dir"` // default delivered (inside the data dir)
	Prefix      string `yaml:"prefix"`
	ErrorPrefix string `yaml:"error_prefix"`
}

// S3 is the S3-compatible destination.
type S3 struct {
	Bucket          string           `yaml:"bucket"`
	Prefix          string           `yaml:"prefix"`
	ErrorPrefix     string           `yaml:"error_prefix"`
	Endpoint        string           `yaml:"endpoint"`
	Region          string           `yaml:"region"`
	PathStyle       bool             `yaml:"path_style"`
	AccessKeyID     string           `yaml:"access_key_id"`
	SecretAccessKey string           `yaml:"secret_access_key"`
	Timeout         gconfig.Duration `yaml:"timeout"`
}

// HTTP is the Firehose HTTP endpoint destination.
type HTTP struct {
	URL              string            `yaml:"url"`
	AccessKey        string            `yaml:"access_key"`
	CommonAttributes map[string]string `yaml:"common_attributes"`
	ContentEncoding  string            `yaml:"content_encoding"` // none (default) or gzip
	Timeout          gconfig.Duration  `yaml:"timeout"`          // default 3m
}

// Kinesis is the Kinesis PutRecords destination.
type Kinesis struct {
	StreamName      string           `yaml:"stream_name"`
	StreamARN       string           `yaml:"stream_arn"`
	Endpoint        string           `yaml:"endpoint"`
	Region          string           `yaml:"region"`
	AccessKeyID     string           `yaml:"access_key_id"`
	SecretAccessKey string           `yaml:"secret_access_key"`
	Timeout         gconfig.Duration `yaml:"timeout"`
}

// Default is the delivery stream `make run` gets with no sync section:
// the plates stream, as JSON lines, gzip, to <data dir>/delivered/ every
// 30 s, so a new user sees files within a minute.
func Default() Section {
	d := Spec{Name: "plates-archive", Stream: "plates", Local: &Local{}}
	d.Buffer.Interval = &gconfig.Duration{Duration: 30 * time.Second}
	return Section{d}
}

// Validate checks every entry without building anything; errors name the
// key, e.g. "sync[0].s3.bucket: must not be empty".
func (s Section) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, d := range s {
		key := fmt.Sprintf("sync[%d]", i)
		if seen[d.Name] && d.Name != "" {
			errs = append(errs, gconfig.Errorf(key+".name", "%q is listed twice", d.Name))
		}
		seen[d.Name] = true
		if _, err := d.Build("data", nil); err != nil {
			errs = append(errs, prefixErrs(key, err))
		}
	}
	return errors.Join(errs...)
}

func prefixErrs(key string, err error) error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, prefixErrs(key, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s.%w", key, err)
}

// Build returns the delivery.Config (without logger and metrics) for an
// entry. dataDir roots the local destination's relative dir and the
// delivery intents. Errors name the key relative to the entry.
func (d Spec) Build(dataDir string, base *delivery.Config) (delivery.Config, error) {
	var c delivery.Config
	if base != nil {
		c = *base
	}
	var errs []error
	c.Name, c.Stream, c.Version = d.Name, d.Stream, d.Version
	if d.Name == "" {
		errs = append(errs, errors.New("name: must not be empty"))
	} else if !validName(d.Name) {
		errs = append(errs, fmt.Errorf("name: %q: want 1-64 characters of a-z A-Z 0-9 _ . -", d.Name))
	}
	if d.Version < 0 {
		errs = append(errs, errors.New("version: must not be negative"))
	}
	switch d.StartAt {
	case "", "trim_horizon":
	case "latest":
		c.StartAtLatest = true
	default:
		errs = append(errs, fmt.Errorf("start_at: %q: want trim_horizon or latest", d.StartAt))
	}
	c.BufferSize = int64(d.Buffer.Size)
	if d.Buffer.Interval != nil {
		c.BufferInterval = d.Buffer.Interval.Duration
		if c.BufferInterval == 0 {
			c.BufferInterval = -1 // Firehose's 0 s: no waiting
		}
	}
	switch d.RecordDelimiter {
	case "", "newline":
		c.Delimiter = []byte("\n")
	case "none":
	default:
		errs = append(errs, fmt.Errorf("record_delimiter: %q: want newline or none", d.RecordDelimiter))
	}
	switch d.Compression {
	case "":
		c.Compression = sink.Gzip
	case "none":
		c.Compression = sink.None
	default:
		c.Compression = d.Compression
	}
	c.RetryInitial, c.RetryMax, c.RetryDuration = d.Retry.Initial.Duration, d.Retry.Max.Duration, d.Retry.Duration.Duration
	c.DeadLetter = d.DeadLetter
	if d.Transform != nil {
		t, err := d.Transform.build()
		if err != nil {
			errs = append(errs, err)
		}
		c.Transform = t
	}
	n := 0
	for _, set := range []bool{d.Local != nil, d.S3 != nil, d.HTTPEndpoint != nil, d.Kinesis != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, errors.New("destination: set only one of local, s3, http_endpoint, kinesis"))
	}
	var err error
	switch {
	case d.Local != nil:
		dir := d.Local.Dir
		if dir == "" {
			dir = "delivered"
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(dataDir, dir)
		}
		if e := sink.ValidatePrefix(d.Local.Prefix); e != nil {
			errs = append(errs, fmt.Errorf("local.prefix: %w", e))
		}
		if e := sink.ValidatePrefix(d.Local.ErrorPrefix); e != nil {
			errs = append(errs, fmt.Errorf("local.error_prefix: %w", e))
		}
		c.Sink = &localsink.Sink{Dir: dir, Prefix: d.Local.Prefix, ErrorPrefix: d.Local.ErrorPrefix}
	case d.S3 != nil:
		if d.S3.Endpoint != "" {
			if u, e := url.Parse(d.S3.Endpoint); e != nil || u.Scheme == "" || u.Host == "" {
				errs = append(errs, fmt.Errorf("s3.endpoint: %q: want a URL such as http://127.0.0.1:7070", d.S3.Endpoint))
			}
		}
		if (d.S3.AccessKeyID == "") != (d.S3.SecretAccessKey == "") {
			errs = append(errs, errors.New("s3.secret_access_key: set both access_key_id and secret_access_key, or neither"))
		}
		var s *s3sink.Sink
		s, err = s3sink.New(s3sink.Config{Bucket: d.S3.Bucket, Prefix: d.S3.Prefix, ErrorPrefix: d.S3.ErrorPrefix,
			Endpoint: d.S3.Endpoint, Region: d.S3.Region, PathStyle: d.S3.PathStyle,
			AccessKeyID: d.S3.AccessKeyID, SecretAccessKey: d.S3.SecretAccessKey, Timeout: d.S3.Timeout.Duration})
		if err != nil {
			errs = append(errs, fmt.Errorf("s3.%w", err))
		} else {
			c.Sink = s
		}
	case d.HTTPEndpoint != nil:
		if u, e := url.Parse(d.HTTPEndpoint.URL); d.HTTPEndpoint.URL != "" && (e != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			errs = append(errs, fmt.Errorf("http_endpoint.url: %q: want an http or https URL", d.HTTPEndpoint.URL))
		}
		var s *httpsink.Sink
		s, err = httpsink.New(httpsink.Config{URL: d.HTTPEndpoint.URL, AccessKey: d.HTTPEndpoint.AccessKey,
			CommonAttributes: d.HTTPEndpoint.CommonAttributes, ContentEncoding: d.HTTPEndpoint.ContentEncoding,
			Timeout: d.HTTPEndpoint.Timeout.Duration})
		if err != nil {
			errs = append(errs, fmt.Errorf("http_endpoint.%w", err))
		} else {
			c.Sink = s
		}
	case d.Kinesis != nil:
		var s *kinesissink.Sink
		s, err = kinesissink.New(kinesissink.Config{StreamName: d.Kinesis.StreamName, StreamARN: d.Kinesis.StreamARN,
			Endpoint: d.Kinesis.Endpoint, Region: d.Kinesis.Region, AccessKeyID: d.Kinesis.AccessKeyID,
			SecretAccessKey: d.Kinesis.SecretAccessKey, Timeout: d.Kinesis.Timeout.Duration})
		if err != nil {
			errs = append(errs, fmt.Errorf("kinesis.%w", err))
		} else {
			c.Sink = s
		}
	default:
		errs = append(errs, errors.New("destination: one of local, s3, http_endpoint or kinesis is required"))
	}
	if c.Sink != nil {
		if e := c.Validate(); e != nil {
			errs = append(errs, e)
		}
	} else {
		probe := c
		probe.Sink = &localsink.Sink{}
		if e := probe.Validate(); e != nil {
			errs = append(errs, e)
		}
	}
	if d.Name != "" && validName(d.Name) {
		c.StateDir = filepath.Join(dataDir, "sync", d.Name)
	}
	return c, errors.Join(errs...)
}

func (t *Transform) build() (transform.Transformer, error) {
	switch {
	case t.HTTP != nil && t.Builtin != nil:
		return nil, errors.New("transform: set http or builtin, not both")
	case t.HTTP != nil:
		u, err := url.Parse(t.HTTP.URL)
		if t.HTTP.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("transform.http.url: %q: want an http or https URL", t.HTTP.URL)
		}
		return &transform.HTTP{URL: t.HTTP.URL, Timeout: t.HTTP.Timeout.Duration, Retries: t.HTTP.Retries}, nil
	case t.Builtin != nil:
		var fields []transform.Field
		for _, f := range t.Builtin.Fields {
			fields = append(fields, transform.Field{From: f.From, To: f.To})
		}
		b, err := transform.NewBuiltin(fields, t.Builtin.DropIf)
		if err != nil {
			return nil, fmt.Errorf("transform.builtin.%w", err)
		}
		return b, nil
	}
	return nil, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}
