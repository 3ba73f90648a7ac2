#!/usr/bin/env bash
# Installs what the tests need, only where it is missing. Each line of
# the list (scripts/test-deps.txt, or the file given as the argument) is one of:
#   apt <debian-package> <command-that-proves-it-is-installed>
#   go  <module/cmd@version> <binary-name>
# Components add their own lines there.
set -euo pipefail
cd "$(dirname "$0")/.."
gobin="$(go env GOPATH)/bin"
apt_missing=()
while read -r kind what check; do
  case "$kind" in
    ""|\#*) continue ;;
    apt) command -v "$check" >/dev/null 2>&1 || [ -e "$check" ] || apt_missing+=("$what") ;;
    go)  [ -x "$gobin/$check" ] || command -v "$check" >/dev/null 2>&1 || { echo "go install $what"; go install "$what"; } ;;
    *) echo "test-deps.txt: unknown kind $kind" >&2; exit 2 ;;
  esac
done < "${1:-scripts/test-deps.txt}"
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "apt-get install ${apt_missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
fi
