package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Bounds on what the results card keeps, so that a query with many groups
// (or anything else written to a results stream) cannot grow memory.
const (
	maxResultQueries = 16
	maxResultRows    = 200
	maxResultCols    = 16
	maxResultStreams = 8
	maxPivotCols     = 12
	maxCellText      = 80
)

// Results keeps, per continuous query, the newest window of its results
// as read from the query's output stream: one JSON record per window and
// group, {"query":…, "window_start":…, "window_end":…, <columns>…}. The
// stream, not the status board's "recent" list, is the source: the stream
// is durable and replayed at start (so a restarted gateway shows the last
// window at once), and "recent" is in memory only and holds fewer results
// than one window of the demo query has groups. Safe for concurrent use.
type Results struct {
	mu      sync.Mutex
	queries map[string]*resultWindow
	bad     int64
}

// resultWindow is the newest window seen of one query.
type resultWindow struct {
	stream     string
	start, end time.Time
	cols       []string // in order of first appearance
	rows       []map[string]any
	truncated  int
	// distinct counts the values seen per column over every window (up
	// to maxDistinct), so that a pivot keeps its orientation from one
	// window to the next.
	distinct map[string]map[string]bool
}

const maxDistinct = 64

// NewResults returns an empty Results.
func NewResults() *Results { return &Results{queries: map[string]*resultWindow{}} }

// Add folds result records read from streamName in. A record of a newer
// window than the one kept replaces it; records of older windows (a
// replay, a slower shard) are ignored; records without a window_end are
// counted as bad.
func (r *Results) Add(streamName string, recs []stream.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range recs {
		if err := r.add(streamName, recs[i].Data); err != nil {
			r.bad++
		}
	}
}

var errNotResult = errors.New("not a query result")

func (r *Results) add(streamName string, data []byte) error {
	keys, vals, err := orderedFields(data)
	if err != nil {
		return err
	}
	var (
		query      = streamName
		start, end time.Time
	)
	row := make(map[string]any, len(keys))
	var cols []string
	for i, k := range keys {
		switch k {
		case "query":
			if s, ok := vals[i].(string); ok && s != "" {
				query = clip(s, 128)
			}
		case "window_start", "window_end":
			s, _ := vals[i].(string)
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return errNotResult
			}
			if k == "window_start" {
				start = t
			} else {
				end = t
			}
		default:
			row[k] = cellValue(vals[i])
			cols = append(cols, k)
		}
	}
	if end.IsZero() {
		return errNotResult
	}
	w := r.queries[query]
	if w == nil {
		if len(r.queries) >= maxResultQueries {
			return errNotResult
		}
		w = &resultWindow{}
		r.queries[query] = w
	}
	switch {
	case w.end.IsZero() || end.After(w.end):
		*w = resultWindow{stream: streamName, start: start, end: end, distinct: w.distinct}
	case end.Before(w.end):
		return nil // an older window
	}
	if start.Before(w.start) || w.start.IsZero() {
		w.start = start // session windows of one end may start apart
	}
	for _, c := range cols {
		if !contains(w.cols, c) && len(w.cols) < maxResultCols {
			w.cols = append(w.cols, c)
		}
	}
	if w.distinct == nil {
		w.distinct = map[string]map[string]bool{}
	}
	for c, v := range row {
		if _, ok := v.(json.Number); ok {
			continue
		}
		d := w.distinct[c]
		if d == nil {
			if len(w.distinct) >= maxResultCols {
				continue
			}
			d = map[string]bool{}
			w.distinct[c] = d
		}
		if len(d) < maxDistinct {
			d[cellText(v)] = true
		}
	}
	if len(w.rows) >= maxResultRows {
		w.truncated++
		return nil
	}
	w.rows = append(w.rows, row)
	return nil
}

// orderedFields decodes a JSON object keeping its keys in order. Numbers
// stay json.Number.
func orderedFields(data []byte) ([]string, []any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, errNotResult
	}
	var (
		keys []string
		vals []any
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		if i := indexOf(keys, k); i >= 0 {
			vals[i] = v // the last duplicate wins, as in encoding/json
			continue
		}
		keys = append(keys, k)
		vals = append(vals, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errNotResult
	}
	return keys, vals, nil
}

// cellValue keeps numbers, strings (clipped), booleans and null; anything
// nested becomes its JSON text, clipped.
func cellValue(v any) any {
	switch x := v.(type) {
	case nil, bool, json.Number:
		return x
	case string:
		return clip(x, maxCellText)
	default:
		b, _ := json.Marshal(x)
		return clip(string(b), maxCellText)
	}
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return -1
}

func contains(xs []string, s string) bool { return indexOf(xs, s) >= 0 }

// parseQueryStatus reads the analytics entry of the status board; nil if
// there is none or it does not have the expected shape.
func parseQueryStatus(raw json.RawMessage) []status.Query {
	if len(raw) == 0 {
		return nil
	}
	var v status.Analytics
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return v.Queries
}

// QueryResult is one continuous query on the store view's results card:
// its newest closed window, as a table and, when the result has two
// grouping columns and one number, as a pivot of the two.
type QueryResult struct {
	Query  string `json:"query"`
	Stream string `json:"stream"`
	// From the status board, when the query runs in this gateway.
	State  string `json:"state,omitempty"`
	Error  string `json:"error,omitempty"`
	Window string `json:"window,omitempty"`
	// BehindMs is how far the query's reading is behind its source's
	// newest record (millis_behind_latest); null when unknown.
	BehindMs *int64 `json:"millis_behind_latest"`
	// WindowStart and WindowEnd bound the newest window with results; null
	// before the first one.
	WindowStart *time.Time `json:"window_start"`
	WindowEnd   *time.Time `json:"window_end"`
	// AgeS is how long ago that window ended.
	AgeS    float64  `json:"age_s"`
	Columns []string `json:"columns"`
	// Rows are the window's results in column order, sorted by the
	// grouping columns; Truncated counts results past maxResultRows.
	Rows      [][]any `json:"rows"`
	Truncated int     `json:"truncated,omitempty"`
	Pivot     *Pivot  `json:"pivot,omitempty"`
}

// Pivot is a result with two grouping columns and one number laid out as
// a grid: the grouping column with more distinct values down the side.
// Cells are null where the window had no result for the pair. Totals are
// given only when the number adds up (a COUNT or SUM in the query's SQL).
type Pivot struct {
	RowKey string       `json:"row_key"`
	ColKey string       `json:"col_key"`
	Value  string       `json:"value"`
	Rows   []string     `json:"rows"`
	Cols   []string     `json:"cols"`
	Cells  [][]*float64 `json:"cells"`
	// RowTotals, ColTotals and Total are null unless the value is additive.
	RowTotals []float64 `json:"row_totals,omitempty"`
	ColTotals []float64 `json:"col_totals,omitempty"`
	Total     *float64  `json:"total,omitempty"`
}

// View returns every query with results or on the status board, by name.
// A query that is not on the board is shown only while its newest window
// ended within keep of now (a deleted query fades out).
func (r *Results) View(now time.Time, statuses []status.Query, keep time.Duration) []QueryResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	byName := map[string]*status.Query{}
	for i := range statuses {
		if statuses[i].Name != "" {
			byName[statuses[i].Name] = &statuses[i]
		}
	}
	out := []QueryResult{}
	for name, w := range r.queries {
		qs := byName[name]
		if qs == nil && now.Sub(w.end) > keep {
			continue
		}
		q := QueryResult{Query: name, Stream: w.stream, Columns: append([]string{}, w.cols...), Truncated: w.truncated}
		if !w.start.IsZero() {
			ws := w.start
			q.WindowStart = &ws
		}
		we := w.end
		q.WindowEnd = &we
		q.AgeS = round2(math.Max(now.Sub(w.end).Seconds(), 0))
		sql := ""
		if qs != nil {
			sql = qs.SQL
		}
		q.Rows, q.Pivot = tabulate(w.cols, w.rows, sql, w.distinct)
		out = append(out, q)
	}
	have := map[string]bool{}
	for i := range out {
		have[out[i].Query] = true
	}
	for _, qs := range statuses {
		if qs.Name != "" && !have[qs.Name] {
			have[qs.Name] = true
			out = append(out, QueryResult{Query: qs.Name, Stream: qs.Output, Columns: []string{}, Rows: [][]any{}})
		}
	}
	for i := range out {
		if qs := byName[out[i].Query]; qs != nil {
			behind := qs.BehindMs
			out[i].State, out[i].Error, out[i].Window, out[i].BehindMs = qs.State, clip(qs.Error, 300), qs.Window, &behind
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Query < out[j].Query })
	return out
}

// bad counts records of results streams that were not query results.
func (r *Results) badCount() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// tabulate sorts a window's rows by their grouping columns (those that
// are not numbers) and, when there are two of them and one number column,
// pivots them: the one with more distinct values seen (over every window,
// so the grid keeps its shape from minute to minute) down the side.
func tabulate(cols []string, rows []map[string]any, sql string, seen map[string]map[string]bool) ([][]any, *Pivot) {
	var dims, nums []string
	for _, c := range cols {
		numeric, seen := true, false
		for _, row := range rows {
			switch row[c].(type) {
			case nil:
			case json.Number:
				seen = true
			default:
				numeric = false
			}
		}
		if numeric && seen {
			nums = append(nums, c)
		} else {
			dims = append(dims, c)
		}
	}
	sorted := append([]map[string]any{}, rows...)
	sort.SliceStable(sorted, func(i, j int) bool {
		for _, d := range dims {
			a, b := cellText(sorted[i][d]), cellText(sorted[j][d])
			if a != b {
				return lessNatural(a, b)
			}
		}
		return false
	})
	table := make([][]any, 0, len(sorted))
	for _, row := range sorted {
		line := make([]any, len(cols))
		for i, c := range cols {
			line[i] = row[c]
		}
		table = append(table, line)
	}
	if len(dims) != 2 || len(nums) != 1 || len(rows) == 0 {
		return table, nil
	}
	p := &Pivot{RowKey: dims[0], ColKey: dims[1], Value: nums[0]}
	distinct := func(c string) []string {
		var xs []string
		seen := map[string]bool{}
		for _, row := range sorted {
			if s := cellText(row[c]); !seen[s] {
				seen[s] = true
				xs = append(xs, s)
			}
		}
		sort.SliceStable(xs, func(i, j int) bool { return lessNatural(xs[i], xs[j]) })
		return xs
	}
	p.Rows, p.Cols = distinct(p.RowKey), distinct(p.ColKey)
	if nc, nr := max(len(seen[p.ColKey]), len(p.Cols)), max(len(seen[p.RowKey]), len(p.Rows)); nc > nr {
		p.RowKey, p.ColKey = p.ColKey, p.RowKey
		p.Rows, p.Cols = p.Cols, p.Rows
	}
	if len(p.Cols) > maxPivotCols {
		return table, nil
	}
	ri, ci := map[string]int{}, map[string]int{}
	for i, s := range p.Rows {
		ri[s] = i
	}
	for i, s := range p.Cols {
		ci[s] = i
	}
	p.Cells = make([][]*float64, len(p.Rows))
	for i := range p.Cells {
		p.Cells[i] = make([]*float64, len(p.Cols))
	}
	for _, row := range sorted {
		n, ok := row[p.Value].(json.Number)
		if !ok {
			continue
		}
		f, err := n.Float64()
		if err != nil {
			continue
		}
		cell := &p.Cells[ri[cellText(row[p.RowKey])]][ci[cellText(row[p.ColKey])]]
		if *cell != nil {
			f += **cell // two results for one pair (session windows): add
		}
		*cell = &f
	}
	if additive(sql, p.Value) {
		p.RowTotals = make([]float64, len(p.Rows))
		p.ColTotals = make([]float64, len(p.Cols))
		total := 0.0
		for i, cells := range p.Cells {
			for j, c := range cells {
				if c != nil {
					p.RowTotals[i] += *c
					p.ColTotals[j] += *c
					total += *c
				}
			}
		}
		p.Total = &total
	}
	return table, p
}

// cellText is a cell as a grouping key.
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return ""
}

var aggAlias = regexp.MustCompile("(?is)\\b(count|sum)\\s*\\(([^()]|\\([^()]*\\))*\\)\\s*(?:as\\s+)?[`\"]?([a-z_][a-z0-9_]*)")

// additive reports whether column is a COUNT or SUM in sql, so that its
// values add up across groups.
func additive(sql, column string) bool {
	for _, m := range aggAlias.FindAllStringSubmatch(sql, -1) {
		if strings.EqualFold(m[3], column) {
			return true
		}
	}
	return false
}
