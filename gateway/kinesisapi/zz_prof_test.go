package kinesisapi

import (
	"os"
	"testing"
)

func TestProfGateway(t *testing.T) {
	if os.Getenv("KPROF") == "" {
		return
	}
	g := newGateway(t, Config{})
	for i := 0; i < 3; i++ {
		r := benchPutRecords(t, "gateway", g.url)
		t.Logf("%.0f rec/s %.2f ms", r.recsPerSec, r.msPerReq)
		g.store.DeleteStream(t.Context(), "bench")
		for len(g.store.ListStreams()) > 0 {
		}
	}
}
