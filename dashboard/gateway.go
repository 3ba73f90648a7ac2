package dashboard

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

const (
	maxDeadSources = 32
	recentDead     = 20
)

// DeadLetter is one recent dead letter as the gateway view shows it.
type DeadLetter struct {
	Source  string    `json:"source"`
	Topic   string    `json:"topic,omitempty"`
	Reason  string    `json:"reason"`
	Arrival time.Time `json:"arrival"`
}

// DeadLetters counts the dead-letter stream by source, over the history
// window (in per-minute buckets, so memory stays fixed however many
// arrive) and since the dashboard started, and keeps the most recent ones.
// Safe for concurrent use.
type DeadLetters struct {
	minutes int

	mu      sync.Mutex
	sources map[string]bool
	buckets map[string]*minuteCounts // per source
	live    map[string]int64         // per source, counted live (Prometheus)
	recent  []DeadLetter             // newest last, at most recentDead
}

// minuteCounts is a ring of per-minute counts.
type minuteCounts struct {
	min []int64 // unix minute each slot holds
	n   []int
}

func (m *minuteCounts) add(at time.Time) {
	min := at.Unix() / 60
	i := int(((min % int64(len(m.min))) + int64(len(m.min))) % int64(len(m.min)))
	switch {
	case m.min[i] == min:
		m.n[i]++
	case m.min[i] < min:
		m.min[i], m.n[i] = min, 1
	} // older than the ring: not counted
}

// since sums the minutes after cut.
func (m *minuteCounts) since(cut time.Time) int {
	c := cut.Unix() / 60
	total := 0
	for i, min := range m.min {
		if min > c || min == c && cut.Unix()%60 == 0 {
			total += m.n[i]
		}
	}
	return total
}

// NewDeadLetters returns an empty counter over history (default 1h).
func NewDeadLetters(history time.Duration) *DeadLetters {
	if history <= 0 {
		history = time.Hour
	}
	return &DeadLetters{minutes: int(history/time.Minute) + 1, sources: map[string]bool{},
		buckets: map[string]*minuteCounts{}, live: map[string]int64{}}
}

// Add folds dead-letter records in; live as for Plates.Add.
func (d *DeadLetters) Add(recs []stream.Record, live bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range recs {
		m, err := stream.DecodeDeadLetter(r.Data)
		if err != nil || m.Source == "" {
			m.Source = "unknown"
			if m.Reason == "" {
				m.Reason = "unreadable dead-letter record"
			}
		}
		src := capName(d.sources, m.Source, maxDeadSources)
		b := d.buckets[src]
		if b == nil {
			b = &minuteCounts{min: make([]int64, d.minutes), n: make([]int, d.minutes)}
			d.buckets[src] = b
		}
		b.add(r.ArrivalTime)
		if live {
			d.live[src]++
		}
		d.recent = append(d.recent, DeadLetter{Source: src, Topic: clip(m.Topic, 200), Reason: clip(m.Reason, 300), Arrival: r.ArrivalTime})
		if len(d.recent) > recentDead {
			d.recent = append(d.recent[:0:0], d.recent[len(d.recent)-recentDead:]...)
		}
	}
}

// DeadLetterView is the dead-letter part of the gateway view.
type DeadLetterView struct {
	// LastHour counts dead letters within the history window (to the
	// minute), by source.
	LastHour map[string]int `json:"last_hour"`
	Total    int            `json:"total"`
	Recent   []DeadLetter   `json:"recent"`
}

func (d *DeadLetters) view(now time.Time) DeadLetterView {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := DeadLetterView{LastHour: map[string]int{}, Recent: []DeadLetter{}}
	cut := now.Add(-time.Duration(d.minutes-1) * time.Minute)
	for src, b := range d.buckets {
		if n := b.since(cut); n > 0 {
			v.LastHour[src] = n
			v.Total += n
		}
	}
	for i := len(d.recent) - 1; i >= 0; i-- {
		v.Recent = append(v.Recent, d.recent[i])
	}
	return v
}

func (d *DeadLetters) liveCounts() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int64, len(d.live))
	for k, v := range d.live {
		out[k] = v
	}
	return out
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ShardView is one shard in the gateway view.
type ShardView struct {
	ShardID  string  `json:"shard_id"`
	Open     bool    `json:"open"`
	Incoming int64   `json:"incoming"`
	PerSec   float64 `json:"per_sec"`
	// AgeS is the age of the newest record, -1 if the shard is empty.
	AgeS float64 `json:"age_s"`
}

// StreamView is one stream in the gateway view.
type StreamView struct {
	Name       string      `json:"name"`
	Bytes      int64       `json:"bytes"`
	Records    int64       `json:"records"`
	MaxBytes   int64       `json:"max_bytes"`
	RetentionS float64     `json:"retention_s"`
	Evicted    int64       `json:"evicted"`
	PerSec     float64     `json:"per_sec"`
	Shards     []ShardView `json:"shards"`
}

// GatewayView is the gateway view's data, sent on topic "gateway" and
// served at GET /api/dashboard/gateway.
type GatewayView struct {
	Now       time.Time    `json:"now"`
	Bytes     int64        `json:"bytes"`
	MaxBytes  int64        `json:"max_bytes"`
	DiskBytes int64        `json:"disk_bytes"`
	PerSec    float64      `json:"per_sec"`
	Streams   []StreamView `json:"streams"`
	// Components is the status board (minus "store", shown above), by
	// name, as each component published it.
	Components  map[string]json.RawMessage `json:"components"`
	DeadLetters DeadLetterView             `json:"deadletters"`
	Dashboard   struct {
		Clients int   `json:"clients"`
		Dropped int64 `json:"dropped"`
	} `json:"dashboard"`
}

// rates turns successive store snapshots into per-second rates.
type rates struct {
	prevAt time.Time
	prev   map[string]int64 // stream/shard -> incoming
}

func (r *rates) view(st stream.Stats, now time.Time) GatewayView {
	v := GatewayView{Now: now, Bytes: st.Bytes, MaxBytes: st.MaxBytes, DiskBytes: st.DiskBytes, Streams: []StreamView{}}
	dt := now.Sub(r.prevAt).Seconds()
	next := make(map[string]int64)
	for _, s := range st.Streams {
		sv := StreamView{Name: s.Name, Bytes: s.Bytes, Records: s.Records, MaxBytes: s.MaxBytes,
			RetentionS: s.Retention.Seconds(), Evicted: s.Evicted, Shards: []ShardView{}}
		for _, sh := range s.Shards {
			key := s.Name + "/" + sh.ShardID
			next[key] = sh.Incoming
			shv := ShardView{ShardID: sh.ShardID, Open: sh.Open, Incoming: sh.Incoming, AgeS: -1}
			if prev, ok := r.prev[key]; ok && dt > 0 && sh.Incoming >= prev {
				shv.PerSec = round2(float64(sh.Incoming-prev) / dt)
			}
			if !sh.LastArrival.IsZero() {
				shv.AgeS = round2(max(now.Sub(sh.LastArrival).Seconds(), 0))
			}
			sv.PerSec += shv.PerSec
			sv.Shards = append(sv.Shards, shv)
		}
		sv.PerSec = round2(sv.PerSec)
		v.PerSec += sv.PerSec
		v.Streams = append(v.Streams, sv)
	}
	v.PerSec = round2(v.PerSec)
	sort.Slice(v.Streams, func(i, j int) bool { return v.Streams[i].Name < v.Streams[j].Name })
	r.prev, r.prevAt = next, now
	return v
}

// encodeComponents marshals each status-board entry on its own, so that
// one component whose state does not encode (or panics) cannot hide the
// others; it shows as an error string instead.
func encodeComponents(snap func() map[string]any) (out map[string]json.RawMessage) {
	out = map[string]json.RawMessage{}
	defer func() {
		if r := recover(); r != nil {
			out = map[string]json.RawMessage{"status": mustJSON(fmt.Sprintf("status board failed: %v", r))}
		}
	}()
	for name, v := range snap() {
		if name == "store" {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			b = mustJSON("cannot encode: " + err.Error())
		}
		out[name] = b
	}
	return out
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// rateHistory keeps the last rateHistoryLen per-stream ingest rates, so
// that a page opened now draws the last minutes at once (GET
// /api/dashboard/rates) instead of starting an empty chart.
type rateHistory struct {
	T       []float64            `json:"t"`       // unix seconds (ms precision)
	Streams map[string][]float64 `json:"streams"` // records per second; null where the stream did not exist
}

const rateHistoryLen = 300

func (h *rateHistory) add(v GatewayView) {
	if h.Streams == nil {
		h.Streams = map[string][]float64{}
	}
	h.T = append(h.T, float64(v.Now.UnixMilli())/1000)
	seen := map[string]bool{}
	for _, s := range v.Streams {
		seen[s.Name] = true
		xs, ok := h.Streams[s.Name]
		if !ok {
			xs = make([]float64, len(h.T)-1)
			for i := range xs {
				xs[i] = math.NaN()
			}
		}
		h.Streams[s.Name] = append(xs, s.PerSec)
	}
	for name, xs := range h.Streams {
		if !seen[name] {
			h.Streams[name] = append(xs, math.NaN())
		}
	}
	if over := len(h.T) - rateHistoryLen; over > 0 {
		h.T = append(h.T[:0:0], h.T[over:]...)
		for name, xs := range h.Streams {
			xs = append(xs[:0:0], xs[over:]...)
			if allNaN(xs) {
				delete(h.Streams, name)
				continue
			}
			h.Streams[name] = xs
		}
	}
}

func allNaN(xs []float64) bool {
	for _, x := range xs {
		if !math.IsNaN(x) {
			return false
		}
	}
	return true
}

// MarshalJSON writes NaN (no stream at that time) as null.
func (h *rateHistory) MarshalJSON() ([]byte, error) {
	out := struct {
		T       []float64        `json:"t"`
		Streams map[string][]any `json:"streams"`
	}{T: h.T, Streams: map[string][]any{}}
	if out.T == nil {
		out.T = []float64{}
	}
	for name, xs := range h.Streams {
		row := make([]any, len(xs))
		for i, x := range xs {
			if !math.IsNaN(x) {
				row[i] = x
			}
		}
		out.Streams[name] = row
	}
	return json.Marshal(out)
}
