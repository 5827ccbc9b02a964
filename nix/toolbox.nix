# The shell and tools `extraCommands` run with when the library is built from nixpkgs.
{ buildEnv, bash, coreutils, findutils, gawk, gnugrep, gnused, gnutar, gzip }:

buildEnv {
  name = "strata-toolbox";
  paths = [ bash coreutils findutils gawk gnugrep gnused gnutar gzip ];
}
