//go:build linux && arm64

// Command vminit is the /init of the boot test's one-off initramfs
// (firmware/bootvm): it loads the kernel modules it was given, mounts
// /dev/vda as the root, runs debootstrap's second stage in it under the real
// (emulated) arm64 kernel, and powers the machine off. This replaces a
// chroot on the host, which would need binfmt_misc.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	err := run()
	if err != nil {
		fmt.Println("KAITEN-STAGE2 FAIL:", err)
	} else {
		fmt.Println("KAITEN-STAGE2 OK")
	}
	syscall.Sync()
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {} // init must not exit
}

func run() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"devtmpfs", "/dev", "devtmpfs"}, {"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := syscall.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	mods, _ := filepath.Glob("/modules/*.ko")
	sort.Strings(mods) // named NN-name.ko: dependencies first
	for _, m := range mods {
		if err := loadModule(m); err != nil {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat("/dev/vda"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("no /dev/vda")
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = os.MkdirAll("/newroot", 0o755)
	if err := syscall.Mount("/dev/vda", "/newroot", "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount /dev/vda: %w", err)
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if err := syscall.Mount(d, "/newroot"+d, "", syscall.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s: %w", d, err)
		}
	}
	if err := syscall.Chroot("/newroot"); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	cmd := exec.Command("/debootstrap/debootstrap", "--second-stage")
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DEBOOTSTRAP_DIR=/debootstrap", "HOME=/root", "LANG=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if b, rerr := os.ReadFile("/debootstrap/debootstrap.log"); rerr == nil {
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			fmt.Printf("%s\n", b)
		}
		return fmt.Errorf("debootstrap --second-stage: %w", err)
	}
	syscall.Sync()
	return nil
}

// sysFinitModule is finit_module(2) on arm64 (the syscall package lacks it).
const sysFinitModule = 273

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	params := []byte{0}
	_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
	if errno != 0 && errno != syscall.EEXIST {
		return errno
	}
	return nil
}
