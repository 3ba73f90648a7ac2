package mqtt

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

// daemonStatus reads the kaiten daemon's /api/status: the mqtt entry and
// the number of records in stream plates.
func daemonStatus(d *testutil.Daemon) (Status, int64, error) {
	resp, err := http.Get("http://" + d.HTTPAddr + "/api/status")
	if err != nil {
		return Status{}, 0, err
	}
	defer resp.Body.Close()
	var body struct {
		MQTT  *Status `json:"mqtt"`
		Store struct {
			Streams []struct {
				Name    string
				Records int64
			}
		} `json:"store"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return Status{}, 0, err
	}
	if body.MQTT == nil {
		return Status{}, 0, fmt.Errorf("no mqtt entry on the status board")
	}
	var plates int64
	for _, s := range body.Store.Streams {
		if s.Name == "plates" {
			plates = s.Records
		}
	}
	return *body.MQTT, plates, nil
}

// waitDrained publishes a marker that the gateway dead-letters (it is not
// JSON) once every earlier publish was acknowledged, and waits until the
// daemon has handled it. The broker delivers a session's messages in order
// and the gateway appends them in order, so by then everything the broker
// had is stored. (Record counts alone would count duplicates.)
func waitDrained(t testing.TB, d *testutil.Daemon, f *flow, n int) Status {
	t.Helper()
	f.waitAcked(t, n, 2*time.Minute)
	tok := f.c.Publish(plateTopic(0), 1, false, []byte("end-of-test marker"))
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("marker: %v", tok.Error())
	}
	var st Status
	testutil.WaitFor(t, 2*time.Minute, func() error {
		s, _, err := daemonStatus(d)
		if err == nil && s.DeadLettered < 1 {
			err = fmt.Errorf("marker not handled yet: %+v", s)
		}
		st = s
		return err
	})
	return st
}

// TestDaemonKilledLosesNothing runs the real kaiten binary, kills it with
// SIGKILL in the middle of a flow of plates, starts it again on the same
// data, and checks that every plate the broker acknowledged is stored.
// It runs against a real mosquitto and against the embedded broker.
func TestDaemonKilledLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the kaiten daemon, with mosquitto: make test runs it")
	}
	type setup struct {
		name string
		args func(t *testing.T) ([]string, string)
	}
	for _, k := range []setup{
		{"mosquitto", func(t *testing.T) ([]string, string) {
			m := mqtttest.StartMosquitto(t, mqtttest.Options{})
			return []string{"--mqtt-broker", m.URL(), "--no-sim"}, m.URL()
		}},
		{"embedded", func(t *testing.T) ([]string, string) {
			addr := testutil.FreeAddr(t)
			return []string{"--mqtt-addr", addr, "--no-sim"}, "tcp://" + addr
		}},
	} {
		t.Run(k.name, func(t *testing.T) {
			args, url := k.args(t)
			dataDir := t.TempDir()
			ready := func(d *testutil.Daemon) {
				testutil.WaitFor(t, 30*time.Second, func() error {
					s, _, err := daemonStatus(d)
					if err == nil && !s.Subscribed {
						err = fmt.Errorf("not subscribed: %+v", s)
					}
					return err
				})
			}
			d := testutil.StartDaemon(t, dataDir, args...)
			ready(d)
			f := newFlow(mqtttest.Publisher(t, url, "pub-daemon-"+k.name))
			const n = 600
			f.publish(0, n/2)
			testutil.WaitFor(t, 30*time.Second, func() error {
				f.acked()
				_, plates, err := daemonStatus(d)
				if err == nil && plates < n/10 {
					err = fmt.Errorf("%d plates stored", plates)
				}
				return err
			})
			d.Kill() // SIGKILL in the middle of the flow
			f.publish(n/2, n)
			d = testutil.StartDaemon(t, dataDir, args...)
			ready(d)
			st := waitDrained(t, d, f, n)
			if err := d.Stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			store := openStore(t, filepath.Join(dataDir, "store"))
			defer store.Close()
			extra := checkPlates(t, readAll(t, store, "plates"), n)
			// Duplicates come only from redelivery after the kill (DUP) or
			// from publishes the client sent again after an error.
			if int64(extra) > st.Redelivered+st.Duplicates+int64(f.retried) {
				t.Errorf("%d duplicates, but only %d redelivered, %d recognised and %d re-sent", extra, st.Redelivered, st.Duplicates, f.retried)
			}
			t.Logf("%s: %d duplicates stored; publisher re-sent %d; after restart: %+v", k.name, extra, f.retried, st)
		})
	}
}

// TestDaemonWithoutGPIO gives the daemon GPIO pins on a machine that has
// none (CI): it says which pins are missing and keeps running its other
// sources.
func TestDaemonWithoutGPIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "kaiten.yaml")
	yaml := "gpio:\n  pins:\n    - pin: GPIO17\n      sensor: lane1-beam\n    - pin: GPIO27\n      sensor: lane2-beam\n"
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	d := testutil.StartDaemon(t, filepath.Join(dir, "data"), "--config", conf, "--mqtt-addr", testutil.FreeAddr(t), "--no-sim")
	resp, err := http.Get("http://" + d.HTTPAddr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		GPIO *struct {
			Missing []string `json:"missing"`
			Pins    []struct {
				Pin   string `json:"pin"`
				Found bool   `json:"found"`
			} `json:"pins"`
		} `json:"gpio"`
		MQTT *Status `json:"mqtt"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.GPIO == nil || body.MQTT == nil || !body.MQTT.Connected {
		t.Fatalf("status board: gpio %+v mqtt %+v", body.GPIO, body.MQTT)
	}
	if len(body.GPIO.Missing) == 0 { // real hardware: the pins are watched
		for _, p := range body.GPIO.Pins {
			if !p.Found {
				t.Fatalf("pin %s neither found nor reported missing", p.Pin)
			}
		}
		return
	}
	if fmt.Sprint(body.GPIO.Missing) != "[GPIO17 GPIO27]" {
		t.Fatalf("missing %v", body.GPIO.Missing)
	}
	if !strings.Contains(d.Log(), "GPIO17, GPIO27") {
		t.Fatalf("the log does not name the missing pins:\n%s", d.Log())
	}
	if err := d.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestSoakDaemonKills kills the gateway again and again while a sensor
// keeps publishing through mosquitto; nothing the broker acknowledged may
// be lost. make test-long runs it.
func TestSoakDaemonKills(t *testing.T) {
	if os.Getenv("KAITEN_LONG") == "" {
		t.Skip("soak: make test-long")
	}
	m := mqtttest.StartMosquitto(t, mqtttest.Options{})
	args := []string{"--mqtt-broker", m.URL(), "--no-sim"}
	dataDir := t.TempDir()
	f := newFlow(mqtttest.Publisher(t, m.URL(), "pub-soak"))
	const rounds, per = 20, 500
	for r := range rounds {
		d := testutil.StartDaemon(t, dataDir, args...)
		if r == 0 { // until the first subscription, the broker has no session to queue for
			testutil.WaitFor(t, 30*time.Second, func() error {
				s, _, err := daemonStatus(d)
				if err == nil && !s.Subscribed {
					err = fmt.Errorf("not subscribed: %+v", s)
				}
				return err
			})
		}
		f.publish(r*per, (r+1)*per)
		testutil.WaitFor(t, 60*time.Second, func() error {
			f.acked()
			_, plates, err := daemonStatus(d)
			if err == nil && plates < int64(r*per+per/3) {
				err = fmt.Errorf("round %d: %d plates stored", r, plates)
			}
			return err
		})
		d.Kill()
	}
	d := testutil.StartDaemon(t, dataDir, args...)
	waitDrained(t, d, f, rounds*per)
	if err := d.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, filepath.Join(dataDir, "store"))
	defer store.Close()
	extra := checkPlates(t, readAll(t, store, "plates"), rounds*per)
	t.Logf("%d kills, %d plates, %d duplicates stored", rounds, rounds*per, extra)
}
