# fakeNss: a minimal `/etc/passwd`, `/etc/group` and `/etc/nsswitch.conf` (root and nobody)
# and an empty `/var/empty`, for images whose programs look up users or hosts (as nixpkgs'
# fakeNss). Extra lines with `.override { extraPasswdLines = [ ... ]; }`.
{ lib, system, toolbox }:

{
  # Lines appended to /etc/passwd (`alice:x:1000:1000::/home/alice:/bin/sh`).
  extraPasswdLines ? [ ],
  # Lines appended to /etc/group (`alice:x:1000:`).
  extraGroupLines ? [ ],
}:
derivation {
  name = "fake-nss";
  inherit system;
  passwd = builtins.concatStringsSep "\n" ([
    "root:x:0:0:root user:/var/empty:/bin/sh"
    "nobody:x:65534:65534:nobody:/var/empty:/bin/sh"
  ] ++ extraPasswdLines) + "\n";
  group = builtins.concatStringsSep "\n" ([ "root:x:0:" "nobody:x:65534:" ] ++ extraGroupLines) + "\n";
  builder = "${toolbox}/bin/sh";
  args = [ "-ec" ''
    mkdir -p $out/etc $out/var/empty
    printf '%s' "$passwd" > $out/etc/passwd
    printf '%s' "$group" > $out/etc/group
    echo 'hosts: files dns' > $out/etc/nsswitch.conf
  '' ];
  PATH = "${toolbox}/bin";
}
