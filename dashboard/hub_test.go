package dashboard

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// recConn records every message written; it never blocks.
type recConn struct {
	mu     sync.Mutex
	msgs   []string
	closed bool
}

func (c *recConn) WriteMessage(m []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("closed")
	}
	c.msgs = append(c.msgs, string(m))
	return nil
}

func (c *recConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *recConn) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// stuckConn blocks in WriteMessage until closed, like a client whose TCP
// window is full.
type stuckConn struct {
	once   sync.Once
	closed chan struct{}
	writes atomic.Int64
}

func newStuck() *stuckConn { return &stuckConn{closed: make(chan struct{})} }

func (c *stuckConn) WriteMessage(m []byte) error {
	c.writes.Add(1)
	<-c.closed
	return errors.New("closed")
}

func (c *stuckConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func TestHubFanOut(t *testing.T) {
	h := NewHub(HubOptions{Queue: 256})
	defer h.Close()
	var a, b []*recConn
	for i := 0; i < 10; i++ {
		c := &recConn{}
		cl, err := h.Attach(c)
		if err != nil {
			t.Fatal(err)
		}
		topics := []string{"a"}
		if i < 3 {
			topics = append(topics, "b")
			b = append(b, c)
		}
		cl.Subscribe(topics...)
		a = append(a, c)
	}
	var wantA, wantB []string
	for i := 0; i < 50; i++ {
		m := fmt.Sprintf("a%d", i)
		wantA = append(wantA, m)
		h.Publish("a", []byte(m), false)
		if i%10 == 0 {
			m := fmt.Sprintf("b%d", i)
			wantB = append(wantB, m)
			h.Publish("b", []byte(m), false)
		}
	}
	h.Publish("nobody", []byte("x"), false)
	for i, c := range a {
		want := len(wantA)
		if i < 3 {
			want += len(wantB)
		}
		testutil.WaitFor(t, 5*time.Second, func() error {
			if n := len(c.got()); n != want {
				return fmt.Errorf("client %d got %d messages, want %d", i, n, want)
			}
			return nil
		})
		// Per topic, order is kept.
		var gotA, gotB []string
		for _, m := range c.got() {
			if m[0] == 'a' {
				gotA = append(gotA, m)
			} else {
				gotB = append(gotB, m)
			}
		}
		if fmt.Sprint(gotA) != fmt.Sprint(wantA) {
			t.Fatalf("client %d: topic a out of order or wrong: %v", i, gotA)
		}
		if i < 3 && fmt.Sprint(gotB) != fmt.Sprint(wantB) {
			t.Fatalf("client %d: topic b: %v, want %v", i, gotB, wantB)
		}
		if i >= 3 && len(gotB) != 0 {
			t.Fatalf("client %d got topic b without subscribing: %v", i, gotB)
		}
	}
	if h.Dropped() != 0 {
		t.Fatalf("dropped %d clients, want none", h.Dropped())
	}
}

func TestHubSlowClientDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("paces 200 publishes to five clients (about 3 s): make test runs it")
	}
	var reasons sync.Map
	h := NewHub(HubOptions{Queue: 4, OnDrop: func(r string) {
		n, _ := reasons.LoadOrStore(r, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}})
	defer h.Close()
	slow := newStuck()
	sc, err := h.Attach(slow)
	if err != nil {
		t.Fatal(err)
	}
	sc.Subscribe("t")
	fast := make([]*recConn, 5)
	for i := range fast {
		fast[i] = &recConn{}
		c, err := h.Attach(fast[i])
		if err != nil {
			t.Fatal(err)
		}
		c.Subscribe("t")
	}
	const n = 200
	for i := 0; i < n; i++ {
		h.Publish("t", []byte(fmt.Sprint(i)), false)
		// Pace the publisher to the fast clients so that only the stuck
		// one falls behind; it must never block on the stuck one.
		for _, c := range fast {
			testutil.WaitFor(t, 5*time.Second, func() error {
				if got := len(c.got()); got < i+1 {
					return fmt.Errorf("fast client has %d of %d", got, i+1)
				}
				return nil
			})
		}
	}
	select {
	case <-sc.Done():
	default:
		t.Fatal("stuck client still attached after its queue overflowed")
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if c := h.Clients(); c != len(fast) {
			return fmt.Errorf("%d clients attached, want %d", c, len(fast))
		}
		return nil
	})
	if v, ok := reasons.Load("slow"); !ok || v.(*atomic.Int64).Load() != 1 {
		t.Fatalf("want exactly one drop for reason slow")
	}
	if w := slow.writes.Load(); w != 1 {
		t.Fatalf("stuck client saw %d writes, want 1 (it blocked on the first)", w)
	}
	for i, c := range fast {
		if got := len(c.got()); got != n {
			t.Fatalf("fast client %d got %d messages, want %d", i, got, n)
		}
	}
}

// TestHubBoundedMemory attaches many clients that never read: each is
// dropped once its queue fills, the publisher never blocks, and once they
// are gone memory and goroutines return to where they were.
func TestHubBoundedMemory(t *testing.T) {
	const clients, queue, msgs, size = 1000, 8, 2000, 4 << 10
	baseG := runtime.NumGoroutine()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	h := NewHub(HubOptions{Queue: queue, MaxClients: clients})
	conns := make([]*stuckConn, clients)
	for i := range conns {
		conns[i] = newStuck()
		c, err := h.Attach(conns[i])
		if err != nil {
			t.Fatal(err)
		}
		c.Subscribe("t")
	}
	if _, err := h.Attach(newStuck()); !errors.Is(err, ErrHubFull) {
		t.Fatalf("attach past MaxClients: err %v, want ErrHubFull", err)
	}
	var peak uint64
	var ms runtime.MemStats
	for i := 0; i < msgs; i++ {
		h.Publish("t", make([]byte, size), false)
		if i%200 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	// Queues hold at most clients × queue messages, and the stuck clients
	// are dropped once theirs is full, so far less than msgs × size
	// (8 MiB) × clients is ever held.
	bound := before.HeapAlloc + uint64(clients*(queue+1)*size) + 16<<20
	if peak > bound {
		t.Fatalf("peak heap %d MiB, want at most %d MiB", peak>>20, bound>>20)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if c := h.Clients(); c != 0 {
			return fmt.Errorf("%d clients still attached", c)
		}
		return nil
	})
	if d := h.Dropped(); d != clients {
		t.Fatalf("dropped %d, want %d", d, clients)
	}
	h.Close()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if g := runtime.NumGoroutine(); g > baseG+5 {
			return fmt.Errorf("%d goroutines, started with %d", g, baseG)
		}
		return nil
	})
	testutil.WaitFor(t, 10*time.Second, func() error {
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if after.HeapAlloc > before.HeapAlloc+4<<20 {
			return fmt.Errorf("heap %d KiB after all clients left, %d KiB before", after.HeapAlloc>>10, before.HeapAlloc>>10)
		}
		return nil
	})
}

func TestHubRetainedAndTopics(t *testing.T) {
	var mu sync.Mutex
	var events []string
	h := NewHub(HubOptions{OnTopic: func(topic string, on bool) {
		mu.Lock()
		events = append(events, fmt.Sprint(topic, on))
		mu.Unlock()
	}})
	h.Publish("store", []byte("s1"), true)
	h.Publish("store", []byte("s2"), true)
	h.Publish("live", []byte("gone"), false)
	c := &recConn{}
	cl, err := h.Attach(c)
	if err != nil {
		t.Fatal(err)
	}
	cl.Subscribe("store", "live")
	testutil.WaitFor(t, 5*time.Second, func() error {
		if got := c.got(); fmt.Sprint(got) != "[s2]" {
			return fmt.Errorf("got %v, want only the retained s2", got)
		}
		return nil
	})
	cl.Subscribe("store")
	cl.Close()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if h.Active("store") || h.Clients() != 0 {
			return errors.New("closed client still subscribed")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{"storetrue": true, "livetrue": true, "livefalse": true, "storefalse": true}
	if len(events) != 4 {
		t.Fatalf("topic events %v, want 4", events)
	}
	for _, e := range events {
		if !want[e] {
			t.Fatalf("unexpected topic event %q in %v", e, events)
		}
	}
	h.Close()
	if _, err := h.Attach(&recConn{}); !errors.Is(err, ErrHubClosed) {
		t.Fatalf("attach after close: %v", err)
	}
}

// TestHubConcurrent runs publishers, subscribers and closers at once under
// the race detector.
func TestHubConcurrent(t *testing.T) {
	h := NewHub(HubOptions{Queue: 16})
	defer h.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := 0; p < 3; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h.Publish([]string{"a", "b"}[i%2], []byte("m"), i%3 == 0)
			}
		}()
	}
	for i := 0; i < 200; i++ {
		c, err := h.Attach(&recConn{})
		if err != nil {
			t.Fatal(err)
		}
		c.Subscribe("a")
		c.Subscribe("a", "b")
		if i%2 == 0 {
			c.Close()
		}
	}
	close(stop)
	wg.Wait()
}
