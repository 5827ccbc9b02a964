# A directory of symlinks, files and empty directories, written by the helper (no shell):
# what binSh, usrBinEnv, caCertificates and fakeNss are.
{ internalBuilder }:

{
  # Store name of the directory.
  name,
  # Its entries: `{ path = "bin/sh"; symlink = target; }`, `{ path; text; }` (with
  # `executable = true;` for a script) or `{ path; directory = true; }`, paths relative to the
  # directory.
  entries,
}:
internalBuilder {
  inherit name entries;
  command = "write-tree";
}
