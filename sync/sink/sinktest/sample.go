package sinktest

import (
	"testing"

	"go.yaml.in/yaml/v3"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/sync/config"
)

// Sample decodes the sample.yaml that the destination registered under key
// strictly (an unknown key fails), checks that it validates, and returns
// the decoded config for the caller to compare with its defaults.
func Sample(t testing.TB, key string) config.Destination {
	t.Helper()
	f, ok := config.Lookup(key)
	if !ok {
		t.Fatalf("no destination registered under %q", key)
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(f.Sample, &doc); err != nil {
		t.Fatalf("%s sample.yaml: %v", key, err)
	}
	node, ok := doc[key]
	if len(doc) != 1 || !ok {
		t.Fatalf("%s sample.yaml: want one top-level key %q, have %d keys", key, key, len(doc))
	}
	d := f.New()
	if err := gconfig.Decode(key, &node, d); err != nil {
		t.Fatalf("%s sample.yaml: %v", key, err)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("%s sample.yaml does not validate: %v", key, err)
	}
	return d
}
