# The examples without nixpkgs, on the helper and toolbox scripts/bootstrap prepares.
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
in
{
  hello = import ./hello.nix { inherit dockerTools hello; };
  helloLayered = import ./hello.nix { inherit dockerTools hello; layered = true; };
}
