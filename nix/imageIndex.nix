# imageIndex: one image name for several platforms, as an OCI image index whose entries are
# per-architecture images (a multi-arch image). The result is an executable like
# streamLayeredImage's: run, it streams an archive whose index.json names the index (skopeo
# `oci-archive:` reads every platform; `docker load` takes the first image); `strata push`
# (or `copyToRegistry`) pushes every image and then the index, so each machine pulls its own.
#
#   imageIndex {
#     name = "registry.example.com/app";
#     images = [ (streamLayeredImage { ...; architecture = "amd64"; })
#                (streamLayeredImage { ...; architecture = "arm64"; }) ];
#   }
{ lib, helper, internalBuilder, internalCopyCommands, internalResult, internalSbom }:

{
  # Image name, as in `docker run NAME`. Lowercased.
  name,
  # Tag of the index. null derives it from the hash of the result's store path.
  tag ? null,
  # The images, one per platform (os/architecture/variant): strata images made with
  # streamLayeredImage or buildLayeredImage. The first is the one `docker load` takes.
  images,
  # Attributes added to the result.
  passthru ? { },
  # The result's `meta`, as the images' have it; changes no image.
  meta ? { },
}@args:
let
  imageName = lib.toLower name;
  plan = internalBuilder {
    name = "index-${lib.imageBaseName name}";
    command = "index-plan";
    inherit imageName tag;
    images = map (image: image.stream or image) images;
    helperBin = "${helper}/bin/strata";
  };
  imageTag = if tag != null then tag else lib.hashPart plan.outPath;
  copies = internalCopyCommands (plan // { inherit imageName imageTag; }) sbom;
  sbom = internalSbom {
    name = "index-${lib.imageBaseName name}-sbom";
    inherit plan;
    packages = builtins.concatMap (image: lib.toList (image.buildArgs.contents or image.buildArgs.copyToRoot or [ ])) images;
  };
in
assert lib.checkProblem (lib.argsProblem "imageIndex" { name = lib.kinds.imageName; tag = lib.kinds.optionalTag; passthru = lib.kinds.set; meta = lib.kinds.set; } args);
assert lib.assertMsg (builtins.isList images && images != [ ] && builtins.all (i: builtins.isAttrs i && (i ? stream || i.isExe or false)) images)
  "imageIndex: `images` must be a non-empty list of streamLayeredImage or buildLayeredImage results, got ${lib.show images}";
internalResult {
  drv = plan;
  attrs = copies // { inherit imageName imageTag sbom; buildArgs = args; };
  extra.isExe = true;
  inherit meta passthru;
}
