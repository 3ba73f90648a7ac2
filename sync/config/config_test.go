package config_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/sync/config"
	_ "github.com/kaiten-edge/kaiten/sync/destinations"
	"github.com/kaiten-edge/kaiten/sync/httpsink"
	"github.com/kaiten-edge/kaiten/sync/localsink"
	"github.com/kaiten-edge/kaiten/sync/s3sink"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

func decode(t *testing.T, src string) (config.Section, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return config.Decode(doc.Content[0])
}

func TestDefault(t *testing.T) {
	d := config.Default()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := d[0].Build("/data", nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, ok := c.Sink.(*localsink.Sink)
	if !ok || ls.Dir != "/data/delivered" || c.Name != "plates-archive" || c.Stream != "plates" ||
		c.BufferInterval != 30*time.Second || c.Compression != sink.Gzip || string(c.Delimiter) != "\n" || c.StateDir != "/data/sync/plates-archive" {
		t.Fatalf("default %+v, sink %+v", c, c.Sink)
	}
}

func TestSample(t *testing.T) {
	// The documented sample must decode and validate as it is.
	s, err := decode(t, sampleSection(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || s[0].Name != "plates-archive" {
		t.Fatalf("sample %+v", s)
	}
}

func TestDestinations(t *testing.T) {
	s, err := decode(t, `
- name: to-s3
  stream: plates
  buffer: {size: 64MiB, interval: 0s}
  compression: snappy
  record_delimiter: none
  s3: {bucket: b, prefix: "p/!{timestamp:yyyy}/", endpoint: "http://127.0.0.1:7070", path_style: true, access_key_id: a, secret_access_key: s}
- name: to-http
  stream: plates
  transform: {builtin: {drop_if: 'event == "passed"', fields: [{from: plate_type, to: type}]}}
  http_endpoint: {url: "https://collector.example/x", access_key: k, content_encoding: gzip}
- name: to-hub
  stream: gpio
  start_at: latest
  kinesis: {stream_name: hub, endpoint: "http://hub:8080"}
`)
	if err != nil {
		t.Fatal(err)
	}
	c0, _ := s[0].Build("d", nil)
	if _, ok := c0.Sink.(*s3sink.Sink); !ok || c0.BufferSize != 64<<20 || c0.BufferInterval >= 0 || c0.Compression != sink.Snappy || c0.Delimiter != nil {
		t.Fatalf("s3 entry %+v", c0)
	}
	c1, _ := s[1].Build("d", nil)
	if _, ok := c1.Sink.(*httpsink.Sink); !ok || c1.Transform == nil {
		t.Fatalf("http entry %+v", c1)
	}
	c2, _ := s[2].Build("d", nil)
	if c2.Sink.Kind() != "kinesis" || !c2.StartAtLatest {
		t.Fatalf("kinesis entry %+v", c2)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := map[string]string{
		`[{stream: plates, local: {}}]`:                                              "sync[0].name: must not be empty",
		`[{name: "a b", stream: plates, local: {}}]`:                                 "sync[0].name:",
		`[{name: a, local: {}}]`:                                                     "sync[0].stream: must not be empty",
		`[{name: a, stream: p}]`:                                                     "sync[0].destination: one of local, s3, http_endpoint, kinesis or postgres is required",
		`[{name: a, stream: p, local: {}, kinesis: {stream_name: x}}]`:               "sync[0].destination: set only one",
		`[{name: a, stream: p, s3: {}}]`:                                             "sync[0].s3.bucket: must not be empty",
		`[{name: a, stream: p, s3: {bucket: b, prefix: "!{x}"}}]`:                    "sync[0].s3.prefix: unknown expression",
		`[{name: a, stream: p, s3: {bucket: b, endpoint: "nope"}}]`:                  "sync[0].s3.endpoint:",
		`[{name: a, stream: p, s3: {bucket: b, access_key_id: x}}]`:                  "sync[0].s3.secret_access_key:",
		`[{name: a, stream: p, http_endpoint: {}}]`:                                  "sync[0].http_endpoint.url: must not be empty",
		`[{name: a, stream: p, http_endpoint: {url: "ftp://x"}}]`:                    "sync[0].http_endpoint.url:",
		`[{name: a, stream: p, kinesis: {}}]`:                                        "sync[0].kinesis.stream_name:",
		`[{name: a, stream: p, local: {}, buffer: {size: 1KiB}}]`:                    "sync[0].buffer.size:",
		`[{name: a, stream: p, local: {}, buffer: {interval: 901s}}]`:                "sync[0].buffer.interval:",
		`[{name: a, stream: p, local: {}, compression: lz4}]`:                        "sync[0].compression:",
		`[{name: a, stream: p, local: {}, record_delimiter: tab}]`:                   "sync[0].record_delimiter:",
		`[{name: a, stream: p, local: {}, start_at: middle}]`:                        "sync[0].start_at:",
		`[{name: a, stream: p, local: {}, transform: {builtin: {drop_if: "x =="}}}]`: "sync[0].transform.builtin.drop_if:",
		`[{name: a, stream: p, local: {}, transform: {http: {url: ""}}}]`:            "sync[0].transform.http.url:",
		`[{name: a, stream: p, local: {}}, {name: a, stream: p, local: {}}]`:         "sync[1].name: \"a\" is listed twice",
		`[{name: a, stream: p, local: {}, bogus: 1}]`:                                "field bogus not found",
		`[{name: a, stream: p, s3: {bucket: b, bogus: 1}}]`:                          "sync[0].s3: line 1: field bogus not found",
		`[{name: a, stream: p, kinesis: {stream_name: x, timeout: 5 parsecs}}]`:      "sync[0].kinesis: line 1:",
		"- name: a\n  stream: p\n  local:\n":                                         "sync[0].destination: one of local, s3, http_endpoint, kinesis or postgres is required",
	}
	for src, want := range cases {
		_, err := decode(t, src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
}
