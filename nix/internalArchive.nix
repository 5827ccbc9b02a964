# An image written to the store as one archive file (buildLayeredImage, buildImage): the plan
# streamed and compressed by the helper.
{ lib, internalBuilder }:

{
  # The calling function, for messages.
  caller,
  # Store name of the archive, without its `.tar…` ending.
  baseName,
  # The image's plan (a streamLayeredImage-like result).
  plan,
  # "none", "gz" or "zstd".
  compressor,
}:
let
  extensions = { none = ""; gz = ".gz"; zstd = ".zst"; };
in
assert lib.assertMsg (builtins.isString compressor && extensions ? ${compressor})
  "${caller}: `compressor` must be one of \"none\", \"gz\", \"zstd\", got ${lib.show compressor}";
internalBuilder {
  name = "${baseName}.tar${extensions.${compressor}}";
  command = "archive";
  inherit plan compressor;
}
