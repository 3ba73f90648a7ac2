//go:build linux && (amd64 || arm64)

package lazyfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// pageSize is the granularity of the unsynced-data overlay.
const pageSize = 4096

// FS is a mounted lazy filesystem.
type FS struct {
	backing, mnt string
	server       *fuse.Server

	// mu is held for reading by every request and for writing by Cut, so
	// that a cut never lands in the middle of an fsync.
	mu   sync.RWMutex
	dead bool

	// files holds the data state of every file that was ever written,
	// keyed by inode number and generation (from the birth time, so a
	// recycled inode number is a new key): go-fuse may build several node
	// objects for one file (a lookup builds a fresh one before it is
	// matched with the tree), so the state cannot live in the node.
	filesMu sync.Mutex
	files   map[fileKey]*fileState

	writes, fsyncs, synced, dropped, droppedFiles atomic.Int64
}

// Mount serves backing at mountpoint (both must exist). Call Unmount when
// done, also after Cut.
func Mount(backing, mountpoint string, o Options) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("%w: /dev/fuse: %v (the kernel's fuse module is needed)", ErrMount, err)
	}
	l := &FS{backing: backing, mnt: mountpoint, files: map[fileKey]*fileState{}}
	root := &fs.LoopbackRoot{Path: backing}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: backing %s: %w", backing, err)
	}
	root.Dev = uint64(st.Dev)
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, lfs: l}
	}
	rootNode := root.NewNode(root, nil, "", &st)
	root.RootNode = rootNode
	sec := time.Second
	opts := &fs.Options{EntryTimeout: &sec, AttrTimeout: &sec}
	opts.MountOptions = fuse.MountOptions{
		FsName: "lazyfs:" + backing, Name: "lazyfs", Debug: o.Debug,
		DirectMount: os.Geteuid() == 0, // root mounts with mount(2); others need fusermount3
		// Nothing but this mount changes the backing files, so the kernel's
		// page cache stays valid; automatic invalidation on an mtime change
		// would throw away dirty pages of shared mmaps (Badger's logs).
		ExplicitDataCacheControl: true,
	}
	server, err := fs.Mount(mountpoint, rootNode, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s on %s: %v (needs root, or fusermount3 from Debian's fuse3, and /dev/fuse)", ErrMount, backing, mountpoint, err)
	}
	l.server = server
	return l, nil
}

// Dir is the mount point.
func (l *FS) Dir() string { return l.mnt }

// Backing is the backing directory.
func (l *FS) Backing() string { return l.backing }

// Cut simulates a power cut: every write not yet covered by an fsync is
// thrown away, and from now on every request on the mount fails with EIO
// (the machine is off) until the backing directory is mounted again. Cut
// waits for requests in progress, so an fsync either completed before the
// cut or failed. It returns the number of unsynced bytes dropped.
func (l *FS) Cut() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return 0
	}
	l.dead = true
	l.filesMu.Lock()
	defer l.filesMu.Unlock()
	var n int64
	for _, fsd := range l.files {
		fsd.mu.Lock()
		if fsd.d != nil {
			n += int64(len(fsd.d.pages)) * pageSize
			l.droppedFiles.Add(1)
			fsd.d = nil
		}
		fsd.mu.Unlock()
	}
	l.files = map[fileKey]*fileState{}
	l.dropped.Add(n)
	return n
}

// Unmount unmounts the filesystem. Unsynced data still held (when Cut was
// not called) is dropped as well: unmounting without syncing is a power
// cut too. If the mount is busy, it is detached lazily.
func (l *FS) Unmount() error {
	l.Cut()
	if err := l.server.Unmount(); err != nil {
		if derr := syscall.Unmount(l.mnt, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("lazyfs: unmount %s: %v; lazy unmount: %w", l.mnt, err, derr)
		}
		done := make(chan struct{})
		go func() { l.server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("lazyfs: %s detached but its server still runs (files still open)", l.mnt)
		}
	}
	return nil
}

// Stats returns the counters.
func (l *FS) Stats() Stats {
	return Stats{Writes: l.writes.Load(), Fsyncs: l.fsyncs.Load(), SyncedBytes: l.synced.Load(),
		DroppedBytes: l.dropped.Load(), DroppedFiles: l.droppedFiles.Load()}
}

// enter admits a request; the caller must call l.mu.RUnlock when it returns OK.
func (l *FS) enter() syscall.Errno {
	l.mu.RLock()
	if l.dead {
		l.mu.RUnlock()
		return syscall.EIO
	}
	return fs.OK
}

// fileKey identifies a file: go-fuse's stable inode number and generation.
type fileKey struct{ ino, gen uint64 }

func keyOf(in *fs.Inode) fileKey {
	a := in.StableAttr()
	return fileKey{a.Ino, a.Gen}
}

// state returns the data state of file ino; with create false it may
// return nil (the file was never written through this mount).
func (l *FS) state(ino fileKey, create bool) *fileState {
	l.filesMu.Lock()
	defer l.filesMu.Unlock()
	st := l.files[ino]
	if st == nil && create {
		st = &fileState{l: l}
		l.files[ino] = st
	}
	return st
}

// forget drops the state of file ino when its backing file is gone.
func (l *FS) forget(ino fileKey) {
	l.filesMu.Lock()
	st := l.files[ino]
	delete(l.files, ino)
	l.filesMu.Unlock()
	if st != nil {
		st.mu.Lock()
		st.d = nil
		st.mu.Unlock()
	}
}

// fileState is one file's data state.
type fileState struct {
	l  *FS
	mu sync.Mutex
	d  *dirtyData // nil when everything is synced
}

// dirtyData is a file's unsynced state.
type dirtyData struct {
	// size is the file's size as programs see it.
	size int64
	// base is how much of the backing file still shows through: its size
	// when the file became dirty, lowered by every truncation since. Bytes
	// at or past base that no page covers read as zeros.
	base  int64
	pages map[int64][]byte // page index -> pageSize bytes
}

// node is a file or directory. Its unsynced data lives in its fileState.
type node struct {
	fs.LoopbackNode
	lfs *FS
}

// st returns the node's data state.
func (n *node) st() *fileState { return n.lfs.state(keyOf(n.EmbeddedInode()), true) }

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeReaddirer      = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.FileReader         = (*file)(nil)
	_ fs.FileWriter         = (*file)(nil)
	_ fs.FileFsyncer        = (*file)(nil)
	_ fs.FileFlusher        = (*file)(nil)
	_ fs.FileReleaser       = (*file)(nil)
	_ fs.FileGetattrer      = (*file)(nil)
	_ fs.FileAllocater      = (*file)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// backingPath is the node's path in the backing directory.
func (n *node) backingPath() string {
	root := n.LoopbackNode.RootData.RootNode.EmbeddedInode()
	return filepath.Join(n.LoopbackNode.RootData.Path, n.Path(root))
}

// fixSize reports the size programs see for file ino, if it is dirty.
func (l *FS) fixSize(ino fileKey, a *fuse.Attr) {
	if st := l.state(ino, false); st != nil {
		st.mu.Lock()
		if st.d != nil {
			a.Size = uint64(st.d.size)
			a.Blocks = (a.Size + 511) / 512
		}
		st.mu.Unlock()
	}
}

// dirtyLocked returns the dirty state, starting it from the backing file's
// size. n.mu is held.
func (n *fileState) dirtyLocked(fd int) (*dirtyData, syscall.Errno) {
	if n.d != nil {
		return n.d, fs.OK
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	n.d = &dirtyData{size: st.Size, base: st.Size, pages: map[int64][]byte{}}
	return n.d, fs.OK
}

// page returns page p for writing, loading it from the backing file.
func (n *fileState) page(fd int, d *dirtyData, p int64) ([]byte, syscall.Errno) {
	if pg, ok := d.pages[p]; ok {
		return pg, fs.OK
	}
	pg := make([]byte, pageSize)
	if errno := readBacking(fd, pg, p*pageSize, d.base); errno != fs.OK {
		return nil, errno
	}
	d.pages[p] = pg
	return pg, fs.OK
}

// readBacking fills buf from the backing file at off, with zeros at and
// past limit and past the backing file's end.
func readBacking(fd int, buf []byte, off, limit int64) syscall.Errno {
	clear(buf)
	want := int64(len(buf))
	if off >= limit {
		return fs.OK
	}
	if off+want > limit {
		want = limit - off
	}
	got := int64(0)
	for got < want {
		m, err := syscall.Pread(fd, buf[got:want], off+got)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fs.ToErrno(err)
		}
		if m == 0 {
			break
		}
		got += int64(m)
	}
	return fs.OK
}

func (n *fileState) write(fd int, data []byte, off int64) (uint32, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, errno := n.dirtyLocked(fd)
	if errno != fs.OK {
		return 0, errno
	}
	for done := 0; done < len(data); {
		pos := off + int64(done)
		pg, errno := n.page(fd, d, pos/pageSize)
		if errno != fs.OK {
			return uint32(done), errno
		}
		done += copy(pg[pos%pageSize:], data[done:])
	}
	if end := off + int64(len(data)); end > d.size {
		d.size = end
	}
	return uint32(len(data)), fs.OK
}

func (n *fileState) read(fd int, buf []byte, off int64) (int, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.d
	if d == nil {
		for {
			m, err := syscall.Pread(fd, buf, off)
			if err == syscall.EINTR {
				continue
			}
			return m, fs.ToErrno(err)
		}
	}
	if off >= d.size {
		return 0, fs.OK
	}
	if rem := d.size - off; int64(len(buf)) > rem {
		buf = buf[:rem]
	}
	for done := 0; done < len(buf); {
		pos := off + int64(done)
		p, in := pos/pageSize, pos%pageSize
		chunk := buf[done:]
		if len(chunk) > int(pageSize-in) {
			chunk = chunk[:pageSize-in]
		}
		if pg, ok := d.pages[p]; ok {
			copy(chunk, pg[in:])
		} else if errno := readBacking(fd, chunk, pos, d.base); errno != fs.OK {
			return done, errno
		}
		done += len(chunk)
	}
	return len(buf), fs.OK
}

func (n *fileState) truncate(fd int, size int64) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, errno := n.dirtyLocked(fd)
	if errno != fs.OK {
		return errno
	}
	if size < d.size {
		if size < d.base {
			d.base = size
		}
		for p, pg := range d.pages {
			switch {
			case p*pageSize >= size:
				delete(d.pages, p)
			case (p+1)*pageSize > size:
				clear(pg[size-p*pageSize:])
			}
		}
	}
	d.size = size
	return fs.OK
}

// sync writes the unsynced data to the backing file: what fsync makes durable.
func (n *fileState) sync(fd int) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.d
	if d == nil {
		return fs.OK
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	if d.base < st.Size {
		if err := syscall.Ftruncate(fd, d.base); err != nil {
			return fs.ToErrno(err)
		}
	}
	idx := make([]int64, 0, len(d.pages))
	for p := range d.pages {
		if p*pageSize < d.size {
			idx = append(idx, p)
		}
	}
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	var written int64
	for _, p := range idx {
		pg := d.pages[p]
		if end := d.size - p*pageSize; end < pageSize {
			pg = pg[:end]
		}
		for off := 0; off < len(pg); {
			m, err := syscall.Pwrite(fd, pg[off:], p*pageSize+int64(off))
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return fs.ToErrno(err)
			}
			off += m
		}
		written += int64(len(pg))
	}
	if err := syscall.Ftruncate(fd, d.size); err != nil {
		return fs.ToErrno(err)
	}
	n.d = nil
	n.l.synced.Add(written)
	return fs.OK
}

// openBacking opens the backing file read-write: every handle may have to
// read pages for a write, or flush for an fsync, whatever its own mode.
func openBacking(path string, flags uint32, create bool, mode uint32) (int, error) {
	f := int(flags)&^(syscall.O_ACCMODE|syscall.O_APPEND|syscall.O_TRUNC|fuse.FMODE_EXEC|syscall.O_CREAT|syscall.O_EXCL) | syscall.O_RDWR | syscall.O_CLOEXEC
	if create {
		f |= syscall.O_CREAT | int(flags)&syscall.O_EXCL
	}
	for {
		fd, err := syscall.Open(path, f, mode)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EISDIR || err == syscall.EACCES {
			// A directory or a file we may not write: fall back to its own mode.
			fd, err = syscall.Open(path, int(flags)&^(syscall.O_APPEND|fuse.FMODE_EXEC|syscall.O_TRUNC)|syscall.O_CLOEXEC, mode)
		}
		return fd, err
	}
}

// Lookup implements fs.NodeLookuper.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.enter(); errno != fs.OK {
		return nil, errno
	}
	defer n.lfs.mu.RUnlock()
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == fs.OK {
		n.lfs.fixSize(keyOf(ch), &out.Attr)
	}
	return ch, errno
}

// Open implements fs.NodeOpener.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lfs.enter(); errno != fs.OK {
		return nil, 0, errno
	}
	defer n.lfs.mu.RUnlock()
	fd, err := openBacking(n.backingPath(), flags, false, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	f := &file{l: n.lfs, ino: keyOf(n.EmbeddedInode()), fd: fd}
	if flags&syscall.O_TRUNC != 0 {
		if errno := f.st().truncate(fd, 0); errno != fs.OK {
			syscall.Close(fd)
			return nil, 0, errno
		}
	}
	return f, 0, fs.OK
}

// Create implements fs.NodeCreater. The new name reaches the backing
// directory at once; the data is unsynced as with any write.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lfs.enter(); errno != fs.OK {
		return nil, nil, 0, errno
	}
	defer n.lfs.mu.RUnlock()
	p := filepath.Join(n.backingPath(), name)
	fd, err := openBacking(p, flags, true, mode)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	syscall.Close(fd)
	// Let the loopback build the inode exactly as Lookup would.
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno != fs.OK {
		return nil, nil, 0, errno
	}
	ino := keyOf(ch)
	fd, err = openBacking(p, flags, false, 0)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	f := &file{l: n.lfs, ino: ino, fd: fd}
	if flags&syscall.O_TRUNC != 0 {
		if errno := f.st().truncate(fd, 0); errno != fs.OK {
			syscall.Close(fd)
			return nil, nil, 0, errno
		}
	}
	n.lfs.fixSize(ino, &out.Attr)
	return ch, f, 0, fs.OK
}

// Getattr implements fs.NodeGetattrer.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.lfs.enter(); errno != fs.OK {
		return errno
	}
	defer n.lfs.mu.RUnlock()
	if errno := n.LoopbackNode.Getattr(ctx, f, out); errno != fs.OK {
		return errno
	}
	n.lfs.fixSize(keyOf(n.EmbeddedInode()), &out.Attr)
	return fs.OK
}

// Statx implements fs.NodeStatxer.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if errno := n.lfs.enter(); errno != fs.OK {
		return errno
	}
	defer n.lfs.mu.RUnlock()
	var st unix.Statx_t
	var err error
	if lf, ok := f.(*file); ok {
		err = unix.Statx(lf.fd, "", unix.AT_EMPTY_PATH|int(flags), int(mask), &st)
	} else {
		err = unix.Statx(unix.AT_FDCWD, n.backingPath(), unix.AT_SYMLINK_NOFOLLOW|int(flags), int(mask), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatx(&st)
	if fst := n.lfs.state(keyOf(n.EmbeddedInode()), false); fst != nil {
		fst.mu.Lock()
		if fst.d != nil {
			out.Statx.Size = uint64(fst.d.size)
			out.Statx.Blocks = (out.Statx.Size + 511) / 512
		}
		fst.mu.Unlock()
	}
	return fs.OK
}

// Setattr implements fs.NodeSetattrer: a size change is unsynced data;
// mode, owner and times pass through.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.lfs.enter(); errno != fs.OK {
		return errno
	}
	defer n.lfs.mu.RUnlock()
	if sz, ok := in.GetSize(); ok {
		fd, owned := -1, false
		if lf, ok := f.(*file); ok {
			fd = lf.fd
		} else {
			var err error
			if fd, err = openBacking(n.backingPath(), syscall.O_RDWR, false, 0); err != nil {
				return fs.ToErrno(err)
			}
			owned = true
		}
		errno := n.st().truncate(fd, int64(sz))
		if owned {
			syscall.Close(fd)
		}
		if errno != fs.OK {
			return errno
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	if errno := n.LoopbackNode.Setattr(ctx, f, in, out); errno != fs.OK {
		return errno
	}
	n.lfs.fixSize(keyOf(n.EmbeddedInode()), &out.Attr)
	return fs.OK
}

// Unlink implements fs.NodeUnlinker.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.lfs.enter(); errno != fs.OK {
		return errno
	}
	defer n.lfs.mu.RUnlock()
	victim := n.GetChild(name)
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == fs.OK && victim != nil {
		n.lfs.forget(keyOf(victim))
	}
	return errno
}

// Rename implements fs.NodeRenamer.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := n.lfs.enter(); errno != fs.OK {
		return errno
	}
	defer n.lfs.mu.RUnlock()
	src := n.GetChild(name)
	victim := newParent.EmbeddedInode().GetChild(newName)
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == fs.OK && victim != nil && src != nil && keyOf(victim) != keyOf(src) && flags&unix.RENAME_EXCHANGE == 0 {
		n.lfs.forget(keyOf(victim))
	}
	return errno
}

// Mkdir implements fs.NodeMkdirer.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.enter(); errno != fs.OK {
		return nil, errno
	}
	defer n.lfs.mu.RUnlock()
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

// Rmdir implements fs.NodeRmdirer.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := n.lfs.enter(); errno != fs.OK {
		return errno
	}
	defer n.lfs.mu.RUnlock()
	return n.LoopbackNode.Rmdir(ctx, name)
}

// Readdir implements fs.NodeReaddirer.
func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if errno := n.lfs.enter(); errno != fs.OK {
		return nil, errno
	}
	defer n.lfs.mu.RUnlock()
	return n.LoopbackNode.Readdir(ctx)
}

// OpendirHandle implements fs.NodeOpendirHandler.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lfs.enter(); errno != fs.OK {
		return nil, 0, errno
	}
	defer n.lfs.mu.RUnlock()
	return n.LoopbackNode.OpendirHandle(ctx, flags)
}

// Statfs implements fs.NodeStatfser.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if errno := n.lfs.enter(); errno != fs.OK {
		return errno
	}
	defer n.lfs.mu.RUnlock()
	return n.LoopbackNode.Statfs(ctx, out)
}

// CopyFileRange implements fs.NodeCopyFileRanger: not offered, so that the
// kernel falls back to reads and writes that go through the overlay.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

// file is an open file: a read-write descriptor of the backing file. Data
// goes through the node's overlay.
type file struct {
	l    *FS
	ino  fileKey
	fd   int
	once sync.Once
}

func (f *file) st() *fileState { return f.l.state(f.ino, true) }

// Read implements fs.FileReader.
func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if errno := f.l.enter(); errno != fs.OK {
		return nil, errno
	}
	defer f.l.mu.RUnlock()
	m, errno := f.st().read(f.fd, buf, off)
	if errno != fs.OK {
		return nil, errno
	}
	return fuse.ReadResultData(buf[:m]), fs.OK
}

// Write implements fs.FileWriter.
func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := f.l.enter(); errno != fs.OK {
		return 0, errno
	}
	defer f.l.mu.RUnlock()
	f.l.writes.Add(1)
	return f.st().write(f.fd, data, off)
}

// Fsync implements fs.FileFsyncer: the file's unsynced data becomes durable.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if errno := f.l.enter(); errno != fs.OK {
		return errno
	}
	defer f.l.mu.RUnlock()
	f.l.fsyncs.Add(1)
	return f.st().sync(f.fd)
}

// Allocate implements fs.FileAllocater for plain fallocate (which may grow
// the file) and FALLOC_FL_KEEP_SIZE (a no-op here).
func (f *file) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	if errno := f.l.enter(); errno != fs.OK {
		return errno
	}
	defer f.l.mu.RUnlock()
	switch mode {
	case 0:
		st := f.st()
		st.mu.Lock()
		d, errno := st.dirtyLocked(f.fd)
		grow := errno == fs.OK && int64(off+size) > d.size
		if grow {
			d.size = int64(off + size)
		}
		st.mu.Unlock()
		return errno
	case unix.FALLOC_FL_KEEP_SIZE:
		return fs.OK
	}
	return syscall.EOPNOTSUPP
}

// Getattr implements fs.FileGetattrer.
func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	f.l.fixSize(f.ino, &out.Attr)
	return fs.OK
}

// Flush implements fs.FileFlusher (close(2) on a descriptor): nothing to do,
// closing does not sync.
func (f *file) Flush(ctx context.Context) syscall.Errno {
	if errno := f.l.enter(); errno != fs.OK {
		return errno
	}
	f.l.mu.RUnlock()
	return fs.OK
}

// Release implements fs.FileReleaser. It works after a cut too, so that
// descriptors are not leaked.
func (f *file) Release(ctx context.Context) syscall.Errno {
	f.once.Do(func() { syscall.Close(f.fd) })
	return fs.OK
}
