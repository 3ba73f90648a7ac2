// Package lazyfs is a FUSE filesystem for power-loss tests, after the idea
// of Jepsen's LazyFS: it passes a backing directory through, but holds every
// file write that no fsync has covered yet in memory, and on a simulated
// power cut (Cut) throws that data away.
//
// A process killed with SIGKILL loses nothing the kernel's page cache
// already holds, so a kill cannot show that a program fsyncs where it must.
// On a lazyfs mount it can: after Cut, unmount and mount again, the backing
// directory holds exactly what was fsynced (or msynced) before the cut.
//
// What is modelled, and what is not:
//   - File data (write, truncate, fallocate, writes through a shared mmap) is
//     unsynced until fsync, fdatasync or msync(MS_SYNC) of that file; Cut
//     drops it. A file created but never synced survives a cut empty.
//   - Namespace operations (create, mkdir, rename, unlink) reach the backing
//     directory at once and survive a cut, as if the directory were always
//     synced. Real filesystems may lose them too; lazyfs does not test that.
//   - The backing directory itself is not fsynced: the test process is the
//     power supply, and it does not lose power.
//
// Mounting needs /dev/fuse and root (or fusermount3 from Debian's fuse3).
// All methods are safe for concurrent use.
package lazyfs

import "errors"

// ErrMount is returned by Mount when the FUSE mount fails; the message says
// what is needed (root or fusermount3, and /dev/fuse).
var ErrMount = errors.New("lazyfs: mount failed")

// Options configure Mount. The zero value is ready to use.
type Options struct {
	// Debug logs every FUSE request (very verbose). Default off.
	Debug bool
}

// Stats counts what the filesystem did since it was mounted.
type Stats struct {
	Writes       int64 // write requests (write(2) and mmap writeback)
	Fsyncs       int64 // fsync, fdatasync and msync requests on files
	SyncedBytes  int64 // bytes written to the backing files by fsyncs
	DroppedBytes int64 // unsynced bytes thrown away by Cut (page granularity)
	DroppedFiles int64 // files that had unsynced data at Cut
}
