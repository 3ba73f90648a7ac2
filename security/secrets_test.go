package security

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/gorilla/websocket"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// TestNoSecretInLogs runs the daemon at debug level with every secret the
// config can hold (a Kinesis access key secret, the dashboard token, the
// analytics admin token, an MQTT password and a TLS client key), exercises
// it with good and bad credentials, stops it, and searches its whole log
// for each secret. The status board and /metrics, which anyone on the HTTP
// address can read, are searched too.
func TestNoSecretInLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	p := newPKI(t, "kaiten-test-ca")
	m := startTLSMosquitto(t, p)
	cert, key := p.issue(t, "kaiten-gateway", false)
	cfg := sigv4Config() + mqttTLSConfig(m.Addr, p.CA, cert, key) + fmt.Sprintf("dashboard:\n  token: %s\nanalytics:\n  token: %s\n", dashToken, analyticsToken)
	d := daemon(t, cfg)
	ctx := ctxT(t)
	waitMQTT(t, d, func(s mqttStatus) error {
		if !s.Subscribed {
			return fmt.Errorf("not subscribed yet: %+v", s)
		}
		return nil
	})

	// Kinesis API: good and bad signatures.
	good := kinesisClient(d.HTTPAddr, keyID, secret)
	if _, err := good.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("plates"),
		PartitionKey: aws.String("k"), Data: []byte(`{"plate":"p1"}`)}); err != nil {
		t.Fatal(err)
	}
	_, err := kinesisClient(d.HTTPAddr, keyID, secret+"x").ListStreams(ctx, &kinesis.ListStreamsInput{})
	wantCode(t, err, "InvalidSignatureException")
	_, err = kinesisClient(d.HTTPAddr, "AKIDOTHER", secret).ListStreams(ctx, &kinesis.ListStreamsInput{})
	wantCode(t, err, "UnrecognizedClientException")
	resp := replay(t, signedReq(t, d.HTTPAddr, "ListStreams", `{}`, keyID, secret, time.Now().Add(-time.Hour)), `{}`)
	resp.Body.Close()
	// A presigned URL carries a signature made with the secret in its query.
	_, _ = get(t, "http://"+d.HTTPAddr+"/?X-Amz-Signature=deadbeef&X-Amz-Credential="+url.QueryEscape(keyID+"/20260101/us-east-1/kinesis/aws4_request"), nil)

	// Dashboard: right and wrong tokens in each place a token may be.
	base := "http://" + d.HTTPAddr
	_, _ = get(t, base+"/?token="+dashToken, nil)
	_, _ = get(t, base+"/api/dashboard/store?token="+dashToken+"x", nil)
	_, _ = get(t, base+"/api/dashboard/gateway", http.Header{"Authorization": {"Bearer " + dashToken}})
	_, _ = get(t, base+"/api/dashboard/gateway", http.Header{"Cookie": {"kaiten_dashboard=" + dashToken + "y"}})
	if c, _, err := websocket.DefaultDialer.Dial("ws://"+d.HTTPAddr+"/ws?topics=store,gateway&token="+dashToken, nil); err == nil {
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"subscribe":["tail/`+dashToken+`"]}`))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, _ = c.ReadMessage()
		c.Close()
	} else {
		t.Fatalf("websocket with the token: %v", err)
	}

	// Analytics admin endpoint: right and wrong tokens.
	_, _ = get(t, base+"/api/queries", http.Header{"Authorization": {"Bearer " + analyticsToken}})
	_, _ = get(t, base+"/api/queries", http.Header{"Authorization": {"Bearer " + analyticsToken + "z"}})

	// MQTT over TLS.
	pub, err := tlsPublisher(t, m, p, "sec-secrets-pub", true)
	if err != nil {
		t.Fatal(err)
	}
	tok := pub.Publish("store/demo-store/lane/1/plate", 1, false, []byte(`{"plate":"p2"}`))
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub.Publish("store/demo-store/lane/1/plate", 1, false, []byte(`not json `+mqttPassword)).WaitTimeout(10 * time.Second)
	testutil.WaitFor(t, 20*time.Second, func() error {
		var st mqttStatus
		if err := statusBoard(d.HTTPAddr, "mqtt", &st); err != nil {
			return err
		}
		if st.Stored < 1 {
			return fmt.Errorf("mqtt: nothing stored yet: %+v", st)
		}
		return nil
	})

	// What anyone on the HTTP address can read.
	_, status := get(t, base+"/api/status", nil)
	_, metrics := get(t, base+"/metrics", nil)
	var board map[string]any
	if err := json.Unmarshal([]byte(status), &board); err != nil {
		t.Fatalf("status board: %v", err)
	}

	if err := d.Stop(20 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	log := d.Log()
	if !strings.Contains(log, "InvalidSignature") && !strings.Contains(log, "signature refused") {
		t.Logf("note: the refused signatures left no log line")
	}
	keyPEM := strings.Join(strings.Split(readFile(t, key), "\n")[1:2], "")
	secrets := map[string]string{
		"kinesis.auth.access_keys[0].secret_access_key": secret,
		"dashboard.token":            dashToken,
		"mqtt.password":              mqttPassword,
		"mqtt.tls.key_file contents": keyPEM,
	}
	for name, s := range secrets {
		for where, text := range map[string]string{"the log": log, "/api/status": status, "/metrics": metrics} {
			if strings.Contains(text, s) {
				for _, l := range strings.Split(text, "\n") {
					if strings.Contains(l, s) {
						t.Errorf("%s appears in %s: %s", name, where, l)
						break
					}
				}
			}
		}
	}
	if len(log) < 500 {
		t.Fatalf("the daemon logged almost nothing (%d bytes): the search proves nothing", len(log))
	}
}
