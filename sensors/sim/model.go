// Package sim is a conveyor-belt sushi store for demos and load tests. It
// publishes the same MQTT messages real lane sensors do (plate events and
// sensor heartbeats, see the team's formats), so everything downstream
// sees realistic traffic through the real ingest path.
//
// The model (Belt) is deterministic for a given seed and clock; the
// publisher (Run) drives it in real time and sends what it produces.
package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// PlateTypes are the demo's plate types, with their relative popularity.
var PlateTypes = []struct {
	Name   string
	Weight float64
}{
	{"salmon", 22}, {"tuna", 16}, {"ebi", 12}, {"tamago", 9},
	{"unagi", 8}, {"inari", 10}, {"kappa-maki", 13}, {"ikura", 10},
}

// Plate events.
const (
	Placed = "placed"
	Passed = "passed"
	Taken  = "taken"
)

// PlateEvent is the JSON of a plate event (topic store/{store}/lane/{lane}/plate).
type PlateEvent struct {
	Store     string `json:"store"`
	Lane      string `json:"lane"`
	PlateType string `json:"plate_type"`
	Event     string `json:"event"`
	PlateID   string `json:"plate_id"`
	Sensor    string `json:"sensor"`
	TS        string `json:"ts"`
}

// Heartbeat is the JSON of a sensor heartbeat
// (topic store/{store}/lane/{lane}/sensor/{sensor}/status).
type Heartbeat struct {
	Sensor string `json:"sensor"`
	Lane   string `json:"lane"`
	OK     bool   `json:"ok"`
	TS     string `json:"ts"`
}

// Message is one MQTT message the model wants published.
type Message struct {
	Topic   string
	Payload []byte
	// Beam is set on a plate passing a lane's first IR sensor: what a
	// break-beam wired to a GPIO line would see (Options.OnBeam).
	Beam bool
}

// HourFactor is the share of peak traffic at a local hour: lunch (11-14)
// and dinner (18-21) are busy, afternoons half, nights a fifth.
func HourFactor(hour int) float64 {
	switch {
	case hour >= 11 && hour < 14, hour >= 18 && hour < 21:
		return 1.0
	case hour >= 14 && hour < 18:
		return 0.5
	case hour >= 9 && hour < 11, hour >= 21 && hour < 23:
		return 0.35
	default:
		return 0.2
	}
}

type plate struct {
	id   string
	kind string
	pos  float64 // laps travelled; sensors at .5 (ir1) and 1.0 (ir2) of each lap
	laps int
}

type lane struct {
	name    string
	plates  []plate
	faulty  map[string]time.Time // sensor -> fault ends
	nextHB  time.Time
	sensors []string
}

// Belt is the model of one store. It is not safe for concurrent use.
type Belt struct {
	Store string
	// Rate is the peak number of plates placed per second per lane; the
	// passes and takes follow from it. Must be > 0.
	Rate float64
	// Faults is the chance per sensor per heartbeat that it goes faulty
	// for 30-120 s (ok:false heartbeats, no passes, and one garbled
	// message that the gateway dead-letters).
	Faults    float64
	Heartbeat time.Duration
	// LapTime is how long a plate takes to go round. Default 20s.
	LapTime time.Duration
	// Capacity is how many plates fit on a lane. Default 30.
	Capacity int

	rng    *rand.Rand
	lanes  []*lane
	seq    int
	wsum   float64
	inited bool
}

// NewBelt makes a store with lanes lanes named "1".."N".
func NewBelt(store string, lanes int, rate, faults float64, heartbeat time.Duration, seed uint64) *Belt {
	b := &Belt{Store: store, Rate: rate, Faults: faults, Heartbeat: heartbeat, LapTime: 20 * time.Second, Capacity: 30,
		rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	for i := 1; i <= lanes; i++ {
		n := fmt.Sprint(i)
		b.lanes = append(b.lanes, &lane{name: n, faulty: map[string]time.Time{},
			sensors: []string{"lane" + n + "-kitchen", "lane" + n + "-ir1", "lane" + n + "-ir2"}})
	}
	for _, p := range PlateTypes {
		b.wsum += p.Weight
	}
	return b
}

func (b *Belt) pickType() string {
	x := b.rng.Float64() * b.wsum
	for _, p := range PlateTypes {
		if x < p.Weight {
			return p.Name
		}
		x -= p.Weight
	}
	return PlateTypes[0].Name
}

// Lanes lists the lane names.
func (b *Belt) Lanes() []string {
	out := make([]string, len(b.lanes))
	for i, l := range b.lanes {
		out[i] = l.name
	}
	return out
}

// Step advances the store by dt ending at now and returns the messages of
// that interval, grouped by lane (index as in Lanes).
func (b *Belt) Step(now time.Time, dt time.Duration) [][]Message {
	out := make([][]Message, len(b.lanes))
	f := HourFactor(now.Hour())
	sec := dt.Seconds()
	ts := now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	prefill := !b.inited
	b.inited = true
	for i, l := range b.lanes {
		emit := func(topic string, v any) {
			p, _ := json.Marshal(v)
			out[i] = append(out[i], Message{Topic: topic, Payload: p})
		}
		plateTopic := fmt.Sprintf("store/%s/lane/%s/plate", b.Store, l.name)
		ev := func(p plate, event, sensor string) {
			emit(plateTopic, PlateEvent{Store: b.Store, Lane: l.name, PlateType: p.kind, Event: event,
				PlateID: p.id, Sensor: sensor, TS: ts})
		}
		// Heartbeats, and faults starting and ending.
		if !now.Before(l.nextHB) {
			l.nextHB = now.Add(b.Heartbeat)
			for _, s := range l.sensors {
				if end, ok := l.faulty[s]; ok && !now.Before(end) {
					delete(l.faulty, s)
				}
				if _, ok := l.faulty[s]; !ok && b.rng.Float64() < b.Faults {
					l.faulty[s] = now.Add(time.Duration(30+b.rng.IntN(91)) * time.Second)
					// A glitching node sends a cut-off message now and then.
					out[i] = append(out[i], Message{Topic: plateTopic,
						Payload: []byte(`{"store":"` + b.Store + `","lane":"` + l.name + `","plate_ty`)})
				}
				_, bad := l.faulty[s]
				emit(fmt.Sprintf("store/%s/lane/%s/sensor/%s/status", b.Store, l.name, s),
					Heartbeat{Sensor: s, Lane: l.name, OK: !bad, TS: ts})
			}
		}
		// A store that opens its doors already has plates going round.
		if prefill {
			for k := 0; k < max(3, int(float64(b.Capacity)*f*0.75)); k++ {
				b.seq++
				p := plate{id: fmt.Sprintf("p-%06d", b.seq), kind: b.pickType(), pos: b.rng.Float64()}
				l.plates = append(l.plates, p)
				ev(p, Placed, l.sensors[0])
			}
		}
		// The kitchen places plates while there is room.
		if len(l.plates) < b.Capacity {
			// Poisson arrivals: the chance of at least one in dt.
			n := poisson(b.rng, b.Rate*f*sec)
			for k := 0; k < n && len(l.plates) < b.Capacity; k++ {
				b.seq++
				p := plate{id: fmt.Sprintf("p-%06d", b.seq), kind: b.pickType()}
				l.plates = append(l.plates, p)
				ev(p, Placed, l.sensors[0])
			}
		}
		// Plates move; each sensor reports a pass; customers take some.
		takeP := 0.1 + 0.3*f
		kept := l.plates[:0]
		for _, p := range l.plates {
			before := p.pos
			p.pos += sec / b.LapTime.Seconds()
			if math.Floor(before+0.5) < math.Floor(p.pos+0.5) {
				if _, bad := l.faulty[l.sensors[1]]; !bad {
					ev(p, Passed, l.sensors[1])
					out[i][len(out[i])-1].Beam = true
				}
			}
			if math.Floor(before) < math.Floor(p.pos) {
				p.laps++
				if _, bad := l.faulty[l.sensors[2]]; !bad {
					ev(p, Passed, l.sensors[2])
				}
				if b.rng.Float64() < takeP {
					ev(p, Taken, l.sensors[2])
					continue
				}
				if p.laps >= 8 { // stale: the kitchen takes it back quietly
					continue
				}
			}
			kept = append(kept, p)
		}
		l.plates = kept
	}
	return out
}

func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
