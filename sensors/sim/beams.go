package sim

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"

	"github.com/kaiten-edge/kaiten/sensors/gpio"
)

// Beams are the simulated break-beams of the demo: one GPIO input line
// per lane, named SIM-LANE1, SIM-LANE2, ... (sensor laneN-beam), that the
// real gpio watcher reads as it would read a wired IR beam. The simulator
// breaks a lane's beam through Break (pass it as Options.OnBeam).
//
// Its methods are safe for concurrent use.
type Beams struct {
	pins []*Pin // lane i+1 at i
}

// beamEdges is how many breaks a lane's line holds while its watcher is
// behind; more are merged, as a real line would merge edges.
const beamEdges = 16

// NewBeams returns the beams of lanes lanes (1 to 64, as sim.lanes).
func NewBeams(lanes int) *Beams {
	b := &Beams{}
	for i := 1; i <= lanes; i++ {
		b.pins = append(b.pins, &Pin{name: fmt.Sprintf("SIM-LANE%d", i), num: 1000 + i,
			level: pgpio.High, edges: make(chan pgpio.Level, beamEdges)})
	}
	return b
}

// GPIOConfig returns the normalized gpio config that watches the beams:
// one falling-edge pass counter per lane, into the default gpio stream.
func (b *Beams) GPIOConfig() (gpio.Config, error) {
	var cfg gpio.Config
	for i, p := range b.pins {
		lane := strconv.Itoa(i + 1)
		cfg.Pins = append(cfg.Pins, gpio.PinConfig{Pin: p.name, Sensor: "lane" + lane + "-beam",
			Lane: lane, Edge: "falling"})
	}
	if err := cfg.Normalize(); err != nil {
		return gpio.Config{}, fmt.Errorf("sim: beams: %w", err)
	}
	return cfg, nil
}

// Lookup returns the beam line called name, or nil: pass it as the gpio
// watcher's Options.Lookup.
func (b *Beams) Lookup(name string) pgpio.PinIO {
	for _, p := range b.pins {
		if p.name == name {
			return p
		}
	}
	return nil
}

// Break breaks lane's beam ("1", "2", ...) for an instant: the line gets
// a falling edge. It never blocks; an unknown lane is ignored.
func (b *Beams) Break(lane string) {
	i, err := strconv.Atoi(lane)
	if err != nil || i < 1 || i > len(b.pins) {
		return
	}
	b.pins[i-1].edge(pgpio.Low)
}

// Pin is one simulated input line. It implements periph's gpio.PinIO as
// far as a watcher uses it: In, Read and WaitForEdge report the edges
// Break delivers; Out and PWM are refused, since a beam is an input.
//
// After an edge the line reads the edge's level until the next one.
type Pin struct {
	name  string
	num   int
	edges chan pgpio.Level

	mu    sync.Mutex
	level pgpio.Level
	pull  pgpio.Pull
}

var errInputOnly = errors.New("sim: a simulated beam is an input")

func (p *Pin) edge(l pgpio.Level) {
	select {
	case p.edges <- l:
	default: // the watcher is behind
	}
}

// String returns the name and number, like periph's pins.
func (p *Pin) String() string { return fmt.Sprintf("%s(%d)", p.name, p.num) }

// Halt does nothing: there is nothing to stop.
func (p *Pin) Halt() error { return nil }

// Name returns SIM-LANEn.
func (p *Pin) Name() string { return p.name }

// Number returns 1000+n, outside any real header's numbers.
func (p *Pin) Number() int { return p.num }

// Function returns "In".
func (p *Pin) Function() string { return string(p.Func()) }

// Func returns gpio.IN.
func (p *Pin) Func() pin.Func { return pgpio.IN }

// SupportedFuncs returns only gpio.IN.
func (p *Pin) SupportedFuncs() []pin.Func { return []pin.Func{pgpio.IN} }

// SetFunc accepts only gpio.IN.
func (p *Pin) SetFunc(f pin.Func) error {
	if f != pgpio.IN {
		return errInputOnly
	}
	return nil
}

// In sets the pull (PullUp reads High, PullDown reads Low) and drops the
// edges not read yet.
func (p *Pin) In(pull pgpio.Pull, _ pgpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pull = pull
	switch pull {
	case pgpio.PullUp:
		p.level = pgpio.High
	case pgpio.PullDown:
		p.level = pgpio.Low
	}
	for {
		select {
		case <-p.edges:
		default:
			return nil
		}
	}
}

// Read returns the level after the last edge.
func (p *Pin) Read() pgpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// WaitForEdge waits up to timeout for an edge (a negative timeout waits
// until one comes) and reports whether one came.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	var l pgpio.Level
	if timeout < 0 {
		l = <-p.edges
	} else {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case l = <-p.edges:
		case <-t.C:
			return false
		}
	}
	p.mu.Lock()
	p.level = l
	p.mu.Unlock()
	return true
}

// Pull returns the pull In set.
func (p *Pin) Pull() pgpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull returns the pull In set.
func (p *Pin) DefaultPull() pgpio.Pull { return p.Pull() }

// Out is refused: a beam is an input.
func (p *Pin) Out(pgpio.Level) error { return errInputOnly }

// PWM is refused: a beam is an input.
func (p *Pin) PWM(pgpio.Duty, physic.Frequency) error { return errInputOnly }

var _ pgpio.PinIO = (*Pin)(nil)
