package dashboard

import (
	"encoding/json"
	"unicode/utf8"
)

// parsePlate decodes a plate event or heartbeat. The agreed payloads are
// flat JSON objects, so a small scanner reads them without reflection (the
// store view parses every record of the plates stream, and this is most of
// the dashboard's cost under load); anything it does not handle (nested
// values it cannot skip, odd escapes) goes through encoding/json, which
// also has the last word on malformed input.
func parsePlate(data []byte, m *plateMsg) error {
	if scanPlate(data, m) {
		return nil
	}
	*m = plateMsg{}
	return json.Unmarshal(data, m)
}

func scanPlate(b []byte, m *plateMsg) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		key, j, ok := scanString(b, i)
		if !ok {
			return false
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return false
		}
		var dst *string
		switch string(key) {
		case "store":
			dst = &m.Store
		case "lane":
			dst = &m.Lane
		case "plate_type":
			dst = &m.PlateType
		case "event":
			dst = &m.Event
		case "plate_id":
			dst = &m.PlateID
		case "sensor":
			dst = &m.Sensor
		case "ok":
		default:
			// encoding/json matches keys case-insensitively (with Unicode
			// folding): leave such keys to it.
			for _, c := range key {
				if c >= 'A' && c <= 'Z' || c >= 0x80 {
					return false
				}
			}
		}
		isOK := string(key) == "ok"
		switch c := b[i]; {
		case c == '"':
			v, j, ok := scanString(b, i)
			if !ok {
				return false
			}
			if dst != nil {
				*dst = string(v)
			} else if isOK {
				return false // wrong type for ok: let encoding/json say so
			}
			i = j
		case c == 't' || c == 'f' || c == 'n':
			lit := "null"
			if c == 't' {
				lit = "true"
			} else if c == 'f' {
				lit = "false"
			}
			if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
				return false
			}
			if dst != nil && c != 'n' {
				return false
			}
			if isOK && c != 'n' {
				v := c == 't'
				m.OK = &v
			}
			i += len(lit)
		case c == '-' || (c >= '0' && c <= '9'):
			if dst != nil || isOK {
				return false
			}
			j, ok := scanNumber(b, i)
			if !ok {
				return false
			}
			i = j
		default:
			return false // objects, arrays: the slow path
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return skipWS(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
}

// scanNumber checks JSON's number grammar at b[i] and returns the index
// after it: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString reads a JSON string at b[i] and returns its bytes (a slice of
// b); strings with escapes, control bytes or invalid UTF-8 are refused (the
// slow path handles them).
func scanString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			v := b[i+1 : j]
			if !ascii && !utf8.Valid(v) {
				return nil, i, false
			}
			return v, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, i, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, i, false
}
