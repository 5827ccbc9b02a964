# `import nixpkgs { system; overlays; }` for the stand-in: a fixpoint of a tiny base package
# set and the overlays. Its dockerTools functions throw, so an image that builds proves the
# overlay replaced them. Its stdenv is a few lines of bash (stdenv/setup.sh) with nixpkgs'
# interface: `mkDerivation`, `mkShell`, `$stdenv/setup`, `runHook`, `substituteInPlace`.
{
  system ? builtins.currentSystem,
  overlays ? [ ],
  # What the stand-in's packages are made of: the helper (bin/strata), the toolbox (static
  # busybox's bin/), static bash (bin/bash) and the machine's Nix with its libraries
  # (libexec/nix, lib/), as scripts/bootstrap makes them. The flake test copies them into
  # ./prebuilt.
  prebuilt ? { helper = ./prebuilt/helper; toolbox = ./prebuilt/toolbox; bash = ./prebuilt/bash; nix = ./prebuilt/nix; },
  ...
}:
let
  inherit (prebuilt) toolbox;
  shDerivation = name: script: derivation {
    inherit name system;
    builder = "${toolbox}/bin/sh";
    args = [ "-ec" script ];
    PATH = "${toolbox}/bin";
  };
  base = final: {
    inherit system;
    buildPackages = final;
    callPackage = fn: args:
      let f = if builtins.isFunction fn then fn else import fn;
      in f (builtins.intersectAttrs (builtins.functionArgs f) final // args);
    # Takes buildRustPackage's arguments and installs the prebuilt helper as the result.
    rustPlatform.buildRustPackage = { pname, version, src, cargoLock, ... }:
      assert builtins.pathExists cargoLock.lockFile;
      shDerivation "${pname}-${version}" ''
        mkdir -p $out/bin
        cp ${prebuilt.helper}/bin/strata $out/bin/strata
        test -e ${src}/Cargo.toml
      '';
    # Links every file of `paths` under `pathsToLink` into one tree, the first path's winning.
    buildEnv = { name, paths, pathsToLink ? [ "/" ], ... }: shDerivation name ''
      mkdir -p $out
      for p in ${builtins.concatStringsSep " " (map (p: "${p}") paths)}; do
        for sub in ${toString pathsToLink}; do
          [ -d "$p$sub" ] || continue
          (cd "$p" && find ".$sub" ! -type d) | while read -r f; do
            mkdir -p "$out/$(dirname "$f")"
            [ -e "$out/$f" ] || [ -L "$out/$f" ] || ln -s "$p/''${f#./}" "$out/$f"
          done
        done
      done
    '';
    # nixpkgs' trivial builders, as far as the examples use them: `text` written to `dest`
    # under $out (the output itself when ""), executable or not.
    writeTextFile = { name, text, destination ? "", executable ? false }: derivation {
      inherit name system text destination;
      passAsFile = [ "text" ];
      builder = "${toolbox}/bin/sh";
      args = [ "-ec" ''
        PATH=${toolbox}/bin
        mkdir -p "$(dirname "$out$destination")"
        cp "$textPath" "$out$destination"
        ${if executable then "chmod 555 \"$out$destination\"" else ""}
      '' ];
    };
    writeText = name: text: final.writeTextFile { inherit name text; };
    writeTextDir = path: text: final.writeTextFile { name = baseNameOf path; inherit text; destination = "/${path}"; };
    writeScript = name: text: final.writeTextFile { inherit name text; executable = true; };
    writeScriptBin = name: text: final.writeTextFile { inherit name text; executable = true; destination = "/bin/${name}"; };
    runCommand = name: env: buildCommand: final.stdenv.mkDerivation ({ inherit name buildCommand; } // env);
    pkgsStatic.busybox = toolbox;
    busybox = toolbox;
    # The machine's Nix, run through its own loader and libraries (it is not built for the
    # store), with nixpkgs' layout: bin/nix, and the other commands links to it.
    nix = shDerivation "nix-2.8-stand-in" ''
      mkdir -p $out/bin $out/lib $out/libexec
      cp ${prebuilt.nix}/lib/* $out/lib/
      cp ${prebuilt.nix}/libexec/nix $out/libexec/nix
      printf '#!${toolbox}/bin/sh\nexec %s --argv0 "$0" --library-path %s %s "$@"\n' \
        $out/lib/ld-linux-x86-64.so.2 $out/lib $out/libexec/nix > $out/bin/nix
      chmod 555 $out/bin/nix
      for cmd in nix-store nix-build nix-instantiate nix-env nix-daemon nix-shell nix-hash; do
        ln -s nix $out/bin/$cmd
      done
    '';
    # Static bash, as bash and bashInteractive (with bin/sh, as nixpkgs' bash has).
    bash = shDerivation "bash-5.2-static" ''
      mkdir -p $out/bin
      cp ${prebuilt.bash}/bin/bash $out/bin/bash
      ln -s bash $out/bin/sh
    '';
    bashInteractive = final.bash;
    runtimeShell = "${final.bash}/bin/bash";
    # busybox stands in for the GNU tools.
    coreutils = toolbox; findutils = toolbox; gnugrep = toolbox; gnused = toolbox; gawk = toolbox;
    gnutar = toolbox; gzip = toolbox; diffutils = toolbox;
    cacert = shDerivation "cacert-stand-in" ''
      mkdir -p $out/etc/ssl/certs
      echo "# stand-in CA bundle" > $out/etc/ssl/certs/ca-bundle.crt
    '';
    # nixpkgs' stdenv is a derivation holding `setup`, with mkDerivation and the platforms.
    stdenv = (shDerivation "stdenv-stand-in" ''
      mkdir $out
      echo 'initialPath="${toolbox}"' > $out/setup
      cat ${./stdenv/setup.sh} >> $out/setup
    '') // {
      hostPlatform.system = system;
      buildPlatform.system = system;
      shell = "${final.bash}/bin/bash";
      initialPath = [ toolbox ];
      # A derivation built by sourcing setup and running genericBuild, as nixpkgs' is.
      mkDerivation = { name, ... }@attrs: derivation ({
        inherit system;
        builder = "${final.bash}/bin/bash";
        args = [ "-e" ./stdenv/default-builder.sh ];
        stdenv = final.stdenv;
      } // attrs);
    };
    # nixpkgs' mkShell: a derivation for nix-shell, which refuses to be built.
    mkShell = attrs: final.stdenv.mkDerivation ({
      name = "nix-shell";
      phases = [ "nobuildPhase" ];
      nobuildPhase = ''
        echo "This derivation is not meant to be built, unless you want to capture the dependency closure." >&2
        exit 1
      '';
    } // attrs);
    # A redis-server that says it is ready, where it runs, and stops.
    redis = final.stdenv.mkDerivation {
      name = "redis-7.2-stand-in";
      buildCommand = ''
        mkdir -p $out/bin
        printf '#!${toolbox}/bin/sh\necho "Ready to accept connections tcp in $(${toolbox}/bin/pwd)"\n' > $out/bin/redis-server
        chmod 555 $out/bin/redis-server
      '';
    };
    hello = final.stdenv.mkDerivation {
      name = "hello-2.12";
      buildCommand = ''
        mkdir -p $out/bin
        printf '#!${toolbox}/bin/sh\necho "Hello, world!"\n' > $out/bin/hello
        chmod 555 $out/bin/hello
      '';
    };
    dockerTools = {
      streamLayeredImage = throw "stand-in nixpkgs: dockerTools.streamLayeredImage was not replaced by the overlay";
      buildLayeredImage = throw "stand-in nixpkgs: dockerTools.buildLayeredImage was not replaced by the overlay";
    };
  };
  final = builtins.foldl' (acc: overlay: acc // overlay final acc) (base final) overlays;
in
final
