package analytics

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

var t0 = time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)

// in is one input record: shard, arrival offset from t0, JSON data.
type in struct {
	shard string
	at    time.Duration
	data  string
}

func a(at time.Duration, data string) in { return in{shard: "s0", at: at, data: data} }

const sec = time.Second

func feed(t *testing.T, e *Engine, recs []in, seq *int) {
	t.Helper()
	for _, r := range recs {
		*seq++
		sh := r.shard
		if sh == "" {
			sh = "s0"
		}
		e.Process(sh, []stream.Record{{SequenceNumber: fmt.Sprintf("%06d", *seq), Data: []byte(r.data), ArrivalTime: t0.Add(r.at)}})
	}
}

func results(es []Emit) (res, late []string) {
	for _, e := range es {
		if e.Late {
			late = append(late, string(e.Data))
		} else {
			res = append(res, string(e.Data))
		}
	}
	return res, late
}

func ts(d time.Duration) string { return t0.Add(d).Format("2006-01-02T15:04:05.000Z07:00") }

func out(start, end time.Duration, cols string) string {
	s := fmt.Sprintf(`{"query":"q","window_start":"%s","window_end":"%s"`, ts(start), ts(end))
	if cols != "" {
		s += "," + cols
	}
	return s + "}"
}

func TestEngineTable(t *testing.T) {
	ev := func(at time.Duration, extra string) string {
		return fmt.Sprintf(`{"ts":"%s"%s}`, ts(at), extra)
	}
	cases := []struct {
		name      string
		sql       string
		eventTime string
		lateness  time.Duration
		input     []in
		want      []string // emitted as the watermark passes
		wantFlush []string // still open at the end
		wantLate  []string
		skipped   map[string]int64
	}{
		{
			name: "tumbling count sum avg min max",
			sql:  "SELECT lane, COUNT(*) AS n, SUM(weight) AS s, AVG(weight) AS a, MIN(weight) AS mn, MAX(plate_type) AS mx FROM plates GROUP BY lane, TUMBLING(INTERVAL '1' MINUTE)",
			input: []in{
				a(0, `{"lane":"1","weight":10,"plate_type":"salmon"}`),
				a(5*sec, `{"lane":"2","weight":4,"plate_type":"tuna"}`),
				a(30*sec, `{"lane":"1","weight":20,"plate_type":"ebi"}`),
				a(61*sec, `{"lane":"1","weight":1.5,"plate_type":"ikura"}`),
			},
			want: []string{
				out(0, 60*sec, `"lane":"1","n":2,"s":30,"a":15,"mn":10,"mx":"salmon"`),
				out(0, 60*sec, `"lane":"2","n":1,"s":4,"a":4,"mn":4,"mx":"tuna"`),
			},
			wantFlush: []string{out(60*sec, 120*sec, `"lane":"1","n":1,"s":1.5,"a":1.5,"mn":1.5,"mx":"ikura"`)},
		},
		{
			name: "demo query filters taken plates",
			sql:  "SELECT lane, plate_type, COUNT(*) AS taken FROM plates WHERE event = 'taken' GROUP BY lane, plate_type, TUMBLING(INTERVAL '1' MINUTE)",
			input: []in{
				a(1*sec, `{"store":"demo-store","lane":"3","plate_type":"salmon","event":"taken"}`),
				a(2*sec, `{"store":"demo-store","lane":"3","plate_type":"salmon","event":"placed"}`),
				a(3*sec, `{"sensor":"lane3-ir1","lane":"3","ok":true}`),
				a(4*sec, `{"store":"demo-store","lane":"3","plate_type":"tuna","event":"taken"}`),
				a(5*sec, `{"store":"demo-store","lane":"3","plate_type":"salmon","event":"taken"}`),
				a(60*sec, `{"store":"demo-store","lane":"1","plate_type":"ebi","event":"passed"}`),
			},
			want: []string{
				out(0, 60*sec, `"lane":"3","plate_type":"salmon","taken":2`),
				out(0, 60*sec, `"lane":"3","plate_type":"tuna","taken":1`),
			},
		},
		{
			name: "hopping",
			sql:  "SELECT COUNT(*) AS n, WINDOW_END() AS until FROM s GROUP BY HOPPING(INTERVAL '1' MINUTE, INTERVAL '30' SECOND)",
			input: []in{
				a(10*sec, `{}`), a(40*sec, `{}`), a(70*sec, `{}`),
			},
			want: []string{
				out(-30*sec, 30*sec, `"n":1,"until":"`+ts(30*sec)+`"`),
				out(0, 60*sec, `"n":2,"until":"`+ts(60*sec)+`"`),
			},
			wantFlush: []string{
				out(30*sec, 90*sec, `"n":2,"until":"`+ts(90*sec)+`"`),
				out(60*sec, 120*sec, `"n":1,"until":"`+ts(120*sec)+`"`),
			},
		},
		{
			name: "session per lane",
			sql:  "SELECT lane, COUNT(*) AS n, APPROX_COUNT_DISTINCT(plate_type) AS kinds FROM s GROUP BY lane, SESSION(INTERVAL '10' SECOND)",
			input: []in{
				a(0, `{"lane":"1","plate_type":"salmon"}`),
				a(3*sec, `{"lane":"2","plate_type":"tuna"}`),
				a(5*sec, `{"lane":"1","plate_type":"salmon"}`),
				a(12*sec, `{"lane":"1","plate_type":"ebi"}`),
				a(40*sec, `{"lane":"1","plate_type":"ebi"}`),
			},
			want: []string{
				out(3*sec, 13*sec, `"lane":"2","n":1,"kinds":1`),
				out(0, 22*sec, `"lane":"1","n":3,"kinds":2`),
			},
			wantFlush: []string{out(40*sec, 50*sec, `"lane":"1","n":1,"kinds":1`)},
		},
		{
			name:      "session merge out of order",
			sql:       "SELECT COUNT(*) AS n, MAX(v) AS hi FROM s GROUP BY SESSION(INTERVAL '10' SECOND)",
			eventTime: "ts",
			lateness:  20 * sec,
			input: []in{
				a(0, ev(0, `,"v":1`)),
				a(1*sec, ev(15*sec, `,"v":5`)),
				a(2*sec, ev(8*sec, `,"v":3`)),
				a(3*sec, ev(60*sec, `,"v":9`)),
			},
			want:      []string{out(0, 25*sec, `"n":3,"hi":5`)},
			wantFlush: []string{out(60*sec, 70*sec, `"n":1,"hi":9`)},
		},
		{
			name:      "event time out of order and late",
			sql:       "SELECT COUNT(*) AS n FROM s GROUP BY TUMBLING(INTERVAL '1' MINUTE)",
			eventTime: "ts",
			lateness:  10 * sec,
			input: []in{
				a(0, ev(50*sec, "")),
				a(1*sec, ev(65*sec, "")),
				a(2*sec, ev(58*sec, "")), // out of order, its window is still open
				a(3*sec, ev(75*sec, "")), // watermark 65 s: closes [0, 60)
				a(4*sec, ev(59*sec, `,"late":1`)),
				a(5*sec, ev(80*sec, "")),
			},
			want:      []string{out(0, 60*sec, `"n":2`)},
			wantFlush: []string{out(60*sec, 120*sec, `"n":3`)},
			wantLate:  []string{ev(59*sec, `,"late":1`)},
		},
		{
			name:      "event time as epoch millis and seconds",
			sql:       "SELECT COUNT(*) AS n FROM s GROUP BY TUMBLING(INTERVAL '10' SECOND)",
			eventTime: "t",
			input: []in{
				a(0, fmt.Sprintf(`{"t":%d}`, t0.UnixMilli()+1000)),
				a(0, fmt.Sprintf(`{"t":%d}`, t0.Unix()+2)),
				a(0, fmt.Sprintf(`{"t":%d}`, t0.UnixMilli()+11000)),
			},
			want:      []string{out(0, 10*sec, `"n":2`)},
			wantFlush: []string{out(10*sec, 20*sec, `"n":1`)},
		},
		{
			name: "having and window start",
			sql:  "SELECT lane, COUNT(*) AS n, WINDOW_START() AS ws FROM s GROUP BY lane, TUMBLING(INTERVAL '1' MINUTE) HAVING n >= 2 AND COUNT(*) < 10",
			input: []in{
				a(1*sec, `{"lane":"1"}`), a(2*sec, `{"lane":"1"}`), a(3*sec, `{"lane":"2"}`), a(60*sec, `{"lane":"9"}`),
			},
			want: []string{out(0, 60*sec, `"lane":"1","n":2,"ws":"`+ts(0)+`"`)},
		},
		{
			name: "nested paths",
			sql:  "SELECT `m.where.lane` AS lane, SUM(m.v.w) AS w, MAX(s.m->'$.v.w') AS hi FROM s GROUP BY `m.where.lane`, TUMBLING(INTERVAL '1' MINUTE)",
			input: []in{
				a(1*sec, `{"m":{"where":{"lane":"4"},"v":{"w":2}}}`),
				a(2*sec, `{"m":{"where":{"lane":"4"},"v":{"w":3}}}`),
			},
			wantFlush: []string{out(0, 60*sec, `"lane":"4","w":5,"hi":3`)},
		},
		{
			name: "where operators",
			sql:  "SELECT COUNT(*) AS n FROM s WHERE lane IN ('1', '2') AND v BETWEEN 2 AND 5 AND name LIKE 'sal%' AND NOT (x IS NOT NULL) AND v * 2 - 1 > 2 GROUP BY TUMBLING(INTERVAL '1' MINUTE)",
			input: []in{
				a(1*sec, `{"lane":"1","v":2,"name":"salmon"}`), // v*2-1 = 3 > 2
				a(2*sec, `{"lane":"3","v":2,"name":"salmon"}`), // lane
				a(3*sec, `{"lane":"2","v":6,"name":"salmon"}`), // between
				a(4*sec, `{"lane":"2","v":3,"name":"tuna"}`),   // like
				a(5*sec, `{"lane":"2","v":3,"name":"salmon","x":1}`),
				a(6*sec, `{"lane":2,"v":"4","name":"salmon"}`), // numbers and numeric strings compare as numbers
			},
			wantFlush: []string{out(0, 60*sec, `"n":2`)},
		},
		{
			name: "bad records are counted and skipped",
			sql:  "SELECT COUNT(*) AS n, SUM(w) AS s, AVG(w) AS a FROM s GROUP BY TUMBLING(INTERVAL '1' MINUTE)",
			input: []in{
				a(1*sec, `{"w":1}`),
				a(2*sec, `not json`),
				a(3*sec, `{"w":"heavy"}`),
				a(4*sec, `{"x":1}`),
				a(5*sec, `{"w":3}`),
			},
			wantFlush: []string{out(0, 60*sec, `"n":4,"s":4,"a":2`)},
			skipped:   map[string]int64{"bad_json": 1, "wrong_type": 2, "missing_field": 2},
		},
		{
			name:      "missing event time is skipped",
			sql:       "SELECT COUNT(*) AS n FROM s GROUP BY TUMBLING(INTERVAL '1' MINUTE)",
			eventTime: "ts",
			input:     []in{a(0, ev(1*sec, "")), a(0, `{"ts":"yesterday"}`), a(0, `{}`), a(0, `{"ts":true}`)},
			wantFlush: []string{out(0, 60*sec, `"n":1`)},
			skipped:   map[string]int64{"bad_event_time": 3},
		},
		{
			name: "null group key and empty aggregates",
			sql:  "SELECT lane, COUNT(v) AS c, SUM(v) AS s, MIN(v) AS mn FROM s GROUP BY lane, TUMBLING(INTERVAL '1' MINUTE)",
			input: []in{
				a(1*sec, `{"v":null}`),
			},
			wantFlush: []string{out(0, 60*sec, `"lane":null,"c":0,"s":null,"mn":null`)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			o := EngineOptions{Query: "q", Lateness: tc.lateness}
			if tc.eventTime != "" {
				o.EventTime = strings.Split(tc.eventTime, ".")
			}
			e := NewEngine(p, o)
			seq := 0
			feed(t, e, tc.input, &seq)
			got, late := results(e.Take())
			e.FlushAll()
			flushed, _ := results(e.Take())
			check(t, "emitted", got, tc.want)
			check(t, "flushed", flushed, tc.wantFlush)
			check(t, "late", late, tc.wantLate)
			st := e.Stats()
			if st.Late != int64(len(tc.wantLate)) {
				t.Errorf("late count %d, want %d", st.Late, len(tc.wantLate))
			}
			for k, v := range tc.skipped {
				if st.Skipped[k] != v {
					t.Errorf("skipped[%s] = %d, want %d (all: %v)", k, st.Skipped[k], v, st.Skipped)
				}
			}
			if tc.skipped == nil && len(st.Skipped) > 0 {
				t.Errorf("unexpected skips: %v", st.Skipped)
			}
		})
	}
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

func TestApproxAggregates(t *testing.T) {
	p, err := Parse("SELECT APPROX_PERCENTILE(v, 0.5) AS p50, APPROX_PERCENTILE(v, 0.99) AS p99, APPROX_COUNT_DISTINCT(id) AS ids, COUNT(*) AS n FROM s GROUP BY TUMBLING(INTERVAL '1' HOUR)")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(p, EngineOptions{Query: "q"})
	var recs []in
	for i := 1; i <= 5000; i++ {
		recs = append(recs, a(time.Duration(i)*time.Millisecond, fmt.Sprintf(`{"v":%d,"id":"p-%d"}`, i%1000+1, i%2000)))
	}
	seq := 0
	feed(t, e, recs, &seq)
	e.FlushAll()
	res, _ := results(e.Take())
	if len(res) != 1 {
		t.Fatalf("want one window, got %v", res)
	}
	var got struct{ P50, P99, Ids, N float64 }
	if err := json.Unmarshal([]byte(res[0]), &got); err != nil {
		t.Fatal(err)
	}
	near := func(name string, v, want, rel float64) {
		if math.Abs(v-want) > rel*want {
			t.Errorf("%s = %v, want %v within %.0f%%", name, v, want, rel*100)
		}
	}
	near("p50", got.P50, 500, 0.02)
	near("p99", got.P99, 990, 0.02)
	near("distinct", got.Ids, 2000, 0.03)
	if got.N != 5000 {
		t.Errorf("n = %v", got.N)
	}
}

func TestWatermarkAcrossShards(t *testing.T) {
	p, err := Parse("SELECT COUNT(*) AS n FROM s GROUP BY TUMBLING(INTERVAL '1' MINUTE)")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(p, EngineOptions{Query: "q"})
	e.Track("a", "b")
	seq := 0
	feed(t, e, []in{{"a", 10 * sec, `{}`}, {"a", 70 * sec, `{}`}}, &seq)
	if res, _ := results(e.Take()); len(res) != 0 {
		t.Fatalf("shard b has not reported, yet a window closed: %v", res)
	}
	feed(t, e, []in{{"b", 20 * sec, `{}`}}, &seq)
	if res, _ := results(e.Take()); len(res) != 0 {
		t.Fatalf("b is at 20 s, yet a window closed: %v", res)
	}
	feed(t, e, []in{{"b", 65 * sec, `{}`}}, &seq)
	res, _ := results(e.Take())
	check(t, "after b passes 60 s", res, []string{out(0, 60*sec, `"n":2`)})

	// Both idle: the watermark follows the wall clock minus the idle grace.
	e.Idle("a", t0.Add(10*time.Minute))
	if res, _ := results(e.Take()); len(res) != 0 {
		t.Fatalf("b is not idle yet: %v", res)
	}
	e.Idle("b", t0.Add(10*time.Minute))
	res, _ = results(e.Take())
	check(t, "idle", res, []string{out(60*sec, 120*sec, `"n":2`)})

	// A closed shard read to its end stops holding the watermark.
	e.Track("c")
	feed(t, e, []in{{"a", 11 * time.Minute, `{}`}, {"a", 13 * time.Minute, `{}`}}, &seq)
	if res, _ := results(e.Take()); len(res) != 0 {
		t.Fatalf("c holds the watermark, yet: %v", res)
	}
	e.EndShard("c")
	e.EndShard("b")
	res, _ = results(e.Take())
	check(t, "after c ended", res, []string{out(11*time.Minute, 12*time.Minute, `"n":1`)})
}

// TestSnapshotRestore checks that an engine restored from a snapshot (after
// a JSON round trip, as on disk) emits exactly what an uninterrupted one
// does, and that records replayed from before the snapshot are ignored.
func TestSnapshotRestore(t *testing.T) {
	for _, sql := range []string{
		"SELECT lane, COUNT(*) AS n, AVG(v) AS a, MIN(v) AS mn, MAX(name) AS mx, APPROX_COUNT_DISTINCT(name) AS d, APPROX_PERCENTILE(v, 0.9) AS p FROM s GROUP BY lane, TUMBLING(INTERVAL '1' MINUTE)",
		"SELECT lane, COUNT(*) AS n, SUM(v) AS s FROM s GROUP BY lane, HOPPING(INTERVAL '1' MINUTE, INTERVAL '20' SECOND)",
		"SELECT lane, COUNT(*) AS n, APPROX_PERCENTILE(v, 0.5) AS p FROM s GROUP BY lane, SESSION(INTERVAL '7' SECOND)",
	} {
		p, err := Parse(sql)
		if err != nil {
			t.Fatal(err)
		}
		var recs []in
		for i := 0; i < 400; i++ {
			shard := fmt.Sprintf("s%d", i%3)
			recs = append(recs, in{shard, time.Duration(i*i%5000) * 100 * time.Millisecond / 10 * 3,
				fmt.Sprintf(`{"lane":"%d","v":%d,"name":"n%d"}`, i%4, i%37, i%11)})
		}
		// Arrival time never goes backwards within a shard.
		last := map[string]time.Duration{}
		for i := range recs {
			if recs[i].at < last[recs[i].shard] {
				recs[i].at = last[recs[i].shard]
			}
			last[recs[i].shard] = recs[i].at
		}
		run := func(cut int) []string {
			e := NewEngine(p, EngineOptions{Query: "q"})
			e.Track("s0", "s1", "s2")
			seq := 0
			feed(t, e, recs[:cut], &seq)
			emitted, _ := results(e.Take())
			if cut < len(recs) {
				st, err := e.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				raw, err := json.Marshal(st)
				if err != nil {
					t.Fatal(err)
				}
				var back EngineState
				if err := json.Unmarshal(raw, &back); err != nil {
					t.Fatal(err)
				}
				e = NewEngine(p, EngineOptions{Query: "q"})
				if err := e.Restore(&back); err != nil {
					t.Fatal(err)
				}
				seq = 0
				feed(t, e, recs[:cut], &seq) // replay: all skipped
			}
			feed(t, e, recs[cut:], &seq)
			e.FlushAll()
			more, _ := results(e.Take())
			return append(emitted, more...)
		}
		whole := run(len(recs))
		if len(whole) < 5 {
			t.Fatalf("too few windows to be a test: %v", whole)
		}
		for _, cut := range []int{1, 137, 250, 399} {
			check(t, fmt.Sprintf("%s cut at %d", p.Window.Kind, cut), run(cut), whole)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		sql  string
		is   error
		want string
	}{
		{"SELEKT lane FROM plates", ErrSyntax, "syntax error"},
		{"", ErrInvalid, "empty"},
		{"SELECT lane, COUNT(*) FROM plates GROUP BY lane", ErrUnsupported, "TUMBLING"},
		{"SELECT lane, COUNT(*) FROM plates GROUP BY lane, TUMBLING(INTERVAL '1' MINUTE) ORDER BY lane", ErrUnsupported, "ORDER BY"},
		{"SELECT lane, plate_type FROM plates GROUP BY lane, TUMBLING(INTERVAL '1' MINUTE)", ErrInvalid, "`plate_type` must be in GROUP BY"},
		{"SELECT MEDIAN(v) FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)", ErrUnsupported, "MEDIAN"},
		{"SELECT COUNT(*) FROM plates GROUP BY TUMBLING(INTERVAL '1' WEEK)", ErrUnsupported, "WEEK"},
		{"SELECT COUNT(*) FROM plates GROUP BY TUMBLING(5)", ErrUnsupported, "want INTERVAL"},
		{"SELECT COUNT(*) FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE), SESSION(INTERVAL '1' MINUTE)", ErrUnsupported, "second window"},
		{"SELECT COUNT(*) FROM a JOIN b ON a.x = b.x GROUP BY TUMBLING(INTERVAL '1' MINUTE)", ErrUnsupported, "FROM"},
		{"SELECT COUNT(*) FROM a, b GROUP BY TUMBLING(INTERVAL '1' MINUTE)", ErrUnsupported, "several tables"},
		{"SELECT * FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)", ErrUnsupported, "SELECT *"},
		{"SELECT COUNT(DISTINCT x) FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)", ErrUnsupported, "APPROX_COUNT_DISTINCT"},
		{"SELECT APPROX_PERCENTILE(v, 2) FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)", ErrInvalid, "quantile"},
		{"SELECT COUNT(*) FROM plates WHERE COUNT(*) > 1 GROUP BY TUMBLING(INTERVAL '1' MINUTE)", ErrInvalid, "not allowed in WHERE"},
		{"SELECT COUNT(*) AS n, SUM(v) AS n FROM plates GROUP BY TUMBLING(INTERVAL '1' MINUTE)", ErrInvalid, `"n"`},
		{"SELECT COUNT(*) FROM plates GROUP BY HOPPING(INTERVAL '1' SECOND, INTERVAL '1' MINUTE)", ErrInvalid, "slide"},
		{"INSERT INTO plates VALUES (1)", ErrUnsupported, "single SELECT"},
		{"SELECT COUNT(*) FROM plates GROUP BY TUMBLING(INTERVAL '0' MINUTE)", ErrInvalid, "positive"},
		{"SELECT x FROM (SELECT 1 AS x) t GROUP BY x, TUMBLING(INTERVAL '1' MINUTE)", ErrUnsupported, "FROM"},
	}
	for _, tc := range cases {
		_, err := Parse(tc.sql)
		if err == nil {
			t.Errorf("%q: no error", tc.sql)
			continue
		}
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got  %v\n want %v containing %q", tc.sql, err, tc.is, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("SELECT lane, COUNT(*) AS n FROM plates WHERE event = 'taken' GROUP BY lane, TUMBLING(INTERVAL '1' MINUTE)")
	f.Add("SELECT a.b.c, AVG(x) FROM s GROUP BY a.b.c, SESSION(INTERVAL 5 SECOND) HAVING AVG(x) > 1")
	f.Fuzz(func(t *testing.T, sql string) {
		p, err := Parse(sql)
		if err != nil {
			return
		}
		e := NewEngine(p, EngineOptions{Query: "q"})
		e.Process("s", []stream.Record{{SequenceNumber: "1", Data: []byte(`{"a":{"b":{"c":1}},"x":2}`), ArrivalTime: t0}})
		e.FlushAll()
		e.Take()
	})
}

func TestFutureEventTimeIsSkipped(t *testing.T) {
	p, err := Parse("SELECT COUNT(*) AS n FROM s GROUP BY TUMBLING(INTERVAL '1' MINUTE)")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(p, EngineOptions{Query: "q", EventTime: []string{"ts"}, MaxAhead: time.Hour})
	e.SetNow(t0)
	seq := 0
	feed(t, e, []in{
		a(0, fmt.Sprintf(`{"ts":%q}`, ts(10*sec))),
		a(0, fmt.Sprintf(`{"ts":%q}`, ts(2*time.Hour))), // a sensor clock gone wrong
		a(0, fmt.Sprintf(`{"ts":%q}`, ts(20*sec))),
		a(0, fmt.Sprintf(`{"ts":%q}`, ts(70*sec))),
	}, &seq)
	res, late := results(e.Take())
	check(t, "results", res, []string{out(0, 60*sec, `"n":2`)})
	if len(late) != 0 || e.Stats().Skipped["future_event_time"] != 1 {
		t.Errorf("late %v, skipped %v", late, e.Stats().Skipped)
	}
}

// FuzzRecords feeds arbitrary record bytes to a query that uses every
// aggregate and event time: bad input is skipped and counted, never a crash.
func FuzzRecords(f *testing.F) {
	f.Add([]byte(`{"lane":"1","v":2,"ts":"2026-11-26T05:00:00.123Z","m":{"x":[1,2]}}`))
	f.Add([]byte(`{"lane":{"a":1},"v":"x","ts":1e300}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(`{"lane":1e400,"v":-1e400,"m":1e999,"ts":"2026-11-26T05:00:01Z"}`))
	p, err := Parse("SELECT lane, COUNT(*) AS n, SUM(v) AS s, AVG(v) AS a, MIN(v) AS mn, MAX(lane) AS mx, APPROX_COUNT_DISTINCT(m) AS d, APPROX_PERCENTILE(v, 0.5) AS p FROM s WHERE v > 0 OR lane LIKE '%1%' GROUP BY lane, SESSION(INTERVAL '10' SECOND) HAVING COUNT(*) > 0")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := NewEngine(p, EngineOptions{Query: "q", EventTime: []string{"ts"}, MaxAhead: time.Hour})
		e.SetNow(t0)
		for i := 1; i <= 3; i++ {
			e.Process("s", []stream.Record{{SequenceNumber: fmt.Sprint(i), Data: data, ArrivalTime: t0}})
		}
		st, err := e.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(st)
		var back EngineState
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		if err := NewEngine(p, EngineOptions{Query: "q"}).Restore(&back); err != nil {
			t.Fatal(err)
		}
		e.FlushAll()
		for _, em := range e.Take() {
			if !em.Late && !json.Valid(em.Data) {
				t.Fatalf("invalid result JSON: %s", em.Data)
			}
		}
	})
}

func TestPruneForgetsOnlyEndedShardsGone(t *testing.T) {
	p, err := Parse("SELECT COUNT(*) AS n FROM s GROUP BY TUMBLING(INTERVAL '1' MINUTE)")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(p, EngineOptions{Query: "q"})
	seq := 0
	feed(t, e, []in{{"old", 1 * sec, `{}`}, {"live", 2 * sec, `{}`}, {"ended", 3 * sec, `{}`}}, &seq)
	e.EndShard("old")
	e.EndShard("ended")
	e.Prune(map[string]bool{"live": true, "ended": true})
	if got := e.Active(); !slices.Equal(got, []string{"live"}) {
		t.Errorf("active %v", got)
	}
	if e.Position("old") != "" || e.Position("ended") == "" {
		t.Errorf("positions: old %q ended %q", e.Position("old"), e.Position("ended"))
	}
}
