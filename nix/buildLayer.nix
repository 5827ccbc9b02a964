# buildLayer: layers of their own, to share between images.
#
#   deps = buildLayer { deps = [ python3 ]; };
#   app = buildLayer { deps = [ myApp ]; layers = [ deps ]; };
#   image = streamLayeredImage { name = "app"; layers = [ deps app ]; config.Cmd = [ ... ]; };
#
# The result is a small file of layer records (store paths, size and diff_id; a push computes
# the compressed digests it needs, once, and caches them), never a tar. It is a derivation keyed by exactly its arguments: images that list it
# share it, an image rebuilt after its application changed does not rebuild it, and it builds
# on remote builders and comes from binary caches like any other path.
{ lib, internalBuilder, internalCustomisationLayer, internalResult }:

{
  # Packages whose closure goes into the layer, except the store paths `layers` already hold.
  deps ? [ ],
  # Packages merged at the image root, as streamLayeredImage's `contents`: their closure goes
  # into the layer like `deps`, and one more small layer holds the root symlinks.
  contents ? [ ],
  # Earlier buildLayer results whose store paths this layer leaves out, so that listing
  # `layers = [ a b ]` in an image holds every path once.
  layers ? [ ],
  # Most store layers to split this one's paths into: the most popular paths get a layer
  # each, the rest share the last (the contents' root layer is not counted).
  maxLayers ? 1,
  # Name of the derivation.
  name ? "layer",
  # mtime of the layer's files, RFC 3339; a constant keeps the layer reproducible.
  mtime ? "1970-01-01T00:00:01Z",
  # Numeric owner of the layer's store files.
  uid ? 0,
  # Numeric group of the layer's store files.
  gid ? 0,
  # Owner name of the layer's store files.
  uname ? "root",
  # Group name of the layer's store files.
  gname ? "root",
  # Attributes added to the result.
  passthru ? { },
}@args:
let
  contentsList = lib.toList contents;
  contentsLayer =
    if contentsList == [ ] then null
    else internalCustomisationLayer {
      name = "${lib.imageBaseName name}-contents";
      contents = contentsList;
      extraCommands = "";
      includeStorePaths = true;
      inherit mtime;
    };
  layer = internalBuilder {
    # Store names are limited to 211 characters.
    name = "${builtins.substring 0 180 (lib.imageBaseName name)}-layers.json";
    command = "build-layer";
    inherit maxLayers mtime uid gid uname gname layers contentsLayer;
    exportReferencesGraph.closure = lib.toList deps ++ contentsList;
  };
in
assert lib.checkProblem (lib.argsProblem "buildLayer" {
  deps = lib.kinds.packages;
  contents = lib.kinds.packages;
  name = lib.kinds.string;
  uid = lib.kinds.id;
  gid = lib.kinds.id;
  uname = lib.kinds.string;
  gname = lib.kinds.string;
  passthru = lib.kinds.set;
} args);
assert lib.assertMsg (builtins.isInt maxLayers && maxLayers >= 1)
  "buildLayer: `maxLayers` must be an integer of at least 1, got ${lib.show maxLayers}";
assert lib.assertMsg (builtins.isList layers && builtins.all (l: l.isStrataLayer or false) layers)
  "buildLayer: `layers` must be a list of buildLayer results, got ${lib.show layers}";
assert lib.assertMsg (lib.isTime mtime && mtime != "now")
  "buildLayer: `mtime` must be a date such as 1970-01-01T00:00:01Z, got ${lib.show mtime}";
internalResult {
  drv = layer;
  attrs.isStrataLayer = true;
  inherit passthru;
}
