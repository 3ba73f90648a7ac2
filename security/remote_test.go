package security

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/gorilla/websocket"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

// Tests of the loopback rule (gateway/access) against a real daemon, from
// a client on another host: a network namespace whose veth address is not
// loopback. Every writable surface refuses such a client without
// credentials, admits it with them, admits loopback clients without them,
// and leaves the read-only views open.

// request sends one request through c and returns the status and body.
func request(t *testing.T, c *http.Client, method, url, body string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// kinesisCall is an unsigned Kinesis JSON 1.1 request for op.
func kinesisCall(op string) http.Header {
	return http.Header{"X-Amz-Target": {"Kinesis_20131202." + op}, "Content-Type": {"application/x-amz-json-1.1"}}
}

func addQuery(name string) string {
	return `{"name":"` + name + `","sql":"SELECT COUNT(*) AS n FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)"}`
}

// hostURL is the daemon's HTTP address as a client in ns dials it.
func hostURL(ns *testutil.NetNS, d *testutil.Daemon) string {
	_, port, _ := net.SplitHostPort(d.HTTPAddr)
	return "http://" + net.JoinHostPort(ns.HostIP, port)
}

// TestPackagedConfigClosedToTheNetwork runs the Debian package's own
// config (http.addr 0.0.0.0, no credentials anywhere): it starts, a
// tablet on the shop network sees the dashboard, metrics and statuses,
// and cannot add or stop queries or use the Kinesis API, which programs
// on the board itself still can.
func TestPackagedConfigClosedToTheNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten binary: make test runs it")
	}
	ns := testutil.NewNetNS(t)
	cfg := readFile(t, filepath.Join(testutil.RepoRoot(t), "firmware", "package", "kaiten.yaml"))
	if !strings.Contains(cfg, "addr: 0.0.0.0:8080") {
		t.Fatalf("the packaged config no longer binds 0.0.0.0; this test assumes it does:\n%s", cfg)
	}
	d := daemonOn(t, "0.0.0.0", cfg, []string{"--mqtt-addr", testutil.FreeAddr(t)})
	remote, remoteBase := ns.HTTPClient(), hostURL(ns, d)
	local, localBase := http.DefaultClient, "http://"+d.HTTPAddr

	for _, path := range []string{"/", "/healthz", "/metrics", "/api/status", "/api/dashboard/streams", "/api/queries",
		"/dashboard/app.js"} {
		if st, body := request(t, remote, "GET", remoteBase+path, "", nil); st != http.StatusOK {
			t.Errorf("remote GET %s (read-only): %d %.200s", path, st, body)
		}
	}
	wsd := websocket.Dialer{NetDialContext: ns.DialContext, HandshakeTimeout: 10 * time.Second}
	c, _, err := wsd.Dial("ws"+strings.TrimPrefix(remoteBase, "http")+"/ws?topics=gateway", nil)
	if err != nil {
		t.Fatalf("remote websocket (read-only): %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, msg, err := c.ReadMessage(); err != nil || len(msg) == 0 {
		t.Errorf("remote websocket got no update: %v", err)
	}
	c.Close()

	writes := []struct {
		what, method, path, body string
		hdr                      http.Header
		local                    int
	}{
		{"add a query", "POST", "/api/queries", addQuery("from_remote"), nil, http.StatusCreated},
		{"stop a query", "DELETE", "/api/queries/plates_taken_per_minute", "", nil, http.StatusNoContent},
		{"create a stream", "POST", "/", `{"StreamName":"from-remote","ShardCount":1}`, kinesisCall("CreateStream"), http.StatusOK},
		{"put a record", "POST", "/", `{"StreamName":"plates","PartitionKey":"k","Data":"eA=="}`, kinesisCall("PutRecord"), http.StatusOK},
	}
	for _, w := range writes {
		if st, body := request(t, remote, w.method, remoteBase+w.path, w.body, w.hdr); st != http.StatusForbidden {
			t.Errorf("remote, no credentials, %s: %d %.200s, want 403", w.what, st, body)
		}
	}
	if _, body := request(t, local, "GET", localBase+"/api/queries", "", nil); strings.Contains(body, "from_remote") ||
		!strings.Contains(body, "plates_taken_per_minute") {
		t.Errorf("a refused remote write changed the queries: %s", body)
	}
	if _, body := request(t, local, "POST", localBase+"/", "{}", kinesisCall("ListStreams")); strings.Contains(body, "from-remote") {
		t.Errorf("a refused remote write created a stream: %s", body)
	}
	for _, w := range writes {
		body := strings.ReplaceAll(strings.ReplaceAll(w.body, "from_remote", "from_board"), "from-remote", "from-board")
		if st, b := request(t, local, w.method, localBase+w.path, body, w.hdr); st != w.local {
			t.Errorf("loopback, no credentials, %s: %d %.200s, want %d", w.what, st, b, w.local)
		}
	}
}

// TestCredentialsAdmitRemoteClients gives every writable surface its
// credentials and opens the embedded broker to the network: a remote
// client with them gets in, one without is refused; the profiler answers
// only on the board.
func TestCredentialsAdmitRemoteClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten binary: make test runs it")
	}
	ns := testutil.NewNetNS(t)
	_, mqttPort, _ := net.SplitHostPort(testutil.FreeAddr(t))
	d := daemonOn(t, "0.0.0.0", fmt.Sprintf(`
http: {pprof: true}
analytics: {token: %s}
mqtt:
  embedded:
    addr: 0.0.0.0:%s
    users: [{username: lane-node, password: lane-pw-0c41}]
kinesis:
  auth:
    access_keys: [{access_key_id: %s, secret_access_key: %s}]
`, analyticsToken, mqttPort, keyID, secret), nil)
	remote, remoteBase := ns.HTTPClient(), hostURL(ns, d)

	bearer := http.Header{"Authorization": {"Bearer " + analyticsToken}}
	if st, b := request(t, remote, "POST", remoteBase+"/api/queries", addQuery("remote_ok"), bearer); st != http.StatusCreated {
		t.Errorf("remote add with the token: %d %s", st, b)
	}
	if st, _ := request(t, remote, "POST", remoteBase+"/api/queries", addQuery("remote_no"), nil); st != http.StatusUnauthorized {
		t.Errorf("remote add without the token: %d, want 401", st)
	}

	kc := kinesisClient(d.HTTPAddr, keyID, secret)
	viaNS := func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(remoteBase)
		o.HTTPClient = remote
	}
	if _, err := kc.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("signed-remote"), ShardCount: aws.Int32(1)}, viaNS); err != nil {
		t.Errorf("remote, signed CreateStream: %v", err)
	}
	bad := kinesisClient(d.HTTPAddr, keyID, "not-the-secret-0000")
	_, err := bad.ListStreams(ctxT(t), &kinesis.ListStreamsInput{}, viaNS)
	wantCode(t, err, "InvalidSignatureException")

	if st, _ := request(t, remote, "GET", remoteBase+"/debug/pprof/", "", nil); st != http.StatusForbidden {
		t.Errorf("remote profiler: %d, want 403", st)
	}
	if st, _ := request(t, http.DefaultClient, "GET", "http://"+d.HTTPAddr+"/debug/pprof/", "", nil); st != http.StatusOK {
		t.Errorf("loopback profiler: %d, want 200", st)
	}

	broker := "tcp://" + net.JoinHostPort(ns.HostIP, mqttPort)
	topic, payload := "store/demo-store/lane/1/plate", []byte(`{"plate_id":"p-remote","event":"placed"}`)
	if err := mqtttest.TryPublish(broker, "remote-anon", "", "", ns.DialContext, topic, payload); err == nil {
		t.Error("remote MQTT client without credentials was let in")
	}
	if err := mqtttest.TryPublish(broker, "remote-user", "lane-node", "lane-pw-0c41", ns.DialContext, topic, payload); err != nil {
		t.Errorf("remote MQTT client with credentials: %v", err)
	}
}

// TestOpenBrokerConfigRefused: an embedded broker beyond loopback without
// users is refused by check-config and by run, naming the key; with the
// opt-out it passes. The packaged config passes.
func TestOpenBrokerConfigRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten binary: make test runs it")
	}
	bin := testutil.KaitenBinary(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	open := write("open.yaml", "mqtt: {embedded: {addr: 0.0.0.0:1883}}\n")
	for _, args := range [][]string{{"check-config", "--config", open},
		{"run", "--config", open, "--data-dir", t.TempDir(), "--http-addr", testutil.FreeAddr(t)},
		{"check-config", "--mqtt-addr", "0.0.0.0:1883"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "mqtt.embedded.users") || strings.Contains(string(out), "config ok") {
			t.Errorf("kaiten %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, p := range []string{
		write("optout.yaml", "mqtt: {embedded: {addr: 0.0.0.0:1883, allow_unauthenticated_remote: true}}\n"),
		filepath.Join(testutil.RepoRoot(t), "firmware", "package", "kaiten.yaml"),
	} {
		if out, err := exec.Command(bin, "check-config", "--config", p).CombinedOutput(); err != nil || !strings.Contains(string(out), "config ok") {
			t.Errorf("check-config %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
}
