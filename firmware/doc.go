// Package firmware holds what is flashed onto the Raspberry Pi and its
// tests: build.sh cross-builds kaiten for linux/arm64 and linux/arm (GOARM=7)
// and packages each binary as a Debian package (package/nfpm.yaml) with its
// hardened systemd unit (package/kaiten.service), maintainer scripts and
// default config. Subpackages: sdnotify (the systemd notify protocol) and
// firstboot (a config written onto the boot partition becomes the config).
//
// The tests build both packages once, inspect them with dpkg-deb, check the
// unit with systemd-analyze, and run the ARM binaries under qemu-user-static
// end to end. BOOT.md says what an operator flashes and which config.txt
// lines the sensors need.
package firmware
