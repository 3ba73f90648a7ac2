package reliability

import (
	"context"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// mountSmallFS makes a fresh ext4 filesystem of sizeMiB in an image file,
// loop-mounts it (as on a Pi's SD card, the data directory is on ext4) and
// unmounts it at cleanup.
func mountSmallFS(t *testing.T, sizeMiB int) string {
	t.Helper()
	needRoot(t, t.Name()+" (loop-mounted ext4)")
	img := filepath.Join(t.TempDir(), "disk.img")
	dir := t.TempDir()
	for _, c := range [][]string{
		{"truncate", "-s", fmt.Sprintf("%dM", sizeMiB), img},
		{"mkfs.ext4", "-q", "-F", "-m", "0", img},
		{"mount", "-o", "loop", img, dir},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s (needs root and e2fsprogs: CI runs as root, make test installs it)", strings.Join(c, " "), err, out)
		}
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

func healthy(addr string) error {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	return nil
}

// fillUntilRefused puts batches of 100 records of 1 KiB until the gateway
// refuses records; it returns the refusal's error code and message.
func fillUntilRefused(t *testing.T, addr string, led *ledger, limit int) (code, msg string) {
	t.Helper()
	kc := kinesisClient(addr, time.Minute)
	for b := 0; b < limit; b++ {
		if code, msg = putFill(kc, led, fmt.Sprintf("f-%d", b)); code != "" {
			return code, msg
		}
	}
	t.Fatalf("%d batches of 100 KiB stored and nothing refused: the filesystem or cap was not reached", limit)
	return "", ""
}

// putFill puts one batch of 100 records of 1 KiB and returns the first
// refusal ("" if all were stored; "request" if the request failed). The
// Go SDK's own connection race (see transient) is retried: the gateway
// answered in full, and a retried record only makes a copy.
func putFill(kc *kinesis.Client, led *ledger, prefix string) (code, msg string) {
	pad := strings.Repeat("f", 1000)
	entries := make([]ktypes.PutRecordsRequestEntry, 100)
	ids := make([]string, len(entries))
	for j := range entries {
		ids[j] = fmt.Sprintf("%s-%d", prefix, j)
		entries[j] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", j)),
			Data: []byte(fmt.Sprintf(`{"id":%q,"pad":%q}`, ids[j], pad))}
	}
	var out *kinesis.PutRecordsOutput
	err := transient(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		out, err = kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("plates"), Records: entries})
		return err
	})
	if err != nil {
		return "request", err.Error()
	}
	for j, r := range out.Records {
		if r.ErrorCode == nil {
			led.add(ids[j], ack{shard: aws.ToString(r.ShardId), seq: aws.ToString(r.SequenceNumber)})
		} else if code == "" {
			code, msg = aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage)
		}
	}
	return code, msg
}

// TestDiskFull puts the data directory on a 16 MiB ext4 with the store's
// cap, store.max_bytes (2MiB), below the filesystem's size: the cap refuses
// records with a retriable InternalFailure that names the cap; the gateway
// keeps running, reads work, a further write is refused cleanly, and after
// a restart everything that was acknowledged is still there.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon on a full disk: make test runs it")
	}
	diskFull(t, "store:\n  max_bytes: 2MiB\n  memtable_size: 1MiB\n", true)
}

// TestDiskFullWithoutCap is the same with no cap: only the filesystem stops
// the writes. The gateway must refuse records with a retriable error, keep
// running and serving reads, and have every acknowledged record after a
// restart. It FAILS as of this commit (a bug report against
// gateway/stream): Badger writes its WAL and tables through shared mmaps,
// and a write to a mapped page the full filesystem cannot back is a
// SIGBUS, so kaiten dies (under systemd: restarts into a full disk).
func TestDiskFullWithoutCap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon on a full disk: make test runs it")
	}
	diskFull(t, "store:\n  memtable_size: 1MiB\n", false)
}

func diskFull(t *testing.T, extra string, capped bool) {
	dir := filepath.Join(mountSmallFS(t, 16), "data")
	cfg := gatewayConfig(t, extra)
	args := []string{"--config", cfg, "--no-sim", "--no-sync", "--mqtt-addr", testutil.FreeAddr(t)}
	d := testutil.StartDaemon(t, dir, args...)
	led := newLedger()
	code, msg := fillUntilRefused(t, d.HTTPAddr, led, 400)
	t.Logf("%d records acknowledged, then refused: %s: %s", led.n.Load(), code, msg)
	alive := true
	wait := time.Duration(0)
	if code == "request" {
		wait = 5 * time.Second // the connection broke: is the process going down?
	}
	select {
	case <-time.After(wait):
	case <-d.Exited():
		alive = false
		t.Errorf("kaiten died when the disk filled (refusal %s: %s); log tail:\n%s", code, msg, tail(d.Log(), 30))
	}
	if alive {
		if code != "InternalFailure" {
			t.Fatalf("refusal code %q (%s), want InternalFailure, which SDKs retry", code, msg)
		}
		if capped && !strings.Contains(msg, "cap") {
			t.Fatalf("refusal message %q does not say the storage cap is reached", msg)
		}
		// Still running, still reading.
		if err := healthy(d.HTTPAddr); err != nil {
			t.Fatalf("not healthy after the disk filled: %v", err)
		}
		recs, _ := readStream(t, d.HTTPAddr, "plates")
		checkAcked(t, "while full", led.snapshot(), recs)
		// One more try either fails cleanly or, when compaction gave space
		// back (the free-space guard keeps a reserve), is stored: what
		// matters is that it is acknowledged only when it is durable.
		if code2, msg2 := putFill(kinesisClient(d.HTTPAddr, time.Minute), led, "again"); code2 != "" && code2 != "InternalFailure" {
			t.Fatalf("second refusal %q (%s), want InternalFailure", code2, msg2)
		}
	}
	// A restart on the full filesystem keeps everything.
	d.Kill()
	p, ok := startOrRefuse(t, dir, testutil.FreeAddr(t), args...)
	if !ok {
		t.Fatalf("kaiten does not start again on the full disk:\n%s", head(p.log(), 25))
	}
	recs, _ := readStream(t, p.httpAddr, "plates")
	checkAcked(t, "after a restart on the full disk", led.snapshot(), recs)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func head(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// TestDiskFullEvictOldest runs the store with store.on_full: evict_oldest
// and a 2 MiB cap on the small ext4, and writes three times the cap through
// the Kinesis API: every write is accepted, the oldest records go (counted
// in kaiten_stream_evicted_records_total), the newest are all readable, no
// record is read that was not written, and a restart reads the same.
func TestDiskFullEvictOldest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the kaiten daemon: make test runs it")
	}
	dir := filepath.Join(mountSmallFS(t, 16), "data")
	// The free-space reserve is kept small: this test is about the cap, on
	// a disk where the default reserve (4 memtables + 4 MiB) is half the disk.
	cfg := gatewayConfig(t, "store:\n  max_bytes: 2MiB\n  on_full: evict_oldest\n  memtable_size: 1MiB\n  min_free_bytes: 1MiB\n")
	args := []string{"--config", cfg, "--no-sim", "--no-sync", "--mqtt-addr", testutil.FreeAddr(t)}
	d := testutil.StartDaemon(t, dir, args...)
	kc := kinesisClient(d.HTTPAddr, time.Minute)
	pad := strings.Repeat("e", 1000)
	led := newLedger()
	var last []string
	for b := 0; b < 60; b++ { // 60 x 100 x ~1 KiB: three times the cap
		entries := make([]ktypes.PutRecordsRequestEntry, 100)
		ids := make([]string, len(entries))
		for j := range entries {
			ids[j] = fmt.Sprintf("e-%d-%d", b, j)
			entries[j] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", j)),
				Data: []byte(fmt.Sprintf(`{"id":%q,"pad":%q}`, ids[j], pad))}
		}
		out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("plates"), Records: entries})
		if err != nil {
			t.Fatalf("batch %d: PutRecords: %v", b, err)
		}
		for j, r := range out.Records {
			if r.ErrorCode != nil {
				t.Fatalf("batch %d record %d refused with evict_oldest: %s %s", b, j, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
			}
			led.add(ids[j], ack{shard: aws.ToString(r.ShardId), seq: aws.ToString(r.SequenceNumber)})
		}
		last = ids
	}
	check := func(when, addr string) int {
		recs, _ := readStream(t, addr, "plates")
		acked := led.snapshot()
		for id, r := range recs {
			a, ok := acked[id]
			if !ok || a.seq != r.seq || a.shard != r.shard {
				t.Fatalf("%s: record %s (%s %s) was never acknowledged as such", when, id, r.shard, r.seq)
			}
		}
		for _, id := range last {
			if _, ok := recs[id]; !ok {
				t.Fatalf("%s: newest record %s was evicted", when, id)
			}
		}
		if len(recs) >= len(acked) {
			t.Fatalf("%s: %d of %d records readable: nothing was evicted over a 2 MiB cap", when, len(recs), len(acked))
		}
		// Oldest first: in each shard, every evicted record is older than
		// every kept one.
		maxGone, minKept := map[string]*big.Int{}, map[string]*big.Int{}
		for id, a := range acked {
			seq, _ := new(big.Int).SetString(a.seq, 10)
			if _, ok := recs[id]; ok {
				if m := minKept[a.shard]; m == nil || seq.Cmp(m) < 0 {
					minKept[a.shard] = seq
				}
			} else if m := maxGone[a.shard]; m == nil || seq.Cmp(m) > 0 {
				maxGone[a.shard] = seq
			}
		}
		for sh, gone := range maxGone {
			if kept := minKept[sh]; kept != nil && gone.Cmp(kept) > 0 {
				t.Fatalf("%s: %s: record %s was evicted but the older %s kept", when, sh, gone, kept)
			}
		}
		return len(recs)
	}
	kept := check("while over the cap", d.HTTPAddr)
	evicted := metricValue(t, d.HTTPAddr, "kaiten_stream_evicted_records_total")
	if int(evicted) != len(led.snapshot())-kept {
		t.Fatalf("kaiten_stream_evicted_records_total = %v, but %d of %d records are gone", evicted, len(led.snapshot())-kept, len(led.snapshot()))
	}
	d.Kill()
	d2 := testutil.StartDaemon(t, dir, args...)
	if again := check("after a restart", d2.HTTPAddr); again != kept {
		t.Fatalf("%d records readable before the restart, %d after", kept, again)
	}
	t.Logf("%d records written over a 2 MiB cap; %d kept, %v evicted oldest first", len(led.snapshot()), kept, evicted)
}

// metricValue reads one unlabelled metric from /metrics.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	t.Fatalf("metric %s not in /metrics", name)
	return 0
}
