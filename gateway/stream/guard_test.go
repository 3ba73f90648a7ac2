package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fillAndClose writes enough padded records through 1 MiB memtables that
// Badger flushes tables, and closes the store.
func fillAndClose(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(Options{Dir: dir, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "guard", 1)
	pad := make([]byte, 400)
	for i := 0; i < 60; i++ {
		entries := make([]Entry, 100)
		for j := range entries {
			entries[j] = Entry{PartitionKey: fmt.Sprint(j), Data: append([]byte(fmt.Sprintf("%d-%d-", i, j)), pad...)}
		}
		if _, err := s.PutBatch(context.Background(), "guard", entries); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A table file the MANIFEST does not reference is what a kill during a
// flush or a compaction leaves: the store opens, and Badger removes it.
func TestPreflightLeavesUnreferencedTablesToBadger(t *testing.T) {
	dir := t.TempDir()
	fillAndClose(t, dir)
	ids, err := manifestTables(dir)
	if err != nil || len(ids) == 0 {
		t.Fatalf("manifest tables %v, %v: the setup flushed no table", ids, err)
	}
	stray := filepath.Join(dir, fmt.Sprintf("%06d.sst", ids[len(ids)-1]+100))
	if err := os.WriteFile(stray, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Dir: dir, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatalf("open with a half-written unreferenced table: %v", err)
	}
	defer s.Close()
	if got := len(readAll(t, s, "guard", "shardId-000000000000")); got != 6000 {
		t.Fatalf("read %d records, want 6000", got)
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the unreferenced table is still there: %v", err)
	}
}

// A table the MANIFEST references and that is cut short is damage: the
// store refuses to open, naming the table, instead of Badger panicking.
func TestPreflightRefusesReferencedTableCutShort(t *testing.T) {
	dir := t.TempDir()
	fillAndClose(t, dir)
	ids, err := manifestTables(dir)
	if err != nil || len(ids) == 0 {
		t.Fatalf("manifest tables %v, %v: the setup flushed no table", ids, err)
	}
	name := fmt.Sprintf("%06d.sst", ids[0])
	if err := os.Truncate(filepath.Join(dir, name), 0); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Dir: dir, MemTableSize: 1 << 20})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a referenced table cut to 0 bytes: %v, want ErrCorrupt", err)
	}
	if want := "table " + name; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %q", err, want)
	}
}

// A kill between Badger creating its next memtable or value-log file and
// sizing it leaves the newest such file empty, and one between truncating
// a value-log file that garbage collection rewrote and removing it leaves
// an older one empty; the store still opens, with every record.
func TestPreflightRemovesEmptyLogFiles(t *testing.T) {
	// Badger names memtables with 5 digits and value-log files with 6.
	for name, c := range map[string]struct {
		glob, format string
		fid          func(newest int64) int64
	}{
		"newest memtable": {"*.mem", "%05d.mem", func(n int64) int64 { return n + 1 }},
		"newest vlog":     {"*.vlog", "%06d.vlog", func(n int64) int64 { return n + 1 }},
		"older vlog":      {"*.vlog", "%06d.vlog", func(n int64) int64 { return 0 }},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fillAndClose(t, dir)
			newest := int64(0)
			paths, _ := filepath.Glob(filepath.Join(dir, c.glob))
			for _, p := range paths {
				var n int64
				if _, err := fmt.Sscanf(filepath.Base(p), "%d", &n); err == nil && n > newest {
					newest = n
				}
			}
			stray := filepath.Join(dir, fmt.Sprintf(c.format, c.fid(newest)))
			if err := os.WriteFile(stray, nil, 0o640); err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{Dir: dir, MemTableSize: 1 << 20})
			if err != nil {
				t.Fatalf("open with an empty %s: %v", filepath.Base(stray), err)
			}
			defer s.Close()
			if got := len(readAll(t, s, "guard", "shardId-000000000000")); got != 6000 {
				t.Fatalf("read %d records, want 6000", got)
			}
		})
	}
}

// Badger deletes a flushed memtable's file by truncating it, then removing
// it; a kill in between leaves an empty file older than the live one. The
// store opens from such a copy with every record.
func TestPreflightRemovesEmptyFlushedMemtable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "guard", 1)
	entries := make([]Entry, 100)
	for i := range entries {
		entries[i] = Entry{PartitionKey: fmt.Sprint(i), Data: []byte(fmt.Sprint("r", i))}
	}
	if _, err := s.PutBatch(context.Background(), "guard", entries); err != nil {
		t.Fatal(err)
	}
	// What a kill leaves: the files as the page cache has them, with the
	// live memtable's file among them.
	killed := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(killed, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), ".mem") {
			live++
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if live == 0 {
		t.Fatal("the open store has no memtable file to copy")
	}
	if err := os.WriteFile(filepath.Join(killed, "00000.mem"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: killed, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatalf("open with an empty flushed memtable file beside the live one: %v", err)
	}
	defer s.Close()
	if got := len(readAll(t, s, "guard", "shardId-000000000000")); got != 100 {
		t.Fatalf("read %d records, want 100", got)
	}
}
