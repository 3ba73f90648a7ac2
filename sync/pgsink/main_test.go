package pgsink_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/kaiten-edge/kaiten/sync/config"
)

// packageTB lends the first test's TB to a server that outlives it: its
// cleanups run when every test of the package has finished (TestMain).
type packageTB struct{ testing.TB }

var cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (p *packageTB) Cleanup(f func()) {
	cleanups.mu.Lock()
	defer cleanups.mu.Unlock()
	cleanups.fns = append(cleanups.fns, f)
}

// Logf writes to stderr: the test that lent its TB may have ended.
func (p *packageTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func TestMain(m *testing.M) {
	code := m.Run()
	cleanups.mu.Lock()
	for i := len(cleanups.fns) - 1; i >= 0; i-- {
		cleanups.fns[i]()
	}
	cleanups.mu.Unlock()
	os.Exit(code)
}

func configEnv(t *testing.T) config.Env { return config.Env{DataDir: t.TempDir()} }
