#!/usr/bin/env bash
# Times buildImage with a runAsRoot over a parent of about 350 MB, without a VM (nixpkgs boots
# a QEMU/KVM machine for this): on a strata parent (its plan is read; its store path layers
# need no unpacking) and on the same parent as an archive file (imported: decompressed,
# checked, hashed, records computed; then unpacked, changed as root, diffed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
args=(--option sandbox true --no-out-link bench/run-as-root.nix)
parent=$(nix-build "${args[@]}" -A parent 2>/dev/null)
echo "parent archive: $(stat -c %s "$parent") bytes gzipped"
for attr in child childOfArchive; do
  run=$(date +%s%N)
  start=$(date +%s.%N)
  nix-build "${args[@]}" --argstr runId "$run" -A "$attr" >/dev/null 2>"/tmp/run-as-root-$attr.log" \
    || { cat "/tmp/run-as-root-$attr.log" >&2; exit 1; }
  end=$(date +%s.%N)
  layer=$(nix-build "${args[@]}" --argstr runId "$run" -A "$attr.layer" 2>/dev/null)/layer.tar
  printf '%s: whole build (parent import, unpack, runAsRoot, diff, layer, gz archive) %.2f s; new layer %s bytes\n' \
    "$attr" "$(echo "$end - $start" | bc)" "$(stat -c %s "$layer")"
done
