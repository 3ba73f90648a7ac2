package firmware

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// vmAgent talks to firmware/bootvm/guest.sh over the VM's virtio serial port.
type vmAgent struct {
	conn  net.Conn
	lines chan string
}

func (a *vmAgent) expect(t *testing.T, prefix string, wait time.Duration) string {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				t.Fatalf("the VM closed the control channel while waiting for %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("no %q from the VM within %s", prefix, wait)
		}
	}
}

// do sends a command and returns its output lines and exit code.
func (a *vmAgent) do(t *testing.T, cmd string, wait time.Duration) (map[string]string, string, int) {
	t.Helper()
	if _, err := fmt.Fprintln(a.conn, cmd); err != nil {
		t.Fatal(err)
	}
	name := strings.Fields(cmd)[0]
	var out []string
	deadline := time.After(wait)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				t.Fatalf("the VM closed the control channel during %q", cmd)
			}
			if strings.HasPrefix(l, "| ") {
				out = append(out, l[2:])
				continue
			}
			var rc int
			if _, err := fmt.Sscanf(l, "DONE "+name+" %d", &rc); err == nil {
				kv := map[string]string{}
				for _, o := range out {
					if k, v, ok := strings.Cut(o, "="); ok {
						kv[k] = strings.TrimSpace(v)
					}
				}
				return kv, strings.Join(out, "\n"), rc
			}
		case <-deadline:
			t.Fatalf("%q did not finish within %s; output so far:\n%s", cmd, wait, strings.Join(out, "\n"))
		}
	}
}

// TestBootVM is the moonshot: a Debian arm64 system (Debian's own kernel, a
// debootstrapped root) boots under qemu-system-aarch64 with a FAT "boot
// partition" carrying kaiten.yaml; the package is installed with dpkg and
// systemd starts the gateway, which takes the boot partition's config,
// answers /healthz and stores records; then an upgrade to a newer package
// keeps the records and the config, remove keeps the data, purge deletes it.
// Run with make test-boot.
func TestBootVM(t *testing.T) {
	if os.Getenv("KAITEN_LONG") == "" {
		t.Skip("soak: make test-long")
	}
	start := time.Now()
	for _, tool := range []string{"qemu-system-aarch64", "debootstrap", "debugfs", "mkfs.ext4", "mkfs.vfat", "mcopy"} {
		testutil.LookTool(t, tool)
	}
	root := testutil.RepoRoot(t)
	work := t.TempDir()

	// Two versions of the arm64 package.
	versions := []string{"v0.0.1-vm1", "v0.0.2-vm2"}
	var debs []string
	for _, v := range versions {
		out := filepath.Join(work, "dist-"+v)
		cmd := exec.Command("./firmware/build.sh", out)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "VERSION="+v, "ARCHES=arm64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build.sh: %v\n%s", err, b)
		}
		m, _ := filepath.Glob(filepath.Join(out, "*.deb"))
		if len(m) != 1 {
			t.Fatalf("packages %v", m)
		}
		debs = append(debs, m[0])
	}

	img := baseImage(t, root)
	t.Logf("base image ready after %s", time.Since(start).Round(time.Second))
	rootImg := filepath.Join(work, "root.img")
	mustRun(t, "cp", "--sparse=always", img.root, rootImg)

	// The boot partition, as a person leaves it after writing kaiten.yaml;
	// the packages travel on it too.
	bootImg := filepath.Join(work, "boot.img")
	mustRun(t, "truncate", "-s", "128M", bootImg)
	mustRun(t, "mkfs.vfat", "-n", "BOOTFS", bootImg)
	cfg := filepath.Join(work, "kaiten.yaml")
	if err := os.WriteFile(cfg, []byte("store_id: vm-test\r\nhttp:\r\n  addr: 0.0.0.0:8080\r\nkinesis:\r\n  auth:\r\n    allow_remote_unsigned: true\r\nsim:\r\n  enabled: false\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mcopy", "-i", bootImg, cfg, "::kaiten.yaml")
	for i, d := range debs {
		mustRun(t, "mcopy", "-i", bootImg, d, fmt.Sprintf("::pkg-%d.deb", i+1))
	}

	port := strings.Split(testutil.FreeAddr(t), ":")[1]
	ctl := filepath.Join(work, "ctl.sock")
	console := filepath.Join(work, "console.log")
	qemu := exec.Command("qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1024",
		"-nographic", "-monitor", "none", "-serial", "file:"+console,
		"-kernel", img.kernel, "-initrd", img.initrd,
		"-append", "root=LABEL=kaitenroot rw console=ttyAMA0 quiet",
		"-drive", "if=none,id=root,format=raw,file="+rootImg, "-device", "virtio-blk-pci,drive=root",
		"-drive", "if=none,id=boot,format=raw,file="+bootImg, "-device", "virtio-blk-pci,drive=boot",
		// restrict=on: the guest reaches nothing outside; only the forward in.
		"-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:"+port+"-:8080", "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-chardev", "socket,id=ctl,path="+ctl+",server=on,wait=on",
		"-device", "virtio-serial-pci", "-device", "virtserialport,chardev=ctl,name=kaiten.ctl")
	qemu.Stdout, qemu.Stderr = os.Stderr, os.Stderr
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = qemu.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = qemu.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(console)
			t.Logf("VM console:\n%s", b)
		}
	})
	var conn net.Conn
	testutil.WaitFor(t, 30*time.Second, func() error {
		c, err := net.Dial("unix", ctl)
		if err != nil {
			return err
		}
		conn = c
		return nil
	})
	agent := &vmAgent{conn: conn, lines: make(chan string, 256)}
	go func() {
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			agent.lines <- sc.Text()
		}
		close(agent.lines)
	}()
	bootStart := time.Now()
	agent.expect(t, "HELLO aarch64", 10*time.Minute)
	t.Logf("VM booted to the test agent in %s", time.Since(bootStart).Round(time.Second))

	// Install: systemd starts the gateway, which takes the boot config.
	if _, out, rc := agent.do(t, "install pkg-1.deb", 10*time.Minute); rc != 0 {
		t.Fatalf("dpkg -i: %d\n%s", rc, out)
	}
	addr := "127.0.0.1:" + port
	waitVersion := func(v string) {
		testutil.WaitFor(t, 5*time.Minute, func() error {
			body, err := httpGet("http://" + addr + "/healthz")
			if err != nil {
				return err
			}
			if !strings.Contains(body, `"version":"`+v+`"`) {
				return fmt.Errorf("healthz %s, want version %s", body, v)
			}
			return nil
		})
	}
	waitVersion(versions[0])
	t.Logf("gateway healthy %s after boot", time.Since(bootStart).Round(time.Second))
	st, _, _ := agent.do(t, "state", time.Minute)
	want := map[string]string{"active": "active", "enabled": "enabled", "nrestarts": "0", "bootcfg": "",
		"config": "640 root:kaiten", "store_id": "vm-test", "data": "750 kaiten:kaiten", "mainuser": "kaiten"}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("after install %s=%q, want %q (state %v)", k, st[k], v, st)
		}
	}
	if !strings.Contains(" "+st["groups"]+" ", " gpio ") {
		t.Errorf("kaiten user groups %q lack gpio", st["groups"])
	}
	// Type=notify: "active" already means READY=1 arrived; the gateway's log
	// shows it saw the unit's watchdog.
	_, journal, _ := agent.do(t, "journal", time.Minute)
	if !strings.Contains(journal, "told systemd the gateway is ready") || !strings.Contains(journal, "watchdog=30s") {
		t.Errorf("the journal does not show READY with the 30s watchdog")
	}
	if t.Failed() {
		t.Fatalf("journal:\n%s", journal)
	}

	kc := kinesisClient(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("vm"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	testutil.WaitFor(t, time.Minute, func() error {
		_, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("vm")})
		return err
	})
	putRecords(t, kc, "vm", 0, 40)
	before := readAll(t, kc, "vm")
	if len(before) != 40 {
		t.Fatalf("read %d records, want 40", len(before))
	}

	// Upgrade over the running gateway.
	if _, out, rc := agent.do(t, "install pkg-2.deb", 10*time.Minute); rc != 0 {
		t.Fatalf("upgrade: %d\n%s", rc, out)
	}
	waitVersion(versions[1])
	after := readAll(t, kc, "vm")
	if !equalMaps(before, after) {
		t.Fatalf("records changed across the upgrade:\nbefore %v\nafter  %v", before, after)
	}
	putRecords(t, kc, "vm", 40, 10)
	if n := len(readAll(t, kc, "vm")); n != 50 {
		t.Fatalf("after the upgrade read %d records, want 50", n)
	}
	st, _, _ = agent.do(t, "state", time.Minute)
	if st["active"] != "active" || st["store_id"] != "vm-test" || st["nrestarts"] != "0" {
		t.Fatalf("after upgrade: %v", st)
	}

	// Remove keeps data and config; purge deletes them.
	if _, out, rc := agent.do(t, "remove", 5*time.Minute); rc != 0 {
		t.Fatalf("dpkg -r: %d\n%s", rc, out)
	}
	st, _, _ = agent.do(t, "state", time.Minute)
	if st["active"] == "active" || st["store_id"] != "vm-test" || st["datafiles"] == "" {
		t.Fatalf("after remove: %v", st)
	}
	if _, out, rc := agent.do(t, "purge", 5*time.Minute); rc != 0 {
		t.Fatalf("dpkg -P: %d\n%s", rc, out)
	}
	st, _, _ = agent.do(t, "state", time.Minute)
	if st["config"] != "" || st["data"] != "" {
		t.Fatalf("after purge: %v", st)
	}
	agent.do(t, "poweroff", time.Minute)
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		t.Fatal("the VM did not power off")
	}
	t.Logf("boot test took %s in all", time.Since(start).Round(time.Second))
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
}
