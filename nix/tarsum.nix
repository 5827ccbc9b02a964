# tarsum: a package whose `bin/tarsum` prints the tarsum of the tar on its stdin, Docker's
# legacy layer checksum, as nixpkgs' `dockerTools.tarsum` (a Go program built from Docker's
# pkg/tarsum) does:
#
#   ${tarsum}/bin/tarsum < layer.tar     # tarsum.v1+sha256:…
#
# It is `strata tarsum`: `bin/tarsum` is a link to the helper, which, called by that name,
# runs its tarsum subcommand (so no shell is involved; `--tarsum-version v0|v1|dev|all`
# picks the version, v1 by default, as Docker's).
{ helper, internalTree }:

internalTree {
  name = "tarsum";
  entries = [ { path = "bin/tarsum"; symlink = "${helper}/bin/strata"; } ];
} // { meta.mainProgram = "tarsum"; }
