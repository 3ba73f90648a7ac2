package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// ValidFilter checks an MQTT topic filter: non-empty, '+' only as a whole
// level, '#' only as the whole last level.
func ValidFilter(f string) error {
	if f == "" {
		return errors.New("must not be empty")
	}
	if len(f) > 65535 {
		return errors.New("longer than 65535 bytes")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && len(l) != 1 {
			return fmt.Errorf("%q: a wildcard must be a whole level", f)
		}
		if l == "#" && i != len(levels)-1 {
			return fmt.Errorf("%q: # must be the last level", f)
		}
	}
	return nil
}

// Match reports whether topic matches filter (MQTT 3.1.1 rules: '+' is one
// level, '#' the rest including the parent level; topics starting with '$'
// do not match filters starting with a wildcard).
func Match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			if fmore && !tmore {
				// "a/#" matches "a".
				return frest == "#"
			}
			return fmore == tmore
		}
		filter, topic = frest, trest
	}
}

// Template is a parsed partition-key template; see Route.Key.
type Template struct {
	parts []part
	// NeedsPayload is true when a part reads a JSON payload field.
	NeedsPayload bool
}

type part struct {
	lit   string
	seg   int // topic segment, when field == nil and lit == ""
	field []string
	isSeg bool
}

// ErrTemplate is wrapped by errors filling a template from a message.
var ErrTemplate = errors.New("key template")

// ParseTemplate parses a key template such as "{1}/{3}" or "{store}/{lane}".
func ParseTemplate(s string) (*Template, error) {
	t := &Template{}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("%q: unmatched }", s)
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%q: unclosed {", s)
		}
		name := rest[i+1 : i+j]
		rest = rest[i+j+1:]
		switch {
		case name == "":
			return nil, fmt.Errorf("%q: empty {}", s)
		case strings.ContainsAny(name, "{ "):
			return nil, fmt.Errorf("%q: bad placeholder {%s}", s, name)
		}
		if n, err := strconv.Atoi(name); err == nil {
			if n < 0 {
				return nil, fmt.Errorf("%q: topic segment {%d} must be 0 or more", s, n)
			}
			t.parts = append(t.parts, part{seg: n, isSeg: true})
			continue
		}
		path := strings.Split(name, ".")
		for _, p := range path {
			if p == "" {
				return nil, fmt.Errorf("%q: bad field {%s}", s, name)
			}
		}
		t.parts = append(t.parts, part{field: path})
		t.NeedsPayload = true
	}
	return t, nil
}

// Fill builds the key from the topic and, when NeedsPayload, the payload's
// decoded top-level object (nil if the payload is not a JSON object). The
// result must be a valid partition key (1-256 characters).
func (t *Template) Fill(topic string, obj map[string]json.RawMessage) (string, error) {
	var b strings.Builder
	var segs []string
	for _, p := range t.parts {
		switch {
		case p.isSeg:
			if segs == nil {
				segs = strings.Split(topic, "/")
			}
			if p.seg >= len(segs) {
				return "", fmt.Errorf("%w: {%d}: topic %q has only %d segments", ErrTemplate, p.seg, topic, len(segs))
			}
			b.WriteString(segs[p.seg])
		case p.field != nil:
			v, err := field(obj, p.field)
			if err != nil {
				return "", fmt.Errorf("%w: {%s}: %v", ErrTemplate, strings.Join(p.field, "."), err)
			}
			b.WriteString(v)
		default:
			b.WriteString(p.lit)
		}
	}
	k := b.String()
	if k == "" {
		return "", fmt.Errorf("%w: the key is empty", ErrTemplate)
	}
	if n := utf8.RuneCountInString(k); n > stream.MaxPartitionKeyLen {
		return "", fmt.Errorf("%w: the key has %d characters, more than %d", ErrTemplate, n, stream.MaxPartitionKeyLen)
	}
	return k, nil
}

func field(obj map[string]json.RawMessage, path []string) (string, error) {
	if obj == nil {
		return "", errors.New("the payload is not a JSON object")
	}
	for i, name := range path {
		raw, ok := obj[name]
		if !ok {
			return "", errors.New("no such field in the payload")
		}
		if i < len(path)-1 {
			obj = nil
			if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
				return "", fmt.Errorf("field %q is not an object", name)
			}
			continue
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			return "", errors.New("empty field")
		}
		switch raw[0] {
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", err
			}
			if s == "" {
				return "", errors.New("the field is an empty string")
			}
			return s, nil
		case '{', '[':
			return "", errors.New("the field is an object or array, not a value")
		case 'n':
			return "", errors.New("the field is null")
		default: // number or boolean, as written
			return string(raw), nil
		}
	}
	return "", errors.New("empty field path")
}
