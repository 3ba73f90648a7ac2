package testutil

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// NotifySocket is a real unixgram socket standing in for systemd's notify
// socket: pass Path as NOTIFY_SOCKET.
type NotifySocket struct {
	Path string
	mu   sync.Mutex
	msgs []string
}

// ListenNotify opens a notify socket in a temporary directory or, with
// abstract, in Linux's abstract namespace (Path then starts with "@", as
// systemd writes it). It is closed when the test ends.
func ListenNotify(t testing.TB, abstract bool) *NotifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "kn") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &NotifySocket{Path: filepath.Join(dir, "notify")}
	name := s.Path
	if abstract {
		s.Path = fmt.Sprintf("@kaiten-test-%d-%d", os.Getpid(), time.Now().UnixNano())
		name = "\x00" + s.Path[1:]
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := c.ReadFromUnix(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	return s
}

// Messages returns the datagrams received so far, in order.
func (s *NotifySocket) Messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// Lines returns every line of every message so far, in order.
func (s *NotifySocket) Lines() []string {
	var out []string
	for _, m := range s.Messages() {
		out = append(out, strings.Split(strings.TrimSpace(m), "\n")...)
	}
	return out
}

// Count is how many lines so far equal line (e.g. "WATCHDOG=1").
func (s *NotifySocket) Count(line string) int {
	n := 0
	for _, l := range s.Lines() {
		if l == line {
			n++
		}
	}
	return n
}
