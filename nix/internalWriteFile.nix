# Writes a string to a file in the store (like nixpkgs' writeText), with the helper as builder.
# Store paths named in the text become references of the file, which is how the closure of an
# image's `config` is found.
{ internalBuilder }:

{
  # Store name of the file.
  name,
  # The file's contents.
  text,
}:
internalBuilder {
  inherit name text;
  command = "write-file";
}
