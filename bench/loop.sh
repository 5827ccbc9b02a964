#!/usr/bin/env bash
# The edit → build → run loop on a realistic closure (bench/realistic.nix: Debian packages
# staged as store paths), beside nixpkgs' own streamer, all in one run:
#   limits:   reading the closure's files, and reading + sha256 of them (one stream);
#   loop:     change the application, nix-build streamLayeredImage, stream the image to
#             /dev/null, RUNS times; nixpkgs: build the changed application (a floor for its
#             build, whose conf derivation cannot be built here without nixpkgs) and stream
#             the same layers with stream_layered_image.py;
#   archives: strata's gz and zstd archives (what buildLayeredImage writes) beside
#             nixpkgs' `stream | pigz -6 -nTR` and `stream | zstd -3 -T2`, bytes and seconds,
#             and strata's bytes on 1 thread (must be identical);
#   loads:    first load and load after an application change into docker and podman:
#             `strata load` beside `stream | docker load` and nixpkgs' stream | load;
#   push:     the changed image to a local registry, strata push beside nixpkgs' stream to
#             a file + skopeo copy (bytes the registry stored, seconds).
# Usage: bench/loop.sh [STAGE]. STAGE is bench/realistic/stage.py's directory (staged from
# $ROOTS when absent). NIXPKGS_STREAMER names nixpkgs' stream_layered_image.py (from
# pkgs/build-support/docker/); without it the nixpkgs columns are left out. Needs root, Nix,
# docker.io, podman, skopeo, docker-registry, pigz, zstd (scripts/setup) and the ROOTS
# packages installed. SECTIONS picks some of: limits loop perlayer archives loads push.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-/tmp/strata-bench-stage}
runs=${RUNS:-3}
roots=${ROOTS:-python3 postgresql-15 git nodejs openjdk-17-jre-headless golang-1.19-go docker.io}
streamer=${NIXPKGS_STREAMER:-}
sections=" ${SECTIONS:-limits loop perlayer archives loads push} "
want() { [[ $sections == *" $1 "* ]]; }
scripts/bootstrap >/dev/null
strata=$PWD/build/bootstrap/helper/bin/strata
export STRATA_PROGRESS=none

if [ ! -f "$stage/packages.json" ]; then
  echo "bench: staging $roots into $stage" >&2
  # shellcheck disable=SC2086
  python3 bench/realistic/stage.py "$stage" $roots
fi

if [ ! -f "$stage/store-paths.json" ]; then
  echo "bench: adding the staged packages to the store (once)" >&2
  python3 - "$stage" <<'EOF'
import json, subprocess, sys
stage = sys.argv[1]
paths = {}
for p in json.load(open(f"{stage}/packages.json")):
    n = p["name"]
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, text=True).stdout.strip()
    paths[n] = run("nix-store", "--add-fixed", "--recursive", "sha256", f"{stage}/{n}")
    run("nix-store", "--realise", "--add-root", f"{stage}/.gcroots/{n}", "--indirect", paths[n])
json.dump(paths, open(f"{stage}/store-paths.json", "w"))
EOF
fi

work=$(mktemp -d /tmp/strata-loop.XXXXXX)
export STRATA_CACHE_DIR=$work/cache
cleanup() {
  set +e
  [ -n "${registry:-}" ] && kill "$registry"
  if [ -f "$work/docker/pid" ]; then kill "$(cat "$work/docker/pid")"; sleep 3; fi
  "$work/bin/podman" system reset --force >/dev/null 2>&1
  umount "$work/docker/data/overlay2" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
run=$(date +%s)
nixb() {
  nix-build --option sandbox true bench/realistic.nix --arg stage "\"$stage\"" --no-out-link "$@"
}
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
now() { date +%s.%N; }
# Seconds `sh -c "$1"` takes; its output is discarded, failures stop the benchmark.
timed() {
  local a b
  a=$(now)
  sh -c "$1" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  b=$(now)
  seconds "$a" "$b"
}

echo "bench: building the closure's packages" >&2
nixb -A app --argstr appVersion "$run-0" >/dev/null 2>&1
# The layering and records of the unchanged part are the build's, not the benchmark's: a
# first image is built, and every loop iteration changes only the application.
plan0=$(nixb -A image --argstr appVersion "$run-0" 2>/dev/null)
closure=$(nix-store -qR "$plan0" | grep -v -e helper -e stream- -e customisation -e config.json)
paths=$(echo "$closure" | wc -l)
tar_mb=$(echo "$closure" | xargs du -sb --total | tail -n1 | awk '{ printf "%d", $1 / 1e6 }')
echo "closure: $paths store paths, $tar_mb MB; image: $(grep -c '"kind"' "$plan0") layers"

# nixpkgs' streamer's conf for the layers of plan $1, written to $2: the same store layers,
# and the same customisation layer as nixpkgs lays it out (a directory of layer.tar and its
# sha256 in `checksum`).
nixpkgs_conf() {
  python3 - "$1" "$2" "$2.customisation" <<'EOF'
import hashlib, json, os, shutil, sys
plan = json.loads(open(sys.argv[1]).read().split("\n", 1)[1])
stores = [l["paths"] for l in plan["layers"] if l["kind"] == "storePaths"]
tarball = [l["path"] for l in plan["layers"] if l["kind"] == "tarball"][-1]
custom = sys.argv[3]
os.makedirs(custom, exist_ok=True)
shutil.copyfile(tarball, os.path.join(custom, "layer.tar"))
digest = hashlib.sha256(open(tarball, "rb").read()).hexdigest()
open(os.path.join(custom, "checksum"), "w").write(digest)
conf = {"store_dir": "/nix/store", "from_image": None, "store_layers": stores,
        "customisation_layer": custom, "repo_tag": plan["repoTag"],
        "created": "1970-01-01T00:00:01+00:00", "mtime": "1970-01-01T00:00:01+00:00",
        "architecture": "amd64", "config": plan.get("config", {}),
        "uid": 0, "gid": 0, "uname": "root", "gname": "root"}
open(sys.argv[2], "w").write(json.dumps(conf))
EOF
}

echo "$closure" > "$work/closure"
if want limits; then
echo
echo "== machine limits (warm cache)"
read_s=$(timed "find \$(cat $work/closure) -type f -print0 | xargs -0 cat > /dev/null")
sha_s=$(timed "find \$(cat $work/closure) -type f -print0 | xargs -0 cat | openssl dgst -sha256")
printf 'read the files: %s s (%.0f MB/s); read + sha256 (openssl, SHA-NI) in one stream: %s s (%.0f MB/s)\n' \
  "$read_s" "$(awk -v m="$tar_mb" -v s="$read_s" 'BEGIN { print m / s }')" \
  "$sha_s" "$(awk -v m="$tar_mb" -v s="$sha_s" 'BEGIN { print m / s }')"
fi

plan=$plan0
if want loop; then
echo
echo "== change → build → stream (s)"
printf '%-4s %9s %9s %9s %8s | %9s %9s %9s %7s\n' run "build" "stream" "loop" "hashed" "nix build" "stream" "loop" "ratio"
for i in $(seq 1 "$runs"); do
  a=$(now); plan=$(nixb -A image --argstr appVersion "$run-$i" 2>"$work/build.log"); b=$(now)
  build=$(seconds "$a" "$b")
  hashed=$(grep -oE 'strata: records: .*\(([0-9]+) bytes\)' "$work/build.log" | grep -oE '\([0-9]+ bytes\)' \
    | tr -dc '0-9\n' | awk '{ s += $1 } END { printf "%.1fMB", s / 1e6 }' || true)
  stream=$(timed "$plan")
  line=$(printf '%-4s %9s %9s %9s %8s' "$i" "$build" "$stream" "$(awk -v a="$build" -v b="$stream" 'BEGIN { print a + b }')" "$hashed")
  if [ -n "$streamer" ]; then
    nixpkgs_conf "$plan" "$work/conf.json"
    nbuild=$(timed "nix-build --option sandbox true bench/realistic.nix --arg stage '\"$stage\"' --no-out-link -A app --argstr appVersion '$run-n$i'")
    nstream=$(timed "python3 $streamer $work/conf.json")
    nloop=$(awk -v a="$nbuild" -v b="$nstream" 'BEGIN { print a + b }')
    sloop=$(awk -v a="$build" -v b="$stream" 'BEGIN { print a + b }')
    line+=$(printf ' | %9s %9s %9s %7.3f' "$nbuild" "$nstream" "$nloop" "$(awk -v s="$sloop" -v n="$nloop" 'BEGIN { print s / n }')")
  fi
  echo "$line"
done
fi
plan_a=$plan

if want perlayer; then
echo
echo "== perLayerDerivations: change → build (s; MB hashed: layer derivations + plan)"
nixb -A imagePerLayer --argstr appVersion "$run-p0" >/dev/null 2>&1
for i in $(seq 1 "$runs"); do
  a=$(now); nixb -A imagePerLayer --argstr appVersion "$run-p$i" >/dev/null 2>"$work/build.log"; b=$(now)
  hashed=$(grep -oE 'strata: records( completed)?: .*\(([0-9]+) bytes\)' "$work/build.log" | grep -oE '\([0-9]+ bytes\)' \
    | tr -dc '0-9\n' | awk '{ s += $1 } END { printf "%.1f", s / 1e6 }' || true)
  printf '%-4s build %6s s, hashed %s MB, layers rebuilt: %s\n' "$i" "$(seconds "$a" "$b")" "$hashed" \
    "$(grep -c "^building '.*-layer.*drv'" "$work/build.log" || true)"
done
fi

if want archives; then
echo
echo "== compressed archives of the image (bytes, s)"
[ -z "$streamer" ] || nixpkgs_conf "$plan_a" "$work/conf.json"
a=$(now); "$strata" archive --plan "$plan_a" --output "$work/a.tar.gz" --compressor gz; b=$(now)
printf 'strata gz archive:              %11d B %7s s\n' "$(stat -c %s "$work/a.tar.gz")" "$(seconds "$a" "$b")"
a=$(now); RAYON_NUM_THREADS=1 "$strata" archive --plan "$plan_a" --output "$work/a1.tar.gz" --compressor gz; b=$(now)
same=$(cmp -s "$work/a.tar.gz" "$work/a1.tar.gz" && echo identical || echo DIFFERENT)
printf 'strata gz archive, 1 thread:    %11d B %7s s (%s)\n' "$(stat -c %s "$work/a1.tar.gz")" "$(seconds "$a" "$b")" "$same"
rm -f "$work/a1.tar.gz"
a=$(now); "$strata" archive --plan "$plan_a" --output "$work/a.tar.zst" --compressor zstd; b=$(now)
printf 'strata zstd archive:            %11d B %7s s\n' "$(stat -c %s "$work/a.tar.zst")" "$(seconds "$a" "$b")"
a=$(now); RAYON_NUM_THREADS=1 "$strata" archive --plan "$plan_a" --output "$work/a1.tar.zst" --compressor zstd; b=$(now)
same=$(cmp -s "$work/a.tar.zst" "$work/a1.tar.zst" && echo identical || echo DIFFERENT)
printf 'strata zstd archive, 1 thread:  %11d B %7s s (%s)\n' "$(stat -c %s "$work/a1.tar.zst")" "$(seconds "$a" "$b")" "$same"
rm -f "$work/a1.tar.zst" "$work/a.tar.gz" "$work/a.tar.zst"
t=$(timed "$plan_a | pigz -6 -nTR > $work/s.gz")
printf 'strata stream | pigz -6 -nTR:   %11d B %7s s\n' "$(stat -c %s "$work/s.gz")" "$t"
t=$(timed "$plan_a | zstd -3 -T2 -q > $work/s.zst")
printf 'strata stream | zstd -3 -T2:    %11d B %7s s\n' "$(stat -c %s "$work/s.zst")" "$t"
rm -f "$work/s.gz" "$work/s.zst"
if [ -n "$streamer" ]; then
  t=$(timed "python3 $streamer $work/conf.json | pigz -6 -nTR > $work/n.gz")
  printf 'nixpkgs stream | pigz -6 -nTR:  %11d B %7s s\n' "$(stat -c %s "$work/n.gz")" "$t"
  t=$(timed "python3 $streamer $work/conf.json | zstd -3 -T2 -q > $work/n.zst")
  printf 'nixpkgs stream | zstd -3 -T2:   %11d B %7s s\n' "$(stat -c %s "$work/n.zst")" "$t"
  rm -f "$work/n.gz" "$work/n.zst"
fi
fi

if want loads; then
echo
echo "== loads (s)"
mkdir -p "$work/bin" "$work/docker"
dockerd --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
  --host "unix://$work/docker/sock" --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
  --pidfile "$work/docker/pid" >"$work/docker/log" 2>&1 &
printf '#!/bin/sh\nexec %s -H unix://%s "$@"\n' "$(command -v docker)" "$work/docker/sock" > "$work/bin/docker"
printf '#!/bin/sh\nexec %s --root %s --runroot %s --cgroup-manager cgroupfs --events-backend file "$@"\n' \
  "$(command -v podman)" "$work/podman/storage" "$work/podman/run" > "$work/bin/podman"
chmod 755 "$work/bin/docker" "$work/bin/podman"
export PATH=$work/bin:$PATH
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
runs_ok() { # engine image: the image runs and prints the application's line
  if [ "$1" = docker ]; then docker run --rm --network=none "$2"
  else podman run --rm --runtime runc --network=none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$2"
  fi | grep -q "realistic app"
}
forget() { # engine: remove every image, and so every layer
  "$1" rmi -f $("$1" images -q) >/dev/null 2>&1 || true
  [ "$1" = podman ] || docker image prune -af >/dev/null 2>&1 || true
}
plan_b=$(nixb -A image --argstr appVersion "$run-b" 2>/dev/null)
plan_c=$(nixb -A image --argstr appVersion "$run-c" 2>/dev/null)
nixb -A app --argstr appVersion "$run-docker" >/dev/null 2>&1
nixb -A app --argstr appVersion "$run-podman" >/dev/null 2>&1
[ -n "$streamer" ] && nixpkgs_conf "$plan_b" "$work/conf_b.json" && nixpkgs_conf "$plan_c" "$work/conf_c.json"
printf '%-8s %-34s %9s %14s\n' engine "how" "first" "after change"
for engine in docker podman; do
  forget $engine
  if [ -n "$streamer" ]; then
    first=$(timed "python3 $streamer $work/conf_b.json | $engine load")
    again=$(timed "python3 $streamer $work/conf_c.json | $engine load")
    printf '%-8s %-34s %9s %14s\n' $engine "nixpkgs stream | $engine load" "$first" "$again"
    forget $engine
  fi
  first=$(timed "$plan_b | $engine load")
  again=$(timed "$plan_c | $engine load")
  printf '%-8s %-34s %9s %14s\n' $engine "strata stream | $engine load" "$first" "$again"
  forget $engine
  first=$(timed "$strata load --engine $engine $plan_b")
  a=$(now); STRATA_PROGRESS=log "$strata" load --engine $engine "$plan_c" 2>"$work/load.log"; b=$(now)
  again=$(seconds "$a" "$b")
  tail -n1 "$work/load.log" | sed 's/^/         /'
  # The user's whole wait after a change: build the changed image, load it (run it after).
  a=$(now)
  plan_d=$(nixb -A image --argstr appVersion "$run-$engine" 2>/dev/null)
  "$strata" load --engine $engine "$plan_d" 2>/dev/null
  b=$(now)
  runs_ok $engine "realistic:$run-$engine" || { echo "bench: $engine did not run the loaded image" >&2; exit 1; }
  printf '%-8s %-34s %9s %14s   (build + load: %s s)\n' $engine "strata load" "$first" "$again" "$(seconds "$a" "$b")"
  forget $engine
done
fi

if want push; then
[ -n "${plan_b:-}" ] || plan_b=$(nixb -A image --argstr appVersion "$run-b" 2>/dev/null)
[ -n "${plan_c:-}" ] || plan_c=$(nixb -A image --argstr appVersion "$run-c" 2>/dev/null)
[ -z "$streamer" ] || [ -f "$work/conf_b.json" ] || { nixpkgs_conf "$plan_b" "$work/conf_b.json"; nixpkgs_conf "$plan_c" "$work/conf_c.json"; }
echo
echo "== push of a changed image to a local registry"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$work/registry" "$port" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry=$!
for _ in $(seq 1 40); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.25; done
host=127.0.0.1:$port
stored() { du -sb "$work/registry" 2>/dev/null | cut -f1 || echo 0; }
printf '%-40s %9s %12s %9s %12s\n' how "first s" "first MB" "change s" "change MB"
measure_push() { # label, command of image B, command of image C
  local s0 t1 s1 t2 s2
  s0=$(stored); t1=$(timed "$2"); s1=$(stored); t2=$(timed "$3"); s2=$(stored)
  printf '%-40s %9s %12.1f %9s %12.1f\n' "$1" "$t1" "$(awk -v a="$s0" -v b="$s1" 'BEGIN { print (b - a) / 1e6 }')" \
    "$t2" "$(awk -v a="$s1" -v b="$s2" 'BEGIN { print (b - a) / 1e6 }')"
}
measure_push "strata push" "$strata push $plan_b $host/strata:b" "$strata push $plan_c $host/strata:c"
if [ -n "$streamer" ]; then
  measure_push "nixpkgs stream > file; skopeo copy" \
    "python3 $streamer $work/conf_b.json > $work/n.tar && skopeo copy --dest-tls-verify=false docker-archive:$work/n.tar docker://$host/nixpkgs:b" \
    "python3 $streamer $work/conf_c.json > $work/n.tar && skopeo copy --dest-tls-verify=false docker-archive:$work/n.tar docker://$host/nixpkgs:c"
fi
fi
