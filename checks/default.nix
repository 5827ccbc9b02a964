# The library's checks, as the flake's `checks` and the end-to-end tests build them: the
# evaluation checks and every example.
{
  # The library (`import ../nix { ... }`).
  strata,
  # The examples' images, by name.
  examples ? { },
}:
{ eval = import ./eval.nix { inherit strata; }; } // examples
