{
  description = "strata: Docker/OCI images from Nix store closures, a faster successor to dockerTools";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      pkgsFor = system: import nixpkgs { inherit system; overlays = [ self.overlays.default ]; };
    in
    {
      # `strata.lib { inherit pkgs; }` (or `{ helper; toolbox; }`) gives the functions.
      lib = import ./nix;

      # Puts strata's functions at pkgs.dockerTools and the helper at pkgs.strata.
      overlays.default = import ./nix/overlay.nix;

      # `nix flake check`: the evaluation checks (the library's and the overlay's
      # dockerTools') and the examples, built with nixpkgs.
      checks = forAllSystems (system:
        let pkgs = pkgsFor system; in
        import ./checks {
          strata = import ./nix { inherit pkgs; helper = pkgs.buildPackages.strata; };
          inherit (pkgs) dockerTools;
          examples = {
            example = pkgs.callPackage ./examples/hello.nix { };
            exampleLayered = pkgs.callPackage ./examples/hello.nix { layered = true; };
          };
        });

      packages = forAllSystems (system:
        let pkgs = pkgsFor system; in {
          default = pkgs.strata;
          strata = pkgs.strata;
          # The README example: `nix build .#example && ./result | docker load`.
          example = pkgs.callPackage ./examples/hello.nix { };
          exampleLayered = pkgs.callPackage ./examples/hello.nix { layered = true; };
        });
    };
}
