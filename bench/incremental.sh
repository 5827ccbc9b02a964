#!/usr/bin/env bash
# Incremental rebuild benchmark, on the ~1.2 GB closure of bench/closure.nix. For each way of
# layering (a shared buildLayer for the dependencies plus an application layer; automatic
# popularity layering; automatic with a derivation per layer), builds the image, changes the
# application, and builds it again; reports both times and the bytes strata hashed in each.
# The closure's packages (both application versions included) are built first, so the times
# are the image's own. A run-specific mtime makes every layer new to the run. Needs root and
# Nix (scripts/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap >/dev/null
mtime=$(date -u -d "@$(( $(date +%s) % 1000000000 ))" +%Y-%m-%dT%H:%M:%SZ)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

nixb() { nix-build --option sandbox true bench/closure.nix --argstr mtime "$mtime" --no-out-link "$@"; }

echo "bench: building the closure and both application versions" >&2
nixb --argstr appVersion 1 -A app >/dev/null 2>&1
nixb --argstr appVersion 2 -A app >/dev/null 2>&1

# Builds attribute $2 with application version $1; prints "seconds bytes-hashed".
measure() {
  local start end
  start=$(date +%s.%N)
  nixb --argstr appVersion "$1" -A "$2" >/dev/null 2>"$log"
  end=$(date +%s.%N)
  local bytes
  bytes=$(grep -oE 'strata: (records|customisation layer): .*\(([0-9]+) bytes\)' "$log" \
    | grep -oE '\([0-9]+ bytes\)' | tr -dc '0-9\n' | awk '{ s += $1 } END { print s + 0 }')
  awk -v a="$start" -v b="$end" -v n="$bytes" 'BEGIN { printf "%.2f %d\n", b - a, n }'
}

printf '%-34s %9s %12s %9s %12s %7s\n' "layering" "build s" "hashed MB" "rebuild s" "hashed MB" "ratio"
for attr in splitImage image perLayerImage; do
  read -r t1 b1 < <(measure 1 "$attr")
  read -r t2 b2 < <(measure 2 "$attr")
  case $attr in
    splitImage) label="buildLayer deps + app layer" ;;
    image) label="automatic (maxLayers 100)" ;;
    perLayerImage) label="automatic, perLayerDerivations" ;;
  esac
  awk -v l="$label" -v t1="$t1" -v b1="$b1" -v t2="$t2" -v b2="$b2" \
    'BEGIN { printf "%-34s %9.2f %12.3f %9.2f %12.3f %6.1f%%\n", l, t1, b1 / 1e6, t2, b2 / 1e6, 100 * t2 / t1 }'
done
