# One layer holding exactly the given store paths (no closure, no popularity), with its
# record: what each automatic layer becomes with `perLayerDerivations`. Its name and inputs
# depend only on the paths and the stamp, so the same group of paths in two images, or in
# two builds of one image, is one derivation.
{ lib, internalBuilder }:

{
  # The store paths, each with string context (they become the derivation's inputs).
  paths,
  # mtime of the layer's files.
  mtime,
  # Numeric owner of the layer's store files.
  uid,
  # Numeric group of the layer's store files.
  gid,
  # Owner name of the layer's store files.
  uname,
  # Group name of the layer's store files.
  gname,
}:
internalBuilder {
  # Store names are limited to 211 characters.
  name = "layer-${builtins.substring 0 150 (lib.storePathName (builtins.head paths))}${if builtins.length paths > 1 then "-and-${toString (builtins.length paths - 1)}-more" else ""}.json";
  command = "build-layer";
  inherit paths mtime uid gid uname gname;
  maxLayers = 1;
} // { isStrataLayer = true; }
