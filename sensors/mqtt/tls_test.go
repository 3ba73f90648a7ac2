package mqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/mqtt/mqtttest"
)

type pki struct {
	dir                                        string
	ca, serverCert, serverKey, cliCert, cliKey string
	pool                                       *x509.CertPool
	client                                     tls.Certificate
}

// newPKI makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in a temporary folder.
func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kaiten test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.ca = write("ca.pem", "CERTIFICATE", caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(cn+".pem", "CERTIFICATE", der), write(cn+".key", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.cliCert, p.cliKey = leaf(3, "client", x509.ExtKeyUsageClientAuth, nil)
	p.client, err = tls.LoadX509KeyPair(p.cliCert, p.cliKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMosquittoTLSAndPassword connects the ingest to a mosquitto that
// wants TLS, a client certificate and a password, as a store's broker
// would.
func TestMosquittoTLSAndPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto: make test runs it")
	}
	p := newPKI(t)
	m := mqtttest.StartMosquitto(t, mqtttest.Options{
		TLS:   &mqtttest.TLSFiles{CAFile: p.ca, CertFile: p.serverCert, KeyFile: p.serverKey, RequireCertificate: true},
		Users: map[string]string{"gateway": "s3cret-gw", "sensor": "s3cret-sensor"},
	})
	broker := "ssl://" + m.Addr
	pwFile := filepath.Join(p.dir, "gateway.password")
	if err := os.WriteFile(pwFile, []byte("s3cret-gw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, t.TempDir())
	defer st.Close()

	// A wrong password: the ingest keeps retrying, reports why, and never
	// shows a password.
	bad, _ := startIngest(t, Config{Broker: broker, ClientID: "kaiten-tls-bad", Username: "gateway", Password: "wrong-pw",
		TLS: TLSConfig{CAFile: p.ca, CertFile: p.cliCert, KeyFile: p.cliKey}}, st)
	testutil.WaitFor(t, 20*time.Second, func() error {
		if s := bad.Status(); s.LastError == "" {
			return fmt.Errorf("no error reported yet: %+v", s)
		}
		return nil
	})
	if s := bad.Status(); s.Connected || strings.Contains(fmt.Sprint(s), "wrong-pw") {
		t.Fatalf("status %+v", s)
	}
	stopIngest(t, bad)

	in, _ := startIngest(t, Config{Broker: broker, ClientID: "kaiten-tls", Username: "gateway", PasswordFile: pwFile,
		TLS: TLSConfig{CAFile: p.ca, CertFile: p.cliCert, KeyFile: p.cliKey}}, st)
	defer stopIngest(t, in)
	waitSubscribed(t, in)

	o := paho.NewClientOptions().AddBroker(broker).SetClientID("tls-sensor").SetUsername("sensor").SetPassword("s3cret-sensor").
		SetTLSConfig(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS12})
	pub := paho.NewClient(o)
	if tok := pub.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("sensor connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	f := newFlow(pub)
	const n = 50
	f.publish(0, n)
	f.waitAcked(t, n, 30*time.Second)
	testutil.WaitFor(t, 20*time.Second, func() error {
		if got := distinctPlates(t, readAll(t, st, "plates")); got < n {
			return fmt.Errorf("%d of %d stored", got, n)
		}
		return nil
	})
	checkPlates(t, readAll(t, st, "plates"), n)
}
