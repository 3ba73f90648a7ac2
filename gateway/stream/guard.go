package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/table"
)

// ErrCorrupt is returned by Open when the store's files lost data that was
// acknowledged (a damaged SD card, a file cut short): Kaiten refuses to
// start rather than run on with records silently gone.
var ErrCorrupt = errors.New("stream: store damaged")

// The high-water file records, for every shard that ever held a record,
// the last counter acknowledged. It lives beside Badger's files, is
// rewritten after every group commit (a pwrite, no extra fsync: after a
// process crash the page cache has it; after a power cut it is at worst
// older than the data, never ahead), and lets Open notice a store that came
// back with fewer records, or fewer streams, than it acknowledged.
const hwmFile = "KAITEN-HWM"

var hwmMagic = [8]byte{'K', 'A', 'I', 'T', 'E', 'N', 'H', '1'}

type hwmKey struct{ sid, shard uint32 }

func (s *Store) openHWM() error {
	f, err := os.OpenFile(filepath.Join(s.opts.Dir, hwmFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("stream: open %s: %w", hwmFile, err)
	}
	s.hwm = f
	return nil
}

// readHWM returns the recorded high-water marks; a missing, torn or
// foreign file gives none (nothing to compare, never a false alarm).
func readHWM(dir string) map[hwmKey]uint64 {
	b, err := os.ReadFile(filepath.Join(dir, hwmFile))
	if err != nil || len(b) < 16 || [8]byte(b[:8]) != hwmMagic {
		return nil
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum || (len(body)-8)%16 != 0 {
		return nil
	}
	out := map[hwmKey]uint64{}
	for p := body[8:]; len(p) >= 16; p = p[16:] {
		out[hwmKey{binary.BigEndian.Uint32(p[0:4]), binary.BigEndian.Uint32(p[4:8])}] = binary.BigEndian.Uint64(p[8:16])
	}
	return out
}

// writeHWM rewrites the file from the in-memory counters. Writer only.
func (s *Store) writeHWM(sync bool) {
	if s.hwm == nil {
		return
	}
	buf := append(s.hwmBuf[:0], hwmMagic[:]...)
	s.mu.RLock()
	ids := make([]uint32, 0, len(s.streams))
	for id := range s.streams {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		st := s.streams[id]
		if st.meta.Load().Status == StatusDeleting {
			continue
		}
		st.shards.Range(func(_, v any) bool {
			sh := v.(*shardState)
			if last := sh.last.Load(); last > 0 {
				buf = binary.BigEndian.AppendUint32(buf, id)
				buf = binary.BigEndian.AppendUint32(buf, sh.idx)
				buf = binary.BigEndian.AppendUint64(buf, last)
			}
			return true
		})
	}
	s.mu.RUnlock()
	buf = binary.BigEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf))
	s.hwmBuf = buf
	if _, err := s.hwm.WriteAt(buf, 0); err != nil {
		s.log.Warn("writing the high-water file", "err", err)
		return
	}
	if s.hwmLen > len(buf) {
		_ = s.hwm.Truncate(int64(len(buf)))
	}
	s.hwmLen = len(buf)
	if sync {
		_ = s.hwm.Sync()
	}
}

// checkHWM compares what Badger recovered with what was acknowledged.
func (s *Store) checkHWM(recorded map[hwmKey]uint64) error {
	var problems []string
	for k, ctr := range recorded {
		st := s.streams[k.sid]
		if st == nil {
			problems = append(problems, fmt.Sprintf("stream id %d held records up to #%d but its metadata is gone", k.sid, ctr))
			continue
		}
		sh := st.shard(k.shard)
		if sh == nil {
			continue // a closed shard dropped after its retention
		}
		if last := sh.last.Load(); last < ctr {
			problems = append(problems, fmt.Sprintf("%s/%s acknowledged records up to #%d but the store ends at #%d", st.name, sh.id, ctr, last))
			if s.opts.AcceptDataLoss {
				// Never hand a lost record's sequence number out again.
				sh.next = ctr + 1
				sh.last.Store(ctr)
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	if s.opts.AcceptDataLoss {
		s.log.Error("store damaged: starting anyway because accept_data_loss is set; the records listed are lost", "problems", problems)
		return nil
	}
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
	}
	return fmt.Errorf("%w: %s: %v (the data is left as it is; see README \"Recovery\")", ErrCorrupt, s.opts.Dir, problems)
}

// verifyTails reads the newest records of every shard in full, so a value
// log cut short is found at start, not by the first consumer. It returns
// how many shards' tails it read back.
func (s *Store) verifyTails(n int) (int, error) {
	read := 0
	for _, st := range s.streams {
		var err error
		st.shards.Range(func(_, v any) bool {
			sh := v.(*shardState)
			last := sh.last.Load()
			if last == 0 {
				return true
			}
			from := sh.first.Load()
			if last >= uint64(n) && last-uint64(n)+1 > from {
				from = last - uint64(n) + 1
			}
			_, _, err = s.readShard(st, sh, from, n, 1<<30)
			if err != nil {
				err = fmt.Errorf("%w: %s/%s: newest records unreadable: %v", ErrCorrupt, st.name, sh.id, err)
				return false
			}
			read++
			return true
		})
		if err != nil {
			return read, err
		}
	}
	return read, nil
}

// freeBytes is the space left for the store on its filesystem.
func freeBytes(dir string) (uint64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, err
	}
	return uint64(fs.Bavail) * uint64(fs.Bsize), nil
}

// diskUsage is the space the regular files in dir take on disk: blocks
// allocated, so preallocated but unwritten parts of Badger's files count
// for what they hold.
func diskUsage(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += fi.Size()
		}
	}
	return total
}

// diskRoom is the free-space guard: Badger writes through memory-mapped
// files, and a write into a mapping on a full filesystem kills the process
// (SIGBUS). So appends stop, with the retriable ErrFull, while less than
// the reserve is free. The check is cached for 100 ms.
func (s *Store) diskRoom(now time.Time, want int64) error {
	if s.opts.MinFreeBytes < 0 {
		return nil
	}
	if now.Sub(s.freeAt) > 100*time.Millisecond || s.free < uint64(s.opts.MinFreeBytes)+uint64(want) {
		if f, err := freeBytes(s.opts.Dir); err == nil {
			s.free, s.freeAt = f, now
		}
	}
	if s.free < uint64(s.opts.MinFreeBytes)+uint64(want) {
		return fmt.Errorf("%w: the disk has %d bytes free, below the %d kept in reserve", ErrFull, s.free, s.opts.MinFreeBytes)
	}
	return nil
}

// preflight checks the footer of every table the MANIFEST references
// before Badger opens them: Badger opens tables on goroutines of its own
// and panics on a table cut short, which no caller can recover. A table
// ends with its index, the index length (4 bytes), a checksum and the
// checksum length (4 bytes).
//
// Tables the MANIFEST does not reference are left alone: a kill or a power
// cut during a memtable flush or a compaction leaves the new table half
// written before its MANIFEST entry, and Badger deletes such files when it
// opens. A MANIFEST that cannot be read is left for Badger to report.
//
// It also removes empty (0-byte) memtable and value-log files: Badger
// refuses to open a store that has one ("Create a new file"), and a kill
// leaves one in two windows: between creating the next file and sizing
// it, and between truncating a file it is done with (a flushed memtable, a
// value-log file that garbage collection rewrote) and removing it. An
// empty file holds no data; records a damaged file lost are still
// reported, by the high-water check and the read of each shard's newest
// records.
func preflight(dir string, log *slog.Logger) error {
	for _, p := range emptyLogs(dir) {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("stream: remove the empty %s a crash left: %w", filepath.Base(p), err)
		}
		log.Info("store: removed an empty file a crash left while Badger created or deleted it; it held no data", "file", filepath.Base(p))
	}
	ids, err := manifestTables(dir)
	if err != nil {
		return nil
	}
	for _, id := range ids {
		p := table.NewFilename(id, dir)
		if err := checkTableFooter(p); err != nil {
			return fmt.Errorf("%w: table %s: %v", ErrCorrupt, filepath.Base(p), err)
		}
	}
	return nil
}

// emptyLogs lists the empty memtable and value-log files in dir.
func emptyLogs(dir string) []string {
	var out []string
	for _, ext := range []string{".mem", ".vlog"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
		for _, p := range paths {
			if empty(p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func empty(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
}

// manifestTables lists the ids of the tables Badger's MANIFEST in dir
// references, in ascending order, reading the file without opening the
// store. A store without a MANIFEST (a new one) references none.
func manifestTables(dir string) ([]uint64, error) {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A zero Options: no logger (Badger's warnings about tables deleted
	// twice are not ours to print), and the default external magic.
	m, _, err := badger.ReplayManifestFile(f, 0, badger.Options{})
	if err != nil {
		return nil, err
	}
	ids := make([]uint64, 0, len(m.Tables))
	for id := range m.Tables {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

func checkTableFooter(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size < 8 {
		return fmt.Errorf("%d bytes: too short to be a table", size)
	}
	var b [4]byte
	if _, err := f.ReadAt(b[:], size-4); err != nil {
		return err
	}
	cl := int64(binary.BigEndian.Uint32(b[:]))
	if cl > size-8 {
		return fmt.Errorf("checksum length %d does not fit in %d bytes: the file is cut short or overwritten", cl, size)
	}
	if _, err := f.ReadAt(b[:], size-8-cl); err != nil {
		return err
	}
	if il := int64(binary.BigEndian.Uint32(b[:])); il > size-8-cl {
		return fmt.Errorf("index length %d does not fit in %d bytes: the file is cut short or overwritten", il, size)
	}
	return nil
}
