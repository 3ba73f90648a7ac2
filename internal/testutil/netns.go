//go:build linux

package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// NetNS is a network namespace linked to the test's own by a veth pair,
// so that a client dialing from it reaches this machine from a real,
// non-loopback address (IP), the way a tablet or sensor on the shop's
// network would. HostIP is this machine's end of the pair: listen on it
// or on 0.0.0.0 to be reachable. Creating one needs root (CAP_NET_ADMIN)
// and iproute2's ip (scripts/test-deps.txt); the namespace and the veth
// pair are removed at test cleanup.
type NetNS struct {
	Name   string // under /run/netns
	HostIP string // this machine's end of the veth pair
	IP     string // the namespace's own address
}

var netnsSeq atomic.Uint32

// NewNetNS creates a namespace with a veth pair on a /30 of its own. It
// fails the test, naming what is missing, when it cannot.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	ipBin := LookTool(t, "ip")
	n := netnsSeq.Add(1)
	pid := uint32(os.Getpid())
	// 10.B.C.D/30 from the process id and a counter, so parallel test
	// binaries (one per package) do not pick the same subnet or names.
	idx := pid<<6 | n&63
	b, c, d := 64+(idx>>14)%128, (idx>>6)&255, (idx&63)*4
	ns := &NetNS{
		Name:   fmt.Sprintf("kaiten-test-%d-%d", pid, n),
		HostIP: fmt.Sprintf("10.%d.%d.%d", b, c, d+1),
		IP:     fmt.Sprintf("10.%d.%d.%d", b, c, d+2),
	}
	hostIf, nsIf := fmt.Sprintf("kth%x", idx), fmt.Sprintf("ktn%x", idx)
	ip := func(args ...string) error {
		out, err := exec.Command(ipBin, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := ip("netns", "add", ns.Name); err != nil {
		t.Fatalf("netns: %v (the test needs root and iproute2)", err)
	}
	t.Cleanup(func() {
		_ = ip("netns", "del", ns.Name) // takes the namespace's end of the pair, and so the pair, with it
		_ = ip("link", "del", hostIf)   // in case the pair was made but not moved
	})
	for _, args := range [][]string{
		{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns.Name},
		{"addr", "add", ns.HostIP + "/30", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", ns.Name, "addr", "add", ns.IP + "/30", "dev", nsIf},
		{"-n", ns.Name, "link", "set", nsIf, "up"},
		{"-n", ns.Name, "link", "set", "lo", "up"},
	} {
		if err := ip(args...); err != nil {
			t.Fatalf("netns: %v", err)
		}
	}
	return ns
}

// DialContext opens a connection from inside the namespace: the socket
// is made on an OS thread that joined the namespace for the call, and
// keeps the namespace's address once the thread went back. It fits
// http.Transport.DialContext, websocket.Dialer.NetDialContext and a
// paho custom connection function.
func (ns *NetNS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is given back only if it is back in its own
		// namespace; otherwise it ends with this goroutine.
		runtime.LockOSThread()
		c, err, restored := ns.dialInside(ctx, network, addr)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (ns *NetNS) dialInside(ctx context.Context, network, addr string) (c net.Conn, err error, restored bool) {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err), true
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns.Name))
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err), true
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("netns: join %s: %w", ns.Name, err), true
	}
	c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
	restored = unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil
	return c, err, restored
}

// HTTPClient is an HTTP client whose connections come from the namespace.
func (ns *NetNS) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true}}
}
