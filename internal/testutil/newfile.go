package testutil

import (
	"path/filepath"
	"time"
)

// WaitNewFile polls dir every millisecond for a file matching pattern (a
// filepath.Match pattern such as "*.sst") that was not there when it was
// called, and returns true the moment one appears, false after wait. The
// crash loops use it to strike while Badger writes a new table (a memtable
// flush or a compaction's output); a millisecond is the point, so this is
// a poll of its own rather than WaitFor.
func WaitNewFile(dir, pattern string, wait time.Duration) bool {
	list := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		return m
	}
	seen := map[string]bool{}
	for _, p := range list() {
		seen[p] = true
	}
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		for _, p := range list() {
			if !seen[p] {
				return true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return false
}
