package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type sample struct {
	Every Duration `yaml:"every"`
	Size  ByteSize `yaml:"size"`
	Name  string   `yaml:"name"`
}

func decode(t *testing.T, src string) (sample, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	s := sample{Name: "default"}
	return s, Decode("demo", n.Content[0], &s)
}

func TestDecode(t *testing.T) {
	s, err := decode(t, "every: 90s\nsize: 64MiB\n")
	if err != nil || s.Every.Duration != 90*time.Second || s.Size != 64<<20 || s.Name != "default" {
		t.Fatalf("%+v %v", s, err)
	}
	if s, _ := decode(t, "size: 2048\n"); s.Size != 2048 {
		t.Fatalf("plain number of bytes: %d", s.Size)
	}
	for src, want := range map[string]string{
		"every: soon\n":   "not a duration",
		"every: -5s\n":    "not a duration",
		"size: lots\n":    "not a size",
		"colour: blue\n":  "colour",
		"every: [1, 2]\n": "duration",
	} {
		if _, err := decode(t, src); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "demo") {
			t.Errorf("%q: error %v, want one starting with the section and naming %q", src, err, want)
		}
	}
	var s2 sample
	if err := Decode("demo", nil, &s2); err != nil || s2 != (sample{}) {
		t.Fatal("a missing section must leave the defaults")
	}
	if e := Errorf("mqtt.routes[0].topic", "must not be %s", "empty"); e.Error() != "mqtt.routes[0].topic: must not be empty" {
		t.Fatal(e)
	}
}

func TestDecodeSection(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("demo:\n  every: 1m\nother: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var s sample
	if err := DecodeSection(p, "demo", &s); err != nil || s.Every.Duration != time.Minute {
		t.Fatalf("%+v %v", s, err)
	}
	if err := DecodeSection(p, "missing", &s); err == nil {
		t.Fatal("a missing section was accepted")
	}
}
