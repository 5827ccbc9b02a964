# A realistic closure for the benchmarks: the Debian packages bench/realistic/stage.py staged
# (real binaries, libraries, archives and text, not random bytes), one store path each,
# referring to its dependencies' paths; a small application at the root refers to the
# staged roots. Built with the toolbox only; no nixpkgs.
{ helper ? ../build/bootstrap/helper
, toolbox ? ../build/bootstrap/toolbox
, system ? builtins.currentSystem
  # The directory stage.py wrote (a string: it lies outside the repository).
, stage
  # The application's version: bench/loop.sh changes it between builds.
, appVersion ? "1"
, maxLayers ? 100
}:
let
  strata = import ../nix { inherit helper toolbox system; };
  packages = builtins.fromJSON (builtins.readFile "${stage}/packages.json");
  # The staged directories already added to the store (bench/loop.sh does it once), by
  # package: importing them with builtins.path would hash all 1.5 GB at every evaluation,
  # which is no part of what an image costs when its closure is in the store already.
  added = let file = "${stage}/store-paths.json"; in
    if builtins.pathExists file then builtins.fromJSON (builtins.readFile file) else { };
  files = p:
    if added ? ${p.name} && builtins.pathExists added.${p.name}
    then builtins.storePath added.${p.name}
    else builtins.path { path = /. + "${stage}/${p.name}"; name = "${p.name}-files"; };
  # Store path names allow neither `~` nor `:`.
  clean = builtins.replaceStrings [ "~" ":" ] [ "_" "_" ];
  package = p: derivation {
    name = "${p.name}-${clean p.version}";
    inherit system;
    builder = "${toolbox}/bin/sh";
    src = files p;
    depends = map (d: byName.${d}) p.deps;
    args = [ "-ec" ''
      cp -a $src $out
      chmod u+w $out
      mkdir $out/nix-support
      echo $depends > $out/nix-support/depends
    '' ];
    PATH = "${toolbox}/bin";
  };
  byName = builtins.listToAttrs (map (p: { inherit (p) name; value = package p; }) packages);
  # The packages nothing else depends on: what the application uses directly.
  used = builtins.concatMap (p: p.deps) packages;
  roots = map (p: byName.${p.name}) (builtins.filter (p: !(builtins.elem p.name used)) packages);
  app = derivation {
    name = "app-${appVersion}";
    inherit system;
    builder = "${toolbox}/bin/sh";
    inherit roots;
    args = [ "-ec" ''
      mkdir -p $out/bin
      printf '#!${toolbox}/bin/sh\necho "realistic app ${appVersion}"\n# uses: %s\n' "$roots" > $out/bin/app
      chmod 555 $out/bin/app
    '' ];
    PATH = "${toolbox}/bin";
  };
  image = args: strata.streamLayeredImage ({
    name = "realistic";
    tag = appVersion;
    config.Cmd = [ "${app}/bin/app" ];
    inherit maxLayers;
  } // args);
in
{
  inherit app;
  # The image, streamed (the default build).
  image = image { };
  # A derivation per automatic layer: a rebuild hashes only the layers whose paths changed.
  imagePerLayer = image { perLayerDerivations = true; };
  # Layers stored gzip- or zstd-compressed in the archive.
  imageGz = image { layerCompressor = "gz"; };
  imageZstd = image { layerCompressor = "zstd"; };
  # buildLayeredImage's compressed archive (nixpkgs' default output).
  archiveGz = strata.buildLayeredImage { name = "realistic"; tag = appVersion; config.Cmd = [ "${app}/bin/app" ]; inherit maxLayers; };
}
