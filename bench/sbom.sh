#!/usr/bin/env bash
# The SBOM benchmark (docs/benchmarks.md, "SBOM"): the documents of an image whose closure
# has 5,000 store paths (bench/layering.sh's synthetic closure: each path refers to 2 to 10
# earlier ones, about 30,000 references, seeded), layered into 100 layers. Times
# `strata sbom` for each document (CycloneDX, SPDX, provenance: what the `sbom` builder
# writes), beside the layering of the same closure in the same run (what the plan builder
# already spends). Target: under 1 s each.
# Usage: bench/sbom.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --locked --bin strata
strata=target/release/strata
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import json, random, sys
random.seed(5000)
alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
paths = [f"/nix/store/{i:032d}-p{i}-{i % 7}.{i % 13}" for i in range(5000)]
closure = [
    {"path": p, "narSize": int(10 ** random.uniform(3, 7.7)),
     "narHash": "sha256:" + "".join(random.choice(alphabet) for _ in range(52)),
     "references": sorted({paths[random.randrange(i)] for _ in range(random.randint(2, 10)) if i})}
    for i, p in enumerate(paths)
]
json.dump(closure, open(f"{sys.argv[1]}/closure.json", "w"))
PY
/usr/bin/time -f "layering 5000 paths (baseline): %e s, %M kB peak" \
  "$strata" layers --max-layers 100 --closure "$dir/closure.json" > "$dir/layers.json"
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
layers = json.load(open(f"{d}/layers.json"))
plan = {
    "strataPlan": 4, "repoTag": "bench-sbom:v1", "architecture": "amd64", "os": "linux",
    "created": "1970-01-01T00:00:01Z", "config": {"Cmd": ["/bin/app"]},
    "layers": [{
        "kind": "storePaths", "paths": paths,
        "stamp": {"mtime": 1, "uid": 0, "gid": 0, "uname": "root", "gname": "root"},
        "record": {"size": 1024 * (i + 1), "diffId": "sha256:" + f"{i:064x}"},
    } for i, paths in enumerate(layers)],
}
open(f"{d}/plan.json", "w").write("#!/usr/bin/env strata stream\n" + json.dumps(plan))
PY
for format in cyclonedx spdx provenance; do
  /usr/bin/time -f "sbom --format $format, 5000 paths: %e s, %M kB peak" \
    "$strata" sbom "$dir/plan.json" --closure "$dir/closure.json" --format "$format" -o "$dir/$format.json"
  printf '  %s: %s bytes\n' "$format" "$(stat -c %s "$dir/$format.json")"
done
