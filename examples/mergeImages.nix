# mergeImages: several images in one archive, loaded by one `docker load`.
#   nix-build examples -A merged && docker load < result
{ dockerTools, images }:

dockerTools.mergeImages images
