// Package config holds the small helpers every config section uses: YAML
// durations and byte sizes, and strict decoding whose errors name the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as "90s", "24h", "500ms".
type Duration struct{ time.Duration }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 30s or 24h", n.Line)
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 30s or 24h", n.Line, s)
	}
	d.Duration = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ByteSize is a size written in YAML as a number of bytes or "64MiB", "2GB".
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a size such as 64MiB", n.Line)
	}
	v, err := humanize.ParseBytes(strings.TrimSpace(s))
	if err != nil || v > 1<<62 {
		return fmt.Errorf("line %d: %q is not a size such as 512KiB, 64MiB or 2GB", n.Line, s)
	}
	*b = ByteSize(v)
	return nil
}

// Decode decodes node into v strictly: unknown keys are errors. A nil node
// leaves v as it is (its defaults). Errors are prefixed with section, the
// key path of the node, e.g. "mqtt".
func Decode(section string, node *yaml.Node, v any) error {
	if node == nil {
		return nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(node); err != nil {
		return fmt.Errorf("%s: %w", section, err)
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s: %s", section, strings.Join(te.Errors, "; "))
		}
		return fmt.Errorf("%s: %w", section, err)
	}
	return nil
}

// Errorf returns an error that names the key: Errorf("mqtt.routes[0].topic",
// "must not be empty") reads "mqtt.routes[0].topic: must not be empty".
func Errorf(key, format string, args ...any) error {
	return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
}

// DecodeSection reads the YAML file at path and strictly decodes its
// top-level section into v. Component tests use it to keep each
// sample.yaml in step with the Config it documents.
func DecodeSection(path, section string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	node, ok := doc[section]
	if !ok {
		return fmt.Errorf("config %s: no %s section", path, section)
	}
	return Decode(section, &node, v)
}
