# buildImage: one new layer, on top of an optional parent image, as a compressed docker-archive.
#
#   docker load < $(nix-build -A image)
#
# The layer holds `copyToRoot` merged at the root, what `runAsRoot` and `extraCommands` changed,
# and the closure of `copyToRoot` and `config` that the parent lacks. `runAsRoot` runs as root
# over the unpacked parent inside the ordinary sandboxed build (a user namespace; no VM, no
# KVM); owners it sets with chown are kept. Arguments and defaults are nixpkgs'.
{ lib, imageSystem, toolbox, stdenv, internalArchive, internalBuilder, internalCopyCommands, internalParentImage, internalPlan, internalResult, internalSbom, internalSbomInImage, internalWriteFile }:

{
  # Image name, as in `docker run NAME`. Lowercased, then checked as docker reads names;
  # may carry a registry prefix.
  name,
  # Image tag. null derives it from the hash of the image's plan, so it changes exactly when
  # the image does.
  tag ? null,
  # An image to build on: a docker-archive or OCI layout archive (plain, gzip or zstd), or a
  # strata image. Its layers come first, unchanged; its `Env` is inherited.
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
  # Packages (or a list of them) merged at the image root, like symlinkJoin.
  copyToRoot ? null,
  # Deprecated name of copyToRoot (warns).
  contents ? null,
  # Accepted for compatibility: contents are merged as symlinks to their store paths, so a
  # parent's directory symlinks are never replaced by directories.
  keepContentsDirlinks ? false,
  # The runtime config (Cmd, Env, WorkingDir, User, ...). Store paths it names are put in
  # the image with their closure.
  config ? null,
  # Image architecture as GOARCH; null derives it from the system.
  architecture ? null,
  # CPU variant of the architecture ("v8" for arm64), written into the image config (and
  # each layer's legacy `json`) beside `architecture`, as nixpkgs does; checked at
  # evaluation. null: the system's (armv7l gives v7), or none with an explicit architecture.
  variant ? null,
  # Shell commands run in the image root after runAsRoot, not as root; with nixpkgs and no
  # runAsRoot after `$stdenv/setup`, as nixpkgs runs them (see docs/API.md, "Scripts").
  extraCommands ? "",
  # Numeric owner of the layer's files (root's by default).
  uid ? 0,
  # Numeric group of the layer's files.
  gid ? 0,
  # Shell commands run as root with the image root (the parent's files plus copyToRoot) as
  # `/` and the build's /nix/store mounted in: chown, chmod, useradd, ... show in the image.
  # PATH is the toolbox's bin/ then the image's /bin (nixpkgs: coreutils' then /bin).
  runAsRoot ? null,
  # Accepted for compatibility (nixpkgs' VM disk size); no VM is used.
  diskSize ? 1024,
  # Accepted for compatibility (nixpkgs' VM memory); no VM is used.
  buildVMMemorySize ? 512,
  # Image creation date, RFC 3339, or "now" (the build time).
  created ? "1970-01-01T00:00:01Z",
  # How the archive is compressed: "none", "gz" or "zstd".
  compressor ? "gz",
  # Whether the image carries a Nix database registering every store path of the closure of
  # copyToRoot and config (references, NAR hash and size) and a GC root per copyToRoot
  # package, so `nix-store` works in the container. No Nix is needed at build time.
  includeNixDB ? false,
  # Packages whose licences the image's SBOM (`.sbom`) gives besides those of `copyToRoot`
  # (and, for each, of its `buildInputs` and `propagatedBuildInputs`): typically the packages
  # `config.Cmd` names. They add nothing to the image.
  sbomPackages ? [ ],
  # Whether the image carries its SBOMs and provenance, in a top layer of their own at
  # /usr/share/sbom, as streamLayeredImage's `sbomInImage`.
  sbomInImage ? false,
  # Attributes added to the result.
  passthru ? { },
  # The result's `meta`, as nixpkgs gives it; not a derivation attribute, so it changes no
  # image.
  meta ? { },
}@args:
let
  baseName = lib.imageBaseName name;
  imageName = lib.toLower name;
  rootContents =
    if copyToRoot != null then lib.toList copyToRoot
    else if contents != null then builtins.trace "buildImage: `contents` is deprecated; use `copyToRoot`" (lib.toList contents)
    else [ ];

  parent = if fromImage == null then null else internalParentImage {
    name = "${baseName}-parent";
    inherit fromImage fromImageName fromImageTag fromImageMaxBytes;
  };

  configFile = internalWriteFile {
    name = "${baseName}-config.json";
    text = builtins.toJSON (lib.configForImage config);
  };

  layer = internalBuilder ({
    name = "${baseName}-layer";
    command = "root-layer";
    inherit parent toolbox uid gid extraCommands includeNixDB;
    contents = rootContents;
    runAsRoot = if runAsRoot == null then "" else runAsRoot;
    mtime = "1970-01-01T00:00:01Z";
    exclude = [ configFile ];
    exportReferencesGraph.closure = rootContents ++ [ configFile ];
  # nixpkgs runs extraCommands after stdenv's setup only without runAsRoot (its pure layer);
  # with runAsRoot both are plain scripts (coreutils, then /bin).
  } // (if stdenv == null || (runAsRoot != null && runAsRoot != "") then { } else { inherit stdenv; }));

  plan = if !sbomInImage then planBelowSbom else internalSbomInImage {
    name = "stream-${baseName}";
    plan = planBelowSbom;
    packages = rootContents ++ lib.toList sbomPackages;
    mtime = "1970-01-01T00:00:01Z";
  };
  planBelowSbom = internalPlan {
    name = if sbomInImage then "stream-${baseName}-below-sbom" else "stream-${baseName}";
    inherit imageName tag architecture variant created uid gid configFile parent;
    mtime = "1970-01-01T00:00:01Z";
    uname = "root";
    gname = "root";
    maxLayers = 1000;
    includeStorePaths = false;
    closureRoots = [ ];
    # Docker's v1.0 layout (a directory per layer with `json` and its tarsum) beside
    # manifest.json, as nixpkgs' buildImage writes it.
    legacyLayout = true;
    customisationLayer = layer;
  };

  imageTag = if tag != null then tag else lib.hashPart plan.outPath;
  copies = internalCopyCommands (plan // { inherit imageName imageTag; }) sbom;
  sbom = internalSbom { name = "${lib.imageBaseName name}-sbom"; inherit plan; packages = rootContents ++ lib.toList sbomPackages; };
in
# The arguments that reach the helper, each by its kind (`lib.buildImageKinds`), and the
# platform.
assert lib.checkImageArgs "buildImage" lib.buildImageKinds imageSystem args;
assert lib.assertMsg (copyToRoot == null || contents == null)
  "buildImage: give `copyToRoot` or the deprecated `contents`, not both";
assert lib.assertMsg (fromImageMaxBytes == null || (builtins.isInt fromImageMaxBytes && fromImageMaxBytes > 0))
  "buildImage: `fromImageMaxBytes` must be null or a positive number of bytes, got ${lib.show fromImageMaxBytes}";
internalResult {
  drv = internalArchive {
    caller = "buildImage";
    baseName = "docker-image-${baseName}";
    inherit plan compressor;
  };
  attrs = copies // { inherit imageName imageTag layer sbom; stream = plan; buildArgs = args; };
  inherit meta passthru;
}
