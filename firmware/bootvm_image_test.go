package firmware

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The boot test's base system: Debian arm64 with Debian's kernel, built once
// and cached (KAITEN_BOOTVM_CACHE, default ~/.cache/kaiten/bootvm).
const (
	vmSuite   = "bookworm"
	vmInclude = "systemd-sysv,udev,linux-image-arm64,kmod,iproute2,procps"
	vmMirror  = "http://deb.debian.org/debian"
)

// vmStaticFiles go into the base image; the per-run inputs (packages and
// kaiten.yaml) go on the FAT boot partition instead.
var vmStaticFiles = map[string]string{
	"etc/hostname":                        "kaiten-vm\n",
	"etc/hosts":                           "127.0.0.1 localhost\n127.0.1.1 kaiten-vm\n",
	"etc/fstab":                           "LABEL=kaitenroot / ext4 rw,errors=remount-ro 0 1\nLABEL=BOOTFS /boot/firmware vfat defaults,umask=022 0 2\n",
	"etc/systemd/network/10-dhcp.network": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n",
	"etc/systemd/system/kaiten-vmtest.service": "[Unit]\nDescription=Kaiten boot test agent\nAfter=local-fs.target\n\n" +
		"[Service]\nExecStart=/usr/local/sbin/kaiten-vmtest\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n",
}

type vmImage struct{ root, kernel, initrd string }

func vmCacheDir() string {
	if d := os.Getenv("KAITEN_BOOTVM_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kaiten", "bootvm")
	}
	return filepath.Join(os.TempDir(), "kaiten-bootvm")
}

// baseImage returns the cached base system, building it first if needed
// (about 20-30 minutes on 2 cores: debootstrap's first stage on the host,
// its second stage inside the emulated arm64 machine).
func baseImage(t *testing.T, repo string) vmImage {
	t.Helper()
	agent, err := os.ReadFile(filepath.Join(repo, "firmware/bootvm/guest.sh"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s\n%s\n", vmSuite, vmInclude, vmMirror, agent)
	for _, k := range sortedKeys(vmStaticFiles) {
		fmt.Fprintf(h, "%s\n%s\n", k, vmStaticFiles[k])
	}
	dir := filepath.Join(vmCacheDir(), "base-"+hex.EncodeToString(h.Sum(nil))[:16])
	img := vmImage{root: filepath.Join(dir, "root.img"), kernel: filepath.Join(dir, "vmlinuz"), initrd: filepath.Join(dir, "initrd.img")}
	if _, err := os.Stat(img.initrd); err == nil {
		return img
	}
	start := time.Now()
	if err := os.MkdirAll(vmCacheDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp(vmCacheDir(), "build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")
	t.Logf("debootstrap %s arm64, first stage", vmSuite)
	mustRun(t, "debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include="+vmInclude, vmSuite, rootfs, vmMirror)
	// In a container debootstrap links /proc to the host's.
	if fi, err := os.Lstat(filepath.Join(rootfs, "proc")); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		os.Remove(filepath.Join(rootfs, "proc"))
		os.Mkdir(filepath.Join(rootfs, "proc"), 0o555)
	}
	for p, s := range vmStaticFiles {
		full := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "usr/local/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "usr/local/sbin/kaiten-vmtest"), agent, 0o755); err != nil {
		t.Fatal(err)
	}
	wants := filepath.Join(rootfs, "etc/systemd/system/multi-user.target.wants")
	mustRun(t, "mkdir", "-p", wants, filepath.Join(rootfs, "boot/firmware"))
	for unit, target := range map[string]string{
		"/etc/systemd/system/kaiten-vmtest.service":    "kaiten-vmtest.service",
		"/lib/systemd/system/systemd-networkd.service": "systemd-networkd.service",
	} {
		if err := os.Symlink(unit, filepath.Join(wants, target)); err != nil {
			t.Fatal(err)
		}
	}

	// Debian's kernel, and a one-off initramfs whose /init runs the second stage.
	debs, _ := filepath.Glob(filepath.Join(rootfs, "var/cache/apt/archives/linux-image-[0-9]*_arm64.deb"))
	if len(debs) != 1 {
		t.Fatalf("kernel packages %v", debs)
	}
	kdir := filepath.Join(work, "kernel")
	mustRun(t, "dpkg-deb", "-x", debs[0], kdir)
	vers, _ := filepath.Glob(filepath.Join(kdir, "lib/modules/*"))
	if len(vers) != 1 {
		t.Fatalf("module trees %v", vers)
	}
	kver := filepath.Base(vers[0])
	mods, err := moduleClosure(vers[0], "virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
	if err != nil {
		t.Fatal(err)
	}
	initBin := filepath.Join(work, "init")
	build := exec.Command("go", "build", "-o", initBin, "./firmware/bootvm/vminit")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vminit: %v\n%s", err, b)
	}
	initData, _ := os.ReadFile(initBin)
	entries := []cpioEntry{{name: "init", mode: 0o100755, data: initData}, {name: "modules", mode: 0o040755}}
	for i, m := range mods {
		data, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, cpioEntry{name: fmt.Sprintf("modules/%02d-%s", i, filepath.Base(m)), mode: 0o100644, data: data})
	}
	var cpio bytes.Buffer
	writeCPIO(&cpio, entries)
	stage2 := filepath.Join(work, "stage2.cpio")
	if err := os.WriteFile(stage2, cpio.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	rootImg := filepath.Join(work, "root.img")
	mustRun(t, "mkfs.ext4", "-q", "-L", "kaitenroot", "-d", rootfs, rootImg, "3G")
	console := filepath.Join(work, "stage2.log")
	t.Logf("debootstrap second stage inside qemu-system-aarch64 (log: %s)", console)
	q := exec.Command("qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1024",
		"-nographic", "-monitor", "none", "-serial", "file:"+console, "-no-reboot",
		"-kernel", filepath.Join(kdir, "boot", "vmlinuz-"+kver), "-initrd", stage2,
		"-append", "console=ttyAMA0 panic=-1",
		"-drive", "if=none,id=root,format=raw,file="+rootImg, "-device", "virtio-blk-pci,drive=root",
		"-nic", "none")
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Wait() }()
	select {
	case <-done:
	case <-time.After(75 * time.Minute):
		_ = q.Process.Kill()
		<-done
		t.Fatal("second stage did not finish within 75 minutes")
	}
	log, _ := os.ReadFile(console)
	if !bytes.Contains(log, []byte("KAITEN-STAGE2 OK")) {
		tail := log
		if len(tail) > 8000 {
			tail = tail[len(tail)-8000:]
		}
		t.Fatalf("second stage failed:\n%s", tail)
	}
	out := filepath.Join(work, "out")
	mustRun(t, "mkdir", "-p", out)
	mustRun(t, "debugfs", "-R", "dump /boot/initrd.img-"+kver+" "+filepath.Join(out, "initrd.img"), rootImg)
	if fi, err := os.Stat(filepath.Join(out, "initrd.img")); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("no initramfs generated in the image: %v", err)
	}
	mustRun(t, "cp", filepath.Join(kdir, "boot", "vmlinuz-"+kver), filepath.Join(out, "vmlinuz"))
	mustRun(t, "mv", rootImg, filepath.Join(out, "root.img"))
	_ = os.RemoveAll(dir)
	if err := os.Rename(out, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("base image built in %s", time.Since(start).Round(time.Second))
	return img
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// moduleClosure returns the .ko files for the wanted modules and everything
// they depend on (read from each module's .modinfo "depends="), dependencies
// first. The kernel package ships no modules.dep (depmod makes it on
// install), so the ELF files are read directly.
func moduleClosure(tree string, wanted ...string) ([]string, error) {
	byName := map[string]string{}
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ko") {
			byName[strings.ReplaceAll(strings.TrimSuffix(d.Name(), ".ko"), "-", "_")] = p
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		p, ok := byName[name]
		if !ok {
			return fmt.Errorf("module %s not found under %s", name, tree)
		}
		f, err := elf.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if s := f.Section(".modinfo"); s != nil {
			data, err := s.Data()
			if err != nil {
				return err
			}
			for _, kv := range bytes.Split(data, []byte{0}) {
				if deps, ok := bytes.CutPrefix(kv, []byte("depends=")); ok && len(deps) > 0 {
					for _, d := range strings.Split(string(deps), ",") {
						if err := visit(strings.ReplaceAll(d, "-", "_")); err != nil {
							return err
						}
					}
				}
			}
		}
		order = append(order, p)
		return nil
	}
	for _, w := range wanted {
		if err := visit(w); err != nil {
			return nil, err
		}
	}
	return order, nil
}

type cpioEntry struct {
	name string
	mode uint32
	data []byte
}

// writeCPIO writes a newc ("070701") archive, the format the kernel unpacks
// as an initramfs.
func writeCPIO(w io.Writer, entries []cpioEntry) {
	pad := func(n int) {
		if r := n % 4; r != 0 {
			w.Write(make([]byte, 4-r))
		}
	}
	write := func(ino int, e cpioEntry) {
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, 0, 0, len(e.name)+1, 0)
		io.WriteString(w, hdr)
		io.WriteString(w, e.name+"\x00")
		pad(len(hdr) + len(e.name) + 1)
		w.Write(e.data)
		pad(len(e.data))
	}
	for i, e := range entries {
		write(i+1, e)
	}
	write(0, cpioEntry{name: "TRAILER!!!"})
}
