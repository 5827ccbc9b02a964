# buildLayer: a dependency layer built once and shared by two images, so rebuilding either
# application never touches it and registries store it once.
#   nix-build examples -A sharedLayers
{ dockerTools, hello, busybox }:

let
  deps = dockerTools.buildLayer { name = "busybox-layer"; deps = [ busybox ]; };
  image = name: script: dockerTools.streamLayeredImage {
    inherit name;
    tag = "latest";
    layers = [ deps ];
    config.Cmd = [ "${busybox}/bin/sh" "-c" script ];
  };
in
{
  one = image "shared-one" "echo one";
  two = image "shared-two" "${hello}/bin/hello";
}
