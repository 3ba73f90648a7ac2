package config

import (
	"os"
	"strings"
	"testing"
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
