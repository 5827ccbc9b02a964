# A parent image (`fromImage`) imported for building on: the archive is read once and
# checked (a hostile archive cannot write outside the build), and its chosen image's layers
# are kept as plain tars with their records, next to its config, in `parent.json`. A strata
# image as parent is not read at all: its plan already records every layer.
{ internalBuilder }:

{
  # Store name of the import.
  name,
  # A docker-archive or OCI layout archive (plain, gzip or zstd), a strata image, or a
  # streamLayeredImage result.
  fromImage,
  # With fromImageTag, picks one image of a multi-image archive; otherwise the first.
  fromImageName ? null,
  # With fromImageName, picks one image of a multi-image archive.
  fromImageTag ? null,
  # Most bytes the import may unpack; null: the helper's default for the archive's size.
  fromImageMaxBytes ? null,
}:
internalBuilder {
  inherit name fromImageName fromImageTag fromImageMaxBytes;
  command = "import-parent";
  # buildLayeredImage results carry their plan: reading it is free, unpacking the archive not.
  fromImage = fromImage.stream or fromImage;
}
