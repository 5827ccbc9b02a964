# caCertificates: the CA bundle where TLS clients look for it (`/etc/ssl/certs/ca-bundle.crt`,
# `ca-certificates.crt`, `/etc/pki/tls/certs/ca-bundle.crt`), as nixpkgs' caCertificates:
# nixpkgs' cacert, or without nixpkgs the build machine's bundle, copied into the store.
{ pkgs, internalTree }:
let
  machineBundle =
    if builtins.pathExists /etc/ssl/certs/ca-certificates.crt then /etc/ssl/certs/ca-certificates.crt
    else if builtins.pathExists /etc/pki/tls/certs/ca-bundle.crt then /etc/pki/tls/certs/ca-bundle.crt
    else throw "caCertificates: no CA bundle on this machine; pass `caBundle` (a PEM file) with .override";
in
{
  # The PEM bundle: nixpkgs' cacert, else the build machine's (Debian, Ubuntu, Arch:
  # /etc/ssl/certs/ca-certificates.crt; Fedora: /etc/pki/tls/certs/ca-bundle.crt).
  caBundle ? if pkgs != null then "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt" else machineBundle,
}:
let
  bundle = if builtins.isPath caBundle then builtins.path { path = caBundle; name = "ca-bundle.crt"; } else caBundle;
in
internalTree {
  name = "ca-certificates";
  entries = map (path: { inherit path; symlink = "${bundle}"; }) [
    "etc/ssl/certs/ca-bundle.crt"
    "etc/ssl/certs/ca-certificates.crt"
    "etc/pki/tls/certs/ca-bundle.crt"
  ];
}
