# streamNixShellImage: an image that is `nix-shell` for a derivation, as nixpkgs' function of
# that name makes it: the derivation's build environment (its inputs in the store, its
# attributes as the environment, stdenv's setup sourced in bash) as uid 1000 in /build,
# with `buildDerivation` on PATH to run its builder.
#
#   $(nix-build -A shellImage) | docker load && docker run -it NAME
#
# Built on streamLayeredImage; the result is its stream executable. Its shell is nixpkgs'
# bashInteractive, so without nixpkgs (`pkgs`) `shell` must be given.
{ lib, pkgs, binSh, usrBinEnv, fakeNss, caCertificates, internalTree, internalWriteFile, streamLayeredImage }:

{
  # The derivation whose environment the image holds. Its outputs are not built: their
  # paths are set, and `buildDerivation` builds them in the container.
  drv,
  # Image name.
  name ? drv.name + "-env",
  # Image tag; null derives it from the image, as streamLayeredImage does.
  tag ? null,
  # The user the container runs as (named nixbld), who owns /nix, /etc/nix and /build.
  uid ? 1000,
  # That user's group.
  gid ? 1000,
  # The user's home directory in /etc/passwd and $HOME. Only /build is created.
  homeDirectory ? "/build",
  # The shell, a bash (it is run with `--rcfile`); nixpkgs' bashInteractive by default.
  shell ? if pkgs != null then "${pkgs.bashInteractive}/bin/bash" else throw "streamNixShellImage: needs a bash: pass `shell`, or import strata's library with `pkgs`",
  # Shell commands run in the interactive shell, which then exits (`nix-shell --command`).
  command ? null,
  # Shell commands run in a non-interactive shell, which then exits (`nix-shell --run`).
  run ? null,
  # The result's `meta`; changes no image.
  meta ? { },
  # Attributes added to the result.
  passthru ? { },
}:
let
  attrs = drv.drvAttrs;

  # An attribute as Nix puts it in a builder's environment: lists joined by spaces, true as
  # "1", false and null as "", paths copied to the store (so they are in the image).
  valueToString = value:
    if builtins.isPath value then "${value}"
    else if builtins.isList value then toString (map valueToString value)
    else toString value;

  # The environment Nix gives the builder: each attribute (those in passAsFile as a file,
  # named NAMEPath), and each output's path, without its context so no output is built.
  inputEnv = builtins.listToAttrs (map (attr:
    let value = valueToString attrs.${attr}; in
    if builtins.elem attr (attrs.passAsFile or [ ]) then {
      name = "${attr}Path";
      value = internalWriteFile { name = "pass-as-text-${attr}"; text = value; };
    } else { name = attr; inherit value; }) (builtins.attrNames attrs));
  outputEnv = builtins.listToAttrs (map (output: {
    name = output;
    value = builtins.unsafeDiscardStringContext drv.${output}.outPath;
  }) (drv.outputs or [ "out" ]));

  # Runs the derivation's builder with its arguments, as `nix-build` would.
  builder = internalTree {
    name = "buildDerivation";
    entries = [ {
      path = "bin/buildDerivation";
      executable = true;
      text = ''
        #!${if pkgs != null then pkgs.runtimeShell else shell}
        exec ${lib.escapeShellArg (valueToString attrs.builder)} ${lib.escapeShellArgs (map valueToString (attrs.args or [ ]))}
      '';
    } ];
  };

  staticPath = "${dirOf shell}:${builder}/bin";

  # What nix-shell's rcfile does (Nix 2.8, nix-build.cc): stdenv's setup, the shell hook,
  # then the command or run, if any, and exit.
  rcfile = internalWriteFile {
    name = "nix-shell-rc";
    text = ''
      unset PATH
      dontAddDisableDepTrack=1
      [ -e $stdenv/setup ] && source $stdenv/setup
      PATH=${staticPath}:"$PATH"
      SHELL=${lib.escapeShellArg shell}
      BASH=${lib.escapeShellArg shell}
      set +e
      [ -n "$PS1" -a -z "$NIX_SHELL_PRESERVE_PROMPT" ] && PS1='\n\[\033[1;32m\][nix-shell:\w]\$\[\033[0m\] '
      if [ "$(type -t runHook)" = function ]; then
        runHook shellHook
      fi
      unset NIX_ENFORCE_PURITY
      shopt -u nullglob
      shopt -s execfail
    '' + (if command == null && run == null then "" else ''
      ${if command != null then command else ""}
      ${if run != null then run else ""}
      exit
    '');
  };

  # Where Nix's sandbox builds (Nix 2.8, globals.hh).
  buildDir = "/build";

  # Nix's builder environment (local-derivation-goal.cc), the derivation's attributes over
  # its defaults and under the build directory's variables.
  env = {
    SSL_CERT_FILE = "${caCertificates}/etc/ssl/certs/ca-bundle.crt";
    NIX_SSL_CERT_FILE = "${caCertificates}/etc/ssl/certs/ca-bundle.crt";
    PATH = staticPath;
    HOME = homeDirectory;
    NIX_STORE = builtins.storeDir;
    NIX_BUILD_CORES = "1";
  } // inputEnv // outputEnv // {
    NIX_BUILD_TOP = buildDir;
    TMPDIR = buildDir;
    TEMPDIR = buildDir;
    TMP = buildDir;
    TEMP = buildDir;
    PWD = buildDir;
    TERM = "xterm-256color";
  };
in
assert lib.assertMsg (!(attrs.__structuredAttrs or false))
  "streamNixShellImage: `drv` ${drv.name} uses __structuredAttrs, whose environment nix-shell images cannot hold";
assert lib.assertMsg (command == null || run == null)
  "streamNixShellImage: give `command` or `run`, not both";
streamLayeredImage {
  inherit name tag meta passthru;
  # The SBOM gives the licences of the derivation and its inputs.
  sbomPackages = [ drv ];
  contents = [
    binSh
    usrBinEnv
    (fakeNss.override {
      # The build user, with homeDirectory as its home (Nix uses the build directory; nixpkgs
      # the home directory, which `~` then expands to).
      extraPasswdLines = [ "nixbld:x:${toString uid}:${toString gid}:Build user:${homeDirectory}:/noshell" ];
      extraGroupLines = [ "nixbld:!:${toString gid}:" ];
    })
  ];
  # A single-user Nix's ownership: the user may add to the store (buildDerivation writes the
  # outputs there) and owns the build directory.
  fakeRootCommands = ''
    mkdir -p ./nix/store ./nix/var/nix ./etc/nix .${buildDir}
    chown -R ${toString uid}:${toString gid} ./nix ./etc/nix .${buildDir}
  '';
  config = {
    User = "${toString uid}:${toString gid}";
    # nix-shell runs `bash --rcfile RC` for an interactive shell, `bash RC` for --run.
    Cmd = if run == null then [ shell "--rcfile" rcfile ] else [ shell rcfile ];
    WorkingDir = buildDir;
    Env = map (var: "${var}=${env.${var}}") (builtins.attrNames env);
  };
}
