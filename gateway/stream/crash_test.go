package stream

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// TestCrashLoop really crashes: a child process appends continuously and
// reports each acknowledged record; the parent kills it with SIGKILL,
// reopens the store and checks that every acknowledged record is there with
// the same sequence number and data, and that sequence numbers keep
// increasing after recovery. The child runs with 1 MiB memtables and
// padded records, so Badger flushes and compacts often; every other round
// the kill lands the moment a new table file appears (a memtable flush or
// a compaction writing its output), the rest after a random number of
// acknowledgements.
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process writing to the store, round after round: make test runs it")
	}
	if dir := os.Getenv("KAITEN_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	rounds := 30
	if os.Getenv("KAITEN_LONG") != "" {
		rounds = 100
	}
	dir := t.TempDir()
	type ack struct{ seq, data string }
	acked := map[string][]ack{} // shard -> acks in order
	tableKills := 0
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLoop$", "-test.count=1")
		cmd.Env = append(os.Environ(), "KAITEN_CRASH_CHILD="+dir, fmt.Sprintf("KAITEN_CRASH_ROUND=%d", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var killOnce sync.Once
		killed := false
		kill := func() {
			killOnce.Do(func() {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			})
		}
		onTable := round%2 == 0
		watchDone := make(chan bool, 1)
		if onTable {
			go func() {
				appeared := testutil.WaitNewFile(dir, "*.sst", 20*time.Second)
				kill()
				watchDone <- appeared
			}()
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		n := 0
		killAfter := 50 + rand.IntN(400)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 5 || f[0] != "ACK" || f[4] != "END" {
				continue // a line torn by the kill
			}
			acked[f[1]] = append(acked[f[1]], ack{f[2], f[3]})
			n++
			if n == killAfter && !onTable {
				kill()
			}
		}
		_ = cmd.Wait()
		if onTable && <-watchDone {
			tableKills++
		}
		if !killed {
			t.Fatalf("round %d: child exited before the kill after %d acks", round, n)
		}
		// Reopen and check every acknowledged record.
		s, err := Open(Options{Dir: dir, MemTableSize: 1 << 20})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		for shard, acks := range acked {
			recs := readAll(t, s, "crash", shard)
			bySeq := make(map[string]string, len(recs))
			for i, r := range recs {
				bySeq[r.SequenceNumber] = string(r.Data)
				if i > 0 && !seqLess(recs[i-1].SequenceNumber, r.SequenceNumber) {
					t.Fatalf("round %d: %s: sequence numbers not increasing at %d", round, shard, i)
				}
			}
			for _, a := range acks {
				if got, ok := bySeq[a.seq]; !ok || got != a.data {
					t.Fatalf("round %d: %s: acknowledged record %s (%s) lost or changed (got %q)", round, shard, a.seq, a.data, got)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for _, a := range acked {
		total += len(a)
	}
	t.Logf("%d rounds (%d killed as a table file appeared), %d acknowledged records all present", rounds, tableKills, total)
	if tableKills == 0 {
		t.Fatal("no round killed the child while Badger wrote a table: the test did not exercise flushes")
	}
}

func crashChild(dir string) {
	// Small memtables and padded records: a flush every few thousand
	// records, and compactions as the tables add up.
	s, err := Open(Options{Dir: dir, MemTableSize: 1 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	_ = s.CreateStream(ctx, StreamConfig{Name: "crash", ShardCount: 3})
	round := os.Getenv("KAITEN_CRASH_ROUND")
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for p := 0; p < 6; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; ; i++ {
				data := fmt.Sprintf("r%s-p%d-%d-%s", round, p, i, crashPad)
				if i%5 == 0 {
					entries := make([]Entry, 10)
					for j := range entries {
						entries[j] = Entry{PartitionKey: fmt.Sprint(p, j), Data: []byte(fmt.Sprintf("%s.%d", data, j))}
					}
					res, err := s.PutBatch(ctx, "crash", entries)
					if err != nil {
						continue
					}
					mu.Lock()
					for j, r := range res {
						if r.Err == nil {
							fmt.Fprintf(w, "ACK %s %s %s END\n", r.ShardID, r.SequenceNumber, entries[j].Data)
						}
					}
					w.Flush()
					mu.Unlock()
					continue
				}
				r, err := s.Put(ctx, "crash", Entry{PartitionKey: fmt.Sprint(p, i%7), Data: []byte(data)})
				if err != nil {
					continue
				}
				mu.Lock()
				fmt.Fprintf(w, "ACK %s %s %s END\n", r.ShardID, r.SequenceNumber, data)
				w.Flush()
				mu.Unlock()
			}
		}(p)
	}
	time.Sleep(time.Minute) // the parent kills us long before this
	os.Exit(4)
}

// crashPad makes the child's records about 200 bytes.
var crashPad = strings.Repeat("x", 180)
