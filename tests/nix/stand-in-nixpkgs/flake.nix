# A minimal stand-in for nixpkgs, for evaluating strata's flake where nixpkgs cannot be
# fetched: `--override-input nixpkgs path:tests/nix/stand-in-nixpkgs`. It provides only what
# the flake touches; `prebuilt/` (copied in by the test) holds the bootstrap helper and toolbox.
{
  outputs = { self }: {
    legacyPackages.x86_64-linux = import ./. { system = "x86_64-linux"; };
  };
}
