# usrBinEnv: `/usr/bin/env` for an image's `contents` or `copyToRoot`, so `#!/usr/bin/env`
# scripts run: coreutils' env from nixpkgs (as nixpkgs' usrBinEnv), or the toolbox's.
{ lib, system, toolbox, pkgs }:

{
  # The env program `/usr/bin/env` points to.
  env ? if pkgs != null then "${pkgs.coreutils}/bin/env" else "${toolbox}/bin/env",
}:
derivation {
  name = "usr-bin-env";
  inherit system;
  builder = "${toolbox}/bin/sh";
  args = [ "-ec" ''mkdir -p $out/usr/bin && ln -s ${env} $out/usr/bin/env'' ];
  PATH = "${toolbox}/bin";
}
