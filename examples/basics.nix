# binSh, usrBinEnv, caCertificates and fakeNss: what programs expect to find in a system,
# in an image that has nothing else.
#   nix-build examples -A basics && docker load < result && docker run --rm basics:latest
{ dockerTools }:

dockerTools.buildLayeredImage {
  name = "basics";
  tag = "latest";
  contents = [ dockerTools.binSh dockerTools.usrBinEnv dockerTools.caCertificates dockerTools.fakeNss ];
  config.Cmd = [ "/usr/bin/env" "sh" "-c" "grep -c BEGIN /etc/ssl/certs/ca-certificates.crt >/dev/null && cut -d: -f1 /etc/passwd" ];
}
