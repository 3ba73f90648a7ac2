package pgsink

import (
	"errors"
	"fmt"
)

// A record is read once per batch on the gateway's small CPU, so its JSON
// is not decoded into maps: members writes the raw bytes of the members a
// column asks for, and skips the rest without building anything. The
// object's own punctuation is checked strictly; a member's value is
// checked when its column converts it (or, for jsonb, by json.Valid).

var errNotObject = errors.New("not a JSON object")

// members scans the JSON object in data and calls found(i, raw) for each
// member whose key equals keys[i]; for a key written twice it is called
// twice, so the caller keeps the last, as encoding/json does. Keys are
// compared as written: a key spelled with escapes is not matched.
func members(data []byte, keys []string, found func(i int, raw []byte)) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return trailing(data, i+1)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return fmt.Errorf("%w: want a key at byte %d", errNotObject, i)
		}
		end, err := skipString(data, i)
		if err != nil {
			return err
		}
		key := data[i+1 : end-1]
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return fmt.Errorf("%w: want ':' at byte %d", errNotObject, i)
		}
		i = skipSpace(data, i+1)
		vend, err := skipValue(data, i)
		if err != nil {
			return err
		}
		for k, want := range keys {
			if string(key) == want {
				found(k, data[i:vend])
			}
		}
		i = skipSpace(data, vend)
		if i >= len(data) {
			return fmt.Errorf("%w: unterminated object", errNotObject)
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return trailing(data, i+1)
		default:
			return fmt.Errorf("%w: want ',' or '}' at byte %d", errNotObject, i)
		}
	}
}

func trailing(data []byte, i int) error {
	if skipSpace(data, i) != len(data) {
		return fmt.Errorf("%w: data after the object at byte %d", errNotObject, i)
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at data[i] ('"').
func skipString(data []byte, i int) (int, error) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: unterminated string at byte %d", errNotObject, i)
}

// skipValue returns the index after the value starting at data[i]:
// a string, an object or array (brackets balanced, strings skipped), or a
// literal or number (up to the next delimiter).
func skipValue(data []byte, i int) (int, error) {
	if i >= len(data) {
		return 0, fmt.Errorf("%w: want a value at byte %d", errNotObject, i)
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, err := skipString(data, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("%w: unterminated value at byte %d", errNotObject, i)
	}
	j := i
	for j < len(data) {
		c := data[j]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		j++
	}
	if j == i {
		return 0, fmt.Errorf("%w: want a value at byte %d", errNotObject, i)
	}
	return j, nil
}
