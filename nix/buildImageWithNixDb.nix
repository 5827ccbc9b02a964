# buildImageWithNixDb: buildImage with `includeNixDB = true`, as in nixpkgs: the image
# carries a Nix database registering its closure, so `nix-store` works in the container.
{ buildImage }:

# Every buildImage argument; includeNixDB is forced on.
args: buildImage (args // { includeNixDB = true; })
