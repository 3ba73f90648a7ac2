// Package firstboot installs a config that a person wrote onto the Raspberry
// Pi's boot partition (the FAT partition any laptop can write, mounted at
// /boot/firmware on current Raspberry Pi OS) as the gateway's config, then
// removes it from there so that credentials do not stay on the card's
// readable partition.
//
// It is run by the kaiten unit's ExecStartPre before every start; when no
// file is waiting it does nothing.
package firstboot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// Defaults.
const (
	DefaultBootDir = "/boot/firmware"
	DefaultConfig  = "/etc/kaiten/kaiten.yaml"
	DefaultName    = "kaiten.yaml"
	// MaxSize is the largest boot config accepted.
	MaxSize = 1 << 20
	// ConfigMode is the installed config's mode: it holds credentials.
	ConfigMode fs.FileMode = 0o640
	// RejectedSuffix is appended to a boot config that failed validation;
	// ErrorFile is written beside it with the reason, for the person who
	// wrote it to read on their laptop.
	RejectedSuffix = ".rejected"
	ErrorFile      = "kaiten-firstboot-error.txt"
	// BackupSuffix is appended to the config that a boot config replaced.
	BackupSuffix = ".before-firstboot"
)

// Sentinel errors.
var (
	// ErrInvalidConfig is returned when the boot config failed validation;
	// nothing was installed, and the file was renamed with RejectedSuffix.
	ErrInvalidConfig = errors.New("firstboot: boot config is invalid")
	// ErrNotRemoved is returned when the config was installed but the file
	// could not be removed from the boot partition.
	ErrNotRemoved = errors.New("firstboot: config installed but not removed from the boot partition")
)

// Outcome says what Apply did.
type Outcome int

// Outcomes.
const (
	Nothing   Outcome = iota // no boot config waiting
	Installed                // the boot config is now the config
	Rejected                 // the boot config failed validation
)

func (o Outcome) String() string {
	switch o {
	case Installed:
		return "installed"
	case Rejected:
		return "rejected"
	}
	return "nothing to do"
}

// Options configure Apply. Zero values mean the defaults above.
type Options struct {
	BootDir string // where the boot partition is mounted
	Name    string // the file name looked for in BootDir
	Config  string // where the config is installed
	// Validate checks a config file (kaiten check-config semantics). It gets
	// the path of a staged copy next to Config. Required.
	Validate func(path string) error
	// Group, when set, becomes the installed config's group (the owner stays), so
	// that the service user can read it (root, or a member of the group).
	Group string
	// Logger gets progress and errors. Default slog.Default().
	Logger *slog.Logger
	// Now stamps the error file. Default time.Now.
	Now func() time.Time
}

// Apply looks for the boot config and, if there is one, validates it and
// installs it atomically as the config with mode 0640, keeping a copy of
// the config it replaces (BackupSuffix); then it overwrites the boot copy
// with zeros and removes it. An invalid boot config is renamed with
// RejectedSuffix and the reason is written to ErrorFile beside it; the
// current config stays in place. Apply is not safe to run twice at once on
// the same paths (systemd runs it once per start).
func Apply(o Options) (Outcome, error) {
	if o.BootDir == "" {
		o.BootDir = DefaultBootDir
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Config == "" {
		o.Config = DefaultConfig
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Validate == nil {
		return Nothing, errors.New("firstboot: no validator")
	}
	src := filepath.Join(o.BootDir, o.Name)
	fi, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return Nothing, nil
	}
	if err != nil {
		return Nothing, fmt.Errorf("firstboot: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Nothing, fmt.Errorf("firstboot: %s is not a regular file", src)
	}
	log := o.Logger.With("boot_config", src, "config", o.Config)
	data, err := readLimited(src, MaxSize)
	if err != nil {
		return o.reject(src, log, err)
	}
	// Editors on other systems may start the file with a UTF-8 byte order mark.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))

	dir := filepath.Dir(o.Config)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Nothing, fmt.Errorf("firstboot: config dir: %w", err)
	}
	staged, err := stage(dir, data)
	if err != nil {
		return Nothing, err
	}
	defer os.Remove(staged) // a no-op once renamed
	if err := o.Validate(staged); err != nil {
		return o.reject(src, log, err)
	}
	if o.Group != "" {
		if err := chownGroup(staged, o.Group); err != nil {
			return Nothing, err
		}
	}
	if old, err := os.ReadFile(o.Config); err == nil {
		if err := writeFileSync(o.Config+BackupSuffix, old, ConfigMode); err != nil {
			return Nothing, fmt.Errorf("firstboot: back up the current config: %w", err)
		}
		if o.Group != "" {
			_ = chownGroup(o.Config+BackupSuffix, o.Group)
		}
	}
	if err := os.Rename(staged, o.Config); err != nil {
		return Nothing, fmt.Errorf("firstboot: install: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return Installed, fmt.Errorf("firstboot: install: %w", err)
	}
	log.Info("installed the boot partition's config")
	if err := scrub(src, len(data)); err != nil {
		log.Error("the config is installed but its copy on the boot partition could not be removed; remove it by hand, it may hold credentials", "err", err)
		return Installed, fmt.Errorf("%w: %v", ErrNotRemoved, err)
	}
	// What an earlier rejection left: the reason, and the rejected file
	// (which may hold credentials too).
	_ = os.Remove(filepath.Join(o.BootDir, ErrorFile))
	if _, err := os.Stat(src + RejectedSuffix); err == nil {
		if err := scrub(src+RejectedSuffix, MaxSize/64); err != nil {
			log.Warn("could not remove an earlier rejected boot config", "err", err)
		}
	}
	log.Info("removed the config from the boot partition")
	return Installed, nil
}

func (o Options) reject(src string, log *slog.Logger, cause error) (Outcome, error) {
	log.Error("boot config rejected; keeping the current config", "err", cause)
	msg := fmt.Sprintf("%s: Kaiten did not use %s: %v\nFix the file and put it back as %s, then restart the board.\n",
		o.Now().UTC().Format(time.RFC3339), o.Name, cause, o.Name)
	if err := os.Rename(src, src+RejectedSuffix); err != nil {
		log.Error("could not rename the rejected boot config", "err", err)
	}
	if err := writeFileSync(filepath.Join(o.BootDir, ErrorFile), []byte(msg), 0o644); err != nil {
		log.Error("could not write the reason to the boot partition", "err", err)
	}
	return Rejected, fmt.Errorf("%w: %v", ErrInvalidConfig, cause)
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}

// stage writes data to a new file in dir with ConfigMode and syncs it.
func stage(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".kaiten-firstboot-*.yaml")
	if err != nil {
		return "", fmt.Errorf("firstboot: stage: %w", err)
	}
	name := f.Name()
	err = f.Chmod(ConfigMode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("firstboot: stage: %w", err)
	}
	return name, nil
}

func writeFileSync(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func chownGroup(path, group string) error {
	g, err := user.LookupGroup(group)
	if err != nil {
		return fmt.Errorf("firstboot: group %q: %w", group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return fmt.Errorf("firstboot: group %q: gid %q", group, g.Gid)
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("firstboot: chown %s: %w", path, err)
	}
	return nil
}

// scrub overwrites the file with zeros, syncs, and removes it. On FAT the
// overwrite lands on the same clusters, so the credentials do not linger
// in free space; the card's own wear levelling may still keep old blocks.
func scrub(path string, n int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write(make([]byte, n))
	if werr == nil {
		werr = f.Sync()
	}
	f.Close()
	if err := os.Remove(path); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("overwrite before removal: %w", werr)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
