#!/usr/bin/env bash
# Cross-builds kaiten for the Raspberry Pi and packages each binary as a
# Debian package with nfpm (run through `go run`, nothing to install).
#
#   firmware/build.sh [OUT_DIR]        default OUT_DIR: dist
#
# Environment:
#   ARCHES   which builds, default "arm64 armhf" (also: amd64)
#   VERSION  stamped into the binary, default `git describe --tags --always --dirty`
#   GO       the go command, default go
#   NFPM     the nfpm command, default `go run` of the pinned module version
# Output: OUT_DIR/linux-<arch>/kaiten and OUT_DIR/kaiten_<debversion>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
GO="${GO:-go}"
ARCHES="${ARCHES:-arm64 armhf}"
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
NFPM_VERSION=v2.45.2
read -r -a nfpm <<<"${NFPM:-$GO run github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION}"

# Debian versions must start with a digit and must grow from one build to
# the next so that apt treats a newer build as an upgrade: a tag v1.2.3
# becomes 1.2.3; an untagged build becomes 0.0.<commits>+g<describe>.
deb_version() {
  local v="${VERSION#v}"
  if [[ "$v" =~ ^[0-9]+\.[0-9]+ ]]; then
    echo "${v//-/+}"
    return
  fi
  local n
  n="$(git rev-list --count HEAD 2>/dev/null || echo 0)"
  v="${VERSION//[^A-Za-z0-9.]/.}"
  echo "0.0.${n}+g${v}"
}
debv="$(deb_version)"
mkdir -p "$out"
for arch in $ARCHES; do
  case "$arch" in
    arm64) env=(GOARCH=arm64); nfpm_arch=arm64 ;;
    armhf | arm | armv7) arch=armhf; env=(GOARCH=arm GOARM=7); nfpm_arch=arm7 ;;
    amd64) env=(GOARCH=amd64); nfpm_arch=amd64 ;;
    *) echo "build.sh: unknown arch $arch (want arm64, armhf or amd64)" >&2; exit 2 ;;
  esac
  bin="$out/linux-$arch/kaiten"
  mkdir -p "$(dirname "$bin")"
  echo "build $bin ($VERSION)"
  env CGO_ENABLED=0 GOOS=linux "${env[@]}" "$GO" build -trimpath \
    -ldflags "-s -w -X github.com/kaiten-edge/kaiten/gateway/app.Version=$VERSION" \
    -o "$bin" ./gateway/cmd/kaiten
  deb="$out/kaiten_${debv}_${arch}.deb"
  echo "package $deb"
  # nfpm does not expand variables in every field: fill the template here.
  cfg="$out/nfpm-$arch.yaml"
  sed -e "s|\${KAITEN_BIN}|$bin|g" -e "s|\${KAITEN_ARCH}|$nfpm_arch|g" \
    -e "s|\${KAITEN_DEB_VERSION}|$debv|g" firmware/package/nfpm.yaml >"$cfg"
  "${nfpm[@]}" package --config "$cfg" --packager deb --target "$deb"
  rm -f "$cfg"
done
