package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Proc is a server process a test started (versitygw, PostgreSQL): its
// output is kept, up to 1 MiB, for the test's log, and Exited is closed
// when it ends.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

// StartProc starts cmd with its output captured, then waits until ready
// returns nil; it fails the test if the process exits first or wait
// passes (and then kills it). name says which program in messages.
func StartProc(t testing.TB, name string, cmd *exec.Cmd, wait time.Duration, ready func() error) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = (*procLog)(p), (*procLog)(p)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	ready0 := false
	defer func() {
		if !ready0 { // the test is failing: leave no process behind
			_ = cmd.Process.Kill()
			<-p.done
		}
	}()
	WaitFor(t, wait, func() error {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", name, p.Log())
		default:
		}
		return ready()
	})
	ready0 = true
	return p
}

type procLog Proc

func (w *procLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.log.Len() < 1<<20 {
		w.log.Write(b)
	}
	return len(b), nil
}

// Log returns the output so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Exited is closed when the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// BenchRecords is for the side-by-side reports `make bench` runs: it skips
// the test unless KAITEN_BENCH=1, and returns how many records to measure,
// KAITEN_BENCH_RECORDS or else def.
func BenchRecords(t testing.TB, def int) int {
	t.Helper()
	if os.Getenv("KAITEN_BENCH") != "1" {
		t.Skip("benchmark report: make bench (KAITEN_BENCH=1)")
	}
	if v, err := strconv.Atoi(os.Getenv("KAITEN_BENCH_RECORDS")); err == nil && v > 0 {
		return v
	}
	return def
}
