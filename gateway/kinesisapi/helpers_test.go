package kinesisapi

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// gateway is an API server over a real store in a temp dir, on a real
// loopback HTTP listener.
type gateway struct {
	store *stream.Store
	srv   *Server
	http  *httptest.Server
	reg   *prometheus.Registry
	url   string
}

func newGateway(t testing.TB, cfg Config, mod ...func(*stream.Options)) *gateway {
	t.Helper()
	o := stream.Options{Dir: t.TempDir(), SweepInterval: time.Hour}
	for _, f := range mod {
		f(&o)
	}
	st, err := stream.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(st, Options{Config: cfg, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		_ = st.Close()
	})
	return &gateway{store: st, srv: srv, http: hs, reg: reg, url: hs.URL}
}

// client is the real aws-sdk-go-v2 Kinesis client pointed at the gateway.
func (g *gateway) client(keyID, secret string) *kinesis.Client {
	return g.clientIn("us-east-1", keyID, secret)
}

// clientIn is client configured for region (which it signs for).
func (g *gateway) clientIn(region, keyID, secret string) *kinesis.Client {
	return testutil.KinesisClient(g.url, testutil.KinesisRegion(region), testutil.KinesisKeys(keyID, secret))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails unless err is an AWS API error with the code.
func wantCode(t testing.TB, err error, code string) smithy.APIError {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s, got %v", code, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want %s, got %s: %s", code, ae.ErrorCode(), ae.ErrorMessage())
	}
	return ae
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
