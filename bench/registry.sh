#!/usr/bin/env bash
# Registry benchmark: the ~1.3 GB image of bench/closure.nix against a local docker-registry
# (127.0.0.1), in one run:
#   push:     strata push (layers tarred + gzipped while sent, --parallel 1 and 3) beside
#             skopeo copy of the same image from a docker-archive file (what nixpkgs and
#             nix2container users run), each to a fresh repository;
#   re-push:  strata push of the same image again (nothing to upload);
#   pull:     strata pull into a file (what pullImage runs) beside skopeo copy to a
#             docker-archive (nixpkgs' pullImage), and strata's peak RSS.
# Needs root, Nix and the registry (scripts/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap >/dev/null
strata=build/bootstrap/helper/bin/strata
plan=$(nix-build --option sandbox true bench/closure.nix -A image --no-out-link)

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/config.yml" > "$work/registry.log" 2>&1 &
registry=$!
trap 'kill $registry; rm -rf "$work"' EXIT
sleep 1
host=127.0.0.1:$port

time_of() { # prints seconds for the command in "$@"
  local start end
  start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}
export STRATA_PROGRESS=none
"$plan" > "$work/image.tar"
image_mb=$(( $(stat -c %s "$work/image.tar") / 1000000 ))

p1=$(time_of "$strata" push --parallel 1 "$plan" "$host/p1:v1")
p3=$(time_of "$strata" push --parallel 3 "$plan" "$host/p3:v1")
p1b=$(time_of "$strata" push --parallel 1 "$plan" "$host/p1b:v1")
p3b=$(time_of "$strata" push --parallel 3 "$plan" "$host/p3b:v1")
sk=$(time_of skopeo copy --dest-tls-verify=false "docker-archive:$work/image.tar" "docker://$host/sk:v1")
push_rss_kb=$( { /usr/bin/time -f '%M' "$strata" push "$plan" "$host/rss:v1" >/dev/null 2>"$work/time"; tail -n1 "$work/time"; } )
again=$(time_of "$strata" push "$plan" "$host/p3:v1")
pull=$(time_of "$strata" pull -o "$work/pulled.tar" "$host/p3:v1")
rss_kb=$( { /usr/bin/time -f '%M' "$strata" pull -o "$work/pulled.tar" "$host/p3:v1" >/dev/null 2>"$work/time"; tail -n1 "$work/time"; } )
skpull=$(time_of skopeo copy --src-tls-verify=false "docker://$host/p3:v1" "docker-archive:$work/skopeo.tar")

printf 'image: %d MB, %d layers\n' "$image_mb" "$(grep -c '"kind"' "$plan")"
printf 'strata push --parallel 1:                 %6s s, %s s\n' "$p1" "$p1b"
printf 'strata push --parallel 3:                 %6s s, %s s\n' "$p3" "$p3b"
printf 'skopeo copy docker-archive: -> registry:  %6s s\n' "$sk"
printf 'strata push peak RSS (--parallel 3):      %6d MiB\n' $((push_rss_kb / 1024))
printf 'strata re-push (all there):               %6s s\n' "$again"
printf 'strata pull -> file:                      %6s s  peak RSS %d MiB\n' "$pull" $((rss_kb / 1024))
printf 'skopeo copy registry -> docker-archive:   %6s s\n' "$skpull"
