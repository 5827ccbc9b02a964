# What a public function returns: its derivation with `attrs` on it and in its `passthru`,
# `extra` on it only, the user's `meta` as its `meta`, and the user's `passthru` on top (as
# nixpkgs' dockerTools results).
{ }:

{
  # The derivation.
  drv,
  # Attributes users read from the result and from `passthru` (imageName, imageTag, the copy
  # executables, ...).
  attrs ? { },
  # Attributes on the result only.
  extra ? { },
  # The user's `meta` argument. It is the result's `meta` only, never a derivation attribute:
  # nixpkgs keeps meta out of derivations too, so changing it rebuilds nothing (and it may
  # hold what the helper's structured attributes cannot, such as functions).
  meta ? { },
  # The user's `passthru` argument.
  passthru ? { },
}:
drv // extra // attrs // { inherit meta; passthru = passthru // attrs; } // passthru
