package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/config"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kaiten.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type demoSection struct {
	Rate int `yaml:"rate"`
}

func demoComponent(into *demoSection) Component {
	return Component{Name: "demo", Decode: func(n *yaml.Node) error {
		if err := config.Decode("demo", n, into); err != nil {
			return err
		}
		if into.Rate < 0 {
			return config.Errorf("demo.rate", "must not be negative")
		}
		return nil
	}}
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:8080" || cfg.DataDir != "kaiten-data" || len(cfg.Streams) != len(DefaultStreams) || cfg.MemoryLimit != 96<<20 {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestLoadFile(t *testing.T) {
	var demo demoSection
	p := writeConfig(t, `
data_dir: /var/lib/kaiten
store_id: shop-12
http: {addr: "0.0.0.0:9000"}
store:
  max_bytes: 2GiB
  on_full: evict_oldest
  sweep_interval: 30s
streams:
  - {name: plates, shards: 8, retention: 48h, max_bytes: 512MiB}
  - {name: small}
demo: {rate: 5}
`)
	cfg, err := Load(p, []Component{demoComponent(&demo)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StoreID != "shop-12" || cfg.Store.MaxBytes != 2<<30 || cfg.Store.SweepInterval.Duration != 30*time.Second ||
		len(cfg.Streams) != 2 || cfg.Streams[0].Retention.Duration != 48*time.Hour || cfg.Streams[0].MaxBytes != 512<<20 ||
		cfg.Streams[1].Shards != 1 || demo.Rate != 5 {
		t.Fatalf("loaded %+v demo %+v", cfg, demo)
	}
	cfg.ApplyFlags(Flags{DataDir: "/tmp/x", HTTPAddr: "127.0.0.1:1"})
	if cfg.DataDir != "/tmp/x" || cfg.HTTP.Addr != "127.0.0.1:1" {
		t.Fatal("flags did not override the file")
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	cases := map[string]string{
		"unknown section":   "nonsense: 1\n",
		"unknown key":       "http: {adr: x}\n",
		"bad duration":      "shutdown_timeout: soon\n",
		"bad size":          "store: {max_bytes: lots}\n",
		"bad policy":        "store: {on_full: drop}\n",
		"bad stream name":   "streams: [{name: 'a b'}]\n",
		"duplicate stream":  "streams: [{name: a}, {name: a}]\n",
		"retention too big": "streams: [{name: a, retention: 9000h}]\n",
		"bad log level":     "log: {level: loud}\n",
		"component key":     "demo: {rate: -1}\n",
		"component unknown": "demo: {speed: 1}\n",
		"not a mapping":     "- a\n- b\n",
	}
	want := map[string]string{
		"unknown section": "nonsense", "unknown key": "adr", "bad duration": "soon", "bad size": "lots",
		"bad policy": "store.on_full", "bad stream name": "streams[0].name", "duplicate stream": "streams[1].name",
		"retention too big": "streams[0].retention", "bad log level": "log.level", "component key": "demo.rate",
		"component unknown": "speed", "not a mapping": "mapping",
	}
	for name, body := range cases {
		var demo demoSection
		_, err := Load(writeConfig(t, body), []Component{demoComponent(&demo)})
		if err == nil || !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: error %v, want one naming %q", name, err, want[name])
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("a missing config file was accepted")
	}
}

// Validate changes nothing: the defaults are filled before it, in Load.
func TestValidateIsPure(t *testing.T) {
	cfg := Defaults()
	cfg.ShutdownTimeout.Duration = 0
	cfg.Streams = []StreamSpec{{Name: "a"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownTimeout.Duration != 0 || cfg.Streams[0].Shards != 0 {
		t.Fatalf("Validate filled defaults: %+v", cfg)
	}
	loaded, err := Load(writeConfig(t, "shutdown_timeout: 0s\nstreams: [{name: a}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ShutdownTimeout.Duration != 20*time.Second || loaded.Streams[0].Shards != 1 {
		t.Fatalf("Load did not fill defaults: %+v", loaded)
	}
}
