# buildNixShellImage: streamNixShellImage's image written to the store as one archive, as
# nixpkgs' function of that name (`docker load < result`).
{ internalArchive, internalResult, streamNixShellImage }:

{
  # The derivation whose environment the image holds; see streamNixShellImage.
  drv,
  # How the archive is compressed: "none", "gz" or "zstd".
  compressor ? "gz",
  # The result's `meta`; changes no image.
  meta ? { },
  # Attributes added to the result.
  passthru ? { },
  # Every other streamNixShellImage argument, passed on unchanged.
  ...
}@args:
let
  stream = streamNixShellImage (builtins.removeAttrs args [ "compressor" "passthru" ]);
in
internalResult {
  drv = internalArchive {
    caller = "buildNixShellImage";
    baseName = "${drv.name}-env";
    plan = stream;
    inherit compressor;
  };
  attrs = {
    inherit (stream) imageName imageTag copyToRegistry copyToDockerDaemon copyToPodman;
    inherit stream;
    buildArgs = args;
  };
  inherit meta passthru;
}
