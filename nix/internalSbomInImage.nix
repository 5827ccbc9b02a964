# sbomInImage: an image's plan with a top layer carrying its SBOMs and provenance at
# /usr/share/sbom, where scanners that read files find them. The helper's `sbom` builder,
# in its in-image form, writes the layer (the documents describe the layers below it); its
# `append-sbom-layer` builder puts the layer on top of the plan.
{ helper, internalBuilder, internalSbom }:

{
  # Store name of the plan.
  name,
  # The plan of the layers below.
  plan,
  # Derivations whose licences the documents give.
  packages,
  # mtime of the layer's entries (a fixed time).
  mtime,
}:
internalBuilder {
  inherit name plan;
  command = "append-sbom-layer";
  layer = internalSbom {
    name = "${name}-sbom-layer";
    inherit plan packages mtime;
    inImage = true;
  };
  helperBin = "${helper}/bin/strata";
}
