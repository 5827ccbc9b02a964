# The strata helper built from this repository with nixpkgs' rustPlatform.
{ rustPlatform }:

let
  root = ./..;
  # Only what cargo needs, so edits to Nix files or docs do not rebuild the helper.
  keep = path: type:
    let rel = builtins.substring (builtins.stringLength (toString root) + 1) (-1) (toString path);
    in rel == "Cargo.toml" || rel == "Cargo.lock" || rel == "src"
       || builtins.substring 0 4 rel == "src/";
in
rustPlatform.buildRustPackage {
  pname = "strata";
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).package.version;
  src = builtins.path { path = root; name = "strata-source"; filter = keep; };
  cargoLock.lockFile = ../Cargo.lock;
  # The end-to-end tests need docker, podman and Nix itself; unit tests run in CI.
  doCheck = false;
  meta.mainProgram = "strata";
}
