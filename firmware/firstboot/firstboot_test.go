package firstboot

import (
	"bytes"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// validate stands in for kaiten check-config: it reads the staged file and
// refuses any whose text says "store_id: bad".
func validate(t *testing.T, seen *[]string) func(string) error {
	return func(path string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != ConfigMode {
			t.Errorf("staged file mode %v, want %v", fi.Mode().Perm(), ConfigMode)
		}
		*seen = append(*seen, string(data))
		if strings.Contains(string(data), "store_id: bad") {
			return errors.New("store_id: bad value")
		}
		return nil
	}
}

type dirs struct{ boot, etc, cfg string }

func setup(t *testing.T) dirs {
	root := t.TempDir()
	d := dirs{boot: filepath.Join(root, "boot", "firmware"), etc: filepath.Join(root, "etc", "kaiten")}
	d.cfg = filepath.Join(d.etc, "kaiten.yaml")
	if err := os.MkdirAll(d.boot, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t *testing.T, path, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func noStrays(t *testing.T, dir string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".kaiten-firstboot-*"))
	if len(m) > 0 {
		t.Fatalf("staged files left behind: %v", m)
	}
}

func TestNothingWaiting(t *testing.T) {
	d := setup(t)
	write(t, d.cfg, "store_id: old\n", 0o640)
	var seen []string
	out, err := Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen)})
	if err != nil || out != Nothing || len(seen) != 0 {
		t.Fatalf("Apply = %v, %v (validated %d)", out, err, len(seen))
	}
	if b, _ := os.ReadFile(d.cfg); string(b) != "store_id: old\n" {
		t.Fatalf("config changed: %q", b)
	}
}

func TestInstallsAndRemoves(t *testing.T) {
	d := setup(t)
	write(t, d.cfg, "store_id: old\n", 0o644)
	src := filepath.Join(d.boot, "kaiten.yaml")
	body := "store_id: shop-17\r\nmqtt:\r\n  password: s3cret\r\n"
	write(t, src, "\xef\xbb\xbf"+body, 0o755) // FAT shows everything as 0755
	write(t, filepath.Join(d.boot, ErrorFile), "old reason", 0o644)
	write(t, src+RejectedSuffix, "store_id: bad\npassword: s3cret\n", 0o644)
	var seen []string
	out, err := Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen)})
	if err != nil || out != Installed {
		t.Fatalf("Apply = %v, %v", out, err)
	}
	if len(seen) != 1 || seen[0] != body {
		t.Fatalf("validated %q, want the file without its BOM", seen)
	}
	got, err := os.ReadFile(d.cfg)
	if err != nil || string(got) != body {
		t.Fatalf("config %q, %v", got, err)
	}
	fi, _ := os.Stat(d.cfg)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("config mode %v, want 0640", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(d.cfg + BackupSuffix); string(b) != "store_id: old\n" {
		t.Fatalf("backup %q", b)
	}
	for _, gone := range []string{src, src + RejectedSuffix, filepath.Join(d.boot, ErrorFile)} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still there: %v", gone, err)
		}
	}
	noStrays(t, d.etc)
	// The next start finds nothing to do and keeps the installed config.
	out, err = Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen)})
	if err != nil || out != Nothing {
		t.Fatalf("second Apply = %v, %v", out, err)
	}
	if b, _ := os.ReadFile(d.cfg); string(b) != body {
		t.Fatalf("config after second start %q", b)
	}
}

func TestCreatesConfigDir(t *testing.T) {
	d := setup(t)
	write(t, filepath.Join(d.boot, "kaiten.yaml"), "store_id: s1\n", 0o644)
	var seen []string
	out, err := Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen)})
	if err != nil || out != Installed {
		t.Fatalf("Apply = %v, %v", out, err)
	}
	if _, err := os.Stat(d.cfg + BackupSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("backup made with no config before: %v", err)
	}
}

func TestRejectsInvalid(t *testing.T) {
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	for name, content := range map[string]string{
		"invalid":   "store_id: bad\n",
		"oversized": "# " + strings.Repeat("x", MaxSize) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			d := setup(t)
			write(t, d.cfg, "store_id: old\n", 0o640)
			src := filepath.Join(d.boot, "kaiten.yaml")
			write(t, src, content, 0o644)
			var seen []string
			out, err := Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen), Now: func() time.Time { return now }})
			if out != Rejected || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Apply = %v, %v", out, err)
			}
			if b, _ := os.ReadFile(d.cfg); string(b) != "store_id: old\n" {
				t.Fatalf("config changed: %q", b)
			}
			if _, err := os.Stat(src); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("rejected file still under its name: %v", err)
			}
			if b, _ := os.ReadFile(src + RejectedSuffix); string(b) != content {
				t.Fatal("rejected file not kept for the operator")
			}
			reason, _ := os.ReadFile(filepath.Join(d.boot, ErrorFile))
			want := "bad value"
			if name == "oversized" {
				want = "larger than"
			}
			if !strings.Contains(string(reason), want) || !strings.HasPrefix(string(reason), "2026-11-26T05:00:00Z") {
				t.Fatalf("reason file %q", reason)
			}
			noStrays(t, d.etc)
			// A rejected file is not retried on the next start.
			out, err = Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen)})
			if out != Nothing || err != nil {
				t.Fatalf("next start: %v %v", out, err)
			}
		})
	}
}

func TestNotAFile(t *testing.T) {
	d := setup(t)
	if err := os.Mkdir(filepath.Join(d.boot, "kaiten.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	var seen []string
	if _, err := Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen)}); err == nil {
		t.Fatal("a directory was accepted")
	}
	if _, err := Apply(Options{BootDir: d.boot, Config: d.cfg}); err == nil {
		t.Fatal("no validator accepted")
	}
}

func TestGroup(t *testing.T) {
	d := setup(t)
	write(t, filepath.Join(d.boot, "kaiten.yaml"), "store_id: s1\n", 0o644)
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	if _, err := Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen), Group: g.Name}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(d.cfg)
	if gid := fi.Sys().(*syscall.Stat_t).Gid; int(gid) != os.Getgid() {
		t.Fatalf("gid %d, want %d", gid, os.Getgid())
	}
	write(t, filepath.Join(d.boot, "kaiten.yaml"), "store_id: s2\n", 0o644)
	out, err := Apply(Options{BootDir: d.boot, Config: d.cfg, Validate: validate(t, &seen), Group: "no-such-group-kaiten"})
	if err == nil || out != Nothing {
		t.Fatalf("unknown group: %v %v", out, err)
	}
	if b, _ := os.ReadFile(d.cfg); !bytes.Equal(b, []byte("store_id: s1\n")) {
		t.Fatalf("config replaced despite the error: %q", b)
	}
	noStrays(t, d.etc)
}
