# buildLayeredImageWithNixDb: an image whose Nix database registers its closure, so a Nix
# inside the container knows what its store holds.
#   nix-build examples -A withNixDb && docker load < result
{ dockerTools, hello }:

dockerTools.buildLayeredImageWithNixDb {
  name = "hello-nixdb";
  tag = "latest";
  contents = hello;
  config.Cmd = [ "/bin/hello" ];
}
