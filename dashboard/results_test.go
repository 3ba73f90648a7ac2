package dashboard

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

const demoSQL = "SELECT lane, plate_type, COUNT(*) AS taken FROM plates WHERE event = 'taken' GROUP BY lane, plate_type, TUMBLING(INTERVAL '1' MINUTE)"

// statRec is one result record as the analytics runner writes it.
func statRec(query string, start time.Time, lane, typ string, taken int) stream.Record {
	return stream.Record{ArrivalTime: start.Add(time.Minute), PartitionKey: query, Data: []byte(fmt.Sprintf(
		`{"query":%q,"window_start":%q,"window_end":%q,"lane":%q,"plate_type":%q,"taken":%d}`,
		query, start.UTC().Format("2006-01-02T15:04:05.000Z"), start.Add(time.Minute).UTC().Format("2006-01-02T15:04:05.000Z"), lane, typ, taken))}
}

func f64(f float64) *float64 { return &f }

func TestResultsNewestWindowPivot(t *testing.T) {
	w0 := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	w1 := w0.Add(time.Minute)
	r := NewResults()
	r.Add("plate-stats", []stream.Record{
		statRec("plates_taken_per_minute", w0, "1", "salmon", 99),
		statRec("plates_taken_per_minute", w1, "2", "salmon", 3),
		statRec("plates_taken_per_minute", w1, "1", "tuna", 2),
		statRec("plates_taken_per_minute", w1, "10", "salmon", 1),
	})
	// An older window after a newer one (another shard, a replay): ignored.
	r.Add("plate-stats", []stream.Record{statRec("plates_taken_per_minute", w0, "1", "ebi", 7)})
	r.Add("plate-stats", []stream.Record{
		statRec("plates_taken_per_minute", w1, "1", "salmon", 4),
		statRec("plates_taken_per_minute", w1, "2", "ebi", 5),
		{Data: []byte(`not json`)},
		{Data: []byte(`{"query":"x","lane":"1"}`)}, // no window
		{Data: []byte(`[1,2]`)},
	})
	if n := r.badCount(); n != 3 {
		t.Errorf("bad = %d, want 3", n)
	}
	now := w1.Add(time.Minute + 5*time.Second)
	behind := int64(1500)
	views := r.View(now, []status.Query{{Name: "plates_taken_per_minute", SQL: demoSQL, Output: "plate-stats",
		Window: "tumbling 1m0s", State: "running", BehindMs: behind}}, time.Hour)
	if len(views) != 1 {
		t.Fatalf("views = %+v", views)
	}
	q := views[0]
	if q.Query != "plates_taken_per_minute" || q.Stream != "plate-stats" || q.State != "running" || q.BehindMs == nil || *q.BehindMs != 1500 {
		t.Errorf("query = %+v", q)
	}
	if !q.WindowStart.Equal(w1) || !q.WindowEnd.Equal(w1.Add(time.Minute)) || q.AgeS != 5 {
		t.Errorf("window %v–%v age %v, want %v–%v age 5", q.WindowStart, q.WindowEnd, q.AgeS, w1, w1.Add(time.Minute))
	}
	if !reflect.DeepEqual(q.Columns, []string{"lane", "plate_type", "taken"}) {
		t.Errorf("columns = %v", q.Columns)
	}
	// Rows sorted by the grouping columns, lanes in natural order.
	var got []string
	for _, row := range q.Rows {
		got = append(got, fmt.Sprint(row...))
	}
	want := []string{"1salmon4", "1tuna2", "2ebi5", "2salmon3", "10salmon1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows = %v, want %v", got, want)
	}
	p := q.Pivot
	if p == nil {
		t.Fatal("no pivot")
	}
	// Three plate types and three lanes: a tie keeps the SELECT order.
	if p.RowKey != "lane" || p.ColKey != "plate_type" || p.Value != "taken" {
		t.Errorf("pivot keys %s × %s = %s", p.RowKey, p.ColKey, p.Value)
	}
	if !reflect.DeepEqual(p.Rows, []string{"1", "2", "10"}) || !reflect.DeepEqual(p.Cols, []string{"ebi", "salmon", "tuna"}) {
		t.Errorf("pivot rows %v cols %v", p.Rows, p.Cols)
	}
	wantCells := [][]*float64{{nil, f64(4), f64(2)}, {f64(5), f64(3), nil}, {nil, f64(1), nil}}
	if !reflect.DeepEqual(p.Cells, wantCells) {
		b, _ := json.Marshal(p.Cells)
		t.Errorf("cells = %s", b)
	}
	if !reflect.DeepEqual(p.RowTotals, []float64{6, 8, 1}) || !reflect.DeepEqual(p.ColTotals, []float64{5, 8, 2}) || p.Total == nil || *p.Total != 15 {
		t.Errorf("totals rows %v cols %v all %v", p.RowTotals, p.ColTotals, p.Total)
	}

	// More plate types than lanes: types go down the side.
	r.Add("plate-stats", []stream.Record{statRec("plates_taken_per_minute", w1, "1", "inari", 1), statRec("plates_taken_per_minute", w1, "1", "unagi", 1)})
	p = r.View(now, nil, time.Hour)[0].Pivot
	if p.RowKey != "plate_type" || !reflect.DeepEqual(p.Cols, []string{"1", "2", "10"}) || len(p.Rows) != 5 {
		t.Errorf("pivot %s rows %v cols %v", p.RowKey, p.Rows, p.Cols)
	}
	// Without the SQL nobody knows the values add up: no totals.
	if p.Total != nil || p.RowTotals != nil {
		t.Errorf("totals without SQL: %v %v", p.Total, p.RowTotals)
	}

	// A newer window replaces the old one entirely; the grid keeps its
	// orientation (more plate types than lanes seen so far).
	w2 := w1.Add(time.Minute)
	r.Add("plate-stats", []stream.Record{statRec("plates_taken_per_minute", w2, "3", "ikura", 8), statRec("plates_taken_per_minute", w2, "4", "ikura", 1)})
	q = r.View(now, nil, time.Hour)[0]
	if p := q.Pivot; len(q.Rows) != 2 || !q.WindowStart.Equal(w2) || p.Total != nil || p.RowKey != "plate_type" ||
		!reflect.DeepEqual(p.Cells, [][]*float64{{f64(8), f64(1)}}) {
		t.Errorf("after a newer window: %+v", q)
	}
	// A query that is gone from the board fades out after keep.
	if n := len(r.View(w2.Add(3*time.Hour), nil, time.Hour)); n != 0 {
		t.Errorf("%d old queries still shown", n)
	}
}

// Any query's results render: numbers are values, the rest group; with
// no pivotable shape the result is a plain table in record column order.
func TestResultsGenericQuery(t *testing.T) {
	ws := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	rec := func(s string) stream.Record { return stream.Record{Data: []byte(s)} }
	r := NewResults()
	r.Add("lane-stats", []stream.Record{
		rec(`{"query":"lane_speed","window_start":"2026-11-26T05:00:00.000Z","window_end":"2026-11-26T05:00:10.000Z","lane":"2","passes":40,"avg_ms":812.5,"p90_ms":990}`),
		rec(`{"query":"lane_speed","window_start":"2026-11-26T05:00:00.000Z","window_end":"2026-11-26T05:00:10.000Z","lane":"1","passes":38,"avg_ms":790,"p90_ms":null,"note":{"a":1}}`),
	})
	views := r.View(ws.Add(20*time.Second), []status.Query{{Name: "idle", Output: "other", Window: "session gap 30s", State: "running"}}, time.Hour)
	if len(views) != 2 || views[0].Query != "idle" || views[1].Query != "lane_speed" {
		t.Fatalf("views = %+v", views)
	}
	if idle := views[0]; idle.WindowEnd != nil || idle.Window != "session gap 30s" || idle.Stream != "other" || len(idle.Rows) != 0 {
		t.Errorf("query without results = %+v", idle)
	}
	q := views[1]
	if q.Pivot != nil {
		t.Errorf("pivot for one group and three numbers: %+v", q.Pivot)
	}
	if !reflect.DeepEqual(q.Columns, []string{"lane", "passes", "avg_ms", "p90_ms", "note"}) {
		t.Errorf("columns = %v", q.Columns)
	}
	b, _ := json.Marshal(q.Rows)
	if string(b) != `[["1",38,790,null,"{\"a\":1}"],["2",40,812.5,990,null]]` {
		t.Errorf("rows = %s", b)
	}
	if q.Stream != "lane-stats" || q.State != "" || q.BehindMs != nil {
		t.Errorf("query = %+v", q)
	}
}

// A pivot of an AVG has no totals; SUM and COUNT (aliased with or without
// AS, quoted or not) have.
func TestResultsAdditive(t *testing.T) {
	for _, c := range []struct {
		sql, col string
		want     bool
	}{
		{demoSQL, "taken", true},
		{"SELECT lane, SUM(weight_g) grams FROM x GROUP BY lane, TUMBLING(INTERVAL '1' MINUTE)", "grams", true},
		{"select lane, count(distinct(plate_id)) as `n` from x", "n", true},
		{"SELECT lane, AVG(ms) AS taken FROM x", "taken", false},
		{"SELECT lane, MAX(n) AS m, COUNT(*) AS c FROM x", "m", false},
		{"", "taken", false},
	} {
		if got := additive(c.sql, c.col); got != c.want {
			t.Errorf("additive(%q, %q) = %v", c.sql, c.col, got)
		}
	}
}

func TestResultsBounded(t *testing.T) {
	r := NewResults()
	ws := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	var recs []stream.Record
	for i := 0; i < maxResultRows+50; i++ {
		recs = append(recs, statRec("q", ws, fmt.Sprint(i), "salmon", 1))
	}
	for i := 0; i < maxResultQueries+5; i++ {
		recs = append(recs, statRec(fmt.Sprint("other", i), ws, "1", "salmon", 1))
	}
	r.Add("plate-stats", recs)
	v := r.View(ws.Add(time.Minute), nil, time.Hour)
	if len(v) != maxResultQueries {
		t.Errorf("%d queries kept, want %d", len(v), maxResultQueries)
	}
	for _, q := range v {
		if q.Query == "q" && (len(q.Rows) != maxResultRows || q.Truncated != 50) {
			t.Errorf("q: %d rows, %d truncated", len(q.Rows), q.Truncated)
		}
	}
}
