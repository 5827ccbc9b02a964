# binSh: `/bin/sh` for an image's `contents` or `copyToRoot`: bash from nixpkgs (as nixpkgs'
# binSh), or the toolbox's sh without nixpkgs.
{ lib, system, toolbox, pkgs }:

{
  # The shell `/bin/sh` points to.
  shell ? if pkgs != null then "${pkgs.bashInteractive}/bin/bash" else "${toolbox}/bin/sh",
}:
derivation {
  name = "bin-sh";
  inherit system;
  builder = "${toolbox}/bin/sh";
  args = [ "-ec" ''mkdir -p $out/bin && ln -s ${shell} $out/bin/sh'' ];
  PATH = "${toolbox}/bin";
}
