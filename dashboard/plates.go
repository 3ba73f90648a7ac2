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

// plateSweep is how often Expire looks for plates past PlateTTL.
const plateSweep = 10 * time.Second

// Expire takes the plates not seen for PlateTTL before now off the belt.
// It looks at most every plateSweep (and again whenever the clock went
// back), so calling it before every view costs little.
func (p *Plates) Expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
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

// View computes the store view at now. It only reads the aggregation:
// plates past PlateTTL leave the belt through Expire, which the server
// calls before each view.
func (p *Plates) View(now time.Time) StoreView {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.opts
	v := StoreView{Now: now, HistoryS: o.History.Seconds(), WindowS: o.RateWindow.Seconds(), CoverS: o.Cover.Seconds(),
		Records: p.records, Bad: p.bad, PassedPerMinute: map[string][]int64{}}
	b := p.newViewParts(now)
	p.minuteCounts(&v, b)
	p.beltCounts(&v, b)
	p.typeStats(&v, b)
	v.rankTypes()
	p.sensorStats(&v, b)
	v.laneStats(b)
	v.emptyNotNull()
	return v
}

// laneRateMins is the window of a lane's passed-per-minute rate.
const laneRateMins = 5

// viewParts is one View's work in progress: the stats by plate type and
// by lane that the parts of the view fill in, and the counts within the
// rate windows.
type viewParts struct {
	now        time.Time
	rateMins   int64 // the take-rate window, in minutes
	types      map[string]*TypeStats
	lanes      map[string]*LaneStats
	taken      map[string]int64 // by type, within rateMins
	lanePassed map[string]int64 // by lane, within laneRateMins
}

// newViewParts starts a view with every known type and lane; p.mu is held.
func (p *Plates) newViewParts(now time.Time) *viewParts {
	b := &viewParts{now: now, rateMins: max(int64(p.opts.RateWindow/time.Minute), 1),
		types: map[string]*TypeStats{}, lanes: map[string]*LaneStats{},
		taken: map[string]int64{}, lanePassed: map[string]int64{}}
	for t := range p.types {
		b.types[t] = &TypeStats{PlateType: t}
	}
	for l := range p.lanes {
		b.lanes[l] = &LaneStats{Lane: l}
	}
	return b
}

func (b *viewParts) typ(t string) *TypeStats {
	if b.types[t] == nil {
		b.types[t] = &TypeStats{PlateType: t}
	}
	return b.types[t]
}

func (b *viewParts) lane(l string) *LaneStats {
	if b.lanes[l] == nil {
		b.lanes[l] = &LaneStats{Lane: l}
	}
	return b.lanes[l]
}

// elapsed is how long a window of mins minutes up to now really covers,
// in minutes: the current minute is partial.
func (b *viewParts) elapsed(mins int64) float64 {
	partial := float64(b.now.Unix()%60) / 60
	return math.Max(float64(mins-1)+partial, 1)
}

// minuteCounts sums the per-minute buckets of the history: the chart's
// minutes and series, the counts by type and lane, and the counts within
// the rate windows; p.mu is held.
func (p *Plates) minuteCounts(v *StoreView, b *viewParts) {
	n := len(p.buckets)
	nowMin := b.now.Unix() / 60
	v.Minutes = make([]int64, n)
	for i := 0; i < n; i++ {
		min := nowMin - int64(n-1-i)
		v.Minutes[i] = min * 60
		bk := &p.buckets[int(((min%int64(n))+int64(n))%int64(n))]
		if bk.minute != min {
			continue
		}
		for t, c := range bk.types {
			ts := b.typ(t)
			ts.Placed += c[evPlaced]
			ts.Passed += c[evPassed]
			ts.Taken += c[evTaken]
			if nowMin-min < b.rateMins {
				b.taken[t] += c[evTaken]
			}
			if v.PassedPerMinute[t] == nil {
				v.PassedPerMinute[t] = make([]int64, n)
			}
			v.PassedPerMinute[t][i] = c[evPassed]
		}
		for l, c := range bk.lanes {
			ls := b.lane(l)
			ls.Placed += c[evPlaced]
			ls.Passed += c[evPassed]
			ls.Taken += c[evTaken]
			if nowMin-min < laneRateMins {
				b.lanePassed[l] += c[evPassed]
			}
		}
	}
	for t := range b.types {
		if v.PassedPerMinute[t] == nil {
			v.PassedPerMinute[t] = make([]int64, n)
		}
	}
}

// beltCounts sets the plates on the belt, in all, by type and by lane;
// p.mu is held.
func (p *Plates) beltCounts(v *StoreView, b *viewParts) {
	for t, n := range p.beltType {
		if n > 0 {
			b.typ(t).OnBelt = n
			v.OnBelt += n
		}
	}
	for l, n := range p.beltLane {
		if n > 0 {
			b.lane(l).OnBelt = n
		}
	}
}

// typeStats fills in each type's take rate, need and cover, and the
// totals, into v.Types by name; p.mu is held.
func (p *Plates) typeStats(v *StoreView, b *viewParts) {
	cover := p.opts.Cover.Minutes()
	for t, ts := range b.types {
		ts.TakePerMin = round2(float64(b.taken[t]) / b.elapsed(b.rateMins))
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
}

// rankTypes derives the make-next list (most needed first) and the
// running-low list (shortest cover first) from v.Types.
func (v *StoreView) rankTypes() {
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
}

// sensorStats lists the sensors with their age and health, counts them
// (and the silent ones) by lane, and lists the silent ones; p.mu is held.
func (p *Plates) sensorStats(v *StoreView, b *viewParts) {
	for name, s := range p.sensors {
		age := b.now.Sub(s.lastSeen)
		ss := SensorStats{Sensor: name, Lane: s.lane, LastSeen: s.lastSeen, AgeSec: round2(math.Max(age.Seconds(), 0)),
			OK: s.ok, Silent: age > p.opts.SilentAfter}
		v.Sensors = append(v.Sensors, ss)
		if s.lane != "" {
			ls := b.lane(s.lane)
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
}

// laneStats fills in each lane's pass rate into v.Lanes, in lane order.
func (v *StoreView) laneStats(b *viewParts) {
	for l, ls := range b.lanes {
		ls.PassedPerMin = round2(float64(b.lanePassed[l]) / b.elapsed(laneRateMins))
		v.Lanes = append(v.Lanes, *ls)
	}
	sort.Slice(v.Lanes, func(i, j int) bool { return lessNatural(v.Lanes[i].Lane, v.Lanes[j].Lane) })
}

// emptyNotNull makes empty lists encode as [] rather than null.
func (v *StoreView) emptyNotNull() {
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
