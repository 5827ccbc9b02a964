# A small package set for the end-to-end tests, made without nixpkgs: each package is a
# derivation built by the toolbox's sh, and packages refer to each other so the image closure
# has a real reference graph: hello → greeting → locale-data, hello → toolbox (its shebang).
{ toolbox, system ? builtins.currentSystem }:
let
  mk = name: script: derivation {
    inherit name system;
    builder = "${toolbox}/bin/sh";
    args = [ "-ec" script ];
    PATH = "${toolbox}/bin";
  };
in
rec {
  inherit toolbox mk;

  localeData = mk "locale-data-1.0" ''
    mkdir -p $out/share/locale
    echo "en_US.UTF-8" > $out/share/locale/default
  '';

  # `meta` and `buildInputs` are added beside the derivation (`//`), as nixpkgs' packages
  # carry them, without changing it: the SBOM builder reads licences from them.
  greeting = mk "greeting-2.1" ''
    mkdir -p $out/share/greeting $out/nix-support
    echo "Hello from strata!" > $out/share/greeting/text
    echo "${localeData}" > $out/nix-support/propagated
  '' // { meta.license = { spdxId = "Apache-2.0"; fullName = "Apache License 2.0"; }; };

  # The executable images run: prints the greeting and proves its closure is present.
  hello = mk "hello-app-0.3" ''
    mkdir -p $out/bin
    cat > $out/bin/hello <<SCRIPT
    #!${toolbox}/bin/sh
    cat ${greeting}/share/greeting/text
    test -r ${localeData}/share/locale/default || { echo "closure incomplete" >&2; exit 1; }
    if [ "\''${1:-}" = --whoami ]; then id -u; stat -c '%a %u' /nix /nix/store ${greeting}; fi
    SCRIPT
    chmod 555 $out/bin/hello
  '' // {
    buildInputs = [ greeting ];
    meta.license = [ { spdxId = "GPL-3.0-or-later"; } { fullName = "Strata Test Licence 1.0"; } ];
  };

  # A tool placed at the image root through `contents`.
  tools = mk "tools-1.0" ''
    mkdir -p $out/bin $out/etc
    printf '#!${toolbox}/bin/sh\necho tools ok\n' > $out/bin/tools-check
    chmod 555 $out/bin/tools-check
    echo "from tools" > $out/etc/tools.conf
  '' // { meta.license = { spdxId = "MIT"; shortName = "mit"; }; };

  # Many small packages, for closures larger than maxLayers: filler-N refers to filler-(N-1).
  fillers = builtins.genList (i: mk "filler-${toString i}" ''
    mkdir -p $out
    echo ${toString i} > $out/n
    ${if i > 0 then "echo ${builtins.elemAt fillers (i - 1)} > $out/prev" else ""}
  '') 12;

  # A closure of a few hundred megabytes, as an application's dependencies are: a large data
  # package, two mid-sized libraries and small ones, each referring to the next.
  bigData = mk "big-data-1.0" "mkdir $out; seq 1 22000000 > $out/numbers.txt";
  midLibs = builtins.genList (i: mk "mid-lib-${toString i}-2.0" ''
    mkdir $out; seq ${toString (i * 1000000)} ${toString (i * 1000000 + 900000)} > $out/lib.so
    echo ${bigData} > $out/data
  '') 2;
  smallLibs = builtins.genList (i: mk "small-lib-${toString i}-1.0" ''
    mkdir $out; seq 1 ${toString (2000 + i * 3000)} > $out/lib.so
    echo ${builtins.elemAt midLibs (i - i / 2 * 2)} > $out/uses
  '') 8;
}
