# `import nixpkgs { system; overlays; }` for the stand-in: a fixpoint of a tiny base package
# set and the overlays. Its dockerTools functions throw, so an image that builds proves the
# overlay replaced them.
{ system ? builtins.currentSystem, overlays ? [ ], ... }:
let
  toolbox = ./prebuilt/toolbox;
  shDerivation = name: script: derivation {
    inherit name system;
    builder = "${toolbox}/bin/sh";
    args = [ "-ec" script ];
    PATH = "${toolbox}/bin";
  };
  base = final: {
    inherit system;
    buildPackages = final;
    stdenv = { hostPlatform.system = system; buildPlatform.system = system; };
    callPackage = fn: args:
      let f = if builtins.isFunction fn then fn else import fn;
      in f (builtins.intersectAttrs (builtins.functionArgs f) final // args);
    # Takes buildRustPackage's arguments and installs the prebuilt helper as the result.
    rustPlatform.buildRustPackage = { pname, version, src, cargoLock, ... }:
      assert builtins.pathExists cargoLock.lockFile;
      shDerivation "${pname}-${version}" ''
        mkdir -p $out/bin
        cp ${./prebuilt/helper/bin/strata} $out/bin/strata
        test -e ${src}/Cargo.toml
      '';
    buildEnv = { name, paths }: toolbox;
    bash = { }; coreutils = { }; findutils = { }; gnugrep = { }; gnused = { }; gnutar = { }; gzip = { };
    hello = shDerivation "hello-2.12" ''
      mkdir -p $out/bin
      printf '#!${toolbox}/bin/sh\necho "Hello, world!"\n' > $out/bin/hello
      chmod 555 $out/bin/hello
    '';
    dockerTools = {
      streamLayeredImage = throw "stand-in nixpkgs: dockerTools.streamLayeredImage was not replaced by the overlay";
      buildLayeredImage = throw "stand-in nixpkgs: dockerTools.buildLayeredImage was not replaced by the overlay";
    };
  };
  final = builtins.foldl' (acc: overlay: acc // overlay final acc) (base final) overlays;
in
final
