# The nixpkgs overlay (the flake's `overlays.default`): strata's functions at pkgs.dockerTools,
# the helper at pkgs.strata.
final: prev: {
  strata = final.callPackage ./package.nix { };
  dockerTools = (prev.dockerTools or { }) // {
    # pullImage stays nixpkgs' here: its outputs are pinned by hashes of skopeo's archives,
    # which strata's differ from; take strata's from `lib`.
    inherit (import ./. { pkgs = final; helper = final.buildPackages.strata; })
      buildImage buildImageWithNixDb buildLayer buildLayeredImage buildLayeredImageWithNixDb
      buildNixShellImage exportImage imageFamily imageIndex mergeImages streamLayeredImage streamNixShellImage
      binSh caCertificates fakeNss shadowSetup tarsum usrBinEnv;
  };
}
