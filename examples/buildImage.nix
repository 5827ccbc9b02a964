# buildImage: a base image, and an application image on top of it whose runAsRoot (no VM)
# adds a user that owns its home directory.
#   nix-build examples -A app && docker load < result && docker run --rm hello-app:latest
{ dockerTools, hello, busybox }:

let
  base = dockerTools.buildImage {
    name = "hello-base";
    tag = "latest";
    copyToRoot = [ busybox dockerTools.binSh ];
    config.Env = [ "PATH=/bin" ];
  };
in
dockerTools.buildImage {
  name = "hello-app";
  tag = "latest";
  fromImage = base;
  copyToRoot = hello;
  runAsRoot = ''
    ${dockerTools.shadowSetup}
    useradd -m -u 1000 alice
  '';
  config = {
    User = "alice";
    WorkingDir = "/home/alice";
    Cmd = [ "/bin/sh" "-c" "hello; echo \"I am $(id -un) in $(pwd)\"" ];
  };
}
