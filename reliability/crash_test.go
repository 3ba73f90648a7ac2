package reliability

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/reliability/lazyfs"
)

// faultLoop is the crash loop shared by TestCrashLoop and TestPowerLoss.
type faultLoop struct {
	rounds int
	// dataDir returns the data directory for the next start.
	dataDir func() string
	// fault ends a running daemon: a SIGKILL, or a power cut then a kill.
	fault func(d *testutil.Daemon)
	// mqttN and kinN are the numbers of producer goroutines.
	mqttN, kinN int
	// s3, when set, adds a delivery stream to this S3 server's bucket
	// "archive", checked like the local one.
	s3 *s3Server
	// storeConfig is the config's store section ("" for the defaults).
	storeConfig string
	// onTable, when set, makes every other fault strike the moment a new
	// table file appears in the store: Badger is then writing a memtable
	// flush or a compaction's output.
	onTable bool
}

// destinations are the folders holding each delivery stream's objects.
func (f faultLoop) destinations(dataDir string) map[string]string {
	d := map[string]string{"local": filepath.Join(dataDir, "delivered")}
	if f.s3 != nil {
		d["s3"] = filepath.Join(f.s3.Dir, "archive")
	}
	return d
}

func (f faultLoop) run(t *testing.T) {
	var more []string
	if f.s3 != nil {
		more = append(more, f.s3.syncEntry("plates-s3", "archive"))
	}
	cfg := gatewayConfig(t, f.storeConfig, more...)
	mqttAddr := testutil.FreeAddr(t)
	led := newLedger()
	lastSeq := map[string]*big.Int{}
	args := []string{"--config", cfg, "--no-sim", "--mqtt-addr", mqttAddr}
	start := time.Now()
	tableFaults := 0
	for round := 0; round < f.rounds; round++ {
		dir := f.dataDir()
		d := testutil.StartDaemon(t, dir, args...)
		// Every record acknowledged before the fault is there, unchanged.
		recs, last := readStream(t, d.HTTPAddr, "plates")
		checkAcked(t, fmt.Sprintf("after restart %d", round), led.snapshot(), recs)
		for sh, seq := range last {
			if prev, ok := lastSeq[sh]; ok && seq.Cmp(prev) < 0 {
				t.Fatalf("round %d: %s: last sequence number went back from %s to %s", round, sh, prev, seq)
			}
		}
		for name, where := range f.destinations(dir) {
			counts, errObjs := delivered(t, where)
			checkNoDuplicates(t, fmt.Sprintf("%s, after restart %d", name, round), counts, recs)
			if len(errObjs) > 0 {
				t.Fatalf("round %d: delivery to %s wrote error output %v", round, name, errObjs)
			}
		}

		ctx, cancel := context.WithCancel(context.Background())
		before := led.n.Load()
		wg := producers(ctx, t, round, mqttAddr, d.HTTPAddr, f.mqttN, f.kinN, led)
		// Strike at a random moment of the ingest: after a random number of
		// acknowledgements (which also bounds how much each round stores).
		target := int64(50 + rand.IntN(3000))
		testutil.WaitFor(t, time.Minute, func() error {
			if n := led.n.Load() - before; n < target {
				return fmt.Errorf("only %d of %d records acknowledged in round %d", n, target, round)
			}
			return nil
		})
		if f.onTable && round%2 == 1 {
			if testutil.WaitNewFile(filepath.Join(dir, "store"), "*.sst", 20*time.Second) {
				tableFaults++
			}
		}
		f.fault(d)
		cancel()
		wg.Wait()
		// New sequence numbers are above everything stored before the restart.
		for data, a := range led.snapshot() {
			if a.round != round || a.seq == "" {
				continue
			}
			seq, _ := new(big.Int).SetString(a.seq, 10)
			if prev, ok := last[a.shard]; ok && seq.Cmp(prev) <= 0 {
				t.Fatalf("round %d: record %s got %s %s, not above %s stored before the restart", round, data, a.shard, a.seq, prev)
			}
		}
		lastSeq = last
	}
	// Last start: everything acknowledged is there, and once the delivery
	// stream drained, every record of the stream was delivered exactly once.
	dir := f.dataDir()
	d := testutil.StartDaemon(t, dir, args...)
	acked := led.snapshot()
	recs, _ := readStream(t, d.HTTPAddr, "plates")
	checkAcked(t, "at the end", acked, recs)
	waitDrained(t, d.HTTPAddr)
	var counts map[string]int
	for name, where := range f.destinations(dir) {
		c, errObjs := delivered(t, where)
		checkNoDuplicates(t, name+", at the end", c, recs)
		if len(errObjs) > 0 {
			t.Fatalf("delivery to %s wrote error output %v", name, errObjs)
		}
		for id := range recs {
			if c[id] != 1 {
				t.Fatalf("%s, at the end: record %s of the stream delivered %d times, want once", name, id, c[id])
			}
		}
		counts = c
	}
	if err := d.Stop(20 * time.Second); err != nil {
		t.Fatalf("clean stop after the loop: %v", err)
	}
	if f.onTable {
		t.Logf("%d of %d faults struck as Badger wrote a table", tableFaults, f.rounds)
		if tableFaults == 0 {
			t.Fatal("no fault struck while Badger wrote a table: the loop did not exercise flushes")
		}
	}
	t.Logf("%d faults in %s: %d records acknowledged (%d in the stream, some stored but unacknowledged), all present; %d delivered exactly once to each of %d destinations",
		f.rounds, time.Since(start).Round(time.Second), len(acked), len(recs), len(counts), len(f.destinations(dir)))
}

// TestCrashLoop SIGKILLs the full daemon while it ingests over MQTT and the
// Kinesis API and delivers to a local folder and to S3 (versitygw): 20 kills
// in make test (under a minute), 100 with KAITEN_LONG=1 (a few minutes).
// The store runs with 1 MiB memtables, so Badger flushes and compacts every
// few rounds; half the kills land at a random moment, the other half the
// moment a new table file appears (mid-flush or mid-compaction).
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the kaiten daemon, round after round: make test runs it")
	}
	rounds := 20
	if os.Getenv("KAITEN_LONG") != "" {
		rounds = 100
	}
	dir := t.TempDir()
	faultLoop{rounds: rounds, mqttN: 2, kinN: 2, s3: startS3(t, "archive"),
		storeConfig: "store:\n  memtable_size: 1MiB\n", onTable: true,
		dataDir: func() string { return dir },
		fault:   func(d *testutil.Daemon) { d.Kill() },
	}.run(t)
}

// TestPowerLoss runs the crash loop with the data directory on a lazyfs
// mount and power cuts instead of kills: at a random moment every write not
// covered by an fsync is dropped, the daemon is killed, the filesystem
// unmounted and mounted again. Every acknowledged record must survive,
// which holds only if the gateway fsyncs before it acknowledges.
// 15 cuts in make test (under a minute), 60 with KAITEN_LONG=1.
func TestPowerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the kaiten daemon on a FUSE layer and cuts its power: make test runs it")
	}
	needRoot(t, "TestPowerLoss (FUSE)")
	rounds := 15
	if os.Getenv("KAITEN_LONG") != "" {
		rounds = 60
	}
	backing, mnt := t.TempDir(), t.TempDir()
	var cur *lazyfs.FS
	mount := func() string {
		l, err := lazyfs.Mount(backing, mnt, lazyfs.Options{})
		if err != nil {
			t.Fatalf("%v (make test installs fuse3)", err)
		}
		cur = l
		return filepath.Join(mnt, "data")
	}
	var dropped, files int64
	t.Cleanup(func() {
		if cur != nil {
			_ = cur.Unmount()
		}
	})
	faultLoop{rounds: rounds, mqttN: 2, kinN: 2,
		dataDir: func() string {
			if cur != nil {
				return filepath.Join(mnt, "data")
			}
			return mount()
		},
		fault: func(d *testutil.Daemon) {
			dropped += cur.Cut()
			d.Kill()
			st := cur.Stats()
			files += st.DroppedFiles
			if st.Fsyncs == 0 {
				t.Errorf("the daemon never fsynced on the lazyfs mount")
			}
			if err := cur.Unmount(); err != nil {
				t.Fatal(err)
			}
			cur = nil
			mount()
		},
	}.run(t)
	t.Logf("power cuts dropped %d unsynced bytes in %d files in all", dropped, files)
}
