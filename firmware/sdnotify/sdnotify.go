// Package sdnotify speaks systemd's service notification protocol: datagrams
// of newline-separated KEY=VALUE assignments sent to the AF_UNIX socket named
// by $NOTIFY_SOCKET (see sd_notify(3)). It has no cgo and no dependency.
//
// A unit with Type=notify waits for READY=1 before it counts the service as
// started; with WatchdogSec= set, systemd exports WATCHDOG_USEC and restarts
// the service when no WATCHDOG=1 arrives within that time. STOPPING=1 tells
// systemd a clean stop has begun.
//
// When the process was not started by systemd (no $NOTIFY_SOCKET), every
// call is a no-op, so the same binary runs unchanged from a shell.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Common states, as sd_notify(3) names them.
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Reloading = "RELOADING=1"
	Watchdog  = "WATCHDOG=1"
)

// ErrInvalidState is returned by Send for a state that is not a list of
// KEY=VALUE lines; nothing is sent.
var ErrInvalidState = errors.New("sdnotify: state must be KEY=VALUE lines")

// Notifier sends states to the service manager. The zero value and a nil
// *Notifier are valid and send nothing. A Notifier is safe for concurrent
// use.
type Notifier struct {
	addr *net.UnixAddr // nil: not under systemd

	mu   sync.Mutex
	conn *net.UnixConn
}

// New returns a Notifier for the socket named by $NOTIFY_SOCKET. With the
// variable unset or empty it returns a Notifier whose Enabled is false.
// An abstract socket is written with a leading '@', as systemd does.
func New() (*Notifier, error) {
	return NewSocket(os.Getenv("NOTIFY_SOCKET"))
}

// NewSocket returns a Notifier for the given socket path ("" disables it).
func NewSocket(path string) (*Notifier, error) {
	if path == "" {
		return &Notifier{}, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET %q: want an absolute path or an abstract name starting with @", path)
	}
	name := path
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Enabled reports whether states are sent anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send sends one datagram holding the given states, e.g. Send(Ready,
// "STATUS=running"). It returns nil without sending when the Notifier is
// not enabled. Each state must be KEY=VALUE with no newline inside.
func (n *Notifier) Send(states ...string) error {
	if len(states) == 0 {
		return fmt.Errorf("%w: nothing to send", ErrInvalidState)
	}
	for _, s := range states {
		k, _, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(s, "\n\x00") {
			return fmt.Errorf("%w: %q", ErrInvalidState, s)
		}
	}
	if !n.Enabled() {
		return nil
	}
	msg := []byte(strings.Join(states, "\n") + "\n")
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"}) // unbound, autobind
		if err != nil {
			return fmt.Errorf("sdnotify: open socket: %w", err)
		}
		n.conn = c
	}
	_ = n.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := n.conn.WriteToUnix(msg, n.addr); err != nil {
		// Drop the socket so that a later call starts afresh.
		n.conn.Close()
		n.conn = nil
		return fmt.Errorf("sdnotify: send %s: %w", strings.Join(states, ","), err)
	}
	return nil
}

// Close releases the socket; a later Send opens a new one.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// WatchdogInterval returns the watchdog timeout systemd expects pings
// within, from $WATCHDOG_USEC, and whether the watchdog is on for this
// process. It is off when the variable is unset, zero or malformed, or when
// $WATCHDOG_PID names another process. Callers should ping at half the
// returned interval, as sd_watchdog_enabled(3) advises.
func WatchdogInterval() (time.Duration, bool) {
	return watchdogFrom(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogFrom(usec, pid string, self int) (time.Duration, bool) {
	if usec == "" {
		return 0, false
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0, false
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != self {
			return 0, false
		}
	}
	return time.Duration(u) * time.Microsecond, true
}
