package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

type rig struct {
	t     testing.TB
	store *stream.Store
	board *status.Board
	reg   *prometheus.Registry
	srv   *Server
	http  *httptest.Server
}

func openStore(t testing.TB) *stream.Store {
	t.Helper()
	return streamtest.Open(t, stream.Options{}, stream.StreamConfig{Name: "plates", ShardCount: 4},
		stream.StreamConfig{Name: "deadletter", ShardCount: 1}, stream.StreamConfig{Name: "gpio", ShardCount: 1})
}

// startRig runs a dashboard on st, on a test HTTP server, the way the
// daemon wires it.
func startRig(t testing.TB, st *stream.Store, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, store: st, board: &status.Board{}, reg: prometheus.NewRegistry()}
	if cfg.PushInterval.Duration == 0 {
		cfg.PushInterval.Duration = 100 * time.Millisecond
	}
	s, err := New(cfg, Deps{Store: st, Status: r.board, Metrics: r.reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = s
	mux := http.NewServeMux()
	s.Handle(mux)
	mux.Handle("GET /metrics", promhttpHandler(r.reg))
	s.Start(context.Background())
	r.http = httptest.NewServer(mux)
	t.Cleanup(func() {
		r.http.CloseClientConnections()
		r.http.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return r
}

func plateJSON(lane, typ, ev, id, sensor string) []byte {
	return []byte(fmt.Sprintf(`{"store":"demo-store","lane":%q,"plate_type":%q,"event":%q,"plate_id":%q,"sensor":%q,"ts":%q}`,
		lane, typ, ev, id, sensor, time.Now().UTC().Format(time.RFC3339Nano)))
}

// put writes plate events: for each type, placed, then taken, then passed.
func putPlates(t testing.TB, st *stream.Store, lane, typ string, placed, taken, passed int) {
	t.Helper()
	var es []stream.Entry
	key := "demo-store/" + lane
	for i := 0; i < placed; i++ {
		es = append(es, stream.Entry{PartitionKey: key, Data: plateJSON(lane, typ, "placed", fmt.Sprintf("%s-%s-%d", lane, typ, i), "lane"+lane+"-kitchen")})
	}
	for i := 0; i < taken; i++ {
		es = append(es, stream.Entry{PartitionKey: key, Data: plateJSON(lane, typ, "taken", fmt.Sprintf("%s-%s-%d", lane, typ, i), "lane"+lane+"-ir1")})
	}
	for i := 0; i < passed; i++ {
		es = append(es, stream.Entry{PartitionKey: key, Data: plateJSON(lane, typ, "passed", fmt.Sprintf("%s-%s-%d", lane, typ, placed-1-i%max(placed, 1)), "lane"+lane+"-ir1")})
	}
	for len(es) > 0 {
		n := min(len(es), stream.MaxBatchRecords)
		res, err := st.PutBatch(context.Background(), "plates", es[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		es = es[n:]
	}
}

func (r *rig) getJSON(path string, v any) error {
	resp, err := http.Get(r.http.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (r *rig) storeView() (StoreView, error) {
	var v StoreView
	err := r.getJSON("/api/dashboard/store", &v)
	return v, err
}

func (r *rig) dial(query string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(r.http.URL, "http") + "/ws" + query
	return websocket.DefaultDialer.Dial(u, hdr)
}

type wsMsg struct {
	Type   string          `json:"type"`
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
}

// readUntil reads messages until match accepts one or the deadline passes.
func readUntil(t testing.TB, c *websocket.Conn, wait time.Duration, match func(wsMsg) bool) wsMsg {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("websocket: no matching message within %s: %v", wait, err)
		}
		var m wsMsg
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("bad message %q: %v", data, err)
		}
		if match(m) {
			return m
		}
	}
}

func (r *rig) metrics() string {
	resp, err := http.Get(r.http.URL + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestStoreViewLive(t *testing.T) {
	st := openStore(t)
	r := startRig(t, st, Config{})
	ws, _, err := r.dial("?topics=store", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	readUntil(t, ws, 5*time.Second, func(m wsMsg) bool { return m.Type == "store" })

	putPlates(t, st, "1", "salmon", 10, 4, 6)
	putPlates(t, st, "2", "tuna", 3, 3, 0)
	// A heartbeat from a sensor, and junk that must not break anything.
	if _, err := st.Put(context.Background(), "plates", stream.Entry{PartitionKey: "demo-store/2", Data: []byte(`{"sensor":"lane2-ir9","lane":"2","ok":true,"ts":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), "plates", stream.Entry{PartitionKey: "x", Data: []byte{0xff, 0x00}}); err != nil {
		t.Fatal(err)
	}
	m := readUntil(t, ws, 10*time.Second, func(m wsMsg) bool {
		var v StoreView
		_ = json.Unmarshal(m.Data, &v)
		return m.Type == "store" && v.Placed == 13 && v.Taken == 7 && v.Passed == 6 && v.Bad == 1
	})
	var v StoreView
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatal(err)
	}
	if v.OnBelt != 6 {
		t.Errorf("on belt %d, want 6 (10 salmon placed, 4 taken; 3 tuna placed, 3 taken)", v.OnBelt)
	}
	if len(v.Lanes) != 2 || v.Lanes[0].Lane != "1" || v.Lanes[0].Placed != 10 || v.Lanes[1].Sensors != 3 {
		t.Errorf("lanes %+v", v.Lanes)
	}
	// The tuna were all taken within the minute: the kitchen should make
	// more tuna; salmon has 6 on the belt for 4 taken.
	if len(v.MakeNext) == 0 || v.MakeNext[0].PlateType != "tuna" {
		t.Errorf("make next %+v, want tuna first", v.MakeNext)
	}
	// The API and /metrics agree with what the websocket pushed.
	testutil.WaitFor(t, 5*time.Second, func() error {
		a, err := r.storeView()
		if err != nil {
			return err
		}
		if a.Placed != 13 || a.Taken != 7 || a.OnBelt != 6 {
			return fmt.Errorf("api %d/%d/%d", a.Placed, a.Taken, a.OnBelt)
		}
		return nil
	})
	met := r.metrics()
	for _, want := range []string{
		`kaiten_dashboard_plate_events_total{event="placed",plate_type="salmon"} 10`,
		`kaiten_dashboard_plate_events_total{event="taken",plate_type="tuna"} 3`,
		`kaiten_dashboard_plates_on_belt{plate_type="salmon"} 6`,
		`kaiten_dashboard_clients 1`,
	} {
		if !strings.Contains(met, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestStoreViewRebuilt: a dashboard started after the records were written
// shows them (it replays the history window from the stream), without
// counting them as live events.
func TestStoreViewRebuilt(t *testing.T) {
	st := openStore(t)
	putPlates(t, st, "3", "ebi", 7, 2, 5)
	r := startRig(t, st, Config{})
	testutil.WaitFor(t, 10*time.Second, func() error {
		v, err := r.storeView()
		if err != nil {
			return err
		}
		if v.Placed != 7 || v.Taken != 2 || v.Passed != 5 || v.OnBelt != 5 {
			return fmt.Errorf("view after rebuild: placed %d taken %d passed %d on belt %d", v.Placed, v.Taken, v.Passed, v.OnBelt)
		}
		return nil
	})
	if met := r.metrics(); strings.Contains(met, `kaiten_dashboard_plate_events_total{event="placed",plate_type="ebi"}`) {
		t.Errorf("replayed records counted as live events")
	}
	// New records after the rebuild are counted on top, exactly once.
	putPlates(t, st, "3", "ebi", 1, 0, 0)
	testutil.WaitFor(t, 10*time.Second, func() error {
		v, err := r.storeView()
		if err != nil {
			return err
		}
		if v.Placed != 8 {
			return fmt.Errorf("placed %d, want 8", v.Placed)
		}
		return nil
	})
}

func TestGatewayView(t *testing.T) {
	st := openStore(t)
	r := startRig(t, st, Config{})
	r.board.Set("mqtt", func() any { return map[string]any{"connected": true, "broker": "embedded"} })
	r.board.Set("sync", func() any {
		return []map[string]any{{"name": "s3-archive", "online": false, "backlog_records": 12}}
	})
	ctx := context.Background()
	if _, err := st.Put(ctx, "deadletter", stream.Entry{PartitionKey: "mqtt", Data: []byte(`{"source":"mqtt","topic":"store/demo-store/lane/3/plate","reason":"payload is not JSON","data_b64":"eA==","ts":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	putPlates(t, st, "1", "tamago", 20, 0, 0)
	testutil.WaitFor(t, 10*time.Second, func() error {
		var v GatewayView
		if err := r.getJSON("/api/dashboard/gateway", &v); err != nil {
			return err
		}
		if v.DeadLetters.Total != 1 || v.DeadLetters.LastHour["mqtt"] != 1 || len(v.DeadLetters.Recent) != 1 {
			return fmt.Errorf("dead letters %+v", v.DeadLetters)
		}
		if v.DeadLetters.Recent[0].Reason != "payload is not JSON" {
			return fmt.Errorf("recent %+v", v.DeadLetters.Recent)
		}
		if string(v.Components["mqtt"]) != `{"broker":"embedded","connected":true}` {
			return fmt.Errorf("mqtt component %s", v.Components["mqtt"])
		}
		if _, ok := v.Components["store"]; ok {
			return fmt.Errorf("the store entry is shown as a component")
		}
		var plates *StreamView
		for i := range v.Streams {
			if v.Streams[i].Name == "plates" {
				plates = &v.Streams[i]
			}
		}
		if plates == nil || plates.Records != 20 || len(plates.Shards) != 4 || plates.RetentionS != 86400 {
			return fmt.Errorf("plates stream %+v", plates)
		}
		var in int64
		for _, sh := range plates.Shards {
			in += sh.Incoming
		}
		if in != 20 || v.Bytes <= 0 {
			return fmt.Errorf("incoming %d, bytes %d", in, v.Bytes)
		}
		return nil
	})
}

func TestTail(t *testing.T) {
	st := openStore(t)
	r := startRig(t, st, Config{})
	ws, _, err := r.dial("?topics=tail/gpio", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	testutil.WaitFor(t, 5*time.Second, func() error {
		r.srv.tailMu.Lock()
		defer r.srv.tailMu.Unlock()
		if r.srv.tails["gpio"] == nil {
			return fmt.Errorf("tail not started")
		}
		return nil
	})
	// The tail starts at the latest record; put until one shows up (the
	// follower may still be finding the shard's newest sequence number).
	ctx := context.Background()
	got := make(chan TailRecord, 1)
	go func() {
		m := readUntil(t, ws, 10*time.Second, func(m wsMsg) bool { return m.Type == "tail" && m.Stream == "gpio" })
		var b TailBatch
		_ = json.Unmarshal(m.Data, &b)
		got <- b.Records[0]
	}()
	payload := `{"pin":"GPIO17","sensor":"lane1-beam","lane":"1","kind":"pass","count":42}`
	var rec TailRecord
	testutil.WaitFor(t, 10*time.Second, func() error {
		if _, err := st.Put(ctx, "gpio", stream.Entry{PartitionKey: "lane1-beam", Data: []byte(payload)}); err != nil {
			return err
		}
		select {
		case rec = <-got:
			return nil
		default:
			return fmt.Errorf("no tail message yet")
		}
	})
	if rec.Data != payload || rec.PartitionKey != "lane1-beam" || rec.Base64 {
		t.Fatalf("tail record %+v", rec)
	}
	// Leaving the topic stops the follower.
	ws.Close()
	testutil.WaitFor(t, 5*time.Second, func() error {
		r.srv.tailMu.Lock()
		defer r.srv.tailMu.Unlock()
		if len(r.srv.tails) != 0 {
			return fmt.Errorf("tail still running with no subscriber")
		}
		return nil
	})
	// An unknown stream is refused with a reason.
	ws2, _, err := r.dial("?topics=tail/nope", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.Close()
	_ = ws2.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws2.ReadMessage()
	var ce *websocket.CloseError
	if !errorsAs(err, &ce) || ce.Code != closeForbidden || !strings.Contains(ce.Text, "tail/nope") {
		t.Fatalf("unknown topic: %v", err)
	}
}

func TestToken(t *testing.T) {
	st := openStore(t)
	const tok = "s3cret-token"
	r := startRig(t, st, Config{Token: tok})
	get := func(path string, hdr http.Header) int {
		req, _ := http.NewRequest("GET", r.http.URL+path, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	for _, c := range []struct {
		path string
		hdr  http.Header
		want int
	}{
		{"/", nil, 200},
		{"/dashboard/app.js", nil, 200},
		{"/api/dashboard/store", nil, 401},
		{"/api/dashboard/store", http.Header{"Authorization": {"Bearer wrong-token"}}, 401},
		{"/api/dashboard/store", bearer, 200},
		{"/api/dashboard/gateway?token=" + tok, nil, 200},
		{"/api/dashboard/streams", http.Header{"Cookie": {cookieName + "=" + tok}}, 200},
	} {
		if got := get(c.path, c.hdr); got != c.want {
			t.Errorf("GET %s %v: %d, want %d", c.path, c.hdr, got, c.want)
		}
	}
	if _, resp, err := r.dial("?topics=tail/plates", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("websocket without token: err %v", err)
	}
	ws, _, err := r.dial("?topics=store&token="+tok, nil)
	if err != nil {
		t.Fatalf("websocket with token: %v", err)
	}
	ws.Close()
	if met := r.metrics(); !strings.Contains(met, "kaiten_dashboard_unauthorized_total 3") {
		t.Errorf("unauthorized counter missing or wrong")
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{PlatesStream: "bad name"}, "dashboard.plates_stream"},
		{Config{ClientQueue: -1}, "dashboard.client_queue"},
		{Config{Token: "short"}, "dashboard.token"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.want+":") {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	var ok Config
	if err := ok.Validate(); err != nil || ok.History.Duration != time.Hour || ok.ClientQueue != 64 {
		t.Fatalf("defaults: %v %+v", err, ok)
	}
}

// TestTailSamplesBusyStream: a burst far beyond what the tail shows is
// sampled (bounded reads and messages), not read record by record.
func TestTailSamplesBusyStream(t *testing.T) {
	st := openStore(t)
	r := startRig(t, st, Config{})
	ws, _, err := r.dial("?topics=tail/gpio", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	testutil.WaitFor(t, 5*time.Second, func() error {
		r.srv.tailMu.Lock()
		defer r.srv.tailMu.Unlock()
		if r.srv.tails["gpio"] == nil {
			return fmt.Errorf("tail not started")
		}
		return nil
	})
	es := make([]stream.Entry, stream.MaxBatchRecords)
	for i := range es {
		es[i] = stream.Entry{PartitionKey: "lane1-beam", Data: []byte(fmt.Sprintf(`{"count":%d}`, i))}
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		// Keep the stream busy until the test has seen a sampled batch.
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := st.PutBatch(context.Background(), "gpio", es); err != nil {
				return
			}
		}
	}()
	readUntil(t, ws, 20*time.Second, func(m wsMsg) bool {
		var b TailBatch
		if err := json.Unmarshal(m.Data, &b); err != nil {
			t.Fatal(err)
		}
		if len(b.Records) > tailBatch {
			t.Fatalf("tail message with %d records, at most %d", len(b.Records), tailBatch)
		}
		return b.Sampled
	})
}

func TestRateHistory(t *testing.T) {
	var h rateHistory
	t0 := time.Unix(1000, 0)
	for i := 0; i < rateHistoryLen+10; i++ {
		v := GatewayView{Now: t0.Add(time.Duration(i) * time.Second), Streams: []StreamView{{Name: "plates", PerSec: float64(i)}}}
		if i >= 5 {
			v.Streams = append(v.Streams, StreamView{Name: "late", PerSec: 1})
		}
		h.add(v)
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		T       []float64
		Streams map[string][]*float64
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.T) != rateHistoryLen || got.T[0] != 1010 || len(got.Streams["plates"]) != rateHistoryLen || *got.Streams["plates"][0] != 10 {
		t.Fatalf("history: %d points from %d", len(got.T), int64(got.T[0]))
	}
	if got.Streams["late"][0] == nil || len(got.Streams["late"]) != rateHistoryLen {
		t.Fatalf("late stream: %v", got.Streams["late"][:3])
	}
}

// TestFollowsReshard: records written after a reshard (to child shards)
// still reach the store view, exactly once.
func TestFollowsReshard(t *testing.T) {
	st := openStore(t)
	r := startRig(t, st, Config{})
	putPlates(t, st, "1", "unagi", 5, 0, 0)
	waitPlaced := func(n int64) {
		t.Helper()
		testutil.WaitFor(t, 10*time.Second, func() error {
			v, err := r.storeView()
			if err != nil {
				return err
			}
			if v.Placed != n {
				return fmt.Errorf("placed %d, want %d", v.Placed, n)
			}
			return nil
		})
	}
	waitPlaced(5)
	if err := st.UpdateShardCount(context.Background(), "plates", 8); err != nil {
		t.Fatal(err)
	}
	for lane := 1; lane <= 6; lane++ {
		putPlates(t, st, strconv.Itoa(lane), "unagi", 3, 0, 0)
	}
	waitPlaced(5 + 18)
	if err := st.UpdateShardCount(context.Background(), "plates", 4); err != nil {
		t.Fatal(err)
	}
	for lane := 1; lane <= 6; lane++ {
		putPlates(t, st, strconv.Itoa(lane), "unagi", 1, 0, 0)
	}
	waitPlaced(5 + 18 + 6)
}

// putStats writes analytics results into a results stream, creating it.
func putStats(t testing.TB, st *stream.Store, name string, recs ...stream.Record) {
	t.Helper()
	ctx := context.Background()
	if err := st.CreateStream(ctx, stream.StreamConfig{Name: name, ShardCount: 1}); err != nil && !errors.Is(err, stream.ErrStreamExists) {
		t.Fatal(err)
	}
	for _, r := range recs {
		if _, err := st.Put(ctx, name, stream.Entry{PartitionKey: r.PartitionKey, Data: r.Data}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQueryResults: the store view carries each continuous query's newest
// window, read from the output streams: replayed at start (a restarted
// gateway shows the last window at once), followed live, and with the
// lag from the status board; a query writing to another stream is found
// through the board.
func TestQueryResults(t *testing.T) {
	st := openStore(t)
	w0 := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Minute)
	const q = "plates_taken_per_minute"
	putStats(t, st, "plate-stats", statRec(q, w0, "1", "salmon", 9), statRec(q, w0.Add(time.Minute), "1", "salmon", 4),
		statRec(q, w0.Add(time.Minute), "2", "tuna", 6))
	putStats(t, st, "lane-stats", stream.Record{PartitionKey: "k", Data: []byte(`{"query":"lane_speed","window_start":"` +
		w0.Format(time.RFC3339) + `","window_end":"` + w0.Add(10*time.Second).Format(time.RFC3339) + `","lane":"2","passes":40,"avg_ms":812.5}`)})
	r := startRig(t, st, Config{})
	behind := int64(250)
	r.board.Set(status.AnalyticsEntry, func() any {
		return status.Analytics{Queries: []status.Query{
			{Name: q, SQL: demoSQL, Output: "plate-stats", Window: "tumbling 1m0s", State: "running", BehindMs: behind},
			{Name: "lane_speed", SQL: "SELECT lane, COUNT(*) AS passes, AVG(ms) AS avg_ms FROM plates", Output: "lane-stats", State: "running"},
		}}
	})
	find := func(v StoreView, name string) *QueryResult {
		for i := range v.Analytics {
			if v.Analytics[i].Query == name {
				return &v.Analytics[i]
			}
		}
		return nil
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		v, err := r.storeView()
		if err != nil {
			return err
		}
		d, ls := find(v, q), find(v, "lane_speed")
		if d == nil || d.Pivot == nil || ls == nil || len(ls.Rows) != 1 {
			return fmt.Errorf("analytics %+v", v.Analytics)
		}
		if !d.WindowStart.Equal(w0.Add(time.Minute)) || d.Pivot.Total == nil || *d.Pivot.Total != 10 || d.BehindMs == nil || *d.BehindMs != 250 {
			return fmt.Errorf("demo query after the replay: %+v", *d)
		}
		return nil
	})
	// Live: the next window replaces the shown one.
	putStats(t, st, "plate-stats", statRec(q, w0.Add(2*time.Minute), "3", "ebi", 2))
	testutil.WaitFor(t, 10*time.Second, func() error {
		v, err := r.storeView()
		if err != nil {
			return err
		}
		d := find(v, q)
		if d == nil || !d.WindowStart.Equal(w0.Add(2*time.Minute)) || d.Pivot == nil || *d.Pivot.Total != 2 || len(d.Rows) != 1 {
			return fmt.Errorf("demo query after a live window: %+v", d)
		}
		return nil
	})
}
