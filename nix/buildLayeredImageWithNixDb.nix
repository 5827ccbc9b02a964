# buildLayeredImageWithNixDb: buildLayeredImage with `includeNixDB = true`, as in nixpkgs: the
# image carries a Nix database registering its closure, so `nix-store` works in the container.
{ lib, imageSystem, buildLayeredImage }:

# Every buildLayeredImage argument; includeNixDB is forced on.
args:
# Checked here first, so that messages name this function.
assert lib.checkImageArgs "buildLayeredImageWithNixDb" lib.layeredImageKinds imageSystem args;
buildLayeredImage (args // { includeNixDB = true; })
