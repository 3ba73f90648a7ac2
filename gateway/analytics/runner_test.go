package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

func openStore(t *testing.T, dir string, streams map[string]int) *stream.Store {
	t.Helper()
	var scs []stream.StreamConfig
	for name, shards := range streams {
		scs = append(scs, stream.StreamConfig{Name: name, ShardCount: shards})
	}
	return streamtest.Open(t, stream.Options{Dir: dir}, scs...)
}

func put(t *testing.T, st *stream.Store, name string, key string, data string) {
	t.Helper()
	res, err := st.PutBatch(context.Background(), name, []stream.Entry{{PartitionKey: key, Data: []byte(data)}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("put: %v %v", err, res)
	}
}

// readAll returns every record of a stream, shard by shard.
func readAll(t *testing.T, st *stream.Store, name string) []stream.Record {
	t.Helper()
	return streamtest.ReadStream(t, st, name)
}

func datas(recs []stream.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Data))
	}
	sort.Strings(out)
	return out
}

// expectLaneWindows is the hand-written oracle for
// SELECT lane, COUNT(*) AS n, SUM(v) AS s ... GROUP BY lane, TUMBLING(size)
// over event time field ts.
func expectLaneWindows(query string, size time.Duration, recs []map[string]any) []string {
	type k struct {
		start int64
		lane  string
	}
	n, s := map[k]int{}, map[k]float64{}
	for _, r := range recs {
		tm, _ := time.Parse(time.RFC3339Nano, r["ts"].(string))
		ms := tm.UnixMilli()
		key := k{ms - ms%size.Milliseconds(), r["lane"].(string)}
		n[key]++
		s[key] += r["v"].(float64)
	}
	var out []string
	for key := range n {
		out = append(out, fmt.Sprintf(`{"query":%q,"window_start":%q,"window_end":%q,"lane":%q,"n":%d,"s":%v}`,
			query, formatMillis(key.start), formatMillis(key.start+size.Milliseconds()), key.lane, n[key], s[key]))
	}
	sort.Strings(out)
	return out
}

func TestRunnerWithStore(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "store"), map[string]int{"events": 2, "results": 1, "deadletter": 1})
	var input []map[string]any
	for i := 0; i < 300; i++ {
		lane := fmt.Sprint(i%4 + 1)
		at := t0.Add(time.Duration(i) * 200 * time.Millisecond)
		rec := map[string]any{"lane": lane, "v": float64(i % 7), "ts": at.Format(time.RFC3339Nano)}
		raw, _ := json.Marshal(rec)
		put(t, st, "events", lane, string(raw))
		input = append(input, rec)
	}
	q := QueryConfig{Name: "lanes", Output: "results", EventTime: "ts",
		AllowedLateness: config.Duration{Duration: time.Second},
		SQL:             "SELECT lane, COUNT(*) AS n, SUM(v) AS s FROM events GROUP BY lane, TUMBLING(INTERVAL '10' SECOND)"}
	// The wall clock is an hour after the data: once both shards are idle
	// the watermark passes every window.
	var clock atomic.Int64
	clock.Store(int64(time.Hour))
	opts := RunnerOptions{Store: st, StateDir: filepath.Join(dir, "analytics"), Idle: 50 * time.Millisecond,
		SaveInterval: 20 * time.Millisecond, Now: func() time.Time { return t0.Add(time.Duration(clock.Load())) },
		Logger: slog.New(slog.DiscardHandler)}
	m := NewManager(opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Start(ctx, []QueryConfig{q}); err != nil {
		t.Fatal(err)
	}
	want := expectLaneWindows("lanes", 10*time.Second, input)
	testutil.WaitFor(t, 20*time.Second, func() error {
		if got := datas(readAll(t, st, "results")); !slices.Equal(got, want) {
			return fmt.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		return nil
	})

	// A late record goes to the dead-letter stream with its bytes; a bad one is counted.
	late := fmt.Sprintf(`{"lane":"1","v":1,"ts":%q}`, t0.Add(5*time.Second).Format(time.RFC3339Nano))
	put(t, st, "events", "1", late)
	put(t, st, "events", "2", `{"lane":`)
	testutil.WaitFor(t, 10*time.Second, func() error {
		dl := readAll(t, st, "deadletter")
		if len(dl) != 1 {
			return fmt.Errorf("%d dead letters", len(dl))
		}
		d, err := stream.DecodeDeadLetter(dl[0].Data)
		if err != nil {
			return err
		}
		if d.Source != "analytics" || !strings.Contains(d.Reason, "late") || string(d.Data) != late || dl[0].PartitionKey != "analytics" {
			return fmt.Errorf("dead letter %s", dl[0].Data)
		}
		s := m.Status()[0]
		if s.Late != 1 || s.Skipped["bad_json"] != 1 {
			return fmt.Errorf("status late=%d skipped=%v", s.Late, s.Skipped)
		}
		if len(s.Recent) != DefaultRecent || s.State != "running" {
			return fmt.Errorf("status recent=%d state=%s", len(s.Recent), s.State)
		}
		return nil
	})
	if got := datas(readAll(t, st, "results")); !slices.Equal(got, want) {
		t.Fatalf("the late record changed the results: %v", got)
	}

	// Stop and start again: nothing is emitted twice, new windows follow.
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	if err := m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	// The store's checkpoints follow the saved state once stopped.
	d, _ := st.DescribeStream("events")
	for _, sh := range d.Shards {
		last, _ := st.LastSequenceNumber("events", sh.ShardID)
		if ck, err := st.GetCheckpoint("analytics-lanes", "events", sh.ShardID); err != nil || ck != last {
			t.Errorf("checkpoint of %s = %q (%v), want %q", sh.ShardID, ck, err, last)
		}
	}
	var more []map[string]any
	for i := 0; i < 20; i++ {
		rec := map[string]any{"lane": "9", "v": float64(i), "ts": t0.Add(2*time.Hour + time.Duration(i)*time.Second).Format(time.RFC3339Nano)}
		raw, _ := json.Marshal(rec)
		put(t, st, "events", "9", string(raw))
		more = append(more, rec)
	}
	clock.Store(int64(3 * time.Hour))
	m2 := NewManager(opts)
	if err := m2.Start(ctx, []QueryConfig{q}); err != nil {
		t.Fatal(err)
	}
	want2 := expectLaneWindows("lanes", 10*time.Second, append(slices.Clone(input), more...))
	testutil.WaitFor(t, 20*time.Second, func() error {
		if got := datas(readAll(t, st, "results")); !slices.Equal(got, want2) {
			return fmt.Errorf("after restart:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want2, "\n"))
		}
		return nil
	})
	if err := m2.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
}

// TestOutboxExactlyOnce simulates the two crash points around writing
// results: after the state (with the outbox) is saved but before the put,
// and after the put but before the cleared state is saved. Either way the
// next start writes each result once.
func TestOutboxExactlyOnce(t *testing.T) {
	for _, putBeforeCrash := range []bool{false, true} {
		t.Run(fmt.Sprintf("put_before_crash=%v", putBeforeCrash), func(t *testing.T) {
			dir := t.TempDir()
			st := openStore(t, filepath.Join(dir, "store"), map[string]int{"events": 1, "results": 2})
			put(t, st, "results", "other", `{"unrelated":true}`) // written before: must stay alone
			q := QueryConfig{Name: "c", Output: "results",
				SQL: "SELECT lane, COUNT(*) AS n FROM events GROUP BY lane, TUMBLING(INTERVAL '1' SECOND)"}
			opts := RunnerOptions{Store: st, StateDir: filepath.Join(dir, "analytics"), Logger: slog.New(slog.DiscardHandler)}
			r, err := NewRunner(context.Background(), q, opts)
			if err != nil {
				t.Fatal(err)
			}
			var recs []stream.Record
			for i := 0; i < 40; i++ {
				recs = append(recs, stream.Record{SequenceNumber: fmt.Sprintf("%03d", i+1),
					Data: []byte(fmt.Sprintf(`{"lane":"%d"}`, i%3)), ArrivalTime: t0.Add(time.Duration(i) * 100 * time.Millisecond)})
			}
			// What handle does, stopped at the crash point.
			r.eng.Process("shardId-000000000000", recs)
			for _, e := range r.eng.Take() {
				r.enqueue(e, t0)
			}
			want := map[string]bool{}
			for _, p := range r.pending {
				want[string(p.Data)] = true
			}
			if len(want) != 9 { // windows 0..2 s closed, three lanes each
				t.Fatalf("want 9 results before the crash, have %d", len(want))
			}
			if err := r.save(); err != nil {
				t.Fatal(err)
			}
			if putBeforeCrash {
				if err := r.flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			// "Crash": a new runner reads the state file.
			r2, err := NewRunner(context.Background(), q, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(r2.pending) != 0 {
				t.Fatalf("outbox not flushed at start: %d left", len(r2.pending))
			}
			got := readAll(t, st, "results")
			count := map[string]int{}
			for _, g := range got {
				count[string(g.Data)]++
			}
			for w := range want {
				if count[w] != 1 {
					t.Errorf("%s written %d times", w, count[w])
				}
			}
			if len(got) != len(want)+1 {
				t.Errorf("%d records in results, want %d", len(got), len(want)+1)
			}
			// The restored engine still has the open window and skips the replay.
			if r2.eng.OpenWindows() != 3 || r2.eng.Position("shardId-000000000000") != "040" {
				t.Errorf("restored engine: %d open windows at %q", r2.eng.OpenWindows(), r2.eng.Position("shardId-000000000000"))
			}
		})
	}
}

func TestAdminAPI(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "store"), map[string]int{"plates": 1, "plate-stats": 1, "deadletter": 1})
	opts := RunnerOptions{Store: st, StateDir: filepath.Join(dir, "analytics"), Logger: slog.New(slog.DiscardHandler)}
	m := NewManager(opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Start(ctx, []QueryConfig{DemoQuery()}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	m.Register(mux, "", false)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	auth := ""
	do := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, body := do("POST", "/api/queries", `{"name":"bad","sql":"SELECT lane FROM plates GROUP BY lane ORDER BY lane"}`)
	if code != 400 || !strings.Contains(fmt.Sprint(body["error"]), "window") {
		t.Errorf("bad SQL: %d %v", code, body)
	}
	code, body = do("POST", "/api/queries", `{"name":"x","sql":"SELECT COUNT(*) AS n FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)","allowed_lateness":"soon"}`)
	if code != 400 || !strings.Contains(fmt.Sprint(body["error"]), "allowed_lateness") {
		t.Errorf("bad lateness: %d %v", code, body)
	}
	code, body = do("POST", "/api/queries", `{"name":"plates_taken_per_minute","sql":"SELECT COUNT(*) AS n FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)"}`)
	if code != 409 {
		t.Errorf("duplicate: %d %v", code, body)
	}
	code, body = do("POST", "/api/queries", `{"name":"per_type","sql":"SELECT plate_type, COUNT(*) AS n FROM plates GROUP BY plate_type, SESSION(INTERVAL '30' SECOND)"}`)
	if code != 201 || body["window"] != "session gap 30s" {
		t.Fatalf("add: %d %v", code, body)
	}
	code, body = do("GET", "/api/queries", "")
	if qs, _ := body["queries"].([]any); code != 200 || len(qs) != 2 {
		t.Fatalf("list: %d %v", code, body)
	}
	// Added queries survive a restart.
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	if err := m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	m2 := NewManager(opts)
	if err := m2.Start(ctx, []QueryConfig{DemoQuery()}); err != nil {
		t.Fatal(err)
	}
	if s := m2.Status(); len(s) != 2 || s[1].Name != "per_type" {
		t.Fatalf("after restart: %+v", s)
	}
	mux2 := http.NewServeMux()
	m2.Register(mux2, "s3cret-token", false)
	srv.Config.Handler = mux2
	if code, _ = do("GET", "/api/queries", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	auth = "Bearer s3cret-token"
	if code, _ = do("DELETE", "/api/queries/per_type", ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, _ = do("GET", "/api/queries/per_type", ""); code != 404 {
		t.Errorf("get deleted: %d", code)
	}
	if code, _ = do("DELETE", "/api/queries/nope", ""); code != 404 {
		t.Errorf("delete unknown: %d", code)
	}
	if err := m2.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
}

func TestSampleConfig(t *testing.T) {
	raw, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := config.Decode("analytics", doc.Content[0].Content[1], &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := DemoQuery()
	got := (*cfg.Queries)[0]
	if got.Name != want.Name || got.SQL != want.SQL || got.Output != DefaultOutput || cfg.SaveInterval.Duration != DefaultSaveInterval {
		t.Errorf("sample.yaml is not the defaults: %+v", got)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := map[string]string{
		"queries: [{name: 'a b', sql: x}]":      "analytics.queries[0].name",
		"queries: [{name: a, sql: ''}]":         "analytics.queries[0].sql: must not be empty",
		"queries: [{name: a, sql: 'SELECT 1'}]": "analytics.queries[0].sql: analytics: unsupported SQL",
		"queries: [{name: a, sql: 'SELEC'}]":    "analytics.queries[0].sql: analytics: SQL syntax error",
		"save_interval: 1ms":                    "analytics.save_interval",
		"token: short":                          "analytics.token: too short",
		"queries: [{name: a, sql: \"" + DemoQuerySQL + "\"}, {name: a, sql: \"" + DemoQuerySQL + "\"}]": "analytics.queries[1].name: \"a\" is used twice",
		"queries: [{name: a, sql: \"" + DemoQuerySQL + "\", output: plates}]":                           "also the query's source",
		"queries: [{name: a, sql: \"" + DemoQuerySQL + "\", event_time: 'a..b'}]":                       "analytics.queries[0].event_time",
		"queries: [{name: a, sql: \"" + DemoQuerySQL + "\", allowed_lateness: 48h}]":                    "analytics.queries[0].allowed_lateness",
		"queries: [{name: a, sqll: x}]": "field sqll not found",
	}
	for src, want := range cases {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatal(err)
		}
		var cfg Config
		err := config.Decode("analytics", doc.Content[0], &cfg)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got  %v\n want %q", src, err, want)
		}
	}
	var none Config
	if err := none.Validate(); err != nil || len(*none.Queries) != 1 || (*none.Queries)[0].Name != DemoQueryName {
		t.Errorf("no section: %v %+v", err, none.Queries)
	}
	var empty Config
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("queries: []"), &doc)
	if err := config.Decode("analytics", doc.Content[0], &empty); err != nil || empty.Validate() != nil || len(*empty.Queries) != 0 {
		t.Errorf("queries: [] should run none: %+v", empty.Queries)
	}
}

func TestMissingOutputStreamIsReported(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "store"), map[string]int{"events": 1, "deadletter": 1})
	q := QueryConfig{Name: "q", Output: "nope", SQL: "SELECT COUNT(*) AS n FROM events GROUP BY TUMBLING(INTERVAL '1' MINUTE)"}
	r, err := NewRunner(context.Background(), q, RunnerOptions{Store: st, StateDir: filepath.Join(dir, "a"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if s := r.Status(); s.State != "error" || !strings.Contains(s.Error, `"nope"`) {
			return fmt.Errorf("status %s %q", s.State, s.Error)
		}
		return nil
	})
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	if err := r.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptStateStopsOnlyThatQuery(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "store"), map[string]int{"plates": 1, "plate-stats": 1, "deadletter": 1})
	stateDir := filepath.Join(dir, "analytics")
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(statePath(stateDir, "broken"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewManager(RunnerOptions{Store: st, StateDir: stateDir, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broken := DemoQuery()
	broken.Name = "broken"
	if err := m.Start(ctx, []QueryConfig{DemoQuery(), broken}); err != nil {
		t.Fatal(err)
	}
	s := m.Status()
	if len(s) != 2 || s[0].State == "error" || s[1].State != "error" || !strings.Contains(s[1].Error, "broken.state") {
		t.Fatalf("status: %+v", s)
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	if err := m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
}

// TestReshardedSource runs a query over a stream that is split while
// records flow: parents are finished before children, nothing is late and
// the results match a hand-written aggregation. As on a real gateway, the
// records written after the split carry event times after the moment of
// the split (the wall clock, here a fake one).
func TestReshardedSource(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "store"), map[string]int{"events": 2, "results": 1, "deadletter": 1})
	split := t0.Add(time.Hour) // the fake wall clock while the split happens
	var clock atomic.Int64
	clock.Store(split.UnixMilli())
	var input []map[string]any
	write := func(from, to int, base time.Time) {
		for i := from; i < to; i++ {
			lane := fmt.Sprint(i%5 + 1)
			rec := map[string]any{"lane": lane, "v": float64(i % 9), "ts": base.Add(time.Duration(i-from) * 500 * time.Millisecond).Format(time.RFC3339Nano)}
			raw, _ := json.Marshal(rec)
			put(t, st, "events", "lane-"+lane, string(raw))
			input = append(input, rec)
		}
	}
	write(0, 200, split.Add(-10*time.Minute))
	q := QueryConfig{Name: "split", Output: "results", EventTime: "ts", AllowedLateness: config.Duration{Duration: time.Second},
		SQL: "SELECT lane, COUNT(*) AS n, SUM(v) AS s FROM events GROUP BY lane, TUMBLING(INTERVAL '10' SECOND)"}
	m := NewManager(RunnerOptions{Store: st, StateDir: filepath.Join(dir, "a"), Idle: 50 * time.Millisecond,
		Now: func() time.Time { return time.UnixMilli(clock.Load()) }, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Start(ctx, []QueryConfig{q}); err != nil {
		t.Fatal(err)
	}
	readAllOf := func(n int64) {
		testutil.WaitFor(t, 20*time.Second, func() error {
			if s := m.Status()[0]; s.In != n {
				return fmt.Errorf("%d records read", s.In)
			}
			return nil
		})
	}
	readAllOf(200)
	// Split the first shard while the query runs, then write on: the other
	// shard races ahead while the children wait for their parent's end.
	d, err := st.DescribeStream("events")
	if err != nil {
		t.Fatal(err)
	}
	sh := d.Shards[0]
	mid := new(big.Int)
	mid.SetString(sh.HashKeyRange.StartingHashKey, 10)
	end := new(big.Int)
	end.SetString(sh.HashKeyRange.EndingHashKey, 10)
	mid.Add(mid, end).Rsh(mid, 1)
	if err := st.SplitShard(ctx, "events", sh.ShardID, mid.String()); err != nil {
		t.Fatal(err)
	}
	write(200, 600, split)
	readAllOf(600)
	clock.Store(split.Add(time.Hour).UnixMilli()) // traffic stopped long ago: every window closes
	want := expectLaneWindows("split", 10*time.Second, input)
	testutil.WaitFor(t, 20*time.Second, func() error {
		if s := m.Status()[0]; s.Late != 0 {
			return fmt.Errorf("%d late records", s.Late)
		}
		if got := datas(readAll(t, st, "results")); !slices.Equal(got, want) {
			return fmt.Errorf("%d results, want %d", len(got), len(want))
		}
		return nil
	})
	if dl := readAll(t, st, "deadletter"); len(dl) != 0 {
		t.Errorf("%d late records", len(dl))
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	if err := m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
}

// TestAdminAPIRemoteWrites checks the loopback rule of the admin endpoint
// on the handler (the daemon-level check from a real other host is in
// security/): without a token a remote POST or DELETE gets 403 while GET
// stays open; allow_unauthenticated_remote lifts it; a token admits
// remote writes that carry it.
func TestAdminAPIRemoteWrites(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, filepath.Join(dir, "store"), map[string]int{"plates": 1, "plate-stats": 1, "deadletter": 1})
	m := NewManager(RunnerOptions{Store: st, StateDir: filepath.Join(dir, "analytics"), Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Start(ctx, []QueryConfig{DemoQuery()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	do := func(token string, allowRemote bool, remote, method, path, body, auth string) int {
		mux := http.NewServeMux()
		m.Register(mux, token, allowRemote)
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.RemoteAddr = remote
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Code
	}
	add := func(name string) string {
		return `{"name":"` + name + `","sql":"SELECT COUNT(*) AS n FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)"}`
	}
	const remote, local = "192.0.2.9:40000", "127.0.0.1:40000"
	for _, c := range []struct {
		name               string
		token              string
		allow              bool
		from, method, path string
		body, auth         string
		want               int
	}{
		{"remote add, no token", "", false, remote, "POST", "/api/queries", add("r1"), "", 403},
		{"remote stop, no token", "", false, remote, "DELETE", "/api/queries/" + DemoQueryName, "", "", 403},
		{"remote read, no token", "", false, remote, "GET", "/api/queries", "", "", 200},
		{"local add, no token", "", false, local, "POST", "/api/queries", add("l1"), "", 201},
		{"remote add, opted out", "", true, remote, "POST", "/api/queries", add("r2"), "", 201},
		{"remote add, token", "token-12345", false, remote, "POST", "/api/queries", add("r3"), "Bearer token-12345", 201},
		{"remote add, wrong token", "token-12345", false, remote, "POST", "/api/queries", add("r4"), "Bearer nope-nope", 401},
		{"remote stop, token", "token-12345", false, remote, "DELETE", "/api/queries/r3", "", "Bearer token-12345", 204},
	} {
		if got := do(c.token, c.allow, c.from, c.method, c.path, c.body, c.auth); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if s := m.Status(); len(s) != 3 || s[0].Name != DemoQueryName {
		t.Errorf("queries after the refused writes: %+v", s)
	}
}
