#!/usr/bin/env bash
# Compression benchmark, on the ~1.2 GB closure of bench/closure.nix, in one run:
#   strata archive --compressor gz|zstd (what buildLayeredImage runs), 2 threads and 1 thread,
#   beside  tar -c --sort=name PATHS | pigz -p2 -1   and   | zstd -T2 -3  on the same paths.
# Checks that the 1-thread and 2-thread outputs are byte-identical, and measures the layer
# records (strata build-layer, run by hand on the closure, maxLayers 100) and every peak RSS.
# Best of RUNS (default 2).
# Needs root and Nix (scripts/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-2}
scripts/bootstrap >/dev/null
helper=build/bootstrap/helper/bin/strata
plan=$(nix-build --option sandbox true bench/closure.nix -A image --no-out-link 2>/dev/null)
app=$(nix-build --option sandbox true bench/closure.nix -A app --no-out-link 2>/dev/null)
mapfile -t paths < <(nix-store -qR "$app")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

image_bytes=$("$plan" | wc -c)
tar_bytes=$(tar -c --sort=name -f - "${paths[@]}" 2>/dev/null | wc -c)

seconds() { # runs "$@", prints its wall time
  local start end
  start=$(date +%s.%N); "$@"; end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
best() { for _ in $(seq "$runs"); do seconds "$@"; done | sort -n | head -n1; }
strata_archive() { # threads compressor output
  RAYON_NUM_THREADS=$1 STRATA_PROGRESS=none "$helper" archive --compressor "$2" --plan "$plan" --output "$3"
}
pigz_baseline() { tar -c --sort=name -f - "${paths[@]}" 2>/dev/null | pigz -p2 -1 > "$out/pigz.gz"; }
zstd_baseline() { tar -c --sort=name -f - "${paths[@]}" 2>/dev/null | zstd -q -T2 -3 > "$out/tar.zst"; }

rss() { # peak RSS in MiB of the command "$@" (a program, not a shell function)
  { /usr/bin/time -f '%M' "$@" >/dev/null; } 2>&1 | tail -n1 | awk '{ printf "%d", $1 / 1024 }'
}
row() { # label seconds input-bytes output-file [rss]
  awk -v l="$1" -v t="$2" -v n="$3" -v o="$(stat -c %s "$4")" -v r="${5:-}" \
    'BEGIN { printf "%-44s %7.2f s %6d MB/s  output %5d MB (%.3f)%s\n", l, t, n / 1e6 / t, o / 1e6, o / n, r == "" ? "" : "  peak RSS " r " MiB" }'
}

# Layer records as the Nix builder computes them, from an attributes file made by hand.
attrs=$out/attrs.json
nix --extra-experimental-features nix-command path-info --json --recursive "$app" > "$out/closure.json"
printf '{"exportReferencesGraph":{"closure":[]},"closure":%s,"maxLayers":100,"mtime":"1970-01-01T00:00:01Z","uid":0,"gid":0,"uname":"root","gname":"root","outputs":{"out":"%s"}}' \
  "$(cat "$out/closure.json")" "$out/layers.json" > "$attrs"
records() { STRATA_PROGRESS=none "$helper" build-layer --attrs "$attrs"; }
t=$(best records)
r=$(rss env STRATA_PROGRESS=none "$helper" build-layer --attrs "$attrs")
awk -v t="$t" -v n="$tar_bytes" -v r="$r" \
  'BEGIN { printf "%-44s %7.2f s %6d MB/s  (tar, sha256, gzip and zstd of every layer)  peak RSS %d MiB\n", "records: strata build-layer, 100 layers", t, n / 1e6 / t, r }'


printf 'input: %d MB of image (strata), %d MB of tar (baselines), %d store paths\n' \
  $((image_bytes / 1000000)) $((tar_bytes / 1000000)) "${#paths[@]}"
for c in gz zstd; do
  t2=$(best strata_archive 2 "$c" "$out/strata-2.$c")
  t1=$(best strata_archive 1 "$c" "$out/strata-1.$c")
  row "strata archive --compressor $c (2 threads)" "$t2" "$image_bytes" "$out/strata-2.$c" \
    "$(rss env RAYON_NUM_THREADS=2 STRATA_PROGRESS=none "$helper" archive --compressor "$c" --plan "$plan" --output /dev/null)"
  row "strata archive --compressor $c (1 thread)" "$t1" "$image_bytes" "$out/strata-1.$c"
  if cmp -s "$out/strata-1.$c" "$out/strata-2.$c"; then
    echo "  1-thread and 2-thread outputs are byte-identical"
  else
    echo "  1-thread and 2-thread outputs DIFFER"; exit 1
  fi
  if [ "$c" = gz ]; then
    row "tar -c | pigz -p2 -1" "$(best pigz_baseline)" "$tar_bytes" "$out/pigz.gz"
  else
    row "tar -c | zstd -T2 -3" "$(best zstd_baseline)" "$tar_bytes" "$out/tar.zst"
  fi
done
