package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sensors/gpio"
)

// TestBeams runs the real gpio watcher on the simulated beams: each break
// is one pass of that lane's beam sensor in stream gpio.
func TestBeams(t *testing.T) {
	b := NewBeams(3)
	cfg, err := b.GPIOConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.WaitTimeout.Duration = 20 * time.Millisecond
	if b.Lookup("SIM-LANE4") != nil || b.Lookup("SIM-LANE3") == nil {
		t.Fatal("Lookup finds the wrong lines")
	}
	st, err := stream.Open(stream.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateStream(context.Background(), stream.StreamConfig{Name: cfg.Stream, ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	// Each edge is stamped a second after the last, so no break is a bounce.
	var tick atomic.Int64
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Second) }
	w, err := gpio.Start(cfg, gpio.Options{Store: st, Lookup: b.Lookup, Now: now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(context.Background()) }()
	if got := b.Lookup("SIM-LANE2").Read(); got != pgpio.High {
		t.Fatalf("an unbroken beam reads %v, want high (pulled up)", got)
	}
	b.Break("2")
	b.Break("9") // no such lane: ignored
	b.Break("x")
	testutil.WaitFor(t, 5*time.Second, func() error {
		if n := len(streamtest.ReadStream(t, st, stream.NameGPIO)); n != 1 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
	b.Break("2")
	testutil.WaitFor(t, 5*time.Second, func() error {
		es := streamtest.ReadStream(t, st, stream.NameGPIO)
		if len(es) != 2 {
			return fmt.Errorf("%d events", len(es))
		}
		var ev gpio.Event
		if err := json.Unmarshal(es[1].Data, &ev); err != nil {
			return err
		}
		if ev.Pin != "SIM-LANE2" || ev.Sensor != "lane2-beam" || ev.Lane != "2" || ev.Kind != gpio.KindPass || ev.Count != 2 || es[1].PartitionKey != "lane2-beam" {
			return fmt.Errorf("event %+v key %q", ev, es[1].PartitionKey)
		}
		return nil
	})
	if err := b.Lookup("SIM-LANE1").Out(pgpio.Low); err == nil {
		t.Fatal("Out on a simulated beam succeeded")
	}
}
