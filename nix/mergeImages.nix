# mergeImages: several images in one docker-archive, all loaded by one `docker load` (as
# nixpkgs' mergeImages). A layer several images share is stored once. Compressed as the last
# image is, like nixpkgs.
#
#   docker load < $(nix-build -A merged)
{ lib, helper, system }:

# The images: strata images (their plans are read, never their archives) and docker-archive
# or OCI layout archives (plain, gzip or zstd); every image of a multi-image archive is kept.
images:
let
  last = builtins.elemAt images (builtins.length images - 1);
in
assert lib.assertMsg (builtins.isList images && images != [ ])
  "mergeImages: expects a non-empty list of images, got ${lib.show images}";
derivation {
  name = "merge-docker-images";
  inherit system;
  images = map (image: image.stream or image) images;
  compressor = if builtins.isAttrs last then last.compressor or "detect" else "detect";
  builder = "${helper}/bin/strata";
  args = [ "merge-images" ];
  __structuredAttrs = true;
}
