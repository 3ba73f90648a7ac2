package mqtt

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// broker is the embedded mochi broker. Its ingest hook appends every
// routed PUBLISH before the broker acknowledges it.
type broker struct {
	srv  *mochi.Server
	addr string
}

// listen opens addr; when fallback is set and addr is taken, it opens a
// free port on the same host instead and says so in the log.
func listen(addr string, fallback bool, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil || !fallback {
		if err != nil {
			return nil, fmt.Errorf("mqtt.embedded.addr %s: %w", addr, err)
		}
		return ln, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, fmt.Errorf("mqtt.embedded.addr %s: %w (and no free port: %v)", addr, err, err2)
	}
	log.Warn("mqtt: the default broker address is taken; the embedded broker listens on a free port instead",
		"wanted", addr, "addr", ln.Addr().String(), "err", err)
	return ln, nil
}

// MaxEmbeddedPacket is the largest packet the embedded broker reads; a
// client sending more is disconnected. Messages up to it but over
// max_payload are dead-lettered (cut to MaxDeadLetterData).
const MaxEmbeddedPacket = 4 << 20

func startBroker(addr string, fallback bool, users []User, w *writer, log *slog.Logger) (*broker, error) {
	ln, err := listen(addr, fallback, log)
	if err != nil {
		return nil, err
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = MaxEmbeddedPacket
	srv := mochi.New(&mochi.Options{Capabilities: caps, Logger: log.With("component", "mqtt-broker")})
	if err := srv.AddHook(&ingestHook{w: w, users: users}, nil); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mqtt: broker hook: %w", err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mqtt: broker listener: %w", err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("mqtt: broker: %w", err)
	}
	return &broker{srv: srv, addr: ln.Addr().String()}, nil
}

func (b *broker) close() error { return b.srv.Close() }

// ingestHook lets every client connect and publish (the embedded broker
// listens on loopback by default) and stores routed publishes. Topics no
// route matches pass through the broker untouched.
type ingestHook struct {
	mochi.HookBase
	w     *writer
	users []User // empty: anyone may connect
}

func (h *ingestHook) ID() string { return "kaiten-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish}, []byte{b})
}

// OnConnectAuthenticate accepts everyone when no users are configured,
// else only a matching username and password (compared in constant time).
func (h *ingestHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if len(h.users) == 0 {
		return true
	}
	ok := false
	for _, u := range h.users {
		un := subtle.ConstantTimeCompare(pk.Connect.Username, []byte(u.Username))
		pw := subtle.ConstantTimeCompare(pk.Connect.Password, []byte(u.Password))
		if un&pw == 1 {
			ok = true
		}
	}
	return ok
}

func (h *ingestHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool { return true }

// OnPublish runs on the publishing client's read loop before the broker
// sends its PUBACK: it returns once the record is durable. If the gateway
// is stopping, the publish is rejected without an acknowledgement, so the
// client sends it again after reconnecting.
func (h *ingestHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || h.w.rt.match(pk.TopicName) == nil {
		return pk, nil
	}
	m := Message{Topic: pk.TopicName, Payload: bytes.Clone(pk.Payload), QoS: pk.FixedHeader.Qos,
		Dup: pk.FixedHeader.Dup, Received: time.Now()}
	if err := h.w.store(context.Background(), m); err != nil {
		// Only a stopping writer gives up; the broker closes this client
		// next, and the client resends its unacknowledged publishes.
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}
