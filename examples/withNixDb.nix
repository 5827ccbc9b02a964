# buildLayeredImageWithNixDb and buildImageWithNixDb: an image whose Nix database registers
# its closure, so a Nix inside the container knows what its store holds.
#   nix-build examples -A withNixDb && docker load < result
{ dockerTools, hello, layered ? true }:

(if layered then dockerTools.buildLayeredImageWithNixDb else dockerTools.buildImageWithNixDb) {
  name = if layered then "hello-nixdb" else "hello-nixdb-single";
  tag = "latest";
  ${if layered then "contents" else "copyToRoot"} = hello;
  config.Cmd = [ "/bin/hello" ];
}
