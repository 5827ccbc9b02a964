# Evaluation checks of the flake's overlay: `pkgs.dockerTools` is strata's, and takes what
# nixpkgs' dockerTools takes beyond the image arguments (issue 17: `meta`, `variant`,
# `.override`, `.overrideAttrs`), so expressions move over by changing only the import. Like
# eval.nix, a file listing the checks, whose evaluation throws naming every one that fails.
{
  # The library (`import ../nix { ... }`), for its `lib` and file writer.
  strata,
  # `pkgs.dockerTools` of a package set with the overlay.
  dockerTools,
}:
let
  meta = { description = "overlay check"; mainProgram = "hello"; };
  stream = dockerTools.streamLayeredImage { name = "overlay-check"; tag = "1"; architecture = "arm64"; variant = "v8"; inherit meta; };
  layered = dockerTools.buildLayeredImage { name = "overlay-check"; tag = "1"; architecture = "arm64"; variant = "v8"; inherit meta; };
  single = dockerTools.buildImage { name = "overlay-check"; tag = "1"; architecture = "arm64"; variant = "v8"; config = null; inherit meta; };
  checks = {
    "dockerTools is strata's" = stream ? copyToRegistry && single ? copyToPodman && dockerTools ? tarsum
      && dockerTools ? streamNixShellImage && dockerTools ? buildNixShellImage;
    "dockerTools has imageFamily, whose members are strata's images" =
      let family = dockerTools.imageFamily { images.a = { name = "overlay-check"; tag = "1"; }; };
      in family.a ? copyToRegistry && family.a.stream ? familyInputs;
    "dockerTools passes meta to the result" = stream.meta == meta && layered.meta == meta && single.meta == meta;
    "dockerTools passes variant to the plan" = stream.variant == "v8" && layered.stream.variant == "v8" && single.stream.variant == "v8"
      && stream.architecture == "arm64";
    "dockerTools results have .override" = (stream.override { tag = "2"; }).imageTag == "2"
      && (layered.override (old: { tag = old.tag + "-b"; })).imageTag == "1-b"
      && !((single.override { variant = null; }).stream ? variant);
    "dockerTools results have .overrideAttrs" = (single.overrideAttrs (_: { fromImage = single; })).buildArgs.fromImage == single
      && (layered.overrideAttrs (old: { meta = old.meta // { description = "changed"; }; })).meta.description == "changed";
    "dockerTools results carry buildArgs, conf and streamScript" = single.buildArgs.name == "overlay-check"
      && layered.conf.drvPath == layered.stream.drvPath && layered.streamScript.isExe && stream.conf.drvPath == stream.drvPath;
  };
  failed = builtins.filter (name: !checks.${name}) (builtins.attrNames checks);
in
assert strata.lib.assertMsg (failed == [ ])
  "strata overlay checks failed: ${builtins.concatStringsSep "; " failed}";
strata.internalWriteFile {
  name = "strata-overlay-checks";
  text = builtins.concatStringsSep "\n" (builtins.attrNames checks) + "\n";
}
