# The customisation layer of a layered image: `contents` merged at the root like symlinkJoin,
# `extraCommands` run there, the result tarred before Nix makes it read-only (so modes such as
# a 1777 `tmp` survive). The output is a directory: `layer.tar` and its record, `record.json`.
# Store paths the tar's symlinks and files name are its references, so they end up in the
# image's closure.
{ toolbox, stdenv, internalBuilder }:

{
  # Store name of the directory.
  name,
  # Packages (store paths or local paths) merged at the image root.
  contents,
  # Shell commands run in the root before it is tarred.
  extraCommands,
  # mtime of the layer's entries, RFC 3339 or "now".
  mtime,
  # Whether the layer carries `nix/` and `nix/store/` (only when store paths are in the image).
  includeStorePaths,
  # Shell commands run as root after extraCommands; owners they set are kept.
  fakeRootCommands ? "",
  # Whether fakeRootCommands see the layer's root as `/`.
  enableFakechroot ? false,
  # null (root), or `{ uid; gid; uname; gname; }`: the owner of `nix/` and `nix/store/`.
  storeOwner ? null,
  # null, or `{ roots; configFile; }`: register the closure of roots and the config file's
  # references (not the file itself, which is not in the image) in a Nix database.
  nixDb ? null,
}:
internalBuilder ({
  inherit name contents extraCommands mtime includeStorePaths toolbox;
  inherit fakeRootCommands enableFakechroot;
  command = "customisation-layer";
} // (if storeOwner == null then { } else { inherit storeOwner; })
  // (if stdenv == null then { } else { inherit stdenv; })
  // (if nixDb == null then { } else {
  includeNixDB = true;
  exclude = [ nixDb.configFile ];
  exportReferencesGraph.nixDb = nixDb.roots ++ [ nixDb.configFile ];
}))
