package analytics

import (
	"container/heap"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/valyala/fastjson"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// EngineOptions configure an Engine. Zero values mean the defaults.
type EngineOptions struct {
	// Query is the query's name, written into every result record.
	Query string
	// EventTime is the JSON path of the event time (RFC 3339 string, or a
	// number: epoch milliseconds, or epoch seconds below 1e11). Empty means
	// arrival time (the record's ApproximateArrivalTimestamp).
	EventTime []string
	// Lateness is how far event time may run behind the newest time seen
	// before a record counts as late. Default 0.
	Lateness time.Duration
	// IdleGrace: once every shard is idle (caught up), the watermark follows
	// the wall clock minus Lateness minus IdleGrace, so that the last
	// window closes when traffic stops. Default 2 s.
	IdleGrace time.Duration
	// MaxAhead, with EventTime: a record whose event time is more than this
	// ahead of the wall clock (see SetNow) is skipped (reason
	// future_event_time) instead of pushing the watermark past every open
	// window. 0: no check.
	MaxAhead time.Duration
}

// Emit is what the engine produces: a result record (one window and
// group) or a late input record for the side output.
type Emit struct {
	Late bool
	// Data is the result JSON, or for a late record its original bytes.
	Data []byte
	// For late records: where it came from, its event time and the
	// watermark that it missed (unix ms).
	Shard, Seq string
	Time, WM   int64
}

// Stats counts what the engine did since it was created.
type Stats struct {
	In, Filtered, Out, Late int64
	Skipped                 map[string]int64 // by reason
}

// Engine runs one compiled query over records: it assigns them to windows,
// keeps per-shard positions and the watermark, and emits each window once
// when the watermark passes its end. It is not safe for concurrent use;
// the Runner serializes calls.
type Engine struct {
	plan   *Plan
	opts   EngineOptions
	parser fastjson.Parser

	wm       int64 // watermark, unix ms; math.MinInt64 before any
	shards   map[string]*shardPos
	fixed    map[string]*group   // tumbling/hopping: key = group key + start (8 bytes)
	byEnd    map[int64][]string  // keys of fixed, by window end
	ends     endHeap             // the distinct keys of byEnd
	sessions map[string][]*group // session: key = group key
	nGroups  int
	minEnd   int64

	now    int64 // wall clock from SetNow, unix ms; 0 if never set
	out    []Emit
	stats  Stats
	keyBuf []byte
	tmp    []byte
	ctx    evalCtx
}

// shardPos is one source shard's progress.
type shardPos struct {
	Pos  string `json:"pos"`  // last sequence number applied
	Max  int64  `json:"max"`  // newest time seen, unix ms; MinInt64 if none
	Idle bool   `json:"idle"` // caught up: holds the watermark only down to IdleMark
	// IdleMark is the wall clock when the shard was last found idle, minus
	// Lateness and IdleGrace (unix ms): a record appended later cannot be
	// older than that.
	IdleMark int64 `json:"idle_mark,omitempty"`
	// Ended: a closed shard read to its end. Its position is kept so that
	// a replay of it after a restart is still recognised.
	Ended bool `json:"ended,omitempty"`
}

type group struct {
	start, end int64
	keys       []Value
	keyEnc     string
	aggs       []aggState
}

// NewEngine returns an engine for p.
func NewEngine(p *Plan, o EngineOptions) *Engine {
	if o.IdleGrace <= 0 {
		o.IdleGrace = 2 * time.Second
	}
	return &Engine{plan: p, opts: o, wm: math.MinInt64, minEnd: math.MaxInt64,
		shards: map[string]*shardPos{}, fixed: map[string]*group{}, sessions: map[string][]*group{}, byEnd: map[int64][]string{},
		stats: Stats{Skipped: map[string]int64{}}}
}

// Track registers shards that hold the watermark back until they deliver
// records or report idle, so that a shard that starts late is not
// overtaken by the others. Unknown shards join when they first deliver.
func (e *Engine) Track(shardIDs ...string) {
	for _, id := range shardIDs {
		if _, ok := e.shards[id]; !ok {
			e.shards[id] = &shardPos{Max: math.MinInt64}
		}
	}
}

func (e *Engine) shard(id string) *shardPos {
	sh := e.shards[id]
	if sh == nil {
		sh = &shardPos{Max: math.MinInt64}
		e.shards[id] = sh
	}
	return sh
}

// Lead returns how far (ms) a shard's newest time is ahead of the
// watermark: large when other shards hold the watermark back. 0 if the
// shard has no time yet.
func (e *Engine) Lead(shardID string) int64 {
	sh := e.shards[shardID]
	if sh == nil || sh.Max == math.MinInt64 {
		return 0
	}
	if e.wm == math.MinInt64 {
		return math.MaxInt64
	}
	return sh.Max - e.wm
}

// SetNow gives the engine the wall clock, for the MaxAhead check.
func (e *Engine) SetNow(now time.Time) { e.now = now.UnixMilli() }

// Position returns the last sequence number applied from a shard, "" if none.
func (e *Engine) Position(shardID string) string {
	if sh := e.shards[shardID]; sh != nil {
		return sh.Pos
	}
	return ""
}

// Watermark returns the current watermark (unix ms), math.MinInt64 if none.
func (e *Engine) Watermark() int64 { return e.wm }

// OpenWindows is the number of open (window, group) pairs.
func (e *Engine) OpenWindows() int { return e.nGroups }

// Stats returns the counters; the map is a copy.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Skipped = make(map[string]int64, len(e.stats.Skipped))
	for k, v := range e.stats.Skipped {
		s.Skipped[k] = v
	}
	return s
}

// Take returns and clears what was emitted since the last call, in order.
func (e *Engine) Take() []Emit {
	out := e.out
	e.out = nil
	return out
}

// seqAfter reports whether sequence number a is after b (decimal strings).
func seqAfter(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// Process applies a shard's records in order. Records at or before the
// shard's position were applied already (a replay after a restart) and are
// skipped, so reprocessing is harmless.
func (e *Engine) Process(shardID string, recs []stream.Record) {
	sh := e.shard(shardID)
	if len(recs) > 0 && !sh.Ended {
		sh.Idle = false
	}
	for i := range recs {
		r := &recs[i]
		if sh.Pos != "" && !seqAfter(r.SequenceNumber, sh.Pos) {
			continue
		}
		sh.Pos = r.SequenceNumber
		e.add(shardID, sh, r)
	}
}

// Idle tells the engine a shard is caught up at wall-clock time now. An
// idle shard holds the watermark back only to now minus Lateness minus
// IdleGrace, so when traffic stops the last windows still close, and a
// shard that was quiet cannot make another's records late.
func (e *Engine) Idle(shardID string, now time.Time) {
	sh := e.shard(shardID)
	sh.Idle = true
	sh.IdleMark = now.UnixMilli() - e.opts.Lateness.Milliseconds() - e.opts.IdleGrace.Milliseconds()
	e.advance()
}

// EndShard forgets a closed shard that has been read to its end; it no
// longer holds the watermark back.
func (e *Engine) EndShard(shardID string) {
	e.shard(shardID).Ended = true
	e.advance()
}

// Prune forgets ended shards that are not in keep (the stream's current
// shards): their records have expired, so no replay can bring them back.
func (e *Engine) Prune(keep map[string]bool) {
	for id, s := range e.shards {
		if s.Ended && !keep[id] {
			delete(e.shards, id)
		}
	}
}

// Active lists the shards that are neither ended nor known only by name
// from a previous run: the ones to Track again after a restart.
func (e *Engine) Active() []string {
	var out []string
	for id, s := range e.shards {
		if !s.Ended {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// FlushAll closes every open window regardless of the watermark (used by
// tests and benchmarks at the end of a finite input).
func (e *Engine) FlushAll() {
	e.closeUpTo(math.MaxInt64)
}

func (e *Engine) skip(reason string) { e.stats.Skipped[reason]++ }

func (e *Engine) eventTime(r *stream.Record, doc *fastjson.Value) (int64, bool) {
	if e.opts.EventTime == nil {
		return r.ArrivalTime.UnixMilli(), true
	}
	v := doc.Get(e.opts.EventTime...)
	if v == nil {
		return 0, false
	}
	switch v.Type() {
	case fastjson.TypeString:
		sb, _ := v.StringBytes()
		t, err := time.Parse(time.RFC3339Nano, string(sb))
		if err != nil {
			return 0, false
		}
		return t.UnixMilli(), true
	case fastjson.TypeNumber:
		f, err := v.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
			return 0, false
		}
		if math.Abs(f) < 1e11 {
			f *= 1000
		}
		return int64(f), true
	}
	return 0, false
}

func (e *Engine) add(shardID string, sh *shardPos, r *stream.Record) {
	e.stats.In++
	doc, err := e.parser.ParseBytes(r.Data)
	if err != nil {
		e.skip("bad_json")
		return
	}
	ts, ok := e.eventTime(r, doc)
	if !ok {
		e.skip("bad_event_time")
		return
	}
	if e.opts.MaxAhead > 0 && e.opts.EventTime != nil && e.now != 0 && ts > e.now+e.opts.MaxAhead.Milliseconds() {
		e.skip("future_event_time")
		return
	}
	e.ctx = evalCtx{doc: doc}
	if e.plan.where == nil || e.plan.where.eval(&e.ctx).truth() {
		if !e.assign(ts) {
			e.stats.Late++
			e.out = append(e.out, Emit{Late: true, Data: slices.Clone(r.Data), Shard: shardID,
				Seq: r.SequenceNumber, Time: ts, WM: e.wm})
		}
	} else {
		e.stats.Filtered++
	}
	if ts > sh.Max {
		sh.Max = ts
		e.advance()
	}
}

// groupKey evaluates the GROUP BY keys of the current record into keyBuf.
func (e *Engine) groupKey() {
	e.keyBuf = e.keyBuf[:0]
	for _, k := range e.plan.keys {
		e.keyBuf = k.eval(&e.ctx).appendKey(e.keyBuf)
	}
}

func (e *Engine) newGroup(start, end int64, keyEnc string) *group {
	g := &group{start: start, end: end, keyEnc: keyEnc, aggs: make([]aggState, len(e.plan.aggs))}
	g.keys = make([]Value, len(e.plan.keys))
	for i, k := range e.plan.keys {
		g.keys[i] = k.eval(&e.ctx)
	}
	e.nGroups++
	if end < e.minEnd {
		e.minEnd = end
	}
	return g
}

func (e *Engine) fold(g *group) {
	for i := range e.plan.aggs {
		var why skipReason
		e.tmp, why = g.aggs[i].add(&e.plan.aggs[i], &e.ctx, e.tmp)
		if why != skipNone {
			e.skip(string(why))
		}
	}
}

// addFixed files a new tumbling or hopping window group under its end.
func (e *Engine) addFixed(key string, g *group) {
	e.fixed[key] = g
	if _, ok := e.byEnd[g.end]; !ok {
		heap.Push(&e.ends, g.end)
	}
	e.byEnd[g.end] = append(e.byEnd[g.end], key)
}

// endHeap is a min-heap of the distinct ends of open fixed windows.
type endHeap []int64

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *endHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// assign adds the current record at time ts to its windows; false means
// it is late for all of them.
func (e *Engine) assign(ts int64) bool {
	e.groupKey()
	w := e.plan.Window
	if w.Kind == Session {
		return e.assignSession(ts)
	}
	added := false
	last := floorDiv(ts, w.Slide) * w.Slide
	for start := last; start+w.Size > ts; start -= w.Slide {
		end := start + w.Size
		if end <= e.wm {
			break // this and every earlier window are closed
		}
		n := len(e.keyBuf)
		e.keyBuf = putInt64(e.keyBuf, start)
		g, ok := e.fixed[string(e.keyBuf)]
		if !ok {
			g = e.newGroup(start, end, string(e.keyBuf[:n]))
			e.addFixed(string(e.keyBuf), g)
		}
		e.keyBuf = e.keyBuf[:n]
		e.fold(g)
		added = true
	}
	return added
}

func (e *Engine) assignSession(ts int64) bool {
	gap := e.plan.Window.Gap
	list := e.sessions[string(e.keyBuf)]
	var hit []int
	for i, g := range list {
		if g.start < ts+gap && ts < g.end {
			hit = append(hit, i)
		}
	}
	if len(hit) == 0 {
		if ts+gap <= e.wm {
			return false
		}
		g := e.newGroup(ts, ts+gap, string(e.keyBuf))
		e.sessions[g.keyEnc] = append(list, g)
		e.fold(g)
		return true
	}
	g := list[hit[0]]
	for _, i := range hit[1:] {
		o := list[i]
		for j := range g.aggs {
			g.aggs[j].merge(&e.plan.aggs[j], &o.aggs[j])
		}
		g.start, g.end = min(g.start, o.start), max(g.end, o.end)
		e.nGroups--
	}
	for k := len(hit) - 1; k >= 1; k-- {
		list = slices.Delete(list, hit[k], hit[k]+1)
	}
	g.start, g.end = min(g.start, ts), max(g.end, ts+gap)
	e.sessions[g.keyEnc] = list
	e.fold(g)
	return true
}

// advance recomputes the watermark: the lowest over the shards not ended
// of (newest time seen minus Lateness), raised to IdleMark for idle ones.
func (e *Engine) advance() {
	low, any := int64(math.MaxInt64), false
	for _, s := range e.shards {
		if s.Ended {
			continue
		}
		w := int64(math.MinInt64)
		if s.Max != math.MinInt64 {
			w = s.Max - e.opts.Lateness.Milliseconds()
		}
		if s.Idle {
			w = max(w, s.IdleMark)
		}
		any = true
		low = min(low, w)
	}
	if !any || low == math.MinInt64 {
		return
	}
	e.setWatermark(low)
}

func (e *Engine) setWatermark(wm int64) {
	if wm <= e.wm {
		return
	}
	e.wm = wm
	if wm >= e.minEnd {
		e.closeUpTo(wm)
	}
}

// closeUpTo emits and forgets every window that ends at or before wm, in
// order of end, start and group key.
func (e *Engine) closeUpTo(wm int64) {
	var done []*group
	for len(e.ends) > 0 && e.ends[0] <= wm {
		end := heap.Pop(&e.ends).(int64)
		for _, k := range e.byEnd[end] {
			done = append(done, e.fixed[k])
			delete(e.fixed, k)
		}
		delete(e.byEnd, end)
	}
	next := int64(math.MaxInt64)
	if len(e.ends) > 0 {
		next = e.ends[0]
	}
	for k, list := range e.sessions {
		keep := list[:0]
		for _, g := range list {
			if g.end <= wm {
				done = append(done, g)
			} else {
				keep = append(keep, g)
				next = min(next, g.end)
			}
		}
		if len(keep) == 0 {
			delete(e.sessions, k)
		} else {
			e.sessions[k] = keep
		}
	}
	e.minEnd = next
	e.nGroups -= len(done)
	slices.SortFunc(done, func(a, b *group) int {
		if a.end != b.end {
			return cmpInt(a.end, b.end)
		}
		if a.start != b.start {
			return cmpInt(a.start, b.start)
		}
		return cmpKeys(a.keys, b.keys)
	})
	for _, g := range done {
		if data, ok := e.result(g); ok {
			e.stats.Out++
			e.out = append(e.out, Emit{Data: data})
		}
	}
}

// cmpKeys orders group keys value by value: NULL first, then numbers and
// strings in their natural order.
func cmpKeys(a, b []Value) int {
	for i := range a {
		x, y := a[i], b[i]
		if x.K == Null || y.K == Null || x.K != y.K {
			if x.K != y.K {
				return cmpInt(int64(x.K), int64(y.K))
			}
			continue
		}
		if n, ok := compare(x, y); ok && n != 0 {
			return n
		}
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// result renders a closed window's group, or false if HAVING drops it.
func (e *Engine) result(g *group) ([]byte, bool) {
	c := evalCtx{keys: g.keys, start: g.start, end: g.end, aggs: make([]Value, len(g.aggs))}
	for i := range g.aggs {
		c.aggs[i] = g.aggs[i].result(&e.plan.aggs[i])
	}
	if e.plan.having != nil && !e.plan.having.eval(&c).truth() {
		return nil, false
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"query":`...)
	b = appendJSONString(b, e.opts.Query)
	b = append(b, `,"window_start":"`...)
	b = append(b, formatMillis(g.start)...)
	b = append(b, `","window_end":"`...)
	b = append(b, formatMillis(g.end)...)
	b = append(b, '"')
	for _, col := range e.plan.cols {
		b = append(b, ',')
		b = appendJSONString(b, col.name)
		b = append(b, ':')
		b = col.e.eval(&c).appendJSON(b)
	}
	return append(b, '}'), true
}

// formatMillis is RFC 3339 in UTC with milliseconds, as the demo's ts.
func formatMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// EngineState is the durable form of an Engine: positions, watermark and
// open windows. Restore(Snapshot()) gives an engine that behaves the same.
type EngineState struct {
	Watermark int64                `json:"watermark"`
	Shards    map[string]*shardPos `json:"shards"`
	Groups    []groupState         `json:"groups"`
}

type groupState struct {
	Start int64         `json:"start"`
	End   int64         `json:"end"`
	Keys  []Value       `json:"keys"`
	Aggs  []aggSnapshot `json:"aggs"`
}

// Snapshot captures the engine's state.
func (e *Engine) Snapshot() (*EngineState, error) {
	st := &EngineState{Watermark: e.wm, Shards: map[string]*shardPos{}}
	for id, s := range e.shards {
		c := *s
		st.Shards[id] = &c
	}
	add := func(g *group) error {
		gs := groupState{Start: g.start, End: g.end, Keys: g.keys}
		for i := range g.aggs {
			a, err := g.aggs[i].snapshot()
			if err != nil {
				return err
			}
			gs.Aggs = append(gs.Aggs, a)
		}
		st.Groups = append(st.Groups, gs)
		return nil
	}
	for _, g := range e.fixed {
		if err := add(g); err != nil {
			return nil, err
		}
	}
	for _, list := range e.sessions {
		for _, g := range list {
			if err := add(g); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(st.Groups, func(a, b groupState) int {
		if a.End != b.End {
			return cmpInt(a.End, b.End)
		}
		return cmpInt(a.Start, b.Start)
	})
	return st, nil
}

// Restore replaces the engine's state with st (from Snapshot of an engine
// for the same plan).
func (e *Engine) Restore(st *EngineState) error {
	e.wm = st.Watermark
	e.shards = map[string]*shardPos{}
	for id, s := range st.Shards {
		c := *s
		e.shards[id] = &c
	}
	e.fixed, e.sessions, e.nGroups, e.minEnd = map[string]*group{}, map[string][]*group{}, 0, math.MaxInt64
	e.byEnd, e.ends = map[int64][]string{}, nil
	for i, gs := range st.Groups {
		if len(gs.Keys) != len(e.plan.keys) || len(gs.Aggs) != len(e.plan.aggs) {
			return fmt.Errorf("restore: window %d does not match the query (%d keys, %d aggregates)", i, len(gs.Keys), len(gs.Aggs))
		}
		var kb []byte
		for _, k := range gs.Keys {
			kb = k.appendKey(kb)
		}
		g := &group{start: gs.Start, end: gs.End, keys: gs.Keys, keyEnc: string(kb), aggs: make([]aggState, len(gs.Aggs))}
		for j, a := range gs.Aggs {
			s, err := restoreAgg(a)
			if err != nil {
				return fmt.Errorf("restore: window %d: %w", i, err)
			}
			g.aggs[j] = s
		}
		if e.plan.Window.Kind == Session {
			e.sessions[g.keyEnc] = append(e.sessions[g.keyEnc], g)
		} else {
			e.addFixed(string(putInt64(kb, g.start)), g)
		}
		e.nGroups++
		e.minEnd = min(e.minEnd, g.end)
	}
	return nil
}
