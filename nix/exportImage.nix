# exportImage: an image's root filesystem as one tar, its layers flattened (upper layers win,
# whiteouts delete), as nixpkgs' exportImage gives, without its VM: `./` names sorted by
# name, hard links dereferenced, mtimes 1980-01-01 as its tar writes them; owners and modes
# (setuid included) are those of the layers. The output is the tar itself.
#
#   tar -tf $(nix-build -A rootfs)
{ lib, internalBuilder, internalParentImage }:

{
  # The image: a strata image (read from its plan, never unpacked) or a docker-archive or
  # OCI layout archive (plain, gzip or zstd).
  fromImage,
  # With fromImageTag, picks one image of a multi-image fromImage; otherwise the first.
  fromImageName ? null,
  # With fromImageName, picks one image of a multi-image fromImage.
  fromImageTag ? null,
  # Most bytes importing fromImage may unpack (its tar stream and its layers', decompressed,
  # together), so a small archive that expands to terabytes fails instead of filling the
  # disk. null: the larger of 4 GiB and 100 times the archive's size, which real images stay
  # far below; set it for a parent of highly compressible content beyond that.
  fromImageMaxBytes ? null,
  # Store name of the tar. nixpkgs defaults to fromImage's name, which for an image archive
  # ends in `.tar.gz` although the export is a plain tar: strata names it after the image.
  name ? "${lib.imageBaseName (fromImage.imageName or fromImage.name or "image")}-rootfs.tar",
  # Accepted for compatibility (nixpkgs' VM disk size); no VM is used.
  diskSize ? 1024,
}@args:
assert lib.checkProblem (lib.argsProblem "exportImage" {
  fromImage = lib.kinds.package;
  fromImageName = lib.orNull lib.kinds.string;
  fromImageTag = lib.orNull lib.kinds.string;
  name = lib.kinds.string;
} args);
assert lib.assertMsg (fromImageMaxBytes == null || (builtins.isInt fromImageMaxBytes && fromImageMaxBytes > 0))
  "exportImage: `fromImageMaxBytes` must be null or a positive number of bytes, got ${lib.show fromImageMaxBytes}";
internalBuilder {
  inherit name;
  command = "export-image";
  parent = internalParentImage {
    name = "${lib.imageBaseName name}-image";
    inherit fromImage fromImageName fromImageTag fromImageMaxBytes;
  };
}
