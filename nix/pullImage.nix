# pullImage: an image fetched from a registry by digest, as a fixed-output derivation whose
# output is an archive for `docker load`, `podman load` and `fromImage` (nixpkgs'
# dockerTools.pullImage, without skopeo). The helper speaks the registry API itself: it
# resolves a multi-platform index to `os`/`arch`, checks every blob against its digest while
# downloading, and writes the registry's blobs unchanged (compressed layers stay compressed)
# as an OCI layout that is also a docker-archive. `strata prefetch REF` prints the call.
#
#   pullImage {
#     imageName = "registry.example.com/team/app";
#     imageDigest = "sha256:...";
#     hash = "sha256-...";
#     finalImageTag = "1.0";
#   }
{ lib, imageSystem, internalBuilder, internalResult }:

{
  # The repository, with its registry host (`registry.example.com/team/app`; no host means
  # Docker Hub, where `nginx` is `library/nginx`).
  imageName,
  # Digest of the manifest or multi-platform index to fetch (`sha256:...`); a digest, never
  # a tag, so the fetch is reproducible.
  imageDigest,
  # Hash of the output archive (SRI, `sha256-...`), as `strata prefetch` prints it.
  hash ? null,
  # The same as a base-16 or base-32 sha256 (the older form). The archive is strata's, not
  # skopeo's: a hash prefetched for nixpkgs' pullImage does not match; take the one
  # `strata prefetch` prints.
  sha256 ? null,
  # Operating system of the image taken from a multi-platform index.
  os ? "linux",
  # Architecture (GOARCH) of the image taken from a multi-platform index; null derives it
  # from the system images are built for (x86_64-linux gives amd64).
  arch ? null,
  # CPU variant of the image taken from a multi-platform index (`v7`, `v8`); null takes any.
  variant ? null,
  # Name the image is loaded under.
  finalImageName ? imageName,
  # Tag the image is loaded under.
  finalImageTag ? "latest",
  # Check the registry's certificate (against the web roots and the CA bundle Nix gives
  # fixed-output builds, its `ssl-cert-file`); false: HTTPS without checks, and plain HTTP
  # when the registry speaks nothing else (loopback registries are treated so either way).
  tlsVerify ? true,
  # Store name of the archive.
  name ? "docker-image-${lib.imageBaseName (builtins.replaceStrings [ "/" ":" ] [ "-" "-" ] "${finalImageName}-${finalImageTag}")}.tar",
}@args:
assert lib.assertMsg (builtins.isString imageDigest && builtins.match "sha256:[0-9a-f]{64}" imageDigest != null)
  "pullImage: `imageDigest` must be a sha256 digest (sha256: and 64 hex digits), got ${lib.show imageDigest}";
assert lib.assertMsg ((hash == null) != (sha256 == null))
  "pullImage: give exactly one of `hash` and `sha256`";
assert lib.assertMsg (lib.isImageName imageName)
  "pullImage: `imageName` must be an image name as docker reads one ([HOST[:PORT]/]NAME, the name lowercase letters and digits joined by `.`, `_`, `__` or `-`, parts separated by `/`), got ${lib.show imageName}";
assert lib.assertMsg (lib.isImageName finalImageName)
  "pullImage: `finalImageName` must be an image name as docker reads one ([HOST[:PORT]/]NAME), got ${lib.show finalImageName}";
assert lib.assertMsg (lib.isTag finalImageTag)
  "pullImage: `finalImageTag` must be a docker tag (letters, digits, `_`, `.`, `-`; at most 128, not starting with `.` or `-`), got ${lib.show finalImageTag}";
assert lib.checkProblem (lib.argsProblem "pullImage" { os = lib.kinds.string; tlsVerify = lib.kinds.bool; } args);
assert lib.checkPlatform "pullImage" { inherit imageSystem variant; architecture = arch; archName = "arch"; linux = arch == null; };
let
  pulled = internalBuilder ({
    inherit name imageSystem imageName imageDigest os arch variant finalImageName finalImageTag tlsVerify;
    command = "pull";
    outputHashMode = "flat";
    # Proxies of the machine running the fetch reach the builder.
    impureEnvVars = [ "http_proxy" "https_proxy" "all_proxy" "no_proxy" "HTTP_PROXY" "HTTPS_PROXY" "ALL_PROXY" "NO_PROXY" ];
  } // (if hash != null then { outputHash = hash; } else { outputHash = sha256; outputHashAlgo = "sha256"; }));
in
internalResult {
  drv = pulled;
  attrs = { inherit imageDigest; imageName = lib.toLower finalImageName; imageTag = finalImageTag; };
}
