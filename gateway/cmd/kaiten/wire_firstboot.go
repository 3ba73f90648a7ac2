package main

// `kaiten firstboot`: install a config written onto the Pi's boot partition.
// The packaged unit runs it as ExecStartPre before every start.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kaiten-edge/kaiten/firmware/firstboot"
	"github.com/kaiten-edge/kaiten/gateway/app"
)

func init() {
	app.RegisterCommand(app.Command{
		Name:  "firstboot",
		Usage: "kaiten firstboot [--boot-dir DIR] [--config /etc/kaiten/kaiten.yaml] [--group kaiten]",
		Run:   runFirstboot,
	})
}

func runFirstboot(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kaiten firstboot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := firstboot.Options{}
	fs.StringVar(&o.BootDir, "boot-dir", "", "where the boot partition is mounted (default /boot/firmware, or /boot where that does not exist: Raspberry Pi OS before Bookworm)")
	fs.StringVar(&o.Name, "name", firstboot.DefaultName, "the config's file name on the boot partition")
	fs.StringVar(&o.Config, "config", firstboot.DefaultConfig, "where to install the config")
	fs.StringVar(&o.Group, "group", "", "group to own the installed config (the service's group, e.g. kaiten)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kaiten firstboot: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if o.BootDir == "" {
		o.BootDir = firstboot.DefaultBootDir
		if _, err := os.Stat(o.BootDir); err != nil {
			o.BootDir = "/boot"
		}
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, nil)).With("command", "firstboot")
	o.Validate = func(path string) error {
		var out bytes.Buffer
		if code := app.Main([]string{"check-config", "--config", path}, io.Discard, &out); code != 0 {
			// check-config names the staged file; the operator knows it as
			// the boot partition's kaiten.yaml.
			msg := strings.TrimSpace(strings.ReplaceAll(out.String(), path, o.Name))
			msg = strings.TrimPrefix(msg, "kaiten: ")
			return errors.New(msg)
		}
		return nil
	}
	outcome, err := firstboot.Apply(o)
	if err != nil {
		fmt.Fprintln(stderr, "kaiten firstboot:", err)
		return 1
	}
	fmt.Fprintln(stdout, "kaiten firstboot:", outcome)
	return 0
}
