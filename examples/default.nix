# The examples without nixpkgs, on the helper and toolbox scripts/bootstrap prepares; one
# per dockerTools function, each built and run by the end-to-end tests.
#   nix-build examples -A hello && ./result | docker load && docker run --rm hello:latest
{ helper ? ../build/bootstrap/helper
, toolbox ? ../build/bootstrap/toolbox
, system ? builtins.currentSystem
}:
let
  dockerTools = import ../nix { inherit helper toolbox system; };
  # Stands in for nixpkgs' GNU hello: a script run by the toolbox's sh.
  hello = derivation {
    name = "hello-2.12";
    inherit system;
    builder = "${toolbox}/bin/sh";
    args = [ "-ec" ''
      mkdir -p $out/bin
      printf '#!${toolbox}/bin/sh\necho "Hello, world!"\n' > $out/bin/hello
      chmod 555 $out/bin/hello
    '' ];
    PATH = "${toolbox}/bin";
  };
  # The toolbox's busybox as a package (nixpkgs' busybox has the same layout).
  busybox = toolbox;
  sharedLayers = import ./buildLayer.nix { inherit dockerTools hello busybox; };
  app = import ./buildImage.nix { inherit dockerTools hello busybox; };
  helloLayered = import ./hello.nix { inherit dockerTools hello; layered = true; };
in
{
  inherit app helloLayered;
  hello = import ./hello.nix { inherit dockerTools hello; };
  sharedOne = sharedLayers.one;
  sharedTwo = sharedLayers.two;
  withNixDb = import ./withNixDb.nix { inherit dockerTools hello; };
  withNixDbSingle = import ./withNixDb.nix { inherit dockerTools hello; layered = false; };
  rootfs = import ./exportImage.nix { inherit dockerTools; image = app; };
  merged = import ./mergeImages.nix { inherit dockerTools; images = [ helloLayered app ]; };
  basics = import ./basics.nix { inherit dockerTools; };
  multiArch = import ./imageIndex.nix { inherit dockerTools hello; };
  family = import ./imageFamily.nix { inherit dockerTools hello busybox; };
}
