# The executables every image carries in passthru, like nix2container's:
#
#   nix run .#image.copyToRegistry                    # push to the image's own name:tag
#   nix run .#image.copyToRegistry -- docker://localhost:5000/app:v1 --compression zstd
#   nix run .#image.copyToDockerDaemon                # docker load, no tarball written
#   nix run .#image.copyToPodman                      # podman load
#
# Each is $out/bin/<command>, a small file whose `#!` line runs the helper on the image's
# plan (no shell); `--help` lists its options.
{ lib, helper, internalBuilder }:

# The image's plan (streamLayeredImage's result, or an imageIndex plan), and its `sbom`
# (null for none), which copyToRegistry attaches.
plan: sbom:
let
  script = action: internalBuilder ({
    name = "${action}-${lib.imageBaseName plan.imageName}";
    command = "copy-script";
    inherit action;
    plan = plan.outPath;
    repoTag = "${plan.imageName}:${plan.imageTag}";
    helperBin = "${helper}/bin/strata";
  } // (if action == "copy-to-registry" && sbom != null then { attach = sbom; } else { }))
  // { meta.mainProgram = action; };
in
{
  copyToRegistry = script "copy-to-registry";
  copyToDockerDaemon = script "copy-to-docker-daemon";
  copyToPodman = script "copy-to-podman";
}
