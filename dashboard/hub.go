package dashboard

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrHubFull is returned by Hub.Attach when MaxClients clients are attached.
var ErrHubFull = errors.New("dashboard: too many clients")

// Conn is the one thing the hub needs from a client connection: write one
// message, and close. WriteMessage is only ever called from the client's own
// writer goroutine; Close may be called from any goroutine, at any time,
// more than once, and must unblock a WriteMessage in progress. The websocket
// adapter (wsConn) is the real implementation; tests use fakes.
type Conn interface {
	WriteMessage(msg []byte) error
	Close() error
}

// HubOptions configure a Hub. Zero values mean the defaults.
type HubOptions struct {
	// Queue is how many messages may wait for one client before it is
	// dropped as too slow. Default 64.
	Queue int
	// MaxClients caps attached clients; Attach fails with ErrHubFull past
	// it. Default 256.
	MaxClients int
	// OnTopic, if set, is called with a topic and true when its first
	// subscriber arrives and with false when its last one leaves. It is
	// called without the hub's lock held, in order per topic, and must not
	// block for long.
	OnTopic func(topic string, active bool)
	// OnDrop, if set, is called once for every client dropped, with the
	// reason: "slow" (queue full), "write" (write failed) or "closed".
	OnDrop func(reason string)
	// OnSend, if set, is called after every message written to a client.
	OnSend func(bytes int)
}

// Hub fans messages out to websocket clients. Each client has one writer
// goroutine and a bounded queue; Publish never blocks: a client whose queue
// is full is dropped (its connection closed), so a slow or dead client can
// neither slow the publisher nor other clients. Messages are shared byte
// slices: the hub never copies them and callers must not modify a message
// after publishing it. Memory is bounded by MaxClients × Queue messages.
//
// The hub keeps the last message of every topic published with retain set
// and sends it to each new subscriber at once, so a client that connects or
// reconnects shows data without waiting for the next update.
//
// All methods are safe for concurrent use.
type Hub struct {
	opts HubOptions

	mu       sync.RWMutex
	clients  map[*Client]struct{}
	retained map[string][]byte
	subs     map[string]int // topic -> subscriber count
	closed   bool

	retainMu sync.Mutex // guards retained against concurrent Publish calls
	topicMu  sync.Mutex // serialises OnTopic callbacks
	dropped  atomic.Int64
}

// NewHub returns a hub with opts' zero values filled in.
func NewHub(opts HubOptions) *Hub {
	if opts.Queue <= 0 {
		opts.Queue = 64
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 256
	}
	return &Hub{opts: opts, clients: map[*Client]struct{}{}, retained: map[string][]byte{}, subs: map[string]int{}}
}

// Client is one attached connection.
type Client struct {
	hub  *Hub
	conn Conn
	send chan []byte
	done chan struct{}
	once sync.Once
	// topics is guarded by hub.mu.
	topics map[string]bool
	exited chan struct{}
}

// Attach registers conn and starts its writer goroutine. The client has no
// topics until Subscribe. It returns ErrHubFull when the hub is at
// MaxClients and ErrHubClosed after Close.
func (h *Hub) Attach(conn Conn) (*Client, error) {
	c := &Client{hub: h, conn: conn, send: make(chan []byte, h.opts.Queue),
		done: make(chan struct{}), topics: map[string]bool{}, exited: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHubClosed
	}
	if len(h.clients) >= h.opts.MaxClients {
		h.mu.Unlock()
		return nil, ErrHubFull
	}
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	go c.writeLoop()
	return c, nil
}

// ErrHubClosed is returned by Attach after Close.
var ErrHubClosed = errors.New("dashboard: hub closed")

// Subscribe sets the client's topics, replacing earlier ones, and queues
// the retained message of each new topic.
func (c *Client) Subscribe(topics ...string) {
	h := c.hub
	var started, stopped []string
	h.mu.Lock()
	if _, ok := h.clients[c]; !ok {
		h.mu.Unlock()
		return
	}
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	for t := range c.topics {
		if !want[t] {
			delete(c.topics, t)
			if h.subs[t]--; h.subs[t] == 0 {
				delete(h.subs, t)
				stopped = append(stopped, t)
			}
		}
	}
	for t := range want {
		if c.topics[t] {
			continue
		}
		c.topics[t] = true
		if h.subs[t]++; h.subs[t] == 1 {
			started = append(started, t)
		}
		if m, ok := h.retained[t]; ok {
			c.enqueue(m)
		}
	}
	h.mu.Unlock()
	h.notify(started, stopped)
}

// Done is closed once the client has been dropped or closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close detaches the client and closes its connection. It is idempotent.
func (c *Client) Close() { c.drop("closed") }

// enqueue must be called with hub.mu held (read or write).
func (c *Client) enqueue(m []byte) {
	select {
	case <-c.done:
	case c.send <- m:
	default:
		c.drop("slow")
	}
}

func (c *Client) drop(reason string) {
	c.once.Do(func() {
		close(c.done)
		_ = c.conn.Close()
		c.hub.dropped.Add(1)
		if c.hub.opts.OnDrop != nil {
			c.hub.opts.OnDrop(reason)
		}
		// The writer goroutine removes the client from the hub: drop may
		// run under the hub's read lock.
	})
}

func (c *Client) writeLoop() {
	defer close(c.exited)
	defer c.hub.remove(c)
	for {
		select {
		case <-c.done:
			return
		case m := <-c.send:
			if err := c.conn.WriteMessage(m); err != nil {
				c.drop("write")
				return
			}
			if c.hub.opts.OnSend != nil {
				c.hub.opts.OnSend(len(m))
			}
		}
	}
}

func (h *Hub) remove(c *Client) {
	var stopped []string
	h.mu.Lock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		for t := range c.topics {
			if h.subs[t]--; h.subs[t] == 0 {
				delete(h.subs, t)
				stopped = append(stopped, t)
			}
		}
		c.topics = nil
	}
	h.mu.Unlock()
	h.notify(nil, stopped)
}

func (h *Hub) notify(started, stopped []string) {
	if h.opts.OnTopic == nil || len(started)+len(stopped) == 0 {
		return
	}
	h.topicMu.Lock()
	defer h.topicMu.Unlock()
	// Re-check under topicMu so that callbacks for one topic cannot be
	// delivered out of order when two goroutines race.
	for _, t := range stopped {
		if !h.Active(t) {
			h.opts.OnTopic(t, false)
		}
	}
	for _, t := range started {
		if h.Active(t) {
			h.opts.OnTopic(t, true)
		}
	}
}

// Active reports whether topic has at least one subscriber.
func (h *Hub) Active(topic string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.subs[topic] > 0
}

// Publish queues msg for every subscriber of topic without blocking; a
// subscriber whose queue is full is dropped. With retain, msg also becomes
// the topic's retained message, sent to later subscribers on Subscribe.
func (h *Hub) Publish(topic string, msg []byte, retain bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return
	}
	if retain {
		// Retained messages are written under the read lock: guard the map
		// with a tiny critical section of its own.
		h.setRetained(topic, msg)
	}
	if h.subs[topic] == 0 {
		return
	}
	for c := range h.clients {
		if c.topics[topic] {
			c.enqueue(msg)
		}
	}
}

func (h *Hub) setRetained(topic string, msg []byte) {
	h.retainMu.Lock()
	h.retained[topic] = msg
	h.retainMu.Unlock()
}

// Unretain forgets topic's retained message.
func (h *Hub) Unretain(topic string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	h.retainMu.Lock()
	delete(h.retained, topic)
	h.retainMu.Unlock()
}

// Retained returns the retained message of topic, nil if none.
func (h *Hub) Retained(topic string) []byte {
	h.mu.RLock()
	defer h.mu.RUnlock()
	h.retainMu.Lock()
	defer h.retainMu.Unlock()
	return h.retained[topic]
}

// Clients is the number of attached clients.
func (h *Hub) Clients() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients)
}

// Dropped counts clients dropped or closed since the hub was made.
func (h *Hub) Dropped() int64 { return h.dropped.Load() }

// DropAll drops every attached client (their pages reconnect) and returns
// how many there were. The hub stays open.
func (h *Hub) DropAll() int {
	h.mu.RLock()
	cs := make([]*Client, 0, len(h.clients))
	for c := range h.clients {
		cs = append(cs, c)
	}
	h.mu.RUnlock()
	for _, c := range cs {
		c.drop("closed")
	}
	return len(cs)
}

// Close drops every client and refuses new ones. It waits for the writer
// goroutines to end.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	cs := make([]*Client, 0, len(h.clients))
	for c := range h.clients {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.drop("closed")
		<-c.exited
	}
}
