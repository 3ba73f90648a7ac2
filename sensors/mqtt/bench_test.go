package mqtt

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

// benchPayload is a 100-byte plate event.
func benchPayload(i int) []byte {
	p := fmt.Appendf(nil, `{"store":"bench","lane":"%d","plate_type":"salmon","event":"passed","plate_id":"p-%08d","x":"`, i%6+1, i)
	for len(p) < 98 {
		p = append(p, 'x')
	}
	return append(p, '"', '}')
}

// publishFlow publishes n QoS 1 messages as fast as the client takes them
// (at most window unacknowledged) and waits for every PUBACK.
func publishFlow(t testing.TB, c paho.Client, n, window int) {
	t.Helper()
	sem := make(chan struct{}, window)
	errs := atomic.Int64{}
	for i := range n {
		sem <- struct{}{}
		tok := c.Publish(fmt.Sprintf("store/bench/lane/%d/plate", i%6+1), 1, false, benchPayload(i))
		go func() {
			<-tok.Done()
			if tok.Error() != nil {
				errs.Add(1)
			}
			<-sem
		}()
	}
	for range window {
		sem <- struct{}{}
	}
	if e := errs.Load(); e > 0 {
		t.Fatalf("%d publishes failed", e)
	}
}

// TestBenchReport compares QoS 1 ingest through mosquitto into the
// gateway (PUBACK to the broker only after the durable append) with
// mosquitto's own QoS 1 publisher -> subscriber throughput, with the same
// paho clients and the same broker in the same run. make bench runs it.
func TestBenchReport(t *testing.T) {
	if os.Getenv("KAITEN_BENCH") != "1" {
		t.Skip("benchmark report: make bench (KAITEN_BENCH=1)")
	}
	const n, window = 50000, 1000
	// Both sides share one broker config: 1000 messages in flight per
	// subscriber (mosquitto's default of 20 would cap any subscriber that
	// acknowledges only after an fsync; see sample.yaml).
	m := mqtttest.StartMosquitto(t, mqtttest.Options{MaxInflight: window})

	// mosquitto alone: publisher -> broker -> subscriber (auto-ack).
	var got atomic.Int64
	done := make(chan struct{})
	sub := mqtttest.Subscriber(t, m.URL(), "bench-sub", "store/bench/#", func(paho.Message) {
		if got.Add(1) == n {
			close(done)
		}
	})
	pub := mqtttest.Publisher(t, m.URL(), "bench-pub")
	start := time.Now()
	publishFlow(t, pub, n, window)
	<-done
	base := float64(n) / time.Since(start).Seconds()
	sub.Disconnect(100)

	// The gateway: same publisher, the ingest subscriber on a real store.
	st := openStore(t, t.TempDir())
	defer st.Close()
	in, _ := startIngest(t, Config{Broker: m.URL(), ClientID: "bench-gw"}, st)
	waitSubscribed(t, in)
	start = time.Now()
	publishFlow(t, pub, n, window)
	testutil.WaitFor(t, 5*time.Minute, func() error {
		if s := in.Status().Stored; s < n {
			return fmt.Errorf("%d of %d stored", s, n)
		}
		return nil
	})
	gw := float64(n) / time.Since(start).Seconds()
	stopIngest(t, in)

	// The embedded broker: the publisher's own PUBACK waits for the
	// durable append. Six publishers (six lanes), then one alone.
	embRate := benchEmbedded(t, 6, n)
	embOne := benchEmbedded(t, 1, n/5)

	fmt.Printf("BENCH mqtt_mosquitto_qos1_pubsub %.0f msg/s\n", base)
	fmt.Printf("BENCH mqtt_ingest_mosquitto_qos1_durable %.0f msg/s\n", gw)
	fmt.Printf("BENCH mqtt_ingest_embedded_qos1_durable_6pub %.0f msg/s\n", embRate)
	fmt.Printf("BENCH mqtt_ingest_embedded_qos1_durable_1pub %.0f msg/s\n", embOne)
	fmt.Printf("RATIO mqtt_ingest_vs_mosquitto %.2f\n", gw/base)
	fmt.Printf("RATIO mqtt_embedded_6pub_vs_mosquitto %.2f\n", embRate/base)
	fmt.Printf("RATIO mqtt_embedded_1pub_vs_mosquitto %.2f\n", embOne/base)
}

// benchEmbedded runs the embedded broker on a real store and returns the
// rate at which pubs publishers together get n QoS 1 messages durably
// stored and acknowledged (each keeps up to 1000 unacknowledged).
func benchEmbedded(t *testing.T, pubs, n int) float64 {
	const window = 1000
	addr := testutil.FreeAddr(t)
	st := openStore(t, t.TempDir())
	defer st.Close()
	in, _ := startIngest(t, Config{Embedded: EmbeddedConfig{Addr: addr}}, st)
	defer stopIngest(t, in)
	cs := make([]paho.Client, pubs)
	for i := range cs {
		cs[i] = mqtttest.Publisher(t, "tcp://"+addr, fmt.Sprintf("bench-emb-%d", i))
	}
	per := n / pubs
	start := time.Now()
	done := make(chan struct{}, pubs)
	for _, c := range cs {
		go func() { publishFlow(t, c, per, window); done <- struct{}{} }()
	}
	for range cs {
		<-done
	}
	rate := float64(per*pubs) / time.Since(start).Seconds()
	if s := in.Status().Stored; s < int64(per*pubs) {
		t.Fatalf("%d acknowledged but only %d stored", per*pubs, s)
	}
	return rate
}
