# Images built as a nixpkgs user builds them: `pkgs.dockerTools.*` of the stand-in nixpkgs
# (tests/nix/stand-in-nixpkgs, whose stdenv is a small bash setup) with strata's overlay.
# `nixShell.*` are nixpkgs' examples.nix nix-shell examples with their arguments unchanged;
# `scripts.*` run extraCommands, fakeRootCommands and runAsRoot as nixpkgs runs them.
{ helper, toolbox, bash, nix, system ? builtins.currentSystem }:
let
  pkgs = import ./stand-in-nixpkgs {
    inherit system;
    prebuilt = { inherit helper toolbox bash nix; };
    overlays = [ (import ../../nix/overlay.nix) ];
  };
  inherit (pkgs) dockerTools;
in
{
  inherit pkgs;

  # nixpkgs' examples.nix, "nix-shell-*".
  nixShell = {
    basic = dockerTools.streamNixShellImage {
      name = "nix-shell-basic";
      tag = "latest";
      drv = pkgs.hello;
    };
    hook = dockerTools.streamNixShellImage {
      name = "nix-shell-hook";
      tag = "latest";
      drv = pkgs.mkShell {
        shellHook = ''
          echo "This is the shell hook!"
          exit
        '';
      };
    };
    inputs = dockerTools.streamNixShellImage {
      name = "nix-shell-inputs";
      tag = "latest";
      drv = pkgs.mkShell {
        nativeBuildInputs = [ pkgs.hello ];
      };
      command = ''
        hello
      '';
    };
    passAsFile = dockerTools.streamNixShellImage {
      name = "nix-shell-pass-as-file";
      tag = "latest";
      drv = pkgs.mkShell {
        str = "this is a string";
        passAsFile = [ "str" ];
      };
      command = ''
        cat "$strPath"
      '';
    };
    run = dockerTools.streamNixShellImage {
      name = "nix-shell-run";
      tag = "latest";
      drv = pkgs.mkShell { };
      run = ''
        case "$-" in
        *i*) echo This shell is interactive ;;
        *) echo This shell is not interactive ;;
        esac
      '';
    };
    command = dockerTools.streamNixShellImage {
      name = "nix-shell-command";
      tag = "latest";
      drv = pkgs.mkShell { };
      command = ''
        case "$-" in
        *i*) echo This shell is interactive ;;
        *) echo This shell is not interactive ;;
        esac
      '';
    };
    writableHome = dockerTools.streamNixShellImage {
      name = "nix-shell-writable-home";
      tag = "latest";
      drv = pkgs.mkShell { };
      run = ''
        if [[ "$HOME" != "$(eval "echo ~$(whoami)")" ]]; then
          echo "\$HOME ($HOME) is not the same as ~\$(whoami) ($(eval "echo ~$(whoami)"))"
          exit 1
        fi

        if ! touch $HOME/test-file; then
          echo "home directory is not writable"
          exit 1
        fi
        echo "home directory is writable"
      '';
    };
    nonexistentHome = dockerTools.streamNixShellImage {
      name = "nix-shell-nonexistent-home";
      tag = "latest";
      drv = pkgs.mkShell { };
      homeDirectory = "/homeless-shelter";
      run = ''
        if [[ "$HOME" != "$(eval "echo ~$(whoami)")" ]]; then
          echo "\$HOME ($HOME) is not the same as ~\$(whoami) ($(eval "echo ~$(whoami)"))"
          exit 1
        fi

        if -e $HOME; then
          echo "home directory exists"
          exit 1
        fi
        echo "home directory doesn't exist"
      '';
    };
    buildDerivation = dockerTools.streamNixShellImage {
      name = "nix-shell-build-derivation";
      tag = "latest";
      drv = pkgs.hello;
      run = ''
        buildDerivation
        $out/bin/hello
      '';
    };
    # buildNixShellImage: the same image as an archive (nixpkgs' docker-tools-nix-shell.nix
    # loads it with `docker load <`).
    archive = dockerTools.buildNixShellImage {
      drv = pkgs.mkShell { name = "nix-shell-archive"; shellHook = "echo archived; exit"; };
      tag = "latest";
    };
  };

  # Scripts as nixpkgs runs them: extraCommands and fakeRootCommands after stdenv's setup
  # (substituteInPlace, awk on PATH), runAsRoot with the image's /bin on PATH.
  scripts =
    let
      imageTool = pkgs.stdenv.mkDerivation {
        name = "image-tool";
        buildCommand = ''
          mkdir -p $out/bin
          printf '#!${pkgs.runtimeShell}\necho "from the image'"'"'s /bin"\n' > $out/bin/image-tool
          chmod 555 $out/bin/image-tool
        '';
      };
      # The same script for both kinds of image: it fails unless stdenv's setup ran.
      extraCommands = ''
        mkdir -p etc
        echo "greeting=@GREETING@" > etc/app.conf
        substituteInPlace etc/app.conf --replace-fail @GREETING@ hello
        echo "a b c" | awk '{ print $2 }' > etc/awk-said
        if [ "$(type -t runHook)" = function ]; then echo sourced > etc/setup-was; fi
      '';
    in
    {
      layered = dockerTools.buildLayeredImage {
        name = "scripts-under-stdenv";
        tag = "latest";
        contents = [ pkgs.hello pkgs.coreutils ];
        inherit extraCommands;
        fakeRootCommands = ''
          mkdir -p home/alice
          chown 1000:1000 home/alice
          substituteInPlace etc/app.conf --replace-fail hello "hello from fakeRootCommands"
        '';
        config.Cmd = [ "/bin/hello" ];
      };
      single = dockerTools.buildImage {
        name = "scripts-under-stdenv-b";
        tag = "latest";
        copyToRoot = [ pkgs.coreutils ];
        inherit extraCommands;
        config.Cmd = [ "/bin/cat" "/etc/app.conf" "/etc/awk-said" "/etc/setup-was" ];
      };
      # With runAsRoot, nixpkgs runs both scripts plainly (coreutils, then the image's /bin).
      singleRunAsRoot = dockerTools.buildImage {
        name = "scripts-under-stdenv-root";
        tag = "latest";
        copyToRoot = [ pkgs.coreutils imageTool ];
        runAsRoot = ''
          image-tool > /ran-as-root
        '';
        extraCommands = ''
          if type runHook >/dev/null 2>&1; then echo sourced > setup-was; else echo plain > setup-was; fi
        '';
        config.Cmd = [ "/bin/cat" "/ran-as-root" "/setup-was" ];
      };
    };

  # nixpkgs' examples.nix entries that need nixpkgs' packages (bash, buildEnv, writeTextDir),
  # with their arguments unchanged.
  examples = rec {
    bash = dockerTools.buildImage {
      name = "bash";
      tag = "latest";
      copyToRoot = pkgs.buildEnv {
        name = "image-root";
        paths = [ pkgs.bashInteractive ];
        pathsToLink = [ "/bin" ];
      };
    };
    # 2. service example, layered on another image
    redis = dockerTools.buildImage {
      name = "redis";
      tag = "latest";

      # for example's sake, we can layer redis on top of bash or debian
      fromImage = bash;
      # fromImage = debian;

      copyToRoot = pkgs.buildEnv {
        name = "image-root";
        paths = [ pkgs.redis ];
        pathsToLink = [ "/bin" ];
      };

      runAsRoot = ''
        mkdir -p /data
      '';

      config = {
        Cmd = [ "/bin/redis-server" ];
        WorkingDir = "/data";
        Volumes = { "/data" = { }; };
      };
    };
    bashUncompressed = dockerTools.buildImage {
      name = "bash-uncompressed";
      tag = "latest";
      compressor = "none";
      # Not recommended. Use `buildEnv` between copy and packages to avoid file duplication.
      copyToRoot = pkgs.bashInteractive;
    };
    bashZstdCompressed = dockerTools.buildImage {
      name = "bash-zstd";
      tag = "latest";
      compressor = "zstd";
      copyToRoot = pkgs.bashInteractive;
    };
    bashLayeredUncompressed = dockerTools.buildLayeredImage {
      name = "bash-layered-uncompressed";
      tag = "latest";
      compressor = "none";
      contents = pkgs.bashInteractive;
    };
    bashLayeredZstdCompressed = dockerTools.buildLayeredImage {
      name = "bash-layered-zstd";
      tag = "latest";
      compressor = "zstd";
      contents = pkgs.bashInteractive;
    };
    bashLayeredWithUser =
      let
        nonRootShadowSetup = { user, uid, gid ? uid }: with pkgs; [
          (writeTextDir "etc/shadow" ''
            root:!x:::::::
            ${user}:!:::::::
          '')
          (writeTextDir "etc/passwd" ''
            root:x:0:0::/root:${runtimeShell}
            ${user}:x:${toString uid}:${toString gid}::/home/${user}:
          '')
          (writeTextDir "etc/group" ''
            root:x:0:
            ${user}:x:${toString gid}:
          '')
          (writeTextDir "etc/gshadow" ''
            root:x::
            ${user}:x::
          '')
        ];
      in
      dockerTools.buildLayeredImage {
        name = "bash-layered-with-user";
        tag = "latest";
        contents = [ pkgs.bash pkgs.coreutils ] ++ nonRootShadowSetup { uid = 999; user = "somebody"; };
      };
    two-layered-image = dockerTools.buildLayeredImage {
      name = "two-layered-image";
      tag = "latest";
      config.Cmd = [ "${pkgs.bash}/bin/bash" "-c" "echo hello" ];
      contents = [ pkgs.bash ];
      maxLayers = 2;
    };
    no-store-paths = dockerTools.buildLayeredImage {
      name = "no-store-paths";
      tag = "latest";
      extraCommands = ''
        # This removes sharing of busybox and is not recommended. We do this
        # to make the example suitable as a test case with working binaries.
        cp -r ${pkgs.pkgsStatic.busybox}/* .

        # This is a "build" dependency that will not appear in the image
        ${pkgs.hello}/bin/hello
      '';
    };
    unstableDateLayered = dockerTools.buildLayeredImage {
      name = "unstable-date-layered";
      tag = "latest";
      contents = [ pkgs.coreutils ];
      created = "now";
    };
    # 6. nix example to play with the container nix store
    # docker run -it --rm nix nix-store -qR $(nix-build '<nixpkgs>' -A nix)
    nix = dockerTools.buildImageWithNixDb {
      name = "nix";
      tag = "latest";
      copyToRoot = [
        # nix-store uses cat program to display results as specified by
        # the image env variable NIX_PAGER.
        pkgs.coreutils
        pkgs.nix
        pkgs.bash
      ];
      config = {
        Env = [
          "NIX_PAGER=cat"
          # A user is required by nix
          # https://github.com/NixOS/nix/blob/9348f9291e5d9e4ba3c4347ea1b235640f54fd79/src/libutil/util.cc#L478
          "USER=nobody"
        ];
      };
    };
    nixLayered = dockerTools.buildLayeredImageWithNixDb {
      name = "nix-layered";
      tag = "latest";
      contents = [
        # nix-store uses cat program to display results as specified by
        # the image env variable NIX_PAGER.
        pkgs.coreutils
        pkgs.nix
        pkgs.bash
      ];
      config = {
        Env = [
          "NIX_PAGER=cat"
          # A user is required by nix
          # https://github.com/NixOS/nix/blob/9348f9291e5d9e4ba3c4347ea1b235640f54fd79/src/libutil/util.cc#L478
          "USER=nobody"
        ];
      };
    };
    filesInStore = dockerTools.buildLayeredImageWithNixDb {
      name = "file-in-store";
      tag = "latest";
      contents = [
        pkgs.coreutils
        pkgs.nix
        (pkgs.writeScriptBin "myscript" ''
          #!${pkgs.runtimeShell}
          ${pkgs.coreutils}/bin/cat ${pkgs.writeText "somefile" "some data"}
        '')
      ];
      config = {
        Cmd = [ "myscript" ];
        # For some reason 'nix-store --verify' requires this environment variable
        Env = [ "USER=root" ];
      };
    };
    nix-layered = dockerTools.streamLayeredImage {
      name = "nix-layered";
      tag = "latest";
      contents = [ pkgs.nix pkgs.bash ];
      includeNixDB = true;
      config = {
        Env = [ "NIX_PAGER=cat" ];
      };
    };
    # nixpkgs' etc, with a stand-in for NixOS's etc activation (which needs nixpkgs' NixOS
    # modules): the same kind of script, under fakechroot, linking /etc/static into the store
    # and each file through it, as setup-etc.pl does.
    etc =
      let
        etcTree = pkgs.writeTextDir "etc/some-config-file" ''
          127.0.0.1 localhost
          ::1 localhost
        '';
        etcActivationCommands = ''
          ln -s ${etcTree}/etc /etc/static
          ln -s /etc/static/some-config-file /etc/some-config-file
        '';
      in
      dockerTools.streamLayeredImage {
        name = "etc";
        tag = "latest";
        enableFakechroot = true;
        fakeRootCommands = ''
          mkdir -p /etc
          ${etcActivationCommands}
        '';
        config.Cmd = pkgs.writeScript "etc-cmd" ''
          #!${pkgs.busybox}/bin/sh
          ${pkgs.busybox}/bin/cat /etc/some-config-file
        '';
      };
    image-with-certs = dockerTools.buildImage {
      name = "image-with-certs";
      tag = "latest";
      copyToRoot = pkgs.buildEnv {
        name = "image-with-certs-root";
        paths = [ pkgs.coreutils dockerTools.caCertificates ];
      };
      config = { };
    };
  };

  # What streamNixShellImage refuses, at evaluation.
  refused = {
    structuredAttrs = dockerTools.streamNixShellImage {
      drv = pkgs.stdenv.mkDerivation { name = "structured"; __structuredAttrs = true; };
    };
    commandAndRun = dockerTools.streamNixShellImage {
      drv = pkgs.mkShell { };
      command = "true";
      run = "true";
    };
  };
}
