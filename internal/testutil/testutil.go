// Package testutil holds helpers shared by the tests of every package:
// polling with a deadline (never a guessed sleep), free loopback ports,
// building the kaiten binary once and running it as a child process, a
// Kinesis SDK client for a gateway (KinesisClient), and a process's
// resident memory (ReadMem). It imports no Kaiten package, so that every
// package's tests can use it; helpers over a real store live in
// gateway/stream/streamtest.
package testutil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// WaitFor calls cond every tick until it returns nil or wait passes; then it
// fails the test with cond's last error.
func WaitFor(t testing.TB, wait time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", wait, err)
		}
		time.Sleep(tick)
		if tick < 200*time.Millisecond {
			tick *= 2
		}
	}
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// RepoRoot is the module root (the folder holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// KaitenBinary builds gateway/cmd/kaiten once per test process and returns
// the binary's path. Under -short (make test-unit, the fast loop) it fails
// the test: a test that builds or starts the daemon must skip there, so the
// fast loop stays fast as tests are added.
func KaitenBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Fatal("this test builds the kaiten binary: start it with `if testing.Short() { t.Skip(...) }` so make test-unit stays fast")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kaiten-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "kaiten")
		cmd := exec.Command("go", "build", "-o", buildPath, "./gateway/cmd/kaiten")
		cmd.Dir = RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build kaiten: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Daemon is a kaiten child process.
type Daemon struct {
	Cmd      *exec.Cmd
	HTTPAddr string
	DataDir  string
	mu       sync.Mutex
	log      strings.Builder
	done     chan struct{}
}

// Log returns everything the daemon wrote to stdout and stderr so far.
func (d *Daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// StartDaemon runs `kaiten run --data-dir dataDir --http-addr <free> args...`
// and waits until /healthz answers. The daemon is killed at test cleanup
// if still running.
func StartDaemon(t testing.TB, dataDir string, args ...string) *Daemon {
	t.Helper()
	return StartDaemonOn(t, "127.0.0.1", dataDir, args...)
}

// StartDaemonOn is StartDaemon listening on host (e.g. 0.0.0.0, to be
// reachable from a NetNS) at a free port; HTTPAddr is 127.0.0.1 and that port.
func StartDaemonOn(t testing.TB, host, dataDir string, args ...string) *Daemon {
	t.Helper()
	bin := KaitenBinary(t)
	d := &Daemon{HTTPAddr: FreeAddr(t), DataDir: dataDir, done: make(chan struct{})}
	_, port, _ := net.SplitHostPort(d.HTTPAddr)
	full := append([]string{"run", "--data-dir", dataDir, "--http-addr", net.JoinHostPort(host, port)}, args...)
	d.Cmd = exec.Command(bin, full...)
	pr, pw := io.Pipe()
	d.Cmd.Stdout, d.Cmd.Stderr = pw, pw
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text())
			d.log.WriteByte('\n')
			d.mu.Unlock()
		}
	}()
	go func() { _ = d.Cmd.Wait(); pw.Close(); close(d.done) }()
	t.Cleanup(func() {
		d.Kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.Log())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + d.HTTPAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		select {
		case <-d.done:
			t.Fatalf("kaiten exited before it was healthy:\n%s", d.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kaiten not healthy after 60s:\n%s", d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (d *Daemon) Kill() {
	_ = d.Cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// Stop sends SIGTERM and waits up to wait for a clean exit; it returns the
// exit error, if any.
func (d *Daemon) Stop(wait time.Duration) error {
	_ = d.Cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	select {
	case <-d.done:
		if d.Cmd.ProcessState != nil && !d.Cmd.ProcessState.Success() {
			return fmt.Errorf("kaiten exited: %s", d.Cmd.ProcessState)
		}
		return nil
	case <-ctx.Done():
		d.Kill()
		return fmt.Errorf("kaiten did not stop within %s", wait)
	}
}

// Exited is closed when the process has ended.
func (d *Daemon) Exited() <-chan struct{} { return d.done }

// LookTool finds an executable on PATH or in GOPATH/bin; it fails the test
// naming the make target that installs it.
func LookTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(gopath, "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Fatalf("%s is not installed: run `make test-deps` (make test does it for you)", name)
	return ""
}
