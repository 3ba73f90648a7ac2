package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// logLines returns the JSON log records in buf whose message is msg. The
// store is closed when it is called, so nothing writes to buf meanwhile.
func logLines(t *testing.T, buf *bytes.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestOpenLogsWhatItRecovered: Open says at INFO what it found, per
// stream and in one summary, with counts, so a restart after a crash is
// not silent; a new store says it has no high-water marks yet.
func TestOpenLogsWhatItRecovered(t *testing.T) {
	dir := t.TempDir()
	var first bytes.Buffer
	s, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewJSONHandler(&first, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "plates", 2)
	mustCreate(t, s, "empty", 1)
	entries := make([]Entry, 40)
	for i := range entries {
		entries[i] = Entry{PartitionKey: fmt.Sprint(i), Data: []byte(fmt.Sprintf("r%d", i))}
	}
	if _, err := s.PutBatch(context.Background(), "plates", entries); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if sum := logLines(t, &first, "store: opened"); len(sum) != 1 || sum[0]["level"] != "INFO" || sum[0]["streams"] != 0.0 ||
		sum[0]["high_water"] != "none recorded (no record acknowledged yet)" {
		t.Fatalf("summary of a new store: %v", sum)
	}

	var again bytes.Buffer
	s, err = Open(Options{Dir: dir, Logger: slog.New(slog.NewJSONHandler(&again, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	per := logLines(t, &again, "store: stream opened")
	if len(per) != 2 || per[0]["stream"] != "empty" || per[1]["stream"] != "plates" {
		t.Fatalf("per-stream lines: %v", per)
	}
	p := per[1]
	if p["level"] != "INFO" || p["open_shards"] != 2.0 || p["closed_shards"] != 0.0 || p["records"] != 40.0 {
		t.Errorf("plates: %v", p)
	}
	newest, _ := p["newest_counter_per_shard"].(map[string]any)
	var total float64
	for _, v := range newest {
		total += v.(float64)
	}
	if len(newest) != 2 || total != 40 { // counters start at 1 in each shard: the two newest add up to 40
		t.Errorf("plates newest counters: %v", newest)
	}
	sum := logLines(t, &again, "store: opened")
	if len(sum) != 1 {
		t.Fatalf("summary lines: %v", sum)
	}
	want := map[string]any{"level": "INFO", "streams": 2.0, "open_shards": 3.0, "records": 40.0,
		"high_water_marks": 2.0, "high_water": "checked", "tails_read_back": 2.0}
	for k, v := range want {
		if sum[0][k] != v {
			t.Errorf("summary %s = %v, want %v (%v)", k, sum[0][k], v, sum[0])
		}
	}
}
