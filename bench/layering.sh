#!/usr/bin/env bash
# The layering benchmark (docs/benchmarks.md, "Layering"): for bench/closure.nix and each
# closure pair in bench/closures/, and each layering, the figures `strata layers --measure`
# gives: the excess over every single-path bump (lower bound 1), what a bump of the root
# (the application) uploads beside its own bytes (lower bound: nothing), sharing with the sibling image (upper
# bound 100 %), the largest layer, layers under 100 kB, and the time to layer 5,000 paths.
# Usage: bench/layering.sh [MAX_LAYERS]   (default 100); needs nix-build for bench/closure.nix.
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-100}
cargo build --quiet --release --locked --bin strata
strata=${CARGO_TARGET_DIR:-target}/release/strata
printf '%-17s %-12s %6s %7s %9s %12s %9s %8s %6s\n' closure layering layers excess "root+" "largest MB" sharing "<100kB" secs
# bench/closure.nix's application (the streaming benchmark's closure) has no sibling: its
# sharing column is left empty.
app=$(nix-build --option sandbox true bench/closure.nix -A app --no-out-link 2>/dev/null)
nix --extra-experimental-features nix-command path-info --json --recursive "$app" > /tmp/strata-bench-closure.json
for pair in /tmp/strata-bench-closure service:service-sibling desktop:desktop-sibling; do
  first=bench/closures/${pair%%:*}.json second=bench/closures/${pair##*:}.json
  shared=(--shared-with "$second")
  if [ "$pair" = /tmp/strata-bench-closure ]; then first=$pair.json shared=(); fi
  for variant in default size-cohort popularity; do
    start=$(date +%s.%N)
    "$strata" layers --variant "$variant" --max-layers "$max" --closure "$first" --measure "${shared[@]}" > /tmp/strata-layering.json
    end=$(date +%s.%N)
    python3 - "$pair" "$variant" "$start" "$end" <<'PY'
import json, sys
r = json.load(open("/tmp/strata-layering.json"))
extra = max((b["uploaded"] - b["own"] for b in r["rootBumps"]), default=0)
name = sys.argv[1].split(':')[0].replace("/tmp/strata-bench-closure", "bench/closure.nix")
sharing = f"{r['sharing']['ratio'] * 100:>8.1f}%" if r.get("sharing") else f"{'-':>9}"
print(f"{name:<17} {sys.argv[2]:<12} {r['layers']:>6} {r['excess']:>7.4f} {extra / 1e6:>8.2f}M "
      f"{r['largestLayer'] / 1e6:>12.1f} {sharing} {r['smallLayers']:>8} {float(sys.argv[4]) - float(sys.argv[3]):>6.1f}")
PY
  done
done

# The two pairs, and the ten images of bench/closures/family/ (bench/closures/family-debian.sh),
# layered as one family (experimental, `--family`): each member's excess (a bump changes the
# path in every member holding it; the worst member for the ten), what a root's bump uploads
# beyond its own bytes, the worst pair's sharing, and the bytes a registry stores over the
# distinct paths'.
ten=(bench/closures/family/*.json)
for family in service:service-sibling desktop:desktop-sibling ten; do
  if [ "$family" = ten ]; then
    members=("${ten[@]}")
  else
    members=("bench/closures/${family%%:*}.json" "bench/closures/${family##*:}.json")
  fi
  others=()
  for m in "${members[@]:1}"; do others+=(--family "$m"); done
  "$strata" layers --max-layers "$max" --closure "${members[0]}" "${others[@]}" --measure > /tmp/strata-family.json
  python3 - "$family" "${members[@]}" <<'PY'
import json, os, sys
r = json.load(open("/tmp/strata-family.json"))
names = [os.path.basename(m)[:-5] for m in sys.argv[2:]]
extra = lambda m: max((b["uploaded"] - b["own"] for b in m["rootBumps"]), default=0)
if len(names) == 2:
    for name, m in zip(names, r["members"]):
        print(f"family {name:<16} layers {m['layers']:>3}  excess {m['excess']:.4f}  root+ {extra(m) / 1e6:.2f}M")
else:
    worst = max(range(len(names)), key=lambda i: r["members"][i]["excess"])
    print(f"family {sys.argv[1]} ({len(names)} images): worst excess {r['members'][worst]['excess']:.4f} ({names[worst]}), "
          f"root+ {max(extra(m) for m in r['members']) / 1e6:.2f}M")
print(f"family {sys.argv[1]}: sharing {min(p['sharing']['ratio'] for p in r['pairs']) * 100:.1f}% (worst pair), "
      f"stored {r['storedRatio']:.3f}x the distinct paths")
PY
done

# Time on a synthetic closure of 5,000 paths (each refers to 2 to 10 earlier ones, about 30,000 references, sizes
# spread from 1 kB to 50 MB, seeded): layering alone, beside the popularity contest.
python3 - <<'PY' > /tmp/strata-5000.json
import json, random
random.seed(5000)
paths = [f"/nix/store/{i:032d}-p{i}" for i in range(5000)]
print(json.dumps([
    {"path": p, "narSize": int(10 ** random.uniform(3, 7.7)), "narHash": "sha256:0",
     "references": sorted({paths[random.randrange(i)] for _ in range(random.randint(2, 10)) if i})}
    for i, p in enumerate(paths)
]))
PY
for variant in default popularity; do
  /usr/bin/time -f "5000 paths  $variant: %e s, %M kB peak" \
    "$strata" layers --variant "$variant" --max-layers "$max" --closure /tmp/strata-5000.json > /dev/null
done
