package reliability

import (
	"context"
	"fmt"
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
	pad := strings.Repeat("f", 1000)
	for b := 0; b < limit; b++ {
		entries := make([]ktypes.PutRecordsRequestEntry, 100)
		ids := make([]string, len(entries))
		for j := range entries {
			ids[j] = fmt.Sprintf("f-%d-%d", b, j)
			entries[j] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", j)),
				Data: []byte(fmt.Sprintf(`{"id":%q,"pad":%q}`, ids[j], pad))}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("plates"), Records: entries})
		cancel()
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
		if code != "" {
			return code, msg
		}
	}
	t.Fatalf("%d batches of 100 KiB stored and nothing refused: the filesystem or cap was not reached", limit)
	return "", ""
}

// TestDiskFull puts the data directory on a 16 MiB ext4 with the store's
// cap, store.max_bytes (2MiB), below the filesystem's size: the cap refuses
// records with a retriable InternalFailure that names the cap; the gateway
// keeps running, reads work, a further write is refused cleanly, and after
// a restart everything that was acknowledged is still there.
func TestDiskFull(t *testing.T) {
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
		// Still refusing, not corrupting: one more try fails cleanly.
		if code2, _ := fillUntilRefused(t, d.HTTPAddr, led, 1); code2 == "" {
			t.Fatal("a write succeeded on a full store")
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
