# buildLayeredImageWithNixDb: buildLayeredImage with `includeNixDB = true`, as in nixpkgs: the
# image carries a Nix database registering its closure, so `nix-store` works in the container.
{ buildLayeredImage }:

# Every buildLayeredImage argument; includeNixDB is forced on.
args: buildLayeredImage (args // { includeNixDB = true; })
