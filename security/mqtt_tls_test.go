package security

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

const mqttPassword = "mqtt-pw-91c4e0aa"

// mqttTLSConfig is the mqtt section for mosquitto at addr over TLS with
// the CA file and the gateway's client certificate.
func mqttTLSConfig(addr, ca, cert, key string) string {
	return fmt.Sprintf(`
mqtt:
  broker: ssl://%s
  client_id: kaiten-sec-test
  username: kaiten
  password: %s
  connect_timeout: 3s
  max_reconnect_interval: 1s
  tls:
    ca_file: %s
    cert_file: %s
    key_file: %s
`, addr, mqttPassword, ca, cert, key)
}

type mqttStatus struct {
	Connected  bool   `json:"connected"`
	Subscribed bool   `json:"subscribed"`
	Stored     int64  `json:"stored"`
	LastError  string `json:"last_error"`
}

// tlsPublisher connects a QoS 1 publisher to mosquitto over TLS.
func tlsPublisher(t *testing.T, m *tlsMosquitto, p *pki, id string, withCert bool) (paho.Client, error) {
	t.Helper()
	var cert, key string
	if withCert {
		cert, key = p.issue(t, id, false)
	}
	o := paho.NewClientOptions().AddBroker("ssl://" + m.Addr).SetClientID(id).
		SetTLSConfig(p.clientTLS(t, cert, key)).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect: no answer")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func waitMQTT(t *testing.T, d *testutil.Daemon, cond func(mqttStatus) error) mqttStatus {
	t.Helper()
	var st mqttStatus
	testutil.WaitFor(t, 20*time.Second, func() error {
		if err := statusBoard(d.HTTPAddr, "mqtt", &st); err != nil {
			return err
		}
		return cond(st)
	})
	return st
}

// TestMQTTTLS runs mosquitto with a TLS listener that requires a client
// certificate and points the daemon at it with a CA and its own
// certificate: plates published over TLS arrive in the stream. A
// publisher without a certificate is refused by the broker, and a gateway
// given the wrong CA never connects.
func TestMQTTTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon and mosquitto: make test runs it")
	}
	p := newPKI(t, "kaiten-test-ca")
	m := startTLSMosquitto(t, p)
	cert, key := p.issue(t, "kaiten-gateway", false)
	d := daemon(t, mqttTLSConfig(m.Addr, p.CA, cert, key))
	waitMQTT(t, d, func(s mqttStatus) error {
		if !s.Connected || !s.Subscribed {
			return fmt.Errorf("not connected and subscribed yet: %+v", s)
		}
		return nil
	})

	pub, err := tlsPublisher(t, m, p, "sec-publisher", true)
	if err != nil {
		t.Fatalf("publisher with a client certificate: %v", err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		body, _ := json.Marshal(map[string]any{"plate": fmt.Sprintf("tls-%03d", i), "type": "salmon"})
		tok := pub.Publish(fmt.Sprintf("store/demo-store/lane/%d/plate", i%3+1), 1, false, body)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	c := kinesisClient(d.HTTPAddr, "AKIDANY", "any")
	testutil.WaitFor(t, 20*time.Second, func() error {
		recs := readStream(t, c, "plates")
		seen := map[string]bool{}
		for _, r := range recs {
			var v struct{ Plate string }
			if json.Unmarshal(r.Data, &v) == nil && strings.HasPrefix(v.Plate, "tls-") {
				seen[v.Plate] = true
			}
		}
		if len(seen) != n {
			return fmt.Errorf("%d of %d plates in the stream", len(seen), n)
		}
		return nil
	})

	if _, err := tlsPublisher(t, m, p, "sec-nocert", false); err == nil {
		t.Fatal("mosquitto accepted a client without a certificate: the test broker is not requiring one")
	}

	t.Run("wrong CA", func(t *testing.T) {
		other := newPKI(t, "some-other-ca")
		d2 := daemon(t, strings.Replace(mqttTLSConfig(m.Addr, other.CA, cert, key), "kaiten-sec-test", "kaiten-sec-wrongca", 1))
		// The gateway tries: the broker sees a handshake fail.
		mark := len(m.Log())
		testutil.WaitFor(t, 20*time.Second, func() error {
			if l := m.Log(); len(l) <= mark || !strings.Contains(strings.ToLower(l[mark:]), "error") {
				return fmt.Errorf("mosquitto has not seen a failed handshake yet")
			}
			return nil
		})
		// ... stays disconnected, storing nothing, and says why in its
		// log and on the status board, so that an installer can fix it.
		st := waitMQTT(t, d2, func(s mqttStatus) error {
			if s.Connected || s.Subscribed || s.Stored != 0 {
				t.Fatalf("a gateway with the wrong CA is connected: %+v", s)
			}
			if !strings.Contains(s.LastError, "certificate") {
				return fmt.Errorf("last_error does not name the certificate problem: %q", s.LastError)
			}
			return nil
		})
		if !strings.Contains(d2.Log(), "certificate signed by unknown authority") {
			t.Fatalf("the daemon's log does not say why it cannot connect (status: %+v)", st)
		}
	})
}
