# imageFamily: images built from one package set, their layers chosen together, so that what
# they share (here hello and busybox) sits in identical layers: a registry stores it once and
# a node pulls it once.
#   nix-build examples -A family.greeter && docker load < result && docker run --rm greeter:latest
{ dockerTools, hello, busybox }:

dockerTools.imageFamily {
  images = {
    greeter = { name = "greeter"; tag = "latest"; config.Cmd = [ "${hello}/bin/hello" ]; };
    shell = {
      name = "shell";
      tag = "latest";
      contents = [ busybox ];
      config.Cmd = [ "/bin/sh" "-c" "echo shell; ${hello}/bin/hello" ];
    };
  };
}
