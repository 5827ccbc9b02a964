#!/usr/bin/env bash
# Writes bench/closures/family/<package>.json: ten images, one per large Debian package, that
# share a base (libc and what most packages use), for the family rows of bench/layering.sh
# (docs/research/families.md). from-debian.py names every application root `app-1.0` with
# one hash; each image's root is renamed `app-<package>-1.0`, with a hash of its own, since
# ten different applications are not one store path.
# Usage: bench/closures/family-debian.sh   (needs `apt-cache`, after apt-get update)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p family
for pkg in python3 perl git vim postgresql nginx ruby nodejs gcc openjdk-17-jre-headless; do
  python3 from-debian.py "family/$pkg.json" 5 "$pkg"
  python3 - "family/$pkg.json" "$pkg" <<'PY'
import hashlib, json, sys
out, pkg = sys.argv[1], sys.argv[2]
graph = json.load(open(out))
alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
h = hashlib.sha256(f"app-{pkg}".encode()).hexdigest()
digest = "".join(alphabet[int(h[i:i + 2], 16) % 32] for i in range(0, 64, 2))
old = next(n["path"] for n in graph if n["path"].endswith("-app-1.0"))
new = f"/nix/store/{digest}-app-{pkg}-1.0"
for n in graph:
    n["path"] = new if n["path"] == old else n["path"]
    n["references"] = sorted(new if r == old else r for r in n["references"])
json.dump(graph, open(out, "w"), indent=1)
PY
done
