# imageFamily: several layered images whose automatic layers are chosen together, so that a
# store path several of them hold sits in an identical layer in each: a registry stores it
# once and a node pulls it once, whichever members it runs. Each member keeps its own
# `maxLayers`, and its application a layer of its own.
#
#   family = imageFamily {
#     images = {
#       web = { name = "web"; config.Cmd = [ "${web}/bin/web" ]; };
#       worker = { name = "worker"; config.Cmd = [ "${worker}/bin/worker" ]; maxLayers = 50; };
#     };
#   };
#   # family.web and family.worker are buildLayeredImage results.
{ lib, buildLayeredImage, internalFamilyLayering }:

{
  # The members: an attribute set of argument sets, one per image, each what `function`
  # takes (name, contents, config, maxLayers, layers, fromImage, layerCompressor, ...).
  images,
  # `maxLayers` of the members that set none.
  maxLayers ? 100,
  # The function that builds each member: buildLayeredImage, or streamLayeredImage (or a
  # function calling one of them with the member's arguments).
  function ? buildLayeredImage,
  # Store name of the family's layering.
  name ? "image-family",
}:
let
  names = builtins.attrNames images;
  argsOf = member: { inherit maxLayers; } // images.${member};
  # Each member laid alone gives what the family's layering reads (its settings); no image
  # of these is built.
  inputsOf = member:
    let image = function (argsOf member); in
    (image.familyInputs or image.stream.familyInputs or (throw
      "imageFamily: member `${member}`: `function` must build images with streamLayeredImage or buildLayeredImage; got a result without `familyInputs`"));
  layering = internalFamilyLayering {
    inherit name;
    members = map (member: { name = member; inputs = inputsOf member; }) names;
  };
  member = m: function (argsOf m // { family = { layers = layering; member = m; }; });
  refused = [ "layeringPipeline" "family" ];
  problem =
    if !(builtins.isAttrs images) || images ? outPath then
      "imageFamily: `images` must be an attribute set of argument sets, got ${lib.describe images}"
    else if names == [ ] then "imageFamily: `images` is empty; give at least one image"
    else lib.firstProblem (map (m:
      let a = images.${m}; in
      if !(builtins.isAttrs a) then "imageFamily: `images.${m}` must be an argument set, got ${lib.describe a}"
      else lib.firstProblem (map (arg:
        if a ? ${arg} && a.${arg} != null then
          "imageFamily: `images.${m}` sets `${arg}`: a family chooses its members' layers together"
        else null) refused)) names);
  platforms = lib.unique (map (m: (argsOf m).architecture or null) names);
in
assert lib.checkProblem problem;
assert lib.assertMsg (builtins.isInt maxLayers && maxLayers >= 2)
  "imageFamily: `maxLayers` must be an integer of at least 2, got ${lib.show maxLayers}";
assert lib.assertMsg (builtins.length platforms <= 1)
  "imageFamily: the members are for different architectures (${builtins.concatStringsSep ", " (map (m: "${m}: ${toString ((argsOf m).architecture or "the library's")}") names)}); a family shares layers between images of one platform: make one family per platform";
lib.genAttrs names member
