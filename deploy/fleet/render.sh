#!/usr/bin/env bash
# Renders the fleet template once per store.
#
#   deploy/fleet/render.sh [-t TEMPLATE] [-s STORES_DIR] [-o OUT_DIR] [-k KAITEN]
#
# For each STORES_DIR/<store>.env (default deploy/fleet/stores) it writes
# OUT_DIR/<store>/kaiten.yaml (default deploy/fleet/out, mode 0600) from
# TEMPLATE (default deploy/fleet/kaiten.template.yaml). With -k, each result is
# checked with `KAITEN check-config`. A value written as @env is taken from
# the environment variable of the same name (for secrets kept out of git).
# It stops at the first store with a missing value or an invalid config.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
template="$here/kaiten.template.yaml"
stores="$here/stores"
out="$here/out"
kaiten=""
while getopts "t:s:o:k:" opt; do
  case "$opt" in
    t) template="$OPTARG" ;;
    s) stores="$OPTARG" ;;
    o) out="$OPTARG" ;;
    k) kaiten="$OPTARG" ;;
    *) echo "usage: $0 [-t TEMPLATE] [-s STORES_DIR] [-o OUT_DIR] [-k KAITEN]" >&2; exit 2 ;;
  esac
done

# shellcheck disable=SC2016 # literal ${NAME} placeholders
mapfile -t names < <(grep -o '\${[A-Za-z_][A-Za-z0-9_]*}' "$template" | sort -u | tr -d '${}')
shopt -s nullglob
files=("$stores"/*.env)
if [ ${#files[@]} -eq 0 ]; then
  echo "render.sh: no .env files in $stores" >&2
  exit 1
fi
umask 077
bs="\\"
for f in "${files[@]}"; do
  store="$(basename "$f" .env)"
  declare -A val=()
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    case "$line" in "" | \#*) continue ;; esac
    if [[ ! "$line" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
      echo "render.sh: $f: not KEY=value: $line" >&2
      exit 1
    fi
    k="${line%%=*}"
    v="${line#*=}"
    if [ "$v" = "@env" ]; then
      if [ -z "${!k:-}" ]; then
        echo "render.sh: $f: $k=@env but \$$k is not set" >&2
        exit 1
      fi
      v="${!k}"
    fi
    val[$k]="$v"
  done <"$f"
  text="$(cat "$template")"
  for k in "${names[@]}"; do
    if [ -z "${val[$k]:-}" ]; then
      echo "render.sh: $f: no value for \${$k}" >&2
      exit 1
    fi
    v="${val[$k]}"
    # YAML double-quoted escapes: backslash first, then the quote.
    v="${v//"$bs"/"$bs$bs"}"
    v="${v//\"/"$bs\""}"
    text="${text//"\${$k}"/"$v"}"
  done
  mkdir -p "$out/$store"
  printf '%s\n' "$text" >"$out/$store/kaiten.yaml"
  if [ -n "$kaiten" ]; then
    if ! msg="$("$kaiten" check-config --config "$out/$store/kaiten.yaml" 2>&1)"; then
      echo "render.sh: $store: $msg" >&2
      exit 1
    fi
  fi
  echo "$out/$store/kaiten.yaml"
  unset val
done
