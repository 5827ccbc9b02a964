# A generated closure of about 1.3 GB for the streaming benchmark: 4 paths with files of
# 100 MB and more (random and text, one with a hard link), 16 paths of 2000 small files
# each, 180 library-like paths of a few MB referring to each other, and an `app` that refers
# to all of them. Built with the toolbox only; no nixpkgs.
{ helper ? ../build/bootstrap/helper
, toolbox ? ../build/bootstrap/toolbox
, system ? builtins.currentSystem
, maxLayers ? 100
  # The application's version: bench/incremental.sh changes it between two builds.
, appVersion ? "1"
  # mtime of the image files; a date new to a run makes every layer new to it.
, mtime ? "1970-01-01T00:00:01Z"
}:
let
  strata = import ../nix { inherit helper toolbox system; };
  mk = name: script: derivation {
    inherit name system;
    builder = "${toolbox}/bin/sh";
    args = [ "-ec" script ];
    PATH = "${toolbox}/bin";
  };
  big = [
    (mk "big-random-200m" "mkdir $out; head -c 200000000 /dev/urandom > $out/blob")
    (mk "big-text-150m" "mkdir $out; seq 1 19000000 > $out/numbers.txt")
    (mk "big-hardlinked-120m" "mkdir $out; head -c 120000000 /dev/urandom > $out/a; ln $out/a $out/b")
    (mk "big-mixed-110m" "mkdir $out; head -c 60000000 /dev/urandom > $out/r; seq 1 6500000 > $out/t")
  ];
  many = builtins.genList (i: mk "many-small-${toString i}" ''
    mkdir -p $out
    for d in $(seq 1 40); do
      mkdir $out/d$d
      for f in $(seq 1 50); do head -c $(( (d * 131 + f * 17 + ${toString i}) % 7000 + 500 )) /dev/urandom > $out/d$d/f$f; done
    done
  '') 16;
  libs = builtins.genList (i: mk "lib-${toString i}" ''
    mkdir -p $out/lib
    head -c $(( 1500000 + ${toString i} * 7919 % 1500000 )) /dev/urandom > $out/lib/lib${toString i}.so
    seq 1 $(( 20000 + ${toString i} * 100 )) > $out/lib/lib${toString i}.txt
    ${if i > 0 then "echo ${builtins.elemAt libs (i - 1)} > $out/lib/dep-prev" else ""}
    ${if i > 1 then "echo ${builtins.elemAt libs (i / 2)} > $out/lib/dep-half" else ""}
    ${if i > 10 then "echo ${builtins.elemAt libs (i / 10)} > $out/lib/dep-tenth" else ""}
  '') 180;
  app = mk "bench-app-${appVersion}" ''
    mkdir -p $out/bin
    printf '#!${toolbox}/bin/sh\necho bench ${appVersion}\n' > $out/bin/app
    chmod 555 $out/bin/app
    echo ${toString (big ++ many ++ libs)} > $out/deps
  '';
  # Everything the application needs, the toolbox its script runs with included, so the
  # application layer holds the application alone.
  deps = big ++ many ++ libs ++ [ toolbox ];
  # A shared dependencies layer (most of the bytes) and an application layer on top.
  depsLayer = strata.buildLayer { name = "bench-deps"; inherit deps mtime; };
  appLayer = strata.buildLayer { name = "bench-app"; deps = [ app ]; layers = [ depsLayer ]; inherit mtime; };
in
{
  inherit app deps depsLayer appLayer;
  # Automatic popularity layering: the plan computes every layer's record.
  image = strata.streamLayeredImage {
    name = "strata-bench";
    tag = "latest";
    inherit maxLayers mtime;
    config.Cmd = [ "${app}/bin/app" ];
  };
  # The same with a derivation per automatic layer (import from derivation).
  perLayerImage = strata.streamLayeredImage {
    name = "strata-bench";
    tag = "latest";
    perLayerDerivations = true;
    inherit maxLayers mtime;
    config.Cmd = [ "${app}/bin/app" ];
  };
  # Shared dependencies layer + application layer.
  splitImage = strata.streamLayeredImage {
    name = "strata-bench-split";
    tag = "latest";
    layers = [ depsLayer appLayer ];
    inherit mtime;
    config.Cmd = [ "${app}/bin/app" ];
  };
  layeredGz = strata.buildLayeredImage {
    name = "strata-bench";
    tag = "latest";
    inherit maxLayers mtime;
    config.Cmd = [ "${app}/bin/app" ];
  };
}
