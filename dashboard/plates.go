package dashboard

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Bounds on what the store view tracks, so that bad or hostile input
// cannot grow memory: names past these caps are counted under "other".
const (
	maxPlateTypes = 64
	maxLanes      = 64
	maxSensors    = 512
	maxPlates     = 20000
	otherName     = "other"
)

// plateMsg is the union of the plate event and the sensor heartbeat the
// demo agreed on (see the README of the stream formats).
type plateMsg struct {
	Store     string `json:"store"`
	Lane      string `json:"lane"`
	PlateType string `json:"plate_type"`
	Event     string `json:"event"`
	PlateID   string `json:"plate_id"`
	Sensor    string `json:"sensor"`
	OK        *bool  `json:"ok"`
}

// event kinds, indexes into counts.
const (
	evPlaced = iota
	evPassed
	evTaken
	nEvents
)

var eventNames = [nEvents]string{"placed", "passed", "taken"}

type counts [nEvents]int64

type minuteBucket struct {
	minute int64 // unix minute this bucket holds; buckets are reused
	types  map[string]*counts
	lanes  map[string]*counts
}

type plateState struct {
	typ, lane string
	last      time.Time
}

type sensorState struct {
	lane     string
	lastSeen time.Time
	ok       bool
	beats    int64
	events   int64
}

// PlatesOptions configure the store-view aggregation. Zero values mean the
// defaults.
type PlatesOptions struct {
	// History is how far back the per-minute chart reaches. Default 1h.
	History time.Duration
	// SilentAfter: a sensor with no heartbeat and no event for this long is
	// reported silent. Default 60s.
	SilentAfter time.Duration
	// RateWindow is the window over which take rates are measured. Default 10m.
	RateWindow time.Duration
	// Cover is how long the plates on the belt should last at the current
	// take rate; the make-next list asks for the difference. Default 5m.
	Cover time.Duration
	// PlateTTL: a plate not seen (placed or passed) for this long is assumed
	// gone from the belt. Default 30m.
	PlateTTL time.Duration
}

func (o *PlatesOptions) fill() {
	if o.History <= 0 {
		o.History = time.Hour
	}
	if o.SilentAfter <= 0 {
		o.SilentAfter = 60 * time.Second
	}
	if o.RateWindow <= 0 {
		o.RateWindow = 10 * time.Minute
	}
	if o.Cover <= 0 {
		o.Cover = 5 * time.Minute
	}
	if o.PlateTTL <= 0 {
		o.PlateTTL = 30 * time.Minute
	}
}

// Plates aggregates plate events and sensor heartbeats (stream "plates")
// into the store view: per-minute counts by plate type and lane over the
// history, plates on the belt, take rates, the make-next list and sensor
// health. Times come from the records' arrival times, so a rebuild from the
// stream after a restart gives the same view as live ingest did. Memory is
// bounded by the caps above. All methods are safe for concurrent use.
type Plates struct {
	opts PlatesOptions

	mu      sync.Mutex
	buckets []minuteBucket
	plates  map[string]plateState
	sensors map[string]*sensorState
	types   map[string]bool
	lanes   map[string]bool
	// live counts events handled with live set, by event and plate type,
	// for Prometheus; records, bad count everything handled.
	live map[[2]string]int64
	// beltType and beltLane count the plates in plates by type and lane,
	// kept up to date on every change so that View need not walk plates.
	beltType  map[string]int
	beltLane  map[string]int
	lastSweep time.Time
	records   int64
	bad       int64
	latest    time.Time // newest arrival seen
}

// NewPlates returns an empty aggregation.
func NewPlates(opts PlatesOptions) *Plates {
	opts.fill()
	n := int(opts.History / time.Minute)
	if n < 1 {
		n = 1
	}
	p := &Plates{opts: opts, buckets: make([]minuteBucket, n), plates: map[string]plateState{},
		sensors: map[string]*sensorState{}, types: map[string]bool{}, lanes: map[string]bool{},
		live: map[[2]string]int64{}, beltType: map[string]int{}, beltLane: map[string]int{}}
	for i := range p.buckets {
		p.buckets[i].minute = -1
	}
	return p
}

// Add folds records into the aggregation. live says whether they arrived
// now (counted in the Prometheus counters) or come from a rebuild.
// Records that are not plate events or heartbeats are counted as bad.
func (p *Plates) Add(recs []stream.Record, live bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range recs {
		p.add(&recs[i], live)
	}
}

func (p *Plates) add(r *stream.Record, live bool) {
	p.records++
	var m plateMsg
	if err := parsePlate(r.Data, &m); err != nil {
		p.bad++
		return
	}
	at := r.ArrivalTime
	if at.After(p.latest) {
		p.latest = at
	}
	if m.Sensor != "" {
		name := m.Sensor
		s, ok := p.sensors[name]
		if !ok && len(p.sensors) < maxSensors {
			s = &sensorState{ok: true}
			p.sensors[name] = s
		}
		if s != nil {
			if at.After(s.lastSeen) {
				s.lastSeen = at
			}
			if m.Lane != "" {
				s.lane = capName(p.lanes, m.Lane, maxLanes)
			}
			if m.Event == "" && m.OK != nil {
				s.ok = *m.OK
				s.beats++
			} else {
				s.events++
			}
		}
	}
	ev := -1
	switch m.Event {
	case "placed":
		ev = evPlaced
	case "passed":
		ev = evPassed
	case "taken":
		ev = evTaken
	case "":
		if m.OK != nil {
			return // heartbeat, done above
		}
	}
	if ev < 0 {
		p.bad++
		return
	}
	typ := capName(p.types, m.PlateType, maxPlateTypes)
	lane := capName(p.lanes, m.Lane, maxLanes)
	b := p.bucket(at)
	if b != nil {
		bump(b.types, typ, ev)
		bump(b.lanes, lane, ev)
	}
	if live {
		p.live[[2]string{eventNames[ev], typ}]++
	}
	if m.PlateID != "" {
		old, had := p.plates[m.PlateID]
		switch {
		case ev == evTaken:
			if had {
				p.offBelt(m.PlateID, old)
			}
		case had:
			if at.Before(old.last) {
				at = old.last
			}
			p.beltType[old.typ]--
			p.beltLane[old.lane]--
			p.onBelt(m.PlateID, plateState{typ: typ, lane: lane, last: at})
		case len(p.plates) < maxPlates:
			p.onBelt(m.PlateID, plateState{typ: typ, lane: lane, last: at})
		}
	}
}

func (p *Plates) onBelt(id string, ps plateState) {
	p.plates[id] = ps
	p.beltType[ps.typ]++
	p.beltLane[ps.lane]++
}

func (p *Plates) offBelt(id string, ps plateState) {
	delete(p.plates, id)
	p.beltType[ps.typ]--
	p.beltLane[ps.lane]--
}

// plateSweep is how often View looks for plates past PlateTTL.
const plateSweep = 10 * time.Second

func (p *Plates) sweep(now time.Time) {
	if now.Sub(p.lastSweep) < plateSweep && !now.Before(p.lastSweep) {
		return
	}
	p.lastSweep = now
	cutoff := now.Add(-p.opts.PlateTTL)
	for id, ps := range p.plates {
		if ps.last.Before(cutoff) {
			p.offBelt(id, ps)
		}
	}
}

func capName(set map[string]bool, name string, max int) string {
	if name == "" {
		name = "unknown"
	}
	if set[name] {
		return name
	}
	if len(set) >= max {
		return otherName
	}
	set[name] = true
	return name
}

func bump(m map[string]*counts, k string, ev int) {
	c := m[k]
	if c == nil {
		c = &counts{}
		m[k] = c
	}
	c[ev]++
}

// bucket returns the bucket for at's minute, resetting a reused one; nil if
// at is older than the history the ring still holds.
func (p *Plates) bucket(at time.Time) *minuteBucket {
	min := at.Unix() / 60
	b := &p.buckets[int(min%int64(len(p.buckets)))]
	if b.minute == min {
		return b
	}
	if b.minute > min {
		return nil // older than the ring
	}
	b.minute = min
	b.types = map[string]*counts{}
	b.lanes = map[string]*counts{}
	return b
}

// TypeStats is one plate type in the store view.
type TypeStats struct {
	PlateType string `json:"plate_type"`
	Placed    int64  `json:"placed"`
	Passed    int64  `json:"passed"`
	Taken     int64  `json:"taken"`
	// OnBelt is the number of plates of this type on the belt now.
	OnBelt int `json:"on_belt"`
	// TakePerMin is the take rate over the rate window, plates per minute.
	TakePerMin float64 `json:"take_per_min"`
	// Need is how many plates to make so that the belt covers Cover at the
	// take rate; 0 when the belt is stocked.
	Need int `json:"need"`
	// CoverMin is how many minutes the plates on the belt last at the take
	// rate; -1 when none are being taken.
	CoverMin float64 `json:"cover_min"`
}

// LaneStats is one lane in the store view.
type LaneStats struct {
	Lane         string  `json:"lane"`
	PassedPerMin float64 `json:"passed_per_min"`
	Placed       int64   `json:"placed"`
	Passed       int64   `json:"passed"`
	Taken        int64   `json:"taken"`
	OnBelt       int     `json:"on_belt"`
	Sensors      int     `json:"sensors"`
	Silent       int     `json:"silent"`
}

// SensorStats is one sensor in the store view.
type SensorStats struct {
	Sensor   string    `json:"sensor"`
	Lane     string    `json:"lane"`
	LastSeen time.Time `json:"last_seen"`
	AgeSec   float64   `json:"age_s"`
	OK       bool      `json:"ok"`
	Silent   bool      `json:"silent"`
}

// StoreView is the store view's data, sent to clients on topic "store" and
// served at GET /api/dashboard/store. Counts cover the history window.
type StoreView struct {
	// Store is the shop's id (store_id in the config).
	Store    string    `json:"store"`
	Now      time.Time `json:"now"`
	HistoryS float64   `json:"history_s"`
	WindowS  float64   `json:"rate_window_s"`
	CoverS   float64   `json:"cover_s"`
	Placed   int64     `json:"placed"`
	Passed   int64     `json:"passed"`
	Taken    int64     `json:"taken"`
	OnBelt   int       `json:"on_belt"`
	Records  int64     `json:"records"`
	Bad      int64     `json:"bad"`
	// Minutes are the chart's x values (unix seconds of each minute start,
	// oldest first); PassedPerMinute holds one series per plate type.
	Minutes         []int64            `json:"minutes"`
	PassedPerMinute map[string][]int64 `json:"passed_per_minute"`
	Types           []TypeStats        `json:"types"`
	MakeNext        []TypeStats        `json:"make_next"`
	// RunningLow lists the types being taken, shortest cover first: what
	// runs out next even when nothing needs making yet.
	RunningLow    []TypeStats   `json:"running_low"`
	Lanes         []LaneStats   `json:"lanes"`
	Sensors       []SensorStats `json:"sensors"`
	SilentSensors []string      `json:"silent_sensors"`
	// Analytics holds the newest closed window of each continuous query
	// (read from the queries' output streams), by query name.
	Analytics []QueryResult `json:"analytics"`
}

// View computes the store view at now. It also expires plates not seen for
// PlateTTL (looking at most every 10 s).
func (p *Plates) View(now time.Time) StoreView {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.opts
	v := StoreView{Now: now, HistoryS: o.History.Seconds(), WindowS: o.RateWindow.Seconds(), CoverS: o.Cover.Seconds(),
		Records: p.records, Bad: p.bad, PassedPerMinute: map[string][]int64{}}
	n := len(p.buckets)
	nowMin := now.Unix() / 60
	types := map[string]*TypeStats{}
	for t := range p.types {
		types[t] = &TypeStats{PlateType: t}
	}
	lanes := map[string]*LaneStats{}
	for l := range p.lanes {
		lanes[l] = &LaneStats{Lane: l}
	}
	getType := func(t string) *TypeStats {
		if types[t] == nil {
			types[t] = &TypeStats{PlateType: t}
		}
		return types[t]
	}
	getLane := func(l string) *LaneStats {
		if lanes[l] == nil {
			lanes[l] = &LaneStats{Lane: l}
		}
		return lanes[l]
	}
	rateMins := int64(o.RateWindow / time.Minute)
	if rateMins < 1 {
		rateMins = 1
	}
	const laneRateMins = 5
	taken := map[string]int64{}
	lanePassed := map[string]int64{}
	v.Minutes = make([]int64, n)
	for i := 0; i < n; i++ {
		min := nowMin - int64(n-1-i)
		v.Minutes[i] = min * 60
		b := &p.buckets[int(((min%int64(n))+int64(n))%int64(n))]
		if b.minute != min {
			continue
		}
		for t, c := range b.types {
			ts := getType(t)
			ts.Placed += c[evPlaced]
			ts.Passed += c[evPassed]
			ts.Taken += c[evTaken]
			if nowMin-min < rateMins {
				taken[t] += c[evTaken]
			}
			if v.PassedPerMinute[t] == nil {
				v.PassedPerMinute[t] = make([]int64, n)
			}
			v.PassedPerMinute[t][i] = c[evPassed]
		}
		for l, c := range b.lanes {
			ls := getLane(l)
			ls.Placed += c[evPlaced]
			ls.Passed += c[evPassed]
			ls.Taken += c[evTaken]
			if nowMin-min < laneRateMins {
				lanePassed[l] += c[evPassed]
			}
		}
	}
	for t := range types {
		if v.PassedPerMinute[t] == nil {
			v.PassedPerMinute[t] = make([]int64, n)
		}
	}
	p.sweep(now)
	for t, n := range p.beltType {
		if n > 0 {
			getType(t).OnBelt = n
			v.OnBelt += n
		}
	}
	for l, n := range p.beltLane {
		if n > 0 {
			getLane(l).OnBelt = n
		}
	}
	// Rates: the current minute is partial, so divide by the time the
	// window really covers.
	elapsed := func(mins int64) float64 {
		partial := float64(now.Unix()%60) / 60
		return math.Max(float64(mins-1)+partial, 1)
	}
	cover := o.Cover.Minutes()
	for t, ts := range types {
		ts.TakePerMin = round2(float64(taken[t]) / elapsed(rateMins))
		if need := int(math.Ceil(ts.TakePerMin*cover - 1e-9)); need > ts.OnBelt {
			ts.Need = need - ts.OnBelt
		}
		ts.CoverMin = -1
		if ts.TakePerMin > 0 {
			ts.CoverMin = round2(float64(ts.OnBelt) / ts.TakePerMin)
		}
		v.Placed += ts.Placed
		v.Passed += ts.Passed
		v.Taken += ts.Taken
		v.Types = append(v.Types, *ts)
	}
	sort.Slice(v.Types, func(i, j int) bool { return v.Types[i].PlateType < v.Types[j].PlateType })
	for _, ts := range v.Types {
		if ts.Need > 0 {
			v.MakeNext = append(v.MakeNext, ts)
		}
		if ts.CoverMin >= 0 {
			v.RunningLow = append(v.RunningLow, ts)
		}
	}
	sort.SliceStable(v.RunningLow, func(i, j int) bool { return v.RunningLow[i].CoverMin < v.RunningLow[j].CoverMin })
	sort.SliceStable(v.MakeNext, func(i, j int) bool {
		a, b := v.MakeNext[i], v.MakeNext[j]
		if a.Need != b.Need {
			return a.Need > b.Need
		}
		return a.TakePerMin > b.TakePerMin
	})
	for name, s := range p.sensors {
		age := now.Sub(s.lastSeen)
		ss := SensorStats{Sensor: name, Lane: s.lane, LastSeen: s.lastSeen, AgeSec: round2(math.Max(age.Seconds(), 0)),
			OK: s.ok, Silent: age > o.SilentAfter}
		v.Sensors = append(v.Sensors, ss)
		if s.lane != "" {
			ls := getLane(s.lane)
			ls.Sensors++
			if ss.Silent {
				ls.Silent++
			}
		}
		if ss.Silent {
			v.SilentSensors = append(v.SilentSensors, name)
		}
	}
	sort.Slice(v.Sensors, func(i, j int) bool { return v.Sensors[i].Sensor < v.Sensors[j].Sensor })
	sort.Strings(v.SilentSensors)
	for l, ls := range lanes {
		ls.PassedPerMin = round2(float64(lanePassed[l]) / elapsed(laneRateMins))
		v.Lanes = append(v.Lanes, *ls)
	}
	sort.Slice(v.Lanes, func(i, j int) bool { return lessNatural(v.Lanes[i].Lane, v.Lanes[j].Lane) })
	if v.Types == nil {
		v.Types = []TypeStats{}
	}
	if v.MakeNext == nil {
		v.MakeNext = []TypeStats{}
	}
	if v.RunningLow == nil {
		v.RunningLow = []TypeStats{}
	}
	if v.Lanes == nil {
		v.Lanes = []LaneStats{}
	}
	if v.Sensors == nil {
		v.Sensors = []SensorStats{}
	}
	if v.SilentSensors == nil {
		v.SilentSensors = []string{}
	}
	return v
}

// liveCounts returns a copy of the live event counters.
func (p *Plates) liveCounts() map[[2]string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[[2]string]int64, len(p.live))
	for k, v := range p.live {
		out[k] = v
	}
	return out
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// lessNatural orders "2" before "10" and falls back to string order.
func lessNatural(a, b string) bool {
	if len(a) != len(b) && isDigits(a) && isDigits(b) {
		return len(a) < len(b)
	}
	return a < b
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
