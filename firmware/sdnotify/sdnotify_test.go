package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

func TestSendPathAndAbstract(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			sd := testutil.ListenNotify(t, abstract)
			n, err := NewSocket(sd.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if !n.Enabled() {
				t.Fatal("notifier with a socket is not enabled")
			}
			if err := n.Send(Ready, "STATUS=up"); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 5*time.Second, func() error {
				if m := sd.Messages(); len(m) != 1 || m[0] != "READY=1\nSTATUS=up\n" {
					return fmt.Errorf("got %q", m)
				}
				return nil
			})
		})
	}
}

func TestDisabledAndBadInput(t *testing.T) {
	n, err := NewSocket("")
	if err != nil || n.Enabled() {
		t.Fatalf("empty socket: %v %v", n.Enabled(), err)
	}
	if err := n.Send(Ready); err != nil {
		t.Fatalf("disabled send: %v", err)
	}
	var nilN *Notifier
	if err := nilN.Send(Ready); err != nil || nilN.Enabled() || nilN.Close() != nil {
		t.Fatal("nil notifier must be a no-op")
	}
	if _, err := NewSocket("relative/sock"); err == nil {
		t.Fatal("relative socket path accepted")
	}
	for _, bad := range [][]string{nil, {"READY"}, {"=1"}, {"STATUS=a\nb"}} {
		if err := n.Send(bad...); !errors.Is(err, ErrInvalidState) {
			t.Errorf("Send(%q) = %v, want ErrInvalidState", bad, err)
		}
	}
	// A socket nobody listens on: the error is returned, not a panic, and
	// a later send works once someone listens.
	dir, _ := os.MkdirTemp("", "sdn")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "gone")
	n2, _ := NewSocket(p)
	if err := n2.Send(Ready); err == nil {
		t.Fatal("send to a missing socket succeeded")
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := n2.Send(Ready); err != nil {
		t.Fatalf("send after the socket appeared: %v", err)
	}
}

func TestWatchdogFromEnv(t *testing.T) {
	cases := []struct {
		usec, pid string
		want      time.Duration
		on        bool
	}{
		{"", "", 0, false},
		{"0", "", 0, false},
		{"junk", "", 0, false},
		{"-5", "", 0, false},
		{"30000000", "", 30 * time.Second, true},
		{"30000000", "42", 30 * time.Second, true},
		{"30000000", "43", 0, false},
		{"30000000", "x", 0, false},
	}
	for _, c := range cases {
		got, on := watchdogFrom(c.usec, c.pid, 42)
		if got != c.want || on != c.on {
			t.Errorf("watchdogFrom(%q,%q) = %v,%v want %v,%v", c.usec, c.pid, got, on, c.want, c.on)
		}
	}
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	if d, on := WatchdogInterval(); !on || d != 2*time.Second {
		t.Fatalf("WatchdogInterval = %v %v", d, on)
	}
}

func TestServiceReadyPingsStopping(t *testing.T) {
	sd := testutil.ListenNotify(t, false)
	t.Setenv("NOTIFY_SOCKET", sd.Path)
	var healthy atomic.Bool
	healthy.Store(true)
	var checks atomic.Int64
	s := Start(context.Background(), Options{
		Interval: 100 * time.Millisecond, Status: "serving",
		Check: func(ctx context.Context) error {
			checks.Add(1)
			if !healthy.Load() {
				return errors.New("not healthy")
			}
			return nil
		},
	})
	testutil.WaitFor(t, 5*time.Second, func() error {
		if m := sd.Messages(); len(m) == 0 || m[0] != "READY=1\nSTATUS=serving\n" {
			return fmt.Errorf("first message %q, want READY with status", m)
		}
		if n := sd.Count(Watchdog); n < 3 {
			return fmt.Errorf("%d watchdog pings so far", n)
		}
		return nil
	})
	// An unhealthy gateway gets no pings: systemd will restart it.
	healthy.Store(false)
	c0 := checks.Load()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if checks.Load() < c0+2 {
			return errors.New("checks not run yet")
		}
		return nil
	})
	before := sd.Count(Watchdog)
	c1 := checks.Load()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if checks.Load() < c1+3 {
			return errors.New("checks not run yet")
		}
		return nil
	})
	if after := sd.Count(Watchdog); after > before+1 { // one may be in flight
		t.Fatalf("pings went on while unhealthy: %d -> %d", before, after)
	}
	st := s.State()
	if !st.Notify || st.Watchdog != "100ms" || st.Skipped < 2 || st.LastErr != "not healthy" || st.LastPing.IsZero() {
		t.Fatalf("state %+v", st)
	}
	healthy.Store(true)
	s.Stop()
	s.Stop() // idempotent
	testutil.WaitFor(t, 5*time.Second, func() error {
		m := sd.Messages()
		if len(m) == 0 || m[len(m)-1] != "STOPPING=1\n" {
			return fmt.Errorf("last message %q, want STOPPING=1", m)
		}
		return nil
	})
	if n := sd.Count(Stopping); n != 1 {
		t.Fatalf("STOPPING sent %d times", n)
	}
}

func TestServiceWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	s := Start(context.Background(), Options{})
	if st := s.State(); st.Notify || st.Watchdog != "" || st.Pings != 0 {
		t.Fatalf("state %+v", st)
	}
	s.Stop()
}
