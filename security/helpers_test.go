package security

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// daemon starts kaiten with the YAML config text (simulator off, embedded
// broker on a free port when the config uses it) and returns it healthy.
func daemon(t *testing.T, cfgYAML string, env ...string) *testutil.Daemon {
	t.Helper()
	return daemonOn(t, "127.0.0.1", cfgYAML, []string{"--mqtt-addr", testutil.FreeAddr(t)}, env...)
}

// daemonOn starts kaiten with the config text, its HTTP server listening
// on host (0.0.0.0 for clients in a testutil.NetNS), simulator off, and
// the extra command-line args.
func daemonOn(t *testing.T, host, cfgYAML string, args []string, env ...string) *testutil.Daemon {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "kaiten.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v) // the child inherits the test's environment
	}
	return testutil.StartDaemonOn(t, host, filepath.Join(dir, "data"), append([]string{"--config", path, "--no-sim"}, args...)...)
}

// kinesisClient is the real aws-sdk-go-v2 client on the daemon; it
// retries only the SDK's own connection race, so every answer of the
// gateway reaches the test as it came.
func kinesisClient(addr, keyID, secret string) *kinesis.Client {
	return testutil.KinesisClient(addr, testutil.KinesisKeys(keyID, secret))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails unless err is an AWS API error with the code.
func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s, got %v", code, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want %s, got %s: %s", code, ae.ErrorCode(), ae.ErrorMessage())
	}
}

// awsError decodes the JSON error body of a Kinesis API answer.
func awsError(t testing.TB, resp *http.Response) (status int, typ, msg string) {
	t.Helper()
	defer resp.Body.Close()
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if e.Type == "" {
		e.Type = resp.Header.Get("X-Amzn-ErrorType")
	}
	return resp.StatusCode, e.Type, e.Message
}

// statusBoard fetches /api/status and returns one entry.
func statusBoard(addr, entry string, v any) error {
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var all map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return err
	}
	raw, ok := all[entry]
	if !ok {
		return fmt.Errorf("no %q on the status board", entry)
	}
	return json.Unmarshal(raw, v)
}

// pki is a throwaway certificate authority written to a folder as PEM.
type pki struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	CA   string // path of the CA certificate
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(time.Now().UnixNano() + serial.n)
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newPKI makes a self-signed CA named cn.
func newPKI(t testing.TB, cn string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	dir := t.TempDir()
	p := &pki{dir: dir, cert: cert, key: key, CA: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.CA, "CERTIFICATE", der)
	return p
}

// issue signs a leaf certificate for cn (a server certificate for
// 127.0.0.1 and localhost when server is set, else a client one) and
// returns the paths of the certificate and its key.
func (p *pki) issue(t testing.TB, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, cn+".pem"), filepath.Join(p.dir, cn+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

// clientTLS is a tls.Config trusting p's CA, with the client certificate
// when certFile is set.
func (p *pki) clientTLS(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc
}

// tlsMosquitto runs mosquitto with one TLS listener on a free loopback port
// that requires a client certificate signed by p; it is stopped at cleanup.
type tlsMosquitto struct {
	Addr string
	log  string
}

func startTLSMosquitto(t *testing.T, p *pki) *tlsMosquitto {
	t.Helper()
	bin := testutil.LookTool(t, "mosquitto")
	cert, key := p.issue(t, "mosquitto-server", true)
	dir := t.TempDir()
	m := &tlsMosquitto{Addr: testutil.FreeAddr(t), log: filepath.Join(dir, "mosquitto.log")}
	_, port, _ := net.SplitHostPort(m.Addr)
	var b strings.Builder
	fmt.Fprintf(&b, "listener %s 127.0.0.1\n", port)
	fmt.Fprintf(&b, "cafile %s\ncertfile %s\nkeyfile %s\n", p.CA, cert, key)
	b.WriteString("require_certificate true\ntls_version tlsv1.2\nallow_anonymous true\npersistence false\n")
	b.WriteString("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
	if os.Geteuid() == 0 {
		b.WriteString("user root\n")
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatalf("mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		lf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(m.log)
			t.Logf("mosquitto log:\n%s", b)
		}
	})
	testutil.WaitFor(t, 10*time.Second, func() error {
		select {
		case <-done:
			b, _ := os.ReadFile(m.log)
			t.Fatalf("mosquitto exited at start:\n%s", b)
		default:
		}
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return m
}

// Log is what mosquitto wrote so far.
func (m *tlsMosquitto) Log() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
