# An image's SBOMs and provenance: a directory with `cyclonedx.json` (CycloneDX 1.6),
# `spdx.json` (SPDX 2.3) and `provenance.json` (an in-toto statement, SLSA provenance v1),
# written by the helper's `sbom` builder from the image's plan, the closure of the plan (NAR
# hashes, references) and the licences evaluation knows. An index's holds one such
# directory per image, named by its platform (`amd64`, `arm64`, `arm-v7`).
{ lib, imageSystem, internalBuilder }:

{
  # Store name.
  name,
  # The plan: streamLayeredImage's, buildImage's or imageIndex's derivation.
  plan,
  # Derivations whose `meta.license` (and their build inputs') the documents give.
  packages ? [ ],
  # Whether to write the layer that carries the documents in the image (sbomInImage).
  inImage ? false,
  # With inImage, the layer's mtime (a fixed time).
  mtime ? null,
}:
internalBuilder ({
  inherit name plan imageSystem;
  command = "sbom";
  licenses = lib.licensesOf packages;
  # Provenance names the Nix that evaluated the image and the plan's derivation.
  nixVersion = builtins.nixVersion;
  planDrv = builtins.unsafeDiscardStringContext plan.drvPath;
  exportReferencesGraph.closure = [ plan ];
}
# Only when asked, so that the documents of images without it stay the derivations they were.
// (if inImage then { inherit inImage mtime; } else { }))
