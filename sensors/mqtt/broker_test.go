package mqtt

import (
	"net"
	"strings"
	"testing"
)

func TestListenFallsBackOnlyForTheDefault(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	if _, err := listen(addr, false, quietLogger()); err == nil || !strings.Contains(err.Error(), "mqtt.embedded.addr") {
		t.Fatalf("an address the operator asked for must fail clearly when taken: %v", err)
	}
	ln, err := listen(addr, true, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() == addr || !strings.HasPrefix(ln.Addr().String(), "127.0.0.1:") {
		t.Fatalf("fallback listens on %s (taken: %s)", ln.Addr(), addr)
	}
}
