# What a public function returns: its derivation with `attrs` on it and in its `passthru`,
# `extra` on it only, and the user's `passthru` on top (as nixpkgs' dockerTools results).
{ }:

{
  # The derivation.
  drv,
  # Attributes users read from the result and from `passthru` (imageName, imageTag, the copy
  # executables, ...).
  attrs ? { },
  # Attributes on the result only.
  extra ? { },
  # The user's `passthru` argument.
  passthru ? { },
}:
drv // extra // attrs // { passthru = passthru // attrs; } // passthru
