#!/usr/bin/env bash
# Streaming benchmark: builds the ~1.3 GB closure of bench/closure.nix, then measures in one
# run, on the same store paths with a warm page cache:
#   strata:   the image streamed to /dev/null (image bytes / second, peak RSS)
#   baseline: tar -c --sort=name PATHS | openssl dgst -sha256   (tar bytes / second)
# Each is run RUNS times (default 3); the best time counts. Needs root, Nix (scripts/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
scripts/bootstrap >/dev/null

echo "bench: building the closure (first run takes a minute)" >&2
plan=$(nix-build --option sandbox true bench/closure.nix -A image --no-out-link)
app=$(nix-build --option sandbox true bench/closure.nix -A app --no-out-link)
mapfile -t paths < <(nix-store -qR "$app")

image_bytes=$("$plan" | wc -c)
tar_bytes=$(tar -c --sort=name -f - "${paths[@]}" 2>/dev/null | wc -c)
layers=$(grep -c '"kind"' "$plan")
files=$(find "${paths[@]}" | wc -l)

best() { sort -n | head -n1; }
time_of() { # prints seconds for the command in "$@"
  local start end
  start=$(date +%s.%N); "$@"; end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
strata_run() { "$plan" > /dev/null; }
baseline_run() { tar -c --sort=name -f - "${paths[@]}" 2>/dev/null | openssl dgst -sha256 > /dev/null; }

baseline_run # warm the page cache
strata_t=$(for _ in $(seq "$runs"); do time_of strata_run; done | best)
base_t=$(for _ in $(seq "$runs"); do time_of baseline_run; done | best)
rss_kb=$( { /usr/bin/time -f '%M' "$plan" > /dev/null; } 2>&1 | tail -n1 )

mbs() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%d\n", n / 1000000 / t }'; }
strata_mbs=$(mbs "$image_bytes" "$strata_t")
base_mbs=$(mbs "$tar_bytes" "$base_t")
printf 'closure: %d store paths, %d files, %d MB of tar; image: %d layers, %d MB\n' \
  "${#paths[@]}" "$files" $((tar_bytes / 1000000)) "$layers" $((image_bytes / 1000000))
printf 'strata stream > /dev/null:               %6.2f s  %5d MB/s  peak RSS %d MiB\n' "$strata_t" "$strata_mbs" $((rss_kb / 1024))
printf 'tar -c --sort=name | openssl dgst -sha256: %6.2f s  %5d MB/s\n' "$base_t" "$base_mbs"
printf 'ratio (strata / baseline throughput):      %.2f (target >= 0.90)\n' "$(awk -v a="$strata_mbs" -v b="$base_mbs" 'BEGIN { print a / b }')"
