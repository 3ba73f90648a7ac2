package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

// TestDaemonLifecycle runs the real binary with no config: it serves
// /healthz, /metrics and /api/status, stops cleanly on SIGTERM with the
// store closed, and starts again on the same data directory.
func TestDaemonLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	dir := t.TempDir()
	d := testutil.StartDaemon(t, dir)
	get := func(path string) string {
		resp, err := http.Get("http://" + d.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if h := get("/healthz"); !strings.Contains(h, `"ok"`) {
		t.Fatalf("healthz %s", h)
	}
	if m := get("/metrics"); !strings.Contains(m, "kaiten_stream_commits_total") || !strings.Contains(m, `kaiten_stream_stored_records{stream="plates"}`) {
		t.Fatal("metrics lack the store's series")
	}
	if s := get("/api/status"); !strings.Contains(s, `"store"`) {
		t.Fatalf("status %s", s)
	}
	if !strings.Contains(d.Log(), "Dashboard:   http://"+d.HTTPAddr+"/") {
		t.Fatalf("the dashboard URL was not printed:\n%s", d.Log())
	}
	if err := d.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Log(), "store closed") {
		t.Fatalf("no clean store close in the log:\n%s", d.Log())
	}
	d2 := testutil.StartDaemon(t, dir)
	if err := d2.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigExitsWithTheKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the kaiten binary: make test runs it")
	}
	bin := testutil.KaitenBinary(t)
	cfg := t.TempDir() + "/bad.yaml"
	if err := writeFile(cfg, "store: {on_full: sometimes}\n"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "run", "--config", cfg, "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "store.on_full") {
		t.Fatalf("bad config: err %v, output %s", err, out)
	}
	out, err = exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "kaiten ") {
		t.Fatalf("version: %v %s", err, out)
	}
}

// TestRestartAfterKillSaysWhatItRecovered: after a kill -9 the next start
// logs (INFO) what the store recovered, per stream and in a summary.
func TestRestartAfterKillSaysWhatItRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten binary: make test runs it")
	}
	dir := t.TempDir()
	broker := testutil.FreeAddr(t)
	d := testutil.StartDaemon(t, dir, "--mqtt-addr", broker, "--no-sim")
	// Three records acknowledged (PUBACK after the durable append), then SIGKILL.
	for i := 0; i < 3; i++ {
		err := mqtttest.TryPublish("tcp://"+broker, fmt.Sprintf("kill-%d", i), "", "", nil,
			"store/demo-store/lane/1/plate", []byte(fmt.Sprintf(`{"plate_id":"p-%d","event":"placed"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
	}
	d.Kill()
	d2 := testutil.StartDaemon(t, dir, "--mqtt-addr", testutil.FreeAddr(t), "--no-sim")
	defer func() { _ = d2.Stop(30 * time.Second) }()
	log := d2.Log()
	for _, want := range []string{`level=INFO msg="store: stream opened" stream=plates open_shards=4`,
		`level=INFO msg="store: opened"`, "streams=4", "records=3", "high_water=checked"} {
		if !strings.Contains(log, want) {
			t.Errorf("restart log lacks %q:\n%s", want, log)
		}
	}
}
