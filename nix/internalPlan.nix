# An image's plan: the executable file that streams the image (`#!<helper> stream` and the
# plan as JSON), made by the helper's `plan` builder from the image's settings and closure.
# With `command = "plan-layering"`, the grouping of its automatic layers instead
# (perLayerDerivations).
{ helper, imageSystem, internalBuilder }:

{
  # Store name.
  name,
  # `plan`, or `plan-layering`.
  command ? "plan",
  # Image name, lowercased.
  imageName,
  # Tag; null derives it from the plan's store path.
  tag,
  # GOARCH; null derives it from `imageSystem`.
  architecture,
  # CPU variant (`v8`), written into the image config beside `architecture`; null takes the
  # one `imageSystem` has (`v7` for armv7l), or none with an explicit architecture.
  variant ? null,
  # "now" or a date.
  created,
  # mtime of the store layers' entries.
  mtime,
  # Numeric owner of the store layers' entries.
  uid,
  # Numeric group of the store layers' entries.
  gid,
  # Owner name of the store layers' entries.
  uname,
  # Group name of the store layers' entries.
  gname,
  # Most layers, customisation layer and given ones included.
  maxLayers,
  # Whether the closure goes into the image.
  includeStorePaths,
  # The runtime config, as a file in the store.
  configFile,
  # A directory with `layer.tar` and `record.json`: the image's own top layer.
  customisationLayer,
  # Roots of the closure the store layers hold (with the config file, whose references the
  # config names).
  closureRoots,
  # An imported parent (internalParentImage), or null.
  parent ? null,
  # buildLayer results, bottom to top.
  layers ? [ ],
  # Whether archives also carry Docker's v1.0 layout (buildImage).
  legacyLayout ? false,
  # "none", "gz", "zstd" or "zstd:chunked": how archives store layers.
  layerCompressor ? "none",
  # nixpkgs' layering pipeline (a list), or null for the default layering.
  layeringPipeline ? null,
  # The image's part of its family's layering (`{ layers; member; }`, imageFamily), or null.
  family ? null,
}:
internalBuilder ({
  inherit name command imageSystem imageName tag architecture created mtime uid gid uname gname;
  inherit maxLayers includeStorePaths configFile customisationLayer parent layers legacyLayout layerCompressor;
  inherit layeringPipeline;
  # The config file is not image content; its references are.
  exclude = [ configFile ];
  helperBin = "${helper}/bin/strata";
  exportReferencesGraph.closure = closureRoots;
}
# Only when given, so that the plans of images without one stay the derivations they were
# (their tags are their plans' hashes).
// (if variant != null then { inherit variant; } else { })
// (if family != null then { inherit family; } else { }))
