package testutil

import (
	"os"
	"testing"
)

func TestReadMem(t *testing.T) {
	m := ReadMem(t, os.Getpid())
	if m.RSS <= 0 || m.Anon <= 0 || m.Peak < m.RSS {
		t.Fatalf("implausible memory of the test process: %+v", m)
	}
	// VmRSS is RssAnon + RssFile + RssShmem.
	if m.Anon+m.File > m.RSS {
		t.Fatalf("RssAnon + RssFile above VmRSS: %+v", m)
	}
}
