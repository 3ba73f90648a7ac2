//go:build !(linux && (amd64 || arm64))

package lazyfs

import (
	"fmt"
	"runtime"
)

// FS is a mounted lazy filesystem. On this platform it cannot be mounted:
// go-fuse does not build for 32-bit ARM, and the fault tests run on the
// CI host (linux/amd64) anyway.
type FS struct{}

// Mount always fails here.
func Mount(backing, mountpoint string, o Options) (*FS, error) {
	return nil, fmt.Errorf("%w: not supported on %s/%s (linux/amd64 or linux/arm64 only)", ErrMount, runtime.GOOS, runtime.GOARCH)
}

// Dir is the mount point.
func (l *FS) Dir() string { return "" }

// Backing is the backing directory.
func (l *FS) Backing() string { return "" }

// Cut does nothing here.
func (l *FS) Cut() int64 { return 0 }

// Unmount does nothing here.
func (l *FS) Unmount() error { return nil }

// Stats returns zeros here.
func (l *FS) Stats() Stats { return Stats{} }
