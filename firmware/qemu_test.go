package firmware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// syncBuffer collects a child's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// armDaemon is `kaiten run` of an ARM build under qemu-user-static.
type armDaemon struct {
	cmd  *exec.Cmd
	addr string
	out  *syncBuffer
	done chan struct{}
}

func startARM(t *testing.T, qemu, bin, dataDir string, env []string) *armDaemon {
	t.Helper()
	d := &armDaemon{addr: testutil.FreeAddr(t), out: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(qemu, bin, "run", "--data-dir", dataDir, "--http-addr", d.addr)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.out)
		}
	})
	testutil.WaitFor(t, 90*time.Second, func() error {
		select {
		case <-d.done:
			t.Fatalf("kaiten exited before it was healthy:\n%s", d.out)
		default:
		}
		body, err := httpGet("http://" + d.addr + "/healthz")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `"version":"`+testVersion+`"`) {
			return fmt.Errorf("healthz %q lacks the stamped version %s", body, testVersion)
		}
		return nil
	})
	return d
}

// stop sends SIGTERM (qemu-user hands it to the guest) and wants a clean exit.
func (d *armDaemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("kaiten did not stop within 60s:\n%s", d.out)
	}
	if !d.cmd.ProcessState.Success() {
		t.Fatalf("kaiten exited with %s:\n%s", d.cmd.ProcessState, d.out)
	}
	if !strings.Contains(d.out.String(), "store closed") {
		t.Fatalf("no clean store close in the log:\n%s", d.out)
	}
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

func kinesisClient(addr string) *kinesis.Client {
	return testutil.KinesisClient(addr, testutil.KinesisSDKRetries(0))
}

// readAll reads every record of every shard from TRIM_HORIZON and returns
// data -> "shardID/sequenceNumber".
func readAll(t *testing.T, kc *kinesis.Client, name string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	got := map[string]string{}
	for _, sh := range shards.Shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatalf("GetShardIterator: %v", err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(7)})
			if err != nil {
				t.Fatalf("GetRecords: %v", err)
			}
			for _, r := range out.Records {
				if _, dup := got[string(r.Data)]; dup {
					t.Fatalf("record %q read twice", r.Data)
				}
				got[string(r.Data)] = *sh.ShardId + "/" + *r.SequenceNumber
			}
			if len(out.Records) == 0 {
				break // an open shard: caught up
			}
			iter = out.NextShardIterator
		}
	}
	return got
}

func putRecords(t *testing.T, kc *kinesis.Client, name string, from, n int) {
	t.Helper()
	var entries []types.PutRecordsRequestEntry
	for i := from; i < from+n; i++ {
		entries = append(entries, types.PutRecordsRequestEntry{
			Data:         []byte(fmt.Sprintf(`{"store":"demo-store","lane":"%d","plate_type":"salmon","event":"taken","plate_id":"p-%06d"}`, i%5, i)),
			PartitionKey: aws.String(fmt.Sprintf("demo-store/%d", i%5)),
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %d failed: %+v", aws.ToInt32(out.FailedRecordCount), out.Records)
	}
}

// TestARMSmoke runs each packaged ARM binary under qemu-user-static the way
// systemd runs it: READY=1 and watchdog pings over $NOTIFY_SOCKET, records
// put and read back through the Kinesis API with the AWS SDK, a clean stop
// (STOPPING=1), a restart on the same data, and the same records again.
func TestARMSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the ARM binaries under qemu-user: make test runs it")
	}
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			qemu := testutil.LookTool(t, a.qemu)
			bin := filepath.Join(extracted(t, a.name), "usr/bin/kaiten")
			data := t.TempDir()
			sd := testutil.ListenNotify(t, false)
			env := []string{"NOTIFY_SOCKET=" + sd.Path, "WATCHDOG_USEC=1000000"}

			d := startARM(t, qemu, bin, data, env)
			testutil.WaitFor(t, 30*time.Second, func() error {
				l := sd.Lines()
				if len(l) == 0 || l[0] != "READY=1" {
					return fmt.Errorf("notify lines %q, want READY=1 first", l)
				}
				if sd.Count("WATCHDOG=1") < 2 {
					return fmt.Errorf("notify lines %q, want watchdog pings", l)
				}
				return nil
			})
			metrics, err := httpGet("http://" + d.addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{"\nkaiten_systemd_watchdog_pings_total ", "\ngo_goroutines "} {
				if !strings.Contains(metrics, m) {
					t.Fatalf("/metrics lacks %q", m)
				}
			}

			kc := kinesisClient(d.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const stream = "smoke"
			if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(2)}); err != nil {
				t.Fatalf("CreateStream: %v", err)
			}
			testutil.WaitFor(t, 30*time.Second, func() error {
				out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
				if err != nil {
					return err
				}
				if s := out.StreamDescriptionSummary.StreamStatus; s != types.StreamStatusActive {
					return fmt.Errorf("stream %s", s)
				}
				return nil
			})
			putRecords(t, kc, stream, 0, 40)
			first := readAll(t, kc, stream)
			if len(first) != 40 {
				t.Fatalf("read %d records back, want 40", len(first))
			}
			shardsUsed := map[string]bool{}
			for _, v := range first {
				shardsUsed[strings.SplitN(v, "/", 2)[0]] = true
			}
			if len(shardsUsed) != 2 {
				t.Fatalf("40 records over 5 partition keys landed in %d shards", len(shardsUsed))
			}

			d.stop(t)
			if sd.Count("STOPPING=1") != 1 {
				t.Fatalf("notify lines %q, want one STOPPING=1", sd.Lines())
			}

			// Restart on the same data: the same records with the same
			// sequence numbers, and new ones after them.
			d = startARM(t, qemu, bin, data, nil)
			kc = kinesisClient(d.addr)
			again := readAll(t, kc, stream)
			if !equalMaps(first, again) {
				t.Fatalf("after restart the stream reads differently:\nbefore %v\nafter  %v", first, again)
			}
			putRecords(t, kc, stream, 40, 10)
			all := readAll(t, kc, stream)
			if len(all) != 50 {
				t.Fatalf("read %d records, want 50", len(all))
			}
			for k, v := range first {
				if all[k] != v {
					t.Fatalf("record %s moved: %s -> %s", k, v, all[k])
				}
			}
			d.stop(t)
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestARMFirstboot runs `kaiten firstboot` of each ARM build against a
// directory standing in for the boot partition, with the real check-config.
func TestARMFirstboot(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the ARM binaries under qemu-user: make test runs it")
	}
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			qemu := testutil.LookTool(t, a.qemu)
			bin := filepath.Join(extracted(t, a.name), "usr/bin/kaiten")
			boot, etc := t.TempDir(), filepath.Join(t.TempDir(), "kaiten")
			cfg := filepath.Join(etc, "kaiten.yaml")
			firstboot := func() (string, error) {
				cmd := exec.Command(qemu, bin, "firstboot", "--boot-dir", boot, "--config", cfg)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}

			// Nothing on the card: nothing happens.
			if out, err := firstboot(); err != nil || !strings.Contains(out, "nothing to do") {
				t.Fatalf("empty boot dir: %v\n%s", err, out)
			}
			if _, err := os.Stat(cfg); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("config appeared: %v", err)
			}

			// An invalid file is refused with a reason naming the key.
			bad := "store_id: shop-17\nhttp:\n  adr: 0.0.0.0:8080\n"
			if err := os.WriteFile(filepath.Join(boot, "kaiten.yaml"), []byte(bad), 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := firstboot(); err == nil {
				t.Fatalf("invalid config accepted:\n%s", out)
			}
			reason, err := os.ReadFile(filepath.Join(boot, "kaiten-firstboot-error.txt"))
			if err != nil || !strings.Contains(string(reason), "adr") {
				t.Fatalf("reason %q, %v", reason, err)
			}
			if _, err := os.Stat(cfg); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("invalid config installed: %v", err)
			}

			// A valid one is installed with mode 0640 and leaves the card.
			good := "store_id: shop-17\nhttp:\n  addr: 0.0.0.0:8080\nlog:\n  format: json\n"
			if err := os.WriteFile(filepath.Join(boot, "kaiten.yaml"), []byte(good), 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := firstboot(); err != nil || !strings.Contains(out, "installed") {
				t.Fatalf("valid config: %v\n%s", err, out)
			}
			got, err := os.ReadFile(cfg)
			if err != nil || string(got) != good {
				t.Fatalf("installed %q, %v", got, err)
			}
			fi, _ := os.Stat(cfg)
			if fi.Mode().Perm() != 0o640 {
				t.Fatalf("mode %v", fi.Mode().Perm())
			}
			left, _ := os.ReadDir(boot)
			var names []string
			for _, e := range left {
				names = append(names, e.Name())
			}
			sort.Strings(names)
			if len(names) != 0 {
				t.Fatalf("left on the boot partition: %v", names)
			}
			// The installed config is one the daemon accepts.
			out, err := exec.Command(qemu, bin, "check-config", "--config", cfg).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "config ok") {
				t.Fatalf("check-config of the installed config: %v\n%s", err, out)
			}
		})
	}
}

// TestPackagedConfigIsValid checks the conffile the package installs, with
// the ARM build itself.
func TestPackagedConfigIsValid(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the packaged ARM binary under qemu-user: make test runs it")
	}
	a := arches[0]
	qemu := testutil.LookTool(t, a.qemu)
	root := extracted(t, a.name)
	out, err := exec.Command(qemu, filepath.Join(root, "usr/bin/kaiten"), "check-config", "--config",
		filepath.Join(root, "etc/kaiten/kaiten.yaml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "config ok") {
		t.Fatalf("check-config of /etc/kaiten/kaiten.yaml: %v\n%s", err, out)
	}
}
