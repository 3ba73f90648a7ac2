//go:build linux && (amd64 || arm64)

package lazyfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mount mounts a fresh backing directory; it fails (never skips) when the
// machine cannot mount FUSE, saying what is needed.
func mount(t *testing.T, backing string) *FS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("lazyfs tests mount FUSE and need root (CI runs as root); running as uid %d", os.Geteuid())
	}
	mnt := t.TempDir()
	l, err := Mount(backing, mnt, Options{})
	if err != nil {
		t.Fatalf("%v (make test installs fuse3; the kernel needs /dev/fuse)", err)
	}
	t.Cleanup(func() { _ = l.Unmount() })
	return l
}

func mustWrite(t *testing.T, f *os.File, data []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func TestFsyncedDataSurvivesCutAndUnsyncedDoesNot(t *testing.T) {
	backing := t.TempDir()
	l := mount(t, backing)
	a := bytes.Repeat([]byte("A"), 10000)
	b := bytes.Repeat([]byte("B"), 6000)
	f, err := os.Create(filepath.Join(l.Dir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, a, 0)
	if fi, _ := os.Stat(filepath.Join(backing, "log")); fi.Size() != 0 {
		t.Fatalf("backing file has %d bytes before any fsync", fi.Size())
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(backing, "log")); !bytes.Equal(got, a) {
		t.Fatalf("backing after fsync: %d bytes, want the %d written", len(got), len(a))
	}
	// Unsynced: overwrite the middle and extend.
	mustWrite(t, f, b, 7000)
	want := append(append([]byte{}, a[:7000]...), b...)
	got, err := os.ReadFile(filepath.Join(l.Dir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read through the mount: %d bytes, want %d with the unsynced write", len(got), len(want))
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() != 13000 {
		t.Fatalf("size through the mount = %v, %v; want 13000", fi.Size(), err)
	}
	if dropped := l.Cut(); dropped == 0 {
		t.Fatal("Cut dropped nothing, want the unsynced pages")
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write after the cut: %v, want EIO", err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync after the cut: %v, want EIO", err)
	}
	f.Close()
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	l2 := mount(t, backing)
	got, err = os.ReadFile(filepath.Join(l2.Dir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, a) {
		t.Fatalf("after the power cut: %d bytes (%q...), want the %d fsynced", len(got), got[:min(len(got), 16)], len(a))
	}
	st := l.Stats()
	if st.Fsyncs == 0 || st.SyncedBytes < int64(len(a)) || st.DroppedFiles != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnsyncedTruncateAndRegrowReadsZeros(t *testing.T) {
	backing := t.TempDir()
	l := mount(t, backing)
	p := filepath.Join(l.Dir(), "t")
	a := bytes.Repeat([]byte("A"), 9000)
	if err := os.WriteFile(p, a, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("Z"), 5000)
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte{}, a[:100]...), make([]byte, 4900)...), 'Z')
	if !bytes.Equal(got, want) {
		t.Fatalf("after truncate and regrow: %d bytes, want %d with zeros between", len(got), len(want))
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if disk, _ := os.ReadFile(filepath.Join(backing, "t")); !bytes.Equal(disk, want) {
		t.Fatalf("backing after fsync: %d bytes, want %d", len(disk), len(want))
	}
	// Unsynced truncation to zero, then a cut: the synced content is back.
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	l.Cut()
	f.Close()
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	l2 := mount(t, backing)
	if got, _ := os.ReadFile(filepath.Join(l2.Dir(), "t")); !bytes.Equal(got, want) {
		t.Fatalf("after the cut: %d bytes, want %d", len(got), len(want))
	}
}

// Badger writes its logs through shared mmaps and msyncs them. The mmap
// side runs in a child process: a page fault served by FUSE in the same Go
// process can deadlock against the garbage collector.
func TestMmapWritesNeedMsync(t *testing.T) {
	if p := os.Getenv("LAZYFS_MMAP_CHILD"); p != "" {
		mmapChild(p)
		return
	}
	backing := t.TempDir()
	l := mount(t, backing)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMmapWritesNeedMsync$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LAZYFS_MMAP_CHILD="+filepath.Join(l.Dir(), "m"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmap child: %v\n%s", err, out)
	}
	if disk, _ := os.ReadFile(filepath.Join(backing, "m")); len(disk) != 3*pageSize || string(disk[:6]) != "synced" {
		t.Fatalf("backing after msync: %d bytes, %q", len(disk), disk[:min(6, len(disk))])
	}
	l.Cut()
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	l2 := mount(t, backing)
	got, err := os.ReadFile(filepath.Join(l2.Dir(), "m"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3*pageSize || string(got[:6]) != "synced" || !bytes.Equal(got[2*pageSize:2*pageSize+4], make([]byte, 4)) {
		t.Fatalf("after the cut: %d bytes, head %q, page 2 %q", len(got), got[:6], got[2*pageSize:2*pageSize+4])
	}
}

// mmapChild writes through a shared mapping: "synced" msynced, then more
// that is written back (MS_ASYNC) but never synced.
func mmapChild(path string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "mmap child:", err)
		os.Exit(3)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fail(err)
	}
	if err := f.Truncate(3 * pageSize); err != nil {
		fail(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 3*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fail(err)
	}
	copy(mem, "synced")
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		fail(err)
	}
	copy(mem[2*pageSize:], "lost")
	copy(mem[:6], "LOSTXX")
	if err := unix.Msync(mem, unix.MS_ASYNC); err != nil {
		fail(err)
	}
	os.Exit(0) // no munmap, no sync: the dirty pages are the kernel's now
}

// The pattern of atomic file replacement: write a temporary file, fsync,
// rename. A file created and never synced comes back empty.
func TestCreateRenameAndNeverSynced(t *testing.T) {
	backing := t.TempDir()
	l := mount(t, backing)
	dir := filepath.Join(l.Dir(), "sub")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "obj.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("object body"), 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(tmp, filepath.Join(dir, "obj")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "never-synced"), []byte("gone"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file replaced by rename must not keep the old one's unsynced data.
	if err := os.WriteFile(filepath.Join(dir, "old"), []byte("unsynced old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "obj"), filepath.Join(dir, "old")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "old")); string(got) != "object body" {
		t.Fatalf("renamed over: %q", got)
	}
	l.Cut()
	if _, err := os.Stat(dir); !errors.Is(err, syscall.EIO) {
		t.Fatalf("stat after the cut: %v, want EIO", err)
	}
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	l2 := mount(t, backing)
	dir = filepath.Join(l2.Dir(), "sub")
	if got, err := os.ReadFile(filepath.Join(dir, "old")); err != nil || string(got) != "object body" {
		t.Fatalf("synced and renamed file after the cut: %q, %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "never-synced")); err != nil || len(got) != 0 {
		t.Fatalf("never-synced file after the cut: %q, %v; want it present and empty", got, err)
	}
}
