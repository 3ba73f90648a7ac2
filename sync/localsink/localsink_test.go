package localsink

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/sync/config"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

func TestWritesLikeS3Keys(t *testing.T) {
	dir := t.TempDir()
	s := &Sink{Dir: dir, Prefix: "plates/"}
	b := &sink.Batch{DeliveryStream: "plates-archive", Version: 1, Time: time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC),
		ID: sink.BatchID("plates-archive", "shardId-000000000000", "1", "2"), Body: []byte("one\n"), Ext: ".gz"}
	ctx := context.Background()
	if err := s.Deliver(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.Body = []byte("one\ntwo\n") // a retry overwrites the same file
	if err := s.Deliver(ctx, b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, filepath.FromSlash(sink.ObjectKey("plates/", b)))
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, b.Body) {
		t.Fatalf("%s: %q %v", path, got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("%d files (temporary files left?)", len(entries))
	}
	eb := &sink.ErrorBatch{ID: b.ID, DeliveryStream: b.DeliveryStream, Time: b.Time, OutputType: "delivery-failed",
		Records: []sink.FailedRecord{{Record: sink.Record{Data: []byte("x")}, Code: "Oversize"}}}
	if err := s.DeliverErrors(ctx, eb); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(sink.ErrorObjectKey("", eb))))
	if err != nil || !bytes.Contains(raw, []byte(`"errorCode":"Oversize"`)) {
		t.Fatalf("error file %q %v", raw, err)
	}
}

func TestRefusesKeysOutsideTheDirectory(t *testing.T) {
	s := &Sink{Dir: t.TempDir(), Prefix: "../../etc/"}
	b := &sink.Batch{DeliveryStream: "x", ID: "0123456789abcdef0123456789abcdef", Time: time.Now()}
	if err := s.Deliver(context.Background(), b); !errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("escaping key: %v", err)
	}
	if err := (&Sink{}).Deliver(context.Background(), b); !errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("no dir: %v", err)
	}
}

func TestUnwritableDirectoryIsTransient(t *testing.T) {
	// A file where the directory should be fails even for root.
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Sink{Dir: blocker}
	b := &sink.Batch{DeliveryStream: "x", ID: "0123456789abcdef0123456789abcdef", Time: time.Now()}
	err := s.Deliver(context.Background(), b)
	if err == nil || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("blocked dir: %v, want a transient error", err)
	}
}

func TestSample(t *testing.T) {
	c := sinktest.Sample(t, "local").(*Config)
	if c.Dir != DefaultDir || c.Prefix != "" || c.ErrorPrefix != "" {
		t.Fatalf("sample.yaml does not show the defaults: %+v", c)
	}
	s, err := c.Build(config.Env{DataDir: "/data"})
	if err != nil || s.(*Sink).Dir != "/data/delivered" {
		t.Fatalf("built %+v, %v", s, err)
	}
}
