# fakeNss: a minimal `/etc/passwd`, `/etc/group` and `/etc/nsswitch.conf` (root and nobody)
# and an empty `/var/empty`, for images whose programs look up users or hosts (as nixpkgs'
# fakeNss). Extra lines with `.override { extraPasswdLines = [ ... ]; }`.
{ internalTree }:

{
  # Lines appended to /etc/passwd (`alice:x:1000:1000::/home/alice:/bin/sh`).
  extraPasswdLines ? [ ],
  # Lines appended to /etc/group (`alice:x:1000:`).
  extraGroupLines ? [ ],
}:
internalTree {
  name = "fake-nss";
  entries = [
    {
      path = "etc/passwd";
      text = builtins.concatStringsSep "\n" ([
        "root:x:0:0:root user:/var/empty:/bin/sh"
        "nobody:x:65534:65534:nobody:/var/empty:/bin/sh"
      ] ++ extraPasswdLines) + "\n";
    }
    {
      path = "etc/group";
      text = builtins.concatStringsSep "\n" ([ "root:x:0:" "nobody:x:65534:" ] ++ extraGroupLines) + "\n";
    }
    { path = "etc/nsswitch.conf"; text = "hosts: files dns\n"; }
    { path = "var/empty"; directory = true; }
  ];
}
