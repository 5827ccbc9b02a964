# The library's checks, as the flake's `checks` and the end-to-end tests build them: the
# evaluation checks, those of the overlay's `dockerTools` when given, and every example.
{
  # The library (`import ../nix { ... }`).
  strata,
  # `pkgs.dockerTools` of a package set with the flake's overlay, or null.
  dockerTools ? null,
  # The examples' images, by name.
  examples ? { },
}:
{ eval = import ./eval.nix { inherit strata; }; }
// (if dockerTools == null then { } else { overlay = import ./overlay.nix { inherit strata dockerTools; }; })
// examples
