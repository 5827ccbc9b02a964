# binSh: `/bin/sh` for an image's `contents` or `copyToRoot`: bash from nixpkgs (as nixpkgs'
# binSh), or the toolbox's sh without nixpkgs.
{ toolbox, pkgs, internalTree }:

{
  # The shell `/bin/sh` points to.
  shell ? if pkgs != null then "${pkgs.bashInteractive}/bin/bash" else "${toolbox}/bin/sh",
}:
internalTree {
  name = "bin-sh";
  entries = [ { path = "bin/sh"; symlink = shell; } ];
}
