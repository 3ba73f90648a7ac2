package mqtt

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/kaiten-edge/kaiten/gateway/access"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

// TestEmbeddedBrokerRemoteClients connects to the embedded broker from
// another host (a network namespace with its own address) and from this
// one. Without users only loopback clients get in, even when the broker
// was somehow started on 0.0.0.0 (Normalize refuses that config; the
// broker is started here without it, as defence in depth);
// allow_unauthenticated_remote admits everyone; with users, a remote
// client with credentials gets in and one without is refused.
func TestEmbeddedBrokerRemoteClients(t *testing.T) {
	ns := testutil.NewNetNS(t)
	st := openStore(t, t.TempDir())
	defer st.Close()
	in, _ := startIngest(t, Config{Embedded: EmbeddedConfig{Addr: testutil.FreeAddr(t)}}, st)
	defer stopIngest(t, in)
	users := []User{{Username: "lane-node", Password: "pw-remote-1"}}
	brokerOn := func(emb EmbeddedConfig) (remoteURL, localURL string) {
		b, err := startBroker("0.0.0.0:0", false, emb, in.w, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.close() })
		_, port, _ := net.SplitHostPort(b.addr)
		return "tcp://" + net.JoinHostPort(ns.HostIP, port), "tcp://" + net.JoinHostPort("127.0.0.1", port)
	}
	n := 0
	try := func(url, user, pw string, remote bool) error {
		n++
		var dial mqtttest.Dialer
		if remote {
			dial = ns.DialContext
		}
		return mqtttest.TryPublish(url, "remote-test-"+string(rune('a'+n)), user, pw, dial, plateTopic(n), platePayload(n))
	}

	remote, local := brokerOn(EmbeddedConfig{})
	if err := try(remote, "", "", true); err == nil {
		t.Error("no users: a client from another host was let in")
	}
	if err := try(local, "", "", false); err != nil {
		t.Errorf("no users: a loopback client was refused: %v", err)
	}

	remote, _ = brokerOn(EmbeddedConfig{AllowUnauthenticatedRemote: true})
	if err := try(remote, "", "", true); err != nil {
		t.Errorf("allow_unauthenticated_remote: a client from another host was refused: %v", err)
	}

	remote, _ = brokerOn(EmbeddedConfig{Users: users})
	if err := try(remote, "", "", true); err == nil {
		t.Error("users: a client from another host without credentials was let in")
	}
	if err := try(remote, "lane-node", "pw-remote-1", true); err != nil {
		t.Errorf("users: a client from another host with credentials was refused: %v", err)
	}
	if got := distinctPlates(t, readAll(t, st, "plates")); got != 3 {
		t.Errorf("%d plates stored, want the 3 from admitted clients", got)
	}
}

// TestNormalizeRefusesOpenBroker: an embedded broker beyond loopback with
// no users is a config error naming mqtt.embedded.users, unless the
// opt-out is set, users are listed, or an external broker is used.
func TestNormalizeRefusesOpenBroker(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:1883", ":1883", "192.168.1.5:1883", "[::]:1883"} {
		c := Config{Embedded: EmbeddedConfig{Addr: addr}}
		err := c.Normalize("s")
		if !errors.Is(err, access.ErrRemoteUnauthenticated) || !errors.Is(err, ErrConfig) {
			t.Errorf("addr %s without users: %v, want ErrRemoteUnauthenticated", addr, err)
		} else if !strings.Contains(err.Error(), "mqtt.embedded.users") || !strings.Contains(err.Error(), "allow_unauthenticated_remote") {
			t.Errorf("addr %s: the error does not name the keys: %v", addr, err)
		}
	}
	for _, c := range []Config{
		{Embedded: EmbeddedConfig{Addr: "127.0.0.1:1883"}},
		{Embedded: EmbeddedConfig{Addr: "localhost:1883"}},
		{},
		{Embedded: EmbeddedConfig{Addr: "0.0.0.0:1883", Users: []User{{Username: "a", Password: "b"}}}},
		{Embedded: EmbeddedConfig{Addr: "0.0.0.0:1883", AllowUnauthenticatedRemote: true}},
		{Broker: "tcp://mqtt.lan:1883", Embedded: EmbeddedConfig{Addr: "0.0.0.0:1883"}},
	} {
		if err := c.Normalize("s"); err != nil {
			t.Errorf("%+v: %v", c.Embedded, err)
		}
	}
}
