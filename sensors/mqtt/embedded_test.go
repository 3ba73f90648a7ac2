package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

// rawClient speaks MQTT 3.1.1 over a bare connection, so a test sees every
// PUBACK the broker writes, in the order it writes them, and the moment
// the broker closes the connection.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, addr, id string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	err = c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: id, Keepalive: 60}})
	if err != nil {
		t.Fatal(err)
	}
	typ, _, err := c.next()
	if err != nil || typ != packets.Connack {
		t.Fatalf("connect: packet type %d, %v", typ, err)
	}
	return c
}

func (c *rawClient) write(pk packets.Packet) error {
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	}
	if err == nil {
		_, err = c.conn.Write(buf.Bytes())
	}
	if err != nil {
		return fmt.Errorf("write packet type %d: %w", pk.FixedHeader.Type, err)
	}
	return nil
}

// publish sends a QoS 1 PUBLISH without waiting for its PUBACK.
func (c *rawClient) publish(id uint16, topic string, payload []byte) error {
	return c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 4,
		PacketID: id, TopicName: topic, Payload: payload})
}

// next reads one packet and returns its type and packet id (for acks);
// the error is io.EOF once the broker closed the connection.
func (c *rawClient) next() (typ byte, id uint16, err error) {
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	hb, err := c.r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	var fh packets.FixedHeader
	if err := fh.Decode(hb); err != nil {
		return 0, 0, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return 0, 0, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, 0, err
	}
	if fh.Type == packets.Puback && n >= 2 {
		id = uint16(body[0])<<8 | uint16(body[1])
	}
	return fh.Type, id, nil
}

// acksUntilClosed reads until the broker closes the connection and
// returns the ids of the PUBACKs it wrote before.
func (c *rawClient) acksUntilClosed() []uint16 {
	c.t.Helper()
	var ids []uint16
	for {
		typ, id, err := c.next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					c.t.Fatalf("the broker kept the connection open after stopping: %v", err)
				}
			}
			return ids
		}
		if typ == packets.Puback {
			ids = append(ids, id)
		}
	}
}

// rawPayload is message i of the raw tests: a plate with id p-<i>.
func rawPayload(i int) []byte { return platePayload(i) }

// startFakeIngest runs the embedded broker on st; stop stops it (once,
// and at the latest at cleanup).
func startFakeIngest(t *testing.T, st Appender) (in *Ingest, addr string, stop func(context.Context)) {
	t.Helper()
	addr = testutil.FreeAddr(t)
	in, err := Start(Config{Embedded: EmbeddedConfig{Addr: addr}}, "demo-store", Options{Store: st, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	stop = func(ctx context.Context) { _ = in.Stop(ctx) } // Stop runs once however often it is called
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stop(ctx)
	})
	return in, addr, stop
}

// durableStore is a fakeStore that reports, per payload, whether an
// append holding it has returned (i.e. would have been fsynced).
type durableStore struct {
	fakeStore
	mu      sync.Mutex
	durable map[string]bool
	fsync   time.Duration // how long each append takes
	entered atomic.Int64  // PutBatch calls started
	refused atomic.Int64  // records refused
}

func (d *durableStore) PutBatch(ctx context.Context, s string, es []stream.Entry) ([]stream.PutResult, error) {
	d.entered.Add(1)
	time.Sleep(d.fsync)
	res, err := d.fakeStore.PutBatch(ctx, s, es)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.durable == nil {
		d.durable = map[string]bool{}
	}
	for i, r := range res {
		if r.Err == nil {
			d.durable[string(es[i].Data)] = true
		} else {
			d.refused.Add(1)
		}
	}
	return res, nil
}

func (d *durableStore) isDurable(p []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.durable[string(p)]
}

// TestEmbeddedAcksInOrderAfterDurable pipelines many QoS 1 publishes on
// one connection: every PUBACK comes after the append holding that
// message returned, PUBACKs come in publish order, the stream holds the
// messages in publish order, and appends were grouped.
func TestEmbeddedAcksInOrderAfterDurable(t *testing.T) {
	// A slow append leaves time for a premature PUBACK to show.
	st := &durableStore{fsync: 2 * time.Millisecond}
	_, addr, _ := startFakeIngest(t, st)
	c := dialRaw(t, addr, "raw-order")
	const n = 2000
	go func() {
		for i := range n {
			if err := c.publish(uint16(i+1), plateTopic(0), rawPayload(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for want := 1; want <= n; want++ {
		typ, id, err := c.next()
		if err != nil {
			t.Fatalf("after %d PUBACKs: %v", want-1, err)
		}
		if typ != packets.Puback || int(id) != want {
			t.Fatalf("got packet type %d id %d, want PUBACK %d", typ, id, want)
		}
		if !st.isDurable(rawPayload(want - 1)) {
			t.Fatalf("PUBACK %d before its append returned", id)
		}
	}
	st.fakeStore.mu.Lock()
	recs := st.fakeStore.records["plates"]
	calls := len(st.fakeStore.calls)
	st.fakeStore.mu.Unlock()
	if len(recs) != n {
		t.Fatalf("%d records stored, want %d", len(recs), n)
	}
	for i, e := range recs {
		if !bytes.Equal(e.Data, rawPayload(i)) {
			t.Fatalf("record %d is %s, want plate %d: the stream lost the publish order", i, e.Data, i)
		}
	}
	if calls >= n {
		t.Errorf("%d appends for %d messages of one connection: no group commit", calls, n)
	}
}

// TestEmbeddedFailedAppendIsNotAcked: a message the store keeps refusing
// is never acknowledged, nor is anything published after it on the same
// connection (PUBACKs stay in order), even though those later messages
// are stored; the client is disconnected when the gateway stops, so it
// sends them again.
func TestEmbeddedFailedAppendIsNotAcked(t *testing.T) {
	bad := rawPayload(1)
	st := &durableStore{}
	st.fail = func(_ string, e stream.Entry) error {
		if bytes.Equal(e.Data, bad) {
			return fmt.Errorf("%w: test", stream.ErrThroughputExceeded)
		}
		return nil
	}
	st.gate = make(chan struct{})
	in, addr, stop := startFakeIngest(t, st)
	c := dialRaw(t, addr, "raw-fail")
	// Message 1 alone in the first append, 2 and 3 together in the next
	// (the writer retries a batch until it is stored, so a message 3 in a
	// later batch would not even be tried).
	publish := func(i int) {
		if err := c.publish(uint16(i+1), plateTopic(0), rawPayload(i)); err != nil {
			t.Fatal(err)
		}
	}
	publish(0)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if st.entered.Load() == 0 {
			return errors.New("first append not started")
		}
		return nil
	})
	publish(1)
	publish(2)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if n := len(in.w.in); n < 2 {
			return fmt.Errorf("%d of 2 messages queued", n)
		}
		return nil
	})
	close(st.gate)
	typ, id, err := c.next()
	if err != nil || typ != packets.Puback || id != 1 {
		t.Fatalf("first PUBACK: type %d id %d, %v", typ, id, err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !st.isDurable(rawPayload(2)) || st.refused.Load() < 2 {
			return errors.New("message 3 not stored or message 2 not refused twice yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	stop(ctx) // gives up on message 2
	if ids := c.acksUntilClosed(); len(ids) != 0 {
		t.Fatalf("PUBACKs %v after a message that was never stored", ids)
	}
}

// TestEmbeddedBlockedAppendIsNotAcked: while the append hangs, nothing is
// acknowledged; stopping the gateway then gives the message up unacknowledged.
func TestEmbeddedBlockedAppendIsNotAcked(t *testing.T) {
	st := &durableStore{}
	st.gate = make(chan struct{}) // never opened: every append blocks
	_, addr, stop := startFakeIngest(t, st)
	c := dialRaw(t, addr, "raw-block")
	for i := range 5 {
		if err := c.publish(uint16(i+1), plateTopic(0), rawPayload(i)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if st.entered.Load() == 0 {
			return errors.New("no append started yet")
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stop(ctx)
	if ids := c.acksUntilClosed(); len(ids) != 0 {
		t.Fatalf("PUBACKs %v for messages whose append never returned", ids)
	}
}

// TestEmbeddedManyPublishersLoseNothing runs many pipelining publishers
// on a real store with a subscriber on the broker: every acknowledged
// message is stored exactly once, each publisher's messages are in the
// stream in publish order, and the subscriber gets every message.
func TestEmbeddedManyPublishersLoseNothing(t *testing.T) {
	const pubs, per = 8, 300
	st := openStore(t, t.TempDir())
	defer st.Close()
	addr := testutil.FreeAddr(t)
	in, _ := startIngest(t, Config{Embedded: EmbeddedConfig{Addr: addr}}, st)
	defer stopIngest(t, in)
	var forwarded atomic.Int64
	mqtttest.Subscriber(t, "tcp://"+addr, "watcher", "store/#", func(paho.Message) { forwarded.Add(1) })

	// Publisher p publishes plates p*per .. p*per+per-1 on lane p+1, so
	// each publisher has its own partition key (one shard, one order).
	payload := func(p, i int) []byte {
		return fmt.Appendf(nil, `{"store":"demo-store","lane":"%d","plate_type":"salmon","event":"passed","plate_id":"p-%06d"}`, p+1, p*per+i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := range pubs {
		c := mqtttest.Publisher(t, "tcp://"+addr, fmt.Sprintf("many-%d", p))
		wg.Go(func() {
			toks := make([]paho.Token, per)
			for i := range per {
				toks[i] = c.Publish(fmt.Sprintf("store/demo-store/lane/%d/plate", p+1), 1, false, payload(p, i))
			}
			for i, tok := range toks {
				if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
					errs <- fmt.Errorf("publisher %d message %d: %v", p, i, tok.Error())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Everything acknowledged is stored: read the stream now.
	recs := readAll(t, st, "plates")
	if len(recs) != pubs*per {
		t.Fatalf("%d records stored for %d acknowledged messages", len(recs), pubs*per)
	}
	next := make([]int, pubs)
	for _, r := range recs {
		var pl struct {
			Lane    int    `json:"lane,string"`
			PlateID string `json:"plate_id"`
		}
		if err := json.Unmarshal(r.Data, &pl); err != nil {
			t.Fatal(err)
		}
		p := pl.Lane - 1
		if want := fmt.Sprintf("p-%06d", p*per+next[p]); pl.PlateID != want {
			t.Fatalf("publisher %d: %s in the stream where %s was next (lost, duplicated or out of order)", p, pl.PlateID, want)
		}
		next[p]++
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if got := forwarded.Load(); got < pubs*per {
			return fmt.Errorf("subscriber got %d of %d", got, pubs*per)
		}
		return nil
	})
}

// TestEmbeddedStopWhileClientsLeave stops the embedded broker again and
// again while its clients disconnect: Stop must return (mochi's own Close
// can deadlock against a client leaving at that moment). New connections
// stop before Stop starts: mochi's Close does not wait for a connection it
// is still accepting, which the race detector reports inside mochi.
func TestEmbeddedStopWhileClientsLeave(t *testing.T) {
	st := openStore(t, t.TempDir())
	for round := 0; round < 10; round++ {
		addr := testutil.FreeAddr(t)
		in, err := Start(Config{Embedded: EmbeddedConfig{Addr: addr}}, "demo-store", Options{Store: st, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		stopping := make(chan struct{})
		var n atomic.Int64
		var connected, left sync.WaitGroup
		for c := 0; c < 6; c++ {
			connected.Add(1)
			left.Add(1)
			go func() {
				defer left.Done()
				var clients []paho.Client
				for i := 0; i < 5; i++ {
					o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("leave-%d-%d-%d", round, c, i)).
						SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(2 * time.Second)
					cl := paho.NewClient(o)
					if tok := cl.Connect(); tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
						cl.Publish(plateTopic(i), 1, false, platePayload(i)).WaitTimeout(time.Second)
						clients = append(clients, cl)
						n.Add(1)
					}
				}
				connected.Done()
				<-stopping
				for _, cl := range clients {
					cl.Disconnect(0) // leaving while the broker stops
				}
			}()
		}
		connected.Wait()
		if n.Load() == 0 {
			t.Fatalf("round %d: no client connected", round)
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- in.Stop(ctx)
		}()
		close(stopping)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: stop: %v", round, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Stop hung with clients leaving", round)
		}
		left.Wait()
	}
}
