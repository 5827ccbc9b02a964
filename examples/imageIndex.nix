# imageIndex: one name, one image per platform. Push it to a registry and every machine pulls
# its own; loaded with docker, the first image (amd64 here) is taken.
#   nix-build examples -A multiArch && ./result | docker load && docker run --rm hello-multi:latest
#   $(nix-build examples -A multiArch.copyToRegistry)/bin/copy-to-registry docker://localhost:5000/hello-multi:latest
{ dockerTools, hello }:

dockerTools.imageIndex {
  name = "hello-multi";
  tag = "latest";
  images = [
    (dockerTools.streamLayeredImage { name = "hello-multi"; architecture = "amd64"; config.Cmd = [ "${hello}/bin/hello" ]; })
    # Built on this machine but labelled arm64: an arm64 build would use an arm64 `hello`
    # (with nixpkgs, `pkgsCross.aarch64-multiplatform.hello`).
    (dockerTools.streamLayeredImage { name = "hello-multi"; architecture = "arm64"; config.Cmd = [ "/bin/hello" ]; })
  ];
}
