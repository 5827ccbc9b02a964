# buildLayeredImage: a layered image as a compressed docker-archive in the store.
#
#   docker load < $(nix-build -A image)
#
# Writes the image streamLayeredImage would stream, compressed, to a file. Takes every
# streamLayeredImage argument (name, tag, contents, config, maxLayers, ...) plus `compressor`.
{ lib, imageSystem, internalArchive, internalResult, streamLayeredImage }:

{
  # Image name, as in `docker run NAME`; see streamLayeredImage.
  name,
  # How the archive is compressed: "none", "gz" or "zstd". docker and podman load all three.
  # null: "gz", or "none" when `layerCompressor` already compresses the layers.
  compressor ? null,
  # Attributes added to the result.
  passthru ? { },
  # The result's `meta`, as nixpkgs gives it (its stream gets it too); changes no image.
  meta ? { },
  # Every other streamLayeredImage argument, passed on unchanged.
  ...
}@args:
let
  compressor =
    if args.compressor or null != null then args.compressor
    else if (args.layerCompressor or "none") != "none" then "none"
    else "gz";
  stream = streamLayeredImage (builtins.removeAttrs args [ "compressor" "passthru" ]);
in
# Checked here too, so that messages name this function rather than streamLayeredImage.
assert lib.checkImageArgs "buildLayeredImage" lib.layeredImageKinds imageSystem args;
internalResult {
  drv = internalArchive {
    caller = "buildLayeredImage";
    baseName = lib.imageBaseName name;
    plan = stream;
    inherit compressor;
  };
  # `conf` and `streamScript` as nixpkgs' streamLayeredImage has them: the plan, which is
  # also the stream executable.
  attrs = {
    inherit (stream) imageName imageTag copyToRegistry copyToDockerDaemon copyToPodman conf sbom familyInputs;
    inherit stream;
    buildArgs = args;
    streamScript = stream;
  };
  inherit meta passthru;
}
