package mqtt

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaiten-edge/kaiten/internal/testutil"
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

func TestEmbeddedBrokerUsers(t *testing.T) {
	addr := testutil.FreeAddr(t)
	st := openStore(t, t.TempDir())
	defer st.Close()
	in, _ := startIngest(t, Config{Embedded: EmbeddedConfig{Addr: addr,
		Users: []User{{Username: "lane-node", Password: "pw-1"}, {Username: "kitchen", Password: "pw-2"}}}}, st)
	defer stopIngest(t, in)
	if u, p := in.Credentials(); u != "lane-node" || p != "pw-1" {
		t.Fatalf("credentials for local publishers: %q %q", u, p)
	}
	connect := func(user, pw string) error {
		o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("c-" + user + pw).SetConnectTimeout(5 * time.Second)
		if user != "" {
			o.SetUsername(user).SetPassword(pw)
		}
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return errors.New("connect timed out")
		}
		if tok.Error() == nil {
			defer c.Disconnect(50)
			pt := c.Publish(plateTopic(0), 1, false, platePayload(0))
			if !pt.WaitTimeout(10*time.Second) || pt.Error() != nil {
				return fmt.Errorf("publish: %v", pt.Error())
			}
		}
		return tok.Error()
	}
	for _, bad := range [][2]string{{"", ""}, {"lane-node", "wrong"}, {"nobody", "pw-1"}} {
		if err := connect(bad[0], bad[1]); err == nil {
			t.Errorf("user %q password %q was let in", bad[0], bad[1])
		}
	}
	if err := connect("kitchen", "pw-2"); err != nil {
		t.Fatal(err)
	}
	if got := distinctPlates(t, readAll(t, st, "plates")); got != 1 {
		t.Fatalf("%d plates stored, want the one from the allowed user", got)
	}
}
