# runAsRoot without a VM on a parent of about 350 MB: bench/run-as-root.sh times the child.
# `runId` makes the child new to each run, so it is really built.
{ helper ? ../build/bootstrap/helper
, toolbox ? ../build/bootstrap/toolbox
, system ? builtins.currentSystem
, runId ? "0"
}:
let
  strata = import ../nix { inherit helper toolbox system; };
  mk = name: script: derivation {
    inherit name system;
    builder = "${toolbox}/bin/sh";
    args = [ "-ec" script ];
    PATH = "${toolbox}/bin";
  };
in
rec {
  parent = strata.buildLayeredImage {
    name = "bench-parent";
    tag = "latest";
    contents = [ toolbox ];
    config.Cmd = [
      "${mk "big-random-200m" "mkdir $out; head -c 200000000 /dev/urandom > $out/blob"}/blob"
      "${mk "big-text-150m" "mkdir $out; seq 1 19000000 > $out/numbers.txt"}/numbers.txt"
    ];
  };
  child = childOf parent;
  # The same on the parent's archive file, as a pulled or `docker save`d parent would be:
  # imported (decompressed, checked, hashed, records made) and its layers unpacked.
  childOfArchive = childOf "${parent}";
  childOf = fromImage: strata.buildImage {
    name = "bench-run-as-root";
    tag = "latest";
    inherit fromImage;
    runAsRoot = ''
      # run ${runId}
      mkdir -p /home/alice /tmp
      chown 1000:1000 /home/alice
      chmod 1777 /tmp
    '';
  };
}
