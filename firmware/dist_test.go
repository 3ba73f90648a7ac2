package firmware

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// testVersion is stamped into the test build; its Debian form is
// testDebVersion.
const (
	testVersion    = "v9.8.7-rc1"
	testDebVersion = "9.8.7+rc1"
)

var arches = []struct {
	name    string // Debian architecture
	machine elf.Machine
	qemu    string // qemu-user-static binary
}{
	{"arm64", elf.EM_AARCH64, "qemu-aarch64-static"},
	{"armhf", elf.EM_ARM, "qemu-arm-static"},
}

var (
	distOnce sync.Once
	distDir  string
	distErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if distDir != "" {
		os.RemoveAll(distDir)
	}
	os.Exit(code)
}

// dist runs firmware/build.sh once per test process (both ARM builds and
// both packages) and returns its output folder.
func dist(t *testing.T) string {
	t.Helper()
	distOnce.Do(func() {
		distDir, distErr = os.MkdirTemp("", "kaiten-dist-")
		if distErr != nil {
			return
		}
		cmd := exec.Command("./firmware/build.sh", distDir)
		cmd.Dir = testutil.RepoRoot(t)
		cmd.Env = append(os.Environ(), "VERSION="+testVersion, "ARCHES=arm64 armhf")
		out, err := cmd.CombinedOutput()
		if err != nil {
			distErr = fmt.Errorf("firmware/build.sh: %v\n%s", err, out)
		}
	})
	if distErr != nil {
		t.Fatal(distErr)
	}
	return distDir
}

func debPath(t *testing.T, arch string) string {
	return filepath.Join(dist(t), "kaiten_"+testDebVersion+"_"+arch+".deb")
}

// extracted unpacks the arch's package once into a temp dir and returns it.
func extracted(t *testing.T, arch string) string {
	t.Helper()
	root := filepath.Join(dist(t), "root-"+arch)
	if _, err := os.Stat(filepath.Join(root, "usr/bin/kaiten")); err == nil {
		return root
	}
	run(t, "", testutil.LookTool(t, "dpkg-deb"), "-x", debPath(t, arch), root)
	return root
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

func TestBinariesAreStaticARM(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the ARM binaries and packages (minutes): make test runs it")
	}
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			bin := filepath.Join(dist(t), "linux-"+a.name, "kaiten")
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != a.machine || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
				t.Fatalf("machine %v osabi %v, want %v linux", f.Machine, f.OSABI, a.machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Fatalf("binary is dynamically linked (%v): the build must use CGO_ENABLED=0", p.Type)
				}
			}
			if a.machine == elf.EM_ARM {
				// GOARM=7 emits VFPv3 code; the ARM attributes section
				// records the architecture the build targets.
				if s := f.Section(".ARM.attributes"); s != nil {
					data, _ := s.Data()
					if !bytes.Contains(data, []byte("7")) {
						t.Fatalf("ARM attributes do not mention v7: %q", data)
					}
				}
			}
			// The same file is what the package installs.
			packaged, err := os.ReadFile(filepath.Join(extracted(t, a.name), "usr/bin/kaiten"))
			if err != nil {
				t.Fatal(err)
			}
			built, _ := os.ReadFile(bin)
			if !bytes.Equal(packaged, built) {
				t.Fatal("the packaged /usr/bin/kaiten differs from the build")
			}
		})
	}
}

func TestPackageContents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the .deb packages and reads them with dpkg-deb: make test runs it")
	}
	dpkgDeb := testutil.LookTool(t, "dpkg-deb")
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			deb := debPath(t, a.name)
			fields := map[string]string{}
			for _, f := range []string{"Package", "Version", "Architecture", "Section", "Maintainer", "Description"} {
				fields[f] = strings.TrimSpace(run(t, "", dpkgDeb, "--field", deb, f))
			}
			if fields["Package"] != "kaiten" || fields["Version"] != testDebVersion || fields["Architecture"] != a.name {
				t.Fatalf("control fields %v", fields)
			}
			if fields["Maintainer"] == "" || fields["Description"] == "" {
				t.Fatalf("control fields %v", fields)
			}

			// Files: path -> "mode owner/group".
			files := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(run(t, "", dpkgDeb, "--contents", deb)), "\n") {
				f := strings.Fields(line)
				if len(f) < 6 {
					t.Fatalf("dpkg-deb --contents line %q", line)
				}
				files[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = f[0] + " " + f[1]
			}
			want := map[string]string{
				"/usr/bin/kaiten":                           "-rwxr-xr-x root/root",
				"/etc/kaiten/kaiten.yaml":                   "-rw-r----- root/root",
				"/var/lib/kaiten":                           "drwxr-x--- root/root",
				"/usr/lib/systemd/system/kaiten.service":    "-rw-r--r-- root/root",
				"/usr/share/doc/kaiten/kaiten.example.yaml": "-rw-r--r-- root/root",
				"/usr/share/doc/kaiten/README.md":           "-rw-r--r-- root/root",
			}
			for p, w := range want {
				if files[p] != w {
					t.Errorf("%s: %q, want %q", p, files[p], w)
				}
			}
			for p := range files {
				if p != "/usr" && !strings.HasPrefix(p, "/usr/") && !strings.HasPrefix(p, "/etc/kaiten") && !strings.HasPrefix(p, "/var/lib/kaiten") && p != "/etc" && p != "/var" && p != "/var/lib" {
					t.Errorf("unexpected path %s", p)
				}
			}

			// Control archive: the config is a conffile (upgrades keep the
			// operator's edits) and the maintainer scripts are there.
			ctrl := t.TempDir()
			run(t, "", dpkgDeb, "--control", deb, ctrl)
			conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
			if err != nil || strings.TrimSpace(string(conffiles)) != "/etc/kaiten/kaiten.yaml" {
				t.Fatalf("conffiles %q, %v", conffiles, err)
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				fi, err := os.Stat(filepath.Join(ctrl, s))
				if err != nil || fi.Mode().Perm()&0o111 == 0 {
					t.Fatalf("maintainer script %s: %v %v", s, err, fi)
				}
				body, _ := os.ReadFile(filepath.Join(ctrl, s))
				src, _ := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "firmware/package/scripts", s))
				if !bytes.Equal(body, src) {
					t.Errorf("%s in the package differs from firmware/package/scripts/%s", s, s)
				}
				run(t, "", "sh", "-n", filepath.Join(ctrl, s))
			}
		})
	}
}

// The maintainer scripts keep the data on upgrade and remove: only purge
// deletes it; the first install enables the service; an upgrade restarts
// (never stops) it. Checked on the script text, since running them needs a
// whole system (make test-boot does that).
func TestMaintainerScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs shellcheck: make test runs it")
	}
	root := testutil.RepoRoot(t)
	sc := testutil.LookTool(t, "shellcheck")
	scripts := []string{"firmware/package/scripts/postinst", "firmware/package/scripts/prerm", "firmware/package/scripts/postrm", "firmware/build.sh"}
	run(t, root, sc, append([]string{"--severity=style"}, scripts...)...)

	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "firmware/package/scripts", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// caseBody returns the commands of the case arm whose pattern holds word.
	caseBody := func(script, word string) string {
		re := regexp.MustCompile(`(?ms)^(\S[^\n)]*)\)\n(.*?);;`)
		for _, m := range re.FindAllStringSubmatch(script, -1) {
			for _, p := range strings.Split(m[1], "|") {
				if strings.TrimSpace(p) == word {
					return m[2]
				}
			}
		}
		return ""
	}
	postrm, prerm, postinst := read("postrm"), read("prerm"), read("postinst")
	if b := caseBody(postrm, "purge"); !strings.Contains(b, "rm -rf /var/lib/kaiten") {
		t.Errorf("postrm purge does not delete the data:\n%s", b)
	}
	if b := caseBody(postrm, "remove"); strings.Contains(b, "/var/lib/kaiten") || strings.Contains(b, "/etc/kaiten") {
		t.Errorf("postrm remove touches data or config:\n%s", b)
	}
	if caseBody(prerm, "upgrade") != "" || !strings.Contains(caseBody(prerm, "remove"), "systemctl stop") {
		t.Errorf("prerm must stop the service on remove only")
	}
	conf := caseBody(postinst, "configure")
	for _, w := range []string{"useradd --system", "gpio", "install -d -o kaiten -g kaiten -m 0750 /var/lib/kaiten", "systemctl enable", "systemctl try-restart", "chmod 0640 /etc/kaiten/kaiten.yaml"} {
		if !strings.Contains(conf, w) {
			t.Errorf("postinst configure lacks %q", w)
		}
	}
	if strings.Contains(conf, "/var/lib/kaiten/") || strings.Contains(conf, "rm ") {
		t.Errorf("postinst configure must not delete anything")
	}
}

func TestUnitVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs systemd-analyze: make test runs it")
	}
	analyze := testutil.LookTool(t, "systemd-analyze")
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			root := extracted(t, a.name)
			unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/kaiten.service"))
			if err != nil {
				t.Fatal(err)
			}
			// systemd-analyze checks that ExecStart's binary exists: point
			// the unit at the extracted one.
			dir := t.TempDir()
			path := filepath.Join(dir, "kaiten.service")
			text := strings.ReplaceAll(string(unit), "/usr/bin/kaiten", filepath.Join(root, "usr/bin/kaiten"))
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(analyze, "verify", "--man=no", path)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
			}
			for _, d := range []string{
				"Type=notify", "WatchdogSec=30s", "Restart=on-failure", "User=kaiten",
				"SupplementaryGroups=gpio i2c", "ProtectSystem=strict", "ReadWritePaths=/var/lib/kaiten",
				"NoNewPrivileges=yes", "StateDirectory=kaiten", "CapabilityBoundingSet=\n",
				"ExecStartPre=-+/usr/bin/kaiten firstboot ",
				"ExecStart=/usr/bin/kaiten run --config /etc/kaiten/kaiten.yaml --data-dir /var/lib/kaiten\n",
			} {
				if !strings.Contains(string(unit), "\n"+d) {
					t.Errorf("unit lacks %q", d)
				}
			}
			// systemd's own score of the sandbox: 0 (locked down) to 10.
			out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", path).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`Overall exposure level for kaiten.service: ([0-9.]+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in:\n%s", out)
			}
			if lvl, _ := strconv.ParseFloat(string(m[1]), 64); lvl > 2.5 {
				t.Fatalf("exposure level %v, want at most 2.5:\n%s", lvl, out)
			}
			t.Logf("systemd-analyze security exposure: %s", m[1])
		})
	}
}
