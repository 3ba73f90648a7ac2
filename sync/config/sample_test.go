package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/kaiten-edge/kaiten/sync/config"
)

// sampleSection returns the sync section of sync/sample.yaml, without the
// top-level "sync:" line.
func sampleSection(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "\nsync:\n")
	if !ok {
		t.Fatal("sample.yaml has no sync: section")
	}
	return after
}

// Each destination's own sample.yaml appears in sync/sample.yaml, under
// the delivery stream's keys: the default entry's local destination as it
// is, the others commented out (an entry has one destination).
func TestSampleShowsEveryDestination(t *testing.T) {
	section := sampleSection(t)
	fs := config.Destinations()
	if len(fs) < 4 {
		t.Fatalf("%d destinations registered", len(fs))
	}
	for _, f := range fs {
		src := string(f.Sample)
		i := strings.Index(src, "\n"+f.Key+":")
		if i < 0 {
			t.Fatalf("%s sample.yaml has no %s: key", f.Key, f.Key)
		}
		indent := "    # "
		if f.Key == "local" {
			indent = "    "
		}
		var block strings.Builder
		for _, line := range strings.Split(strings.TrimRight(src[i+1:], "\n"), "\n") {
			block.WriteString(indent + line + "\n")
		}
		if !strings.Contains(section, block.String()) {
			t.Errorf("sync/sample.yaml does not hold the %s destination's sample.yaml as\n%s", f.Key, block.String())
		}
	}
}
