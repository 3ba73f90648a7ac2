// Package mqtttest runs a real mosquitto for tests, on a free loopback port
// with a generated config (never the system service), and offers a paho
// publisher that keeps its session across broker or gateway restarts.
package mqtttest

import (
	"context"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// Mosquitto is a mosquitto process owned by a test.
type Mosquitto struct {
	Addr string // host:port
	Dir  string // config and persistence
	conf string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// URL is the broker URL for paho.
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr }

// Options tune the generated mosquitto.conf.
type Options struct {
	// Addr is the loopback host:port to listen on; default a free one.
	Addr string
	// MaxInflight is max_inflight_messages (QoS 1 messages in flight to
	// one subscriber). 0 leaves mosquitto's default (20).
	MaxInflight int
	// TLS, if set, makes the listener TLS-only with these PEM files; with
	// RequireCertificate clients must present a certificate signed by CAFile.
	TLS *TLSFiles
	// Users, if set, turns anonymous access off and creates a password
	// file with these user: password pairs (with mosquitto_passwd).
	Users map[string]string
}

// TLSFiles are PEM files for a TLS listener.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
	RequireCertificate        bool
}

// StartMosquitto writes a config with persistence in a temporary folder,
// starts mosquitto on a free loopback port and waits until it accepts
// connections. It is stopped at test cleanup.
func StartMosquitto(t testing.TB, o Options) *Mosquitto {
	t.Helper()
	testutil.LookTool(t, "mosquitto") // fails naming `make test-deps` when missing
	dir := t.TempDir()
	m := &Mosquitto{Addr: o.Addr, Dir: dir, conf: filepath.Join(dir, "mosquitto.conf")}
	if m.Addr == "" {
		m.Addr = testutil.FreeAddr(t)
	}
	_, port, _ := net.SplitHostPort(m.Addr)
	var b strings.Builder
	fmt.Fprintf(&b, "listener %s 127.0.0.1\n", port)
	if o.TLS != nil {
		fmt.Fprintf(&b, "cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate %t\n",
			o.TLS.CAFile, o.TLS.CertFile, o.TLS.KeyFile, o.TLS.RequireCertificate)
	}
	if len(o.Users) > 0 {
		pw := filepath.Join(dir, "passwd")
		if err := os.WriteFile(pw, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for u, p := range o.Users {
			out, err := exec.Command(testutil.LookTool(t, "mosquitto_passwd"), "-b", pw, u, p).CombinedOutput()
			if err != nil {
				t.Fatalf("mosquitto_passwd: %v: %s", err, out)
			}
		}
		fmt.Fprintf(&b, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		b.WriteString("allow_anonymous true\n")
	}
	fmt.Fprintf(&b, "persistence true\npersistence_location %s/\nautosave_interval 0\n", dir)
	// A gateway that is down must find every message on its return.
	b.WriteString("max_queued_messages 0\nmax_queued_bytes 0\n")
	if o.MaxInflight > 0 {
		fmt.Fprintf(&b, "max_inflight_messages %d\n", o.MaxInflight)
	}
	b.WriteString("log_dest stderr\nlog_type error\nlog_type warning\n")
	if os.Geteuid() == 0 {
		b.WriteString("user root\n") // else mosquitto drops to a user that cannot write dir
	}
	if err := os.WriteFile(m.conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		t.Fatal(err)
	}
	m.log = lf
	m.Start(t)
	t.Cleanup(func() {
		m.Stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(lf.Name())
			t.Logf("mosquitto log:\n%s", b)
		}
		lf.Close()
	})
	return m
}

// Start (re)starts the process with the same config and port.
func (m *Mosquitto) Start(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	cmd := exec.Command(testutil.LookTool(t, "mosquitto"), "-c", m.conf)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		t.Fatalf("mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	testutil.WaitFor(t, 10*time.Second, func() error {
		select {
		case <-done:
			b, _ := os.ReadFile(m.log.Name())
			t.Fatalf("mosquitto exited at start:\n%s", b)
		default:
		}
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Stop sends SIGTERM (mosquitto saves its persistent state) and waits.
func (m *Mosquitto) Stop(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("mosquitto did not stop on SIGTERM")
	}
}

// Publisher connects a QoS 1 publisher with a persistent session (clean
// session off): messages not yet acknowledged when the connection drops are
// sent again after it reconnects. It is disconnected at test cleanup.
func Publisher(t testing.TB, url, clientID string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(200 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond).
		SetKeepAlive(10 * time.Second).SetWriteTimeout(2 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Subscriber connects a QoS 1 subscriber with automatic acknowledgement:
// the baseline against which the gateway's ingest is measured.
func Subscriber(t testing.TB, url, clientID, filter string, fn func(paho.Message)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(true).
		SetOrderMatters(true).SetKeepAlive(30 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	if tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { fn(m) }); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Dialer opens a client's connection; testutil.NetNS.DialContext is one
// (a client on another host), nil dials from this machine.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// TryPublish connects once as user (none when empty) through dial, and,
// if the broker accepts the connection, publishes payload to topic with
// QoS 1 and waits for the PUBACK. It returns the broker's refusal (e.g.
// paho's "not Authorized") or nil once the message was acknowledged.
func TryPublish(url, clientID, user, password string, dial Dialer, topic string, payload []byte) error {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	if user != "" {
		o.SetUsername(user).SetPassword(password)
	}
	if dial != nil {
		o.SetCustomOpenConnectionFn(func(u *neturl.URL, _ paho.ClientOptions) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return dial(ctx, "tcp", u.Host)
		})
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return fmt.Errorf("connect to %s: timed out", url)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect to %s: %w", url, err)
	}
	defer c.Disconnect(50)
	pt := c.Publish(topic, 1, false, payload)
	if !pt.WaitTimeout(15 * time.Second) {
		return fmt.Errorf("publish to %s: no PUBACK", topic)
	}
	return pt.Error()
}
