# usrBinEnv: `/usr/bin/env` for an image's `contents` or `copyToRoot`, so `#!/usr/bin/env`
# scripts run: coreutils' env from nixpkgs (as nixpkgs' usrBinEnv), or the toolbox's.
{ toolbox, pkgs, internalTree }:

{
  # The env program `/usr/bin/env` points to.
  env ? if pkgs != null then "${pkgs.coreutils}/bin/env" else "${toolbox}/bin/env",
}:
internalTree {
  name = "usr-bin-env";
  entries = [ { path = "usr/bin/env"; symlink = env; } ];
}
