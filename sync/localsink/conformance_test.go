package localsink_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaiten-edge/kaiten/sync/localsink"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

// TestConformance runs the shared sink contract against a temporary
// directory. A whole file is written or none, so there is no partial
// failure; a prefix that leaves the directory is refused for good while
// the error output (under delivery-failed/) still works.
func TestConformance(t *testing.T) {
	open := func(prefix string) func(t *testing.T) *sinktest.Target {
		return func(t *testing.T) *sinktest.Target {
			dir := t.TempDir()
			s := &localsink.Sink{Dir: dir, Prefix: prefix}
			return &sinktest.Target{
				Sink:     s,
				Identity: func(b *sink.Batch) string { return sink.ObjectKey(prefix, b) },
				Held:     func(t testing.TB) []sinktest.Held { return files(t, dir) },
				Errors: func(t testing.TB) []sinktest.Failed {
					var out []sinktest.Failed
					for _, path := range paths(t, dir, true) {
						out = append(out, sinktest.ErrorLines(t, read(t, path))...)
					}
					return out
				},
			}
		}
	}
	sinktest.Run(t, sinktest.Destination{
		Caps:         sinktest.Capabilities{Identity: true, ErrorOutput: true},
		Open:         open("plates/"),
		OpenRefusing: open("../outside/"),
	})
}

// paths lists the files under dir: the error output's (delivery-failed/)
// or the others.
func paths(t testing.TB, dir string, errorOutput bool) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(filepath.ToSlash(rel), "delivery-failed/") == errorOutput {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func files(t testing.TB, dir string) []sinktest.Held {
	var out []sinktest.Held
	for _, path := range paths(t, dir, false) {
		rel, _ := filepath.Rel(dir, path)
		out = append(out, sinktest.Held{ID: filepath.ToSlash(rel), Records: sinktest.Lines(t, read(t, path), sink.Gzip)})
	}
	return out
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
