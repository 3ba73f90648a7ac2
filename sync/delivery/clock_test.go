package delivery

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	itest "github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// fakeClock is a Clock the test moves with Advance; waits end only then.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), d: d, ch: ch})
	return ch
}

// Advance moves the clock and fires the waits that end by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			keep = append(keep, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = keep
}

// waiting reports whether someone waits for at most max.
func (c *fakeClock) waiting(max time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.waiters {
		if w.d <= max {
			return true
		}
	}
	return false
}

// TestClockDrivesBackoffAndInterval: with a clock the test holds still, a
// failed batch is not retried and a partial buffer is not delivered; moving
// the clock does both.
func TestClockDrivesBackoffAndInterval(t *testing.T) {
	clk := newFakeClock()
	st := newFakeStore(s0)
	st.add(s0, 5, clk.Now())
	var calls atomic.Int32
	ms := &memSink{fail: func(b *sink.Batch) error {
		if calls.Add(1) == 1 {
			return errors.New("connection refused")
		}
		return nil
	}}
	d, _ := run(t, st, Config{Name: "ds", Stream: "plates", Sink: ms, BufferInterval: 10 * time.Minute,
		RetryInitial: time.Second, RetryMax: time.Second, StatusInterval: time.Hour, Clock: clk})

	// The interval hint counts on the clock: only moving it delivers.
	itest.WaitFor(t, 5*time.Second, func() error {
		if n := counterValue(d.cfg.Metrics.IncomingRecords.WithLabelValues("ds")); n != 5 {
			return fmt.Errorf("%v records buffered", n)
		}
		return nil
	})
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d attempts before the interval passed on the clock", n)
	}
	clk.Advance(10 * time.Minute)
	// The first attempt fails; the retry waits on the clock.
	itest.WaitFor(t, 5*time.Second, func() error {
		if !clk.waiting(time.Second) {
			return errors.New("no backoff wait on the clock yet")
		}
		return nil
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d attempts while the backoff waits on the clock, want 1", n)
	}
	clk.Advance(time.Second)
	itest.WaitFor(t, 5*time.Second, func() error {
		if c, _ := st.GetCheckpoint("ds", "plates", s0); c != "1005" {
			return fmt.Errorf("checkpoint %q after %d attempts", c, calls.Load())
		}
		return nil
	})
	if s := d.Status(); !s.LastErrorTime.Equal(clk.Now().Add(-time.Second)) || !s.LastDelivery.Equal(clk.Now()) {
		t.Fatalf("status times %s, %s; want the clock's", s.LastErrorTime, s.LastDelivery)
	}
}
