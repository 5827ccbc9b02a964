# streamLayeredImage: an executable that writes a layered image to stdout as a docker-archive.
#
#   $(nix-build -A image) | docker load
#
# The build decides the layers (the most popular store paths of the closure get a layer each)
# and writes them into the executable, a plan file run by the helper; no image tarball is
# stored. Arguments and defaults are nixpkgs' dockerTools.streamLayeredImage's.
{ lib, imageSystem, internalCopyCommands, internalCustomisationLayer, internalExactLayer, internalParentImage, internalPlan, internalResult, internalSbom, internalSbomInImage, internalWriteFile }:

{
  # Image name, as in `docker run NAME`. Lowercased, then checked as docker reads names
  # (so "My App" fails at evaluation, not at `docker load`); may carry a registry prefix
  # (`registry.example.com/team/app`).
  name,
  # Image tag. null derives it from the hash of the executable's store path, so the tag
  # changes exactly when the image does.
  tag ? null,
  # Packages merged at the image root like symlinkJoin (`contents = [ hello ]` gives
  # `/bin/hello`). A single package is accepted too.
  contents ? [ ],
  # The runtime config (Docker image spec `config`: Cmd, Entrypoint, Env, WorkingDir, User,
  # ExposedPorts, Labels, ...). Store paths it names are put in the image with their closure.
  # null, as nixpkgs takes it, is no config: the image of { }.
  config ? { },
  # Image architecture as GOARCH ("amd64", "arm64", ...). null derives it from the system
  # the library was instantiated for (x86_64-linux gives amd64).
  architecture ? null,
  # CPU variant of the architecture (OCI's `variant`: "v8" for arm64, "v7" for arm), written
  # into the image config beside `architecture` and used for the image's platform in an
  # imageIndex, as nixpkgs does. Checked at evaluation against the architecture's variants.
  # null: the system's (armv7l gives v7), or none with an explicit architecture.
  variant ? null,
  # Image creation date, RFC 3339 (or `2024-01-01`), or "now": the time the image is
  # streamed, so every stream is a different image.
  created ? "1970-01-01T00:00:01Z",
  # mtime of the files in the store layers, like `created`; "now" is the time the layers'
  # records are computed (their bytes are fixed then). Keep it constant so layers are shared
  # between images. The customisation layer takes 1970-01-01T00:00:01Z when this is "now".
  mtime ? "1970-01-01T00:00:01Z",
  # Numeric owner of the store files in the image (1000 for single-user Nix in a container).
  uid ? 0,
  # Numeric group of the store files in the image.
  gid ? 0,
  # Owner name of the store files in the image.
  uname ? "root",
  # Group name of the store files in the image.
  gname ? "root",
  # Shell commands run in the image root before the customisation layer is tarred, e.g.
  # `mkdir -m 1777 tmp`. With nixpkgs they run as nixpkgs runs them, in bash after
  # `$stdenv/setup` (stdenv's PATH, substituteInPlace, awk); without, with the toolbox's sh
  # (`-e`) and only its bin/ on PATH.
  extraCommands ? "",
  # Whether the closure goes into the image. false gives the customisation layer alone,
  # whose links point into a /nix/store the image lacks (mount one at run time).
  includeStorePaths ? true,
  # Most layers the image may have, the customisation layer, `layers` and fromImage's
  # layers included; at least 2. The store paths not in `layers` are grouped by what a change
  # re-sends (docs/API.md, "Layering"): large paths alone, small ones with what they change
  # with. Docker refuses images of more than 125 layers.
  maxLayers ? 100,
  # Layers made with buildLayer, bottom to top, put below the automatic ones. A layer
  # derivation is built once and shared by every image that lists it, so rebuilding an
  # image after its application changed leaves the layers of its stable dependencies alone.
  layers ? [ ],
  # Make each automatic layer a derivation of its own, keyed by exactly its store paths, so a
  # rebuild after one path changed recomputes only the records of the layers that hold
  # changed paths. Needs import-from-derivation (the grouping is built during evaluation),
  # which some evaluators (Hydra, `--no-allow-import-from-derivation`) refuse.
  perLayerDerivations ? false,
  # How layers are stored in the archive: "none" (plain tars), "gz" or "zstd" (`tar+gzip` /
  # `tar+zstd` blobs of the OCI layout, as a registry stores them; docker load reads gzip
  # layers, zstd ones from Docker 23), or "zstd:chunked" (zstd with a frame per file and a
  # table of contents, which podman pulls partially; plain zstd to other readers). The
  # compressed bytes are those the layer records already hash, and are checked against them.
  layerCompressor ? "none",
  # Packages whose licences the image's SBOM (`.sbom`) gives besides those of `contents`
  # (and, for each, of its `buildInputs` and `propagatedBuildInputs`): typically the packages
  # `config.Cmd` names. They add nothing to the image.
  sbomPackages ? [ ],
  # Whether the image carries its SBOMs and provenance, in a top layer of their own at
  # /usr/share/sbom (`NAME.cdx.json`, `NAME.spdx.json`, `NAME.intoto.json`), where scanners
  # that read files (syft, trivy) find them. They describe the layers below theirs.
  sbomInImage ? false,
  # Attributes added to the result.
  passthru ? { },
  # The result's `meta` (description, license, mainProgram, ...), as nixpkgs gives it; not a
  # derivation attribute, so it changes no image.
  meta ? { },
  # An image to build on (`FROM`): a docker-archive or OCI layout archive (plain, gzip or
  # zstd; from strata, `docker save`, skopeo, pullImage) or a strata image. Its layers come
  # first, unchanged, and count against maxLayers; store paths it holds are not added again;
  # its `Env` is inherited (a variable set here too keeps this image's value).
  fromImage ? null,
  # With fromImageTag, picks one image of a multi-image fromImage; otherwise the first.
  fromImageName ? null,
  # With fromImageName, picks one image of a multi-image fromImage.
  fromImageTag ? null,
  # Most bytes importing fromImage may unpack (its tar stream and its layers', decompressed,
  # together), so a small archive that expands to terabytes fails instead of filling the
  # disk. null: the larger of 4 GiB and 100 times the archive's size, which real images stay
  # far below; set it for a parent of highly compressible content beyond that.
  fromImageMaxBytes ? null,
  # Shell commands run as root in the image root after extraCommands, in a user namespace:
  # owners they set (`chown 1000:1000 home/alice`) and modes show in the image. Like
  # extraCommands, after `$stdenv/setup` with nixpkgs.
  fakeRootCommands ? "",
  # Whether fakeRootCommands see the image root as `/` (with the build's /nix/store mounted
  # in), so absolute paths (`mkdir /home`) land in the image.
  enableFakechroot ? false,
  # Whether the image carries a Nix database registering every store path of its closure
  # (references, NAR hash and size) and a GC root per `contents` package, so `nix-store`
  # works in the container. Written by the helper; no Nix is needed at build time.
  includeNixDB ? false,
  # nixpkgs' experimental layering pipeline, instead of the default layering: a list of
  # operations (`[ [ "popularity_contest" ] [ "limit_layers" 99 ] ]` is nixpkgs' old
  # default), or a JSON file holding one. docs/API.md lists the operations. With it,
  # `maxLayers` is not applied: the pipeline decides the layers, as in nixpkgs.
  layeringPipeline ? null,
  # Set by imageFamily, which builds the image as a member of a family: the image's part of
  # the family's layering, `{ layers = <the family's layering file>; member = "<its name>"; }`.
  # Its automatic layers are then those, chosen with the other members' so that paths they
  # share sit in identical layers. null: the image is laid alone.
  family ? null,
  # Accepted for compatibility; has no effect.
  debug ? false,
}@args:
let
  pipeline =
    if layeringPipeline == null || builtins.isList layeringPipeline then layeringPipeline
    else builtins.fromJSON (builtins.readFile layeringPipeline);
  baseName = lib.imageBaseName name;
  imageName = lib.toLower name;

  customisationLayer = internalCustomisationLayer {
    name = "${baseName}-customisation-layer";
    contents = lib.toList contents;
    mtime = if mtime == "now" then "1970-01-01T00:00:01Z" else mtime;
    inherit extraCommands includeStorePaths fakeRootCommands enableFakechroot;
    nixDb = if includeNixDB then { roots = lib.toList contents; inherit configFile; } else null;
    # nixpkgs gives /nix and /nix/store to uid/gid (a single-user Nix in the container
    # needs them); root's images keep the layer they had.
    storeOwner = if uid == 0 && gid == 0 then null else { inherit uid gid uname gname; };
  };

  parent = if fromImage == null then null else internalParentImage {
    name = "${baseName}-parent";
    inherit fromImage fromImageName fromImageTag fromImageMaxBytes;
  };

  configFile = internalWriteFile {
    name = "${baseName}-config.json";
    text = builtins.toJSON (lib.configForImage config);
  };

  # The settings the plan and the layering builders read.
  settings = {
    inherit imageName tag architecture variant created mtime uid gid uname gname;
    inherit maxLayers includeStorePaths configFile customisationLayer parent layerCompressor;
    layeringPipeline = pipeline;
    closureRoots = if includeStorePaths then [ configFile customisationLayer ] else [ ];
  } // (if family != null then { inherit family; } else { });

  # With perLayerDerivations, the grouping is built first (import from derivation) and every
  # group becomes an exact layer derivation; the plan then only assembles records.
  automaticLayers =
    let
      layering = internalPlan (settings // {
        name = "${baseName}-layering.json";
        command = "plan-layering";
        inherit layers;
      });
      # readFile gives the file's references as context, which fromJSON refuses; each path
      # gets its own context back below.
      groups = builtins.fromJSON (builtins.unsafeDiscardStringContext (builtins.readFile layering));
    in
    map (group: internalExactLayer {
      paths = map lib.withPathContext group;
      inherit uid gid uname gname;
      inherit mtime;
    }) groups;

  # With perLayerDerivations, the family's layers are already among `layers`.
  planBelowSbom = internalPlan (builtins.removeAttrs settings (if perLayerDerivations then [ "family" ] else [ ]) // {
    name = if sbomInImage then "stream-${baseName}-below-sbom" else "stream-${baseName}";
    layers = layers ++ (if perLayerDerivations then automaticLayers else [ ]);
  });
  plan = if !sbomInImage then planBelowSbom else internalSbomInImage {
    name = "stream-${baseName}";
    plan = planBelowSbom;
    packages = sbomPackagesAll;
    mtime = if mtime == "now" then "1970-01-01T00:00:01Z" else mtime;
  };
  sbomPackagesAll = lib.toList contents ++ lib.toList sbomPackages;

  imageTag = if tag != null then tag else lib.hashPart plan.outPath;
  copies = internalCopyCommands (plan // { inherit imageName imageTag; }) sbom;
  sbom = internalSbom { name = "${baseName}-sbom"; inherit plan; packages = sbomPackagesAll; };
in
# The arguments that reach the helper, each by its kind (`lib.layeredImageKinds`), and the
# platform; the rest depend on one another.
assert lib.checkImageArgs "streamLayeredImage" lib.layeredImageKinds imageSystem args;
assert lib.assertMsg (pipeline != null || (builtins.isInt maxLayers && maxLayers >= 2))
  "streamLayeredImage: `maxLayers` must be an integer of at least 2 (one store layer and the customisation layer), got ${lib.show maxLayers}";
assert lib.assertMsg (!(perLayerDerivations && mtime == "now"))
  "streamLayeredImage: `perLayerDerivations` needs a fixed `mtime` (layer derivations are shared between builds), got \"now\"";
assert lib.assertMsg (pipeline == null || lib.isPipeline pipeline)
  "streamLayeredImage: `layeringPipeline` must be a list of operations such as [ [ \"popularity_contest\" ] [ \"limit_layers\" 99 ] ] (operations: ${builtins.concatStringsSep ", " lib.pipelineOperations}), got ${lib.show layeringPipeline}${lib.badPipelineCall pipeline}";
assert lib.assertMsg (fromImageMaxBytes == null || (builtins.isInt fromImageMaxBytes && fromImageMaxBytes > 0))
  "streamLayeredImage: `fromImageMaxBytes` must be null or a positive number of bytes, got ${lib.show fromImageMaxBytes}";
internalResult {
  drv = plan;
  # nixpkgs' `conf` (the JSON its Python streamer reads) and `streamScript` (that streamer):
  # here both are the plan, an executable holding what the helper streams.
  attrs = copies // {
    inherit imageName imageTag sbom;
    buildArgs = args; conf = plan; streamScript = plan;
    # What imageFamily's layering reads of this image (the plan's settings and given layers).
    familyInputs = settings // { inherit layers; };
  };
  extra = { inherit customisationLayer configFile; isExe = true; };
  inherit meta passthru;
}
