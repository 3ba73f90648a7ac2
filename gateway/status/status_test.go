package status

import (
	"sync"
	"testing"
)

func TestBoard(t *testing.T) {
	var b Board
	n := 0
	b.Set("b", func() any { n++; return n })
	b.Set("a", func() any { return "x" })
	if got := b.Names(); len(got) != 2 || got[0] != "a" {
		t.Fatalf("names %v", got)
	}
	if s := b.Snapshot(); s["b"] != 1 || s["a"] != "x" {
		t.Fatalf("snapshot %v", s)
	}
	if s := b.Snapshot(); s["b"] != 2 {
		t.Fatal("snapshot is not live")
	}
	b.Set("bad", func() any { panic("boom") })
	if m, ok := b.Snapshot()["bad"].(map[string]any); !ok || m["error"] == nil {
		t.Fatal("a panicking reporter was not isolated")
	}
	b.Remove("bad")
	b.Remove("b")
	if _, ok := b.Snapshot()["b"]; ok {
		t.Fatal("removed name still published")
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				b.Set("c", func() any { return j })
				_ = b.Snapshot()
			}
		}()
	}
	wg.Wait()
}

func TestDegraded(t *testing.T) {
	var b Board
	if d := b.Degraded(); len(d) != 0 {
		t.Fatalf("empty board degraded: %v", d)
	}
	var reasons []string
	b.SetHealth("sync", func() []string { return reasons })
	if d := b.Degraded(); len(d) != 0 {
		t.Fatalf("healthy board degraded: %v", d)
	}
	reasons = []string{"warehouse: table missing"}
	b.SetHealth("boom", func() []string { panic("x") })
	d := b.Degraded()
	if len(d) != 2 || d[0] != "boom: health reporter panicked" || d[1] != "sync: warehouse: table missing" {
		t.Fatalf("degraded %q", d)
	}
}
