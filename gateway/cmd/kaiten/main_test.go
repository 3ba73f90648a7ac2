package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/app"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// TestHelpListsEveryCommand: `kaiten help` lists every command, the
// registered ones (firstboot) included, on stdout with exit 0; no command
// prints the same on stderr with exit 2; an unknown one names itself.
func TestHelpListsEveryCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := app.Main([]string{"help"}, &out, &errOut); code != 0 || errOut.Len() != 0 {
		t.Fatalf("help: exit %d, stderr %q", code, errOut.String())
	}
	for _, cmd := range []string{"kaiten run", "kaiten check-config", "kaiten version", "kaiten help", "kaiten firstboot"} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("help lacks %q:\n%s", cmd, out.String())
		}
	}
	out.Reset()
	if code := app.Main(nil, &out, &errOut); code != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "kaiten firstboot") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	errOut.Reset()
	if code := app.Main([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) ||
		!strings.Contains(errOut.String(), "kaiten firstboot") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut.String())
	}
}

// TestBannerListsOnlyWhatRuns runs the real components in this process,
// with the dashboard and the Kinesis API off, on a writer of the test's
// own: the banner goes there whole (the MQTT broker and delivery lines
// included, which components once printed to os.Stdout) and names
// neither the dashboard nor the Kinesis API.
func TestBannerListsOnlyWhatRuns(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kaiten.yaml")
	body := "http: {addr: \"127.0.0.1:0\"}\ndashboard: {disabled: true}\nkinesis: {disabled: true}\nsim: {enabled: false}\n" +
		"mqtt: {embedded: {addr: \"" + testutil.FreeAddr(t) + "\"}}\n"
	if err := writeFile(p, body); err != nil {
		t.Fatal(err)
	}
	cfg, err := app.Load(p, app.Registered())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = filepath.Join(dir, "data")
	// Run writes the banner in one Write; the pipe hands it to the test.
	pr, pw := io.Pipe()
	defer pr.Close()
	banners := make(chan string, 1)
	go func() {
		b := make([]byte, 8192)
		n, _ := pr.Read(b) // one Write, one Read
		banners <- string(b[:n])
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, app.Registered(), slog.New(slog.DiscardHandler), pw) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var banner string
	select {
	case banner = <-banners:
	case err := <-done:
		t.Fatalf("run ended before its banner: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no banner within 30s")
	}
	for _, want := range []string{"Press Ctrl+C to stop.", "  Metrics:     http://", "  MQTT broker: tcp://", "  Deliveries:  ", "  Data:        "} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	for _, off := range []string{"Dashboard:", "Kinesis API:"} {
		if strings.Contains(banner, off) {
			t.Errorf("banner lists %q, which is off:\n%s", off, banner)
		}
	}
	if !strings.HasPrefix(banner, "Kaiten ") {
		t.Errorf("something was printed before the banner:\n%s", banner)
	}
}
