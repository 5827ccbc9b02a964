# buildImageWithNixDb: buildImage with `includeNixDB = true`, as in nixpkgs: the image
# carries a Nix database registering its closure, so `nix-store` works in the container.
{ lib, imageSystem, buildImage }:

# Every buildImage argument; includeNixDB is forced on.
args:
# Checked here first, so that messages name this function.
assert lib.checkImageArgs "buildImageWithNixDb" lib.buildImageKinds imageSystem args;
buildImage (args // { includeNixDB = true; })
