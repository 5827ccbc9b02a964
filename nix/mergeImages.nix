# mergeImages: several images in one docker-archive, all loaded by one `docker load` (as
# nixpkgs' mergeImages). A layer several images share is stored once. Compressed as the last
# image is, like nixpkgs.
#
#   docker load < $(nix-build -A merged)
{ lib, internalBuilder }:

# The images: strata images (their plans are read, never their archives) and docker-archive
# or OCI layout archives (plain, gzip or zstd); every image of a multi-image archive is kept.
images:
let
  last = builtins.elemAt images (builtins.length images - 1);
in
assert lib.assertMsg (builtins.isList images && images != [ ])
  "mergeImages: expects a non-empty list of images, got ${lib.show images}";
assert lib.checkProblem (lib.kindProblem (lib.listKindOf "a list of images (derivations or paths)" lib.isPackage) "mergeImages" "images" images);
internalBuilder {
  name = "merge-docker-images";
  command = "merge-images";
  images = map (image: image.stream or image) images;
  compressor = if builtins.isAttrs last then last.compressor or "detect" else "detect";
}
