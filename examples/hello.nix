# The README example, written as any nixpkgs user would: `hello` in a layered image.
#   with nixpkgs (our overlay):  pkgs.callPackage ./examples/hello.nix { }
#   without nixpkgs:             nix-build examples -A hello   (see examples/default.nix)
{ dockerTools, hello, layered ? false }:

(if layered then dockerTools.buildLayeredImage else dockerTools.streamLayeredImage) {
  name = "hello";
  tag = "latest";
  config.Cmd = [ "${hello}/bin/hello" ];
}
