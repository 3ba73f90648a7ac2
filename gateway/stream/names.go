package stream

import "fmt"

// NameRule says what a stream name may be, in the words config errors use.
const NameRule = "1-128 characters of a-z A-Z 0-9 _ . -"

// ValidName returns nil when name is a valid stream name: 1 to
// MaxStreamNameLen characters of [a-zA-Z0-9_.-], as in Kinesis. Otherwise
// it returns an error wrapping ErrInvalidName.
func ValidName(name string) error {
	if len(name) == 0 || len(name) > MaxStreamNameLen {
		return invalidName(name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return invalidName(name)
		}
	}
	return nil
}

func invalidName(name string) error {
	return fmt.Errorf("%w %q: want %s", ErrInvalidName, name, NameRule)
}

// The names of the demo's streams: the defaults that the config, the
// sources, the analytics query, the dashboard and sync agree on. A config
// may name each of them differently; these are the values used when it
// does not.
const (
	// NamePlates holds plate events and sensor heartbeats from MQTT
	// sensors and the simulator.
	NamePlates = "plates"
	// NameGPIO holds events from GPIO lines wired to the board.
	NameGPIO = "gpio"
	// NameDeadLetter holds ingest input and records that could not be
	// stored or delivered as asked, as DeadLetter records.
	NameDeadLetter = "deadletter"
	// NamePlateStats holds the results of the demo's continuous query.
	NamePlateStats = "plate-stats"
)
