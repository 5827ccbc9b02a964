# exportImage: the root filesystem of an image as one tar, e.g. for `machinectl import-tar`
# or `wsl --import`.
#   nix-build examples -A rootfs && tar -tvf result
{ dockerTools, image }:

dockerTools.exportImage { fromImage = image; }
