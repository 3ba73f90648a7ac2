package mqtt

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kaiten-edge/kaiten/gateway/access"
)

// broker is the embedded mochi broker. Its ingest hook appends every
// routed PUBLISH before the broker acknowledges it (see ingestHook).
type broker struct {
	srv  *mochi.Server
	hook *ingestHook
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

func startBroker(addr string, fallback bool, emb EmbeddedConfig, w *writer, log *slog.Logger) (*broker, error) {
	ln, err := listen(addr, fallback, log)
	if err != nil {
		return nil, err
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = MaxEmbeddedPacket
	srv := mochi.New(&mochi.Options{Capabilities: caps, Logger: log.With("component", "mqtt-broker")})
	hook := newIngestHook(srv, w, emb, int(caps.ReceiveMaximum), log)
	if err := srv.AddHook(hook, nil); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mqtt: broker hook: %w", err)
	}
	if err := srv.AddListener(listeners.NewNet(listenerID, ln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mqtt: broker listener: %w", err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("mqtt: broker: %w", err)
	}
	return &broker{srv: srv, hook: hook, addr: ln.Addr().String()}, nil
}

// close stops the broker. mochi's Close disconnects a listener's clients
// through Clients.GetByListener, which takes the clients' read lock twice
// (it calls Len under it): a client leaving at that moment queues for the
// write lock in between and both wait for ever (seen as a hung shutdown).
// So the listener is closed here without that step, and the clients are
// disconnected from a copy of the map, before mochi's Close.
func (b *broker) close() error {
	b.srv.Listeners.Close(listenerID, func(string) {})
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	return b.srv.Close()
}

// listenerID names the broker's one listener.
const listenerID = "tcp"

// ingestHook lets clients connect (with users configured, only those
// users; without, only loopback clients unless allow_unauthenticated_remote)
// and publish, and stores routed publishes. Topics no
// route matches pass through the broker untouched.
//
// Routed QoS 0 and 1 publishes are pipelined: OnPublish, on the client's
// read loop, queues the message for the writer and tells mochi to drop
// the packet (ErrRejectPacket: no PUBACK, no delivery), so the read loop
// goes on to the client's next publish and one group commit covers many
// messages of one connection. Once the message is durable, the client's
// ack loop injects the packet again (marked with Ignore, which the wire
// never sets); this time OnPublish lets it through and mochi does what it
// does for any publish: retain, PUBACK, delivery to subscribers. The ack
// loop takes a client's messages in the order they arrived, so PUBACKs go
// out in that order; the writer appends in arrival order too. If one
// message cannot be stored, nothing after it on that connection is
// acknowledged either: the client is disconnected and resends.
//
// QoS 2 publishes are rare here and stay synchronous: OnPublish waits for
// the append and mochi then runs its PUBREC/PUBREL exchange.
type ingestHook struct {
	mochi.HookBase
	srv   *mochi.Server
	w     *writer
	users []User // empty: loopback clients only, unless allowRemote
	// allowRemote (mqtt.embedded.allow_unauthenticated_remote) lets any
	// client connect when users is empty.
	allowRemote bool
	window      int // messages one connection may have queued for acknowledgement
	log         *slog.Logger

	mu    sync.Mutex
	conns map[*mochi.Client]*pubConn
	track pendingCount
}

// pubConn is one connection's pipeline: messages accepted from it and not
// yet acknowledged (or given up), in arrival order.
type pubConn struct {
	q      chan *pending
	budget *semaphore.Weighted // payload bytes in q
}

// pending is one accepted publish waiting for its append.
type pending struct {
	pk     packets.Packet
	weight int64
	res    chan error // the writer's verdict; buffered
}

func newIngestHook(srv *mochi.Server, w *writer, emb EmbeddedConfig, window int, log *slog.Logger) *ingestHook {
	return &ingestHook{srv: srv, w: w, users: emb.Users, allowRemote: emb.AllowUnauthenticatedRemote, window: max(window, 1), log: log,
		conns: map[*mochi.Client]*pubConn{}}
}

func (h *ingestHook) ID() string { return "kaiten-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnDisconnect}, []byte{b})
}

// OnConnectAuthenticate accepts, when no users are configured, clients on
// this machine (and everyone with allowRemote); else only a matching
// username and password (compared in constant time). The loopback rule
// holds here even if a config with a non-loopback address and no users
// got past Normalize: a refused client gets a CONNACK "not authorized".
func (h *ingestHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if len(h.users) == 0 {
		if h.allowRemote || cl.Net.Inline || access.IsLoopback(cl.Net.Remote) {
			return true
		}
		h.log.Warn("mqtt: refused a client from another host: the embedded broker has no users (mqtt.embedded.users)",
			"remote", cl.Net.Remote)
		return false
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

// OnPublish runs on the publishing client's read loop, before mochi would
// acknowledge. Routed QoS 0 and 1 messages are queued (see ingestHook) and
// rejected for now; a QoS 2 message is stored before it returns. If the
// gateway is stopping, the message is not acknowledged and the client is
// disconnected, so it sends the message again after reconnecting.
func (h *ingestHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.Ignore {
		// Our own re-injection of a message that is durable now.
		pk.Ignore = false
		return pk, nil
	}
	if cl.Net.Inline || h.w.rt.match(pk.TopicName) == nil {
		return pk, nil
	}
	pk.Payload = bytes.Clone(pk.Payload)
	m := Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos,
		Dup: pk.FixedHeader.Dup, Received: time.Now()}
	if pk.FixedHeader.Qos == 2 {
		if err := h.w.store(context.Background(), m); err != nil {
			// Only a stopping writer gives up; the broker closes this
			// client next, and the client resends.
			return pk, packets.ErrRejectPacket
		}
		return pk, nil
	}
	pc := h.conn(cl)
	p := &pending{pk: pk, weight: min(int64(len(pk.Payload))+1, h.w.maxItem), res: make(chan error, 1)}
	// Bounded per connection too: a client that does not read its
	// PUBACKs stops being read once its window is full.
	if err := pc.budget.Acquire(context.Background(), p.weight); err != nil {
		return pk, packets.ErrRejectPacket
	}
	h.track.add()
	if err := h.w.submit(context.Background(), m, func(err error) { p.res <- err }); err != nil {
		p.res <- err
	}
	pc.q <- p
	return pk, packets.ErrRejectPacket
}

// OnDisconnect runs after the client's read loop ended: no more publishes
// come from it, so its ack loop ends once it has handled the queue.
func (h *ingestHook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	h.mu.Lock()
	pc := h.conns[cl]
	delete(h.conns, cl)
	h.mu.Unlock()
	if pc != nil {
		close(pc.q)
	}
}

// conn returns cl's pipeline, starting its ack loop on first use.
func (h *ingestHook) conn(cl *mochi.Client) *pubConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	pc := h.conns[cl]
	if pc == nil {
		pc = &pubConn{q: make(chan *pending, h.window), budget: semaphore.NewWeighted(h.w.maxItem)}
		h.conns[cl] = pc
		go h.ackLoop(cl, pc)
	}
	return pc
}

// ackLoop acknowledges cl's messages in arrival order, each once it is
// durable. After a message that could not be stored it acknowledges
// nothing more and disconnects the client.
func (h *ingestHook) ackLoop(cl *mochi.Client, pc *pubConn) {
	var failed error
	for p := range pc.q {
		if failed == nil {
			if err := p.wait(h.w.exited); err != nil {
				failed = err
				code := packets.ErrUnspecifiedError
				if errors.Is(err, ErrStopped) || errors.Is(err, context.Canceled) {
					code = packets.ErrServerShuttingDown
				}
				h.log.Debug("mqtt: message not stored; disconnecting the client so it resends", "client", cl.ID, "err", err)
				_ = h.srv.DisconnectClient(cl, code)
			} else if !cl.Closed() {
				pk := p.pk
				pk.Ignore = true
				// The topic alias was resolved on the first pass; setting it
				// again could undo a later remapping by the client.
				pk.Properties.TopicAliasFlag = false
				if err := h.srv.InjectPacket(cl, pk); err != nil {
					// The PUBACK could not be written: the connection is
					// gone, and the client resends.
					cl.Stop(err)
				}
			}
		}
		pc.budget.Release(p.weight)
		h.track.done()
	}
}

// wait returns the writer's verdict on p, or ErrStopped if the writer
// exited without giving one.
func (p *pending) wait(exited <-chan struct{}) error {
	select {
	case err := <-p.res:
		return err
	case <-exited:
		select {
		case err := <-p.res:
			return err
		default:
			return ErrStopped
		}
	}
}

// flush waits (until ctx ends) for every queued message to be
// acknowledged or given up. Call it after the writer exited, so every
// verdict is in, and before closing the broker.
func (h *ingestHook) flush(ctx context.Context) error {
	return h.track.wait(ctx)
}

// pendingCount counts messages accepted and not yet acknowledged or given
// up; wait returns when it is zero.
type pendingCount struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to zero
}

func (c *pendingCount) add() {
	c.mu.Lock()
	if c.n == 0 {
		c.idle = make(chan struct{})
	}
	c.n++
	c.mu.Unlock()
}

func (c *pendingCount) done() {
	c.mu.Lock()
	c.n--
	if c.n == 0 {
		close(c.idle)
	}
	c.mu.Unlock()
}

func (c *pendingCount) wait(ctx context.Context) error {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return nil
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt: acknowledging queued messages: %w", ctx.Err())
	}
}
