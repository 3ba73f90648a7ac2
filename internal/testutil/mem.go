package testutil

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Mem is a process's resident memory as Linux counts it in
// /proc/<pid>/status, in kB.
type Mem struct {
	RSS  int64 // VmRSS: every resident page
	Peak int64 // VmHWM: the highest RSS so far
	// Anon is RssAnon, the process's own memory (Go heap, stacks): what
	// a leak makes grow.
	Anon int64
	// File is RssFile: pages of mapped files, such as Badger's tables and
	// value log, which the kernel reclaims under pressure.
	File int64
}

// ReadMem samples the resident memory of process pid (os.Getpid() for the
// test itself). It fails the test when the process's status cannot be
// read or lacks a figure (the process has ended), so that a memory limit
// is never checked against a zero.
func ReadMem(t testing.TB, pid int) Mem {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("memory of process %d: %v", pid, err)
	}
	var m Mem
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.Peak, "RssAnon": &m.Anon, "RssFile": &m.File}
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		p := fields[name]
		if !ok || p == nil {
			continue
		}
		v := strings.Fields(rest) // "12345 kB"
		if len(v) == 0 {
			continue
		}
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			t.Fatalf("memory of process %d: %s: %v", pid, l, err)
		}
		*p = n
		found++
	}
	if found != len(fields) {
		t.Fatalf("memory of process %d: /proc/%d/status has %d of VmRSS, VmHWM, RssAnon and RssFile (has it ended?)", pid, pid, found)
	}
	return m
}
