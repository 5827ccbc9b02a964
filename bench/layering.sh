#!/usr/bin/env bash
# The layering benchmark (docs/benchmarks.md, "Layering"): for each closure pair in
# bench/closures/ and each layering, the figures `strata layers --measure` gives: the excess
# over every single-path bump (lower bound 1), what a bump of the root (the application)
# uploads beside its own bytes (lower bound: nothing), sharing with the sibling image (upper
# bound 100 %), the largest layer, layers under 100 kB, and the time to layer 5,000 paths.
# Usage: bench/layering.sh [MAX_LAYERS]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-100}
cargo build --quiet --release --locked --bin strata
strata=target/release/strata
printf '%-16s %-12s %6s %7s %9s %12s %9s %8s %6s\n' closure layering layers excess "root+" "largest MB" sharing "<100kB" secs
for pair in service:service-sibling desktop:desktop-sibling; do
  first=bench/closures/${pair%%:*}.json second=bench/closures/${pair##*:}.json
  for variant in default size-cohort popularity; do
    start=$(date +%s.%N)
    "$strata" layers --variant "$variant" --max-layers "$max" --closure "$first" --measure --shared-with "$second" > /tmp/strata-layering.json
    end=$(date +%s.%N)
    python3 - "$pair" "$variant" "$start" "$end" <<'PY'
import json, sys
r = json.load(open("/tmp/strata-layering.json"))
extra = max((b["uploaded"] - b["own"] for b in r["rootBumps"]), default=0)
print(f"{sys.argv[1].split(':')[0]:<16} {sys.argv[2]:<12} {r['layers']:>6} {r['excess']:>7.4f} {extra / 1e6:>8.2f}M "
      f"{r['largestLayer'] / 1e6:>12.1f} {r['sharing']['ratio'] * 100:>8.1f}% {r['smallLayers']:>8} {float(sys.argv[4]) - float(sys.argv[3]):>6.1f}")
PY
  done
done
