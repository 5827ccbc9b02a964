# The few library functions strata's Nix code needs, written against builtins only so the
# library works without nixpkgs.
let
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  chars = s: builtins.genList (i: builtins.substring i 1 s) (builtins.stringLength s);
in
rec {
  # Lowercases ASCII letters (image names must be lowercase).
  toLower = builtins.replaceStrings upper lower;

  # Throws `msg` unless `pred` holds; returns true, for use in `assert`.
  assertMsg = pred: msg: pred || builtins.throw msg;

  # A value shown in an error message; never fails, whatever the value.
  show = v:
    if builtins.isString v then "\"${v}\""
    else if builtins.isInt v || builtins.isFloat v || builtins.isBool v || v == null then builtins.toJSON v
    else "a ${builtins.typeOf v}";

  # Whether `s` is "now" or a date nixpkgs' dockerTools accepts: RFC 3339, or ISO 8601
  # without an offset (`2024-01-01`, `2024-01-01T12:00:00`), read as UTC.
  isTime = s: builtins.isString s && (s == "now" || builtins.match
    "[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?" s != null);

  # A store-path-safe derivation name from an image name: the part after the last `/`,
  # characters Nix refuses in store paths replaced by `-`.
  imageBaseName = name:
    let
      safe = c: if builtins.match "[A-Za-z0-9+._?=-]" c != null then c else "-";
      base = builtins.concatStringsSep "" (map safe (chars (baseNameOf name)));
    in
    if base == "" || builtins.substring 0 1 base == "." then "image${base}" else base;

  # The name part of a store path (`hello-2.12` in `/nix/store/abc…-hello-2.12`).
  storePathName = path:
    let base = baseNameOf (builtins.unsafeDiscardStringContext path);
    in builtins.substring 33 (builtins.stringLength base - 33) base;

  # A store path read back from a build output (without string context) as a reference to
  # that path alone, so a derivation using it depends on exactly it. appendContext works in
  # pure evaluation, where builtins.storePath does not.
  withPathContext = path: builtins.appendContext path { ${path} = { path = true; }; };

  # The hash part of a store path (`abc…` in `/nix/store/abc…-name`).
  hashPart = path: builtins.head (builtins.split "-" (baseNameOf (builtins.unsafeDiscardStringContext path)));

  # A helper or toolbox argument as something that can be interpolated into a derivation: a
  # plain `/nix/store/...` string (no context) is turned into a store path reference.
  asStorePath = x:
    if builtins.isString x && !(builtins.hasContext x) && builtins.substring 0 (builtins.stringLength builtins.storeDir + 1) x == builtins.storeDir + "/"
    then builtins.storePath x
    else x;

  # The operations of nixpkgs' layering pipeline (the helper runs them).
  pipelineOperations = [
    "popularity_contest" "limit_layers" "subcomponent_in" "subcomponent_out" "split_paths"
    "split_every" "remove_paths" "reverse" "flatten" "over" "map" "pipe"
  ];

  # Whether `call` is an operation `[ name args... ]` of a known name with the arguments it
  # takes (a count, a list of paths, none; nested calls of `over`, `map` and `pipe` too).
  isPipelineCall = call:
    builtins.isList call && call != [ ] && builtins.isString (builtins.head call)
    && builtins.elem (builtins.head call) pipelineOperations
    && (let name = builtins.head call; args = builtins.tail call; in
      if name == "over" then builtins.length args == 2 && isPipelineCall (builtins.elemAt args 1)
      else if name == "map" then builtins.length args == 1 && isPipelineCall (builtins.head args)
      else if name == "pipe" then builtins.length args == 1 && isPipeline (builtins.head args)
      else if builtins.elem name [ "limit_layers" "split_every" ] then builtins.length args == 1 && builtins.isInt (builtins.head args)
      else if builtins.elem name [ "popularity_contest" "reverse" "flatten" ] then args == [ ]
      else builtins.length args == 1 && builtins.isList (builtins.head args));

  # Whether `p` is a list of pipeline operations.
  isPipeline = p: builtins.isList p && builtins.all isPipelineCall p;

  # For an error message: the first operation of `p` that is not one, named.
  badPipelineCall = p:
    let bad = if builtins.isList p then builtins.filter (c: !isPipelineCall c) p else [ ];
    in if bad == [ ] then "" else "; the first wrong one: ${builtins.toJSON (builtins.head bad)}";

  # `x` as a list (nixpkgs accepts a single package for `contents`).
  toList = x: if builtins.isList x then x else [ x ];

  # `f args` with `.override newArgs` giving `f (args // newArgs)`, as nixpkgs' packages have.
  makeOverridable = f: args: f args // { override = newArgs: makeOverridable f (args // newArgs); };

  # A package scope: `f self` gives the attributes; `self.callFunction file extra` imports
  # `file` (a function) and passes it the scope attributes it names, plus `extra`;
  # `self.overrideScope (final: prev: { ... })` gives the scope with those attributes
  # replaced, every function that uses them seeing the new ones (as nixpkgs' scopes).
  makeScope = f:
    let
      self = f self // {
        callFunction = file: extra:
          let fn = import file;
          in fn (builtins.intersectAttrs (builtins.functionArgs fn) self // extra);
        overrideScope = g: makeScope (final: let prev = f final; in prev // g final prev);
      };
    in
    self;
  # The OCI (Go GOARCH) architecture names an image's config and an index's platforms use.
  architectures = [
    "386" "amd64" "arm" "arm64" "loong64" "mips" "mipsle" "mips64" "mips64le"
    "ppc64" "ppc64le" "riscv64" "s390x" "wasm"
  ];

  # The variants of the architectures that have them (OCI image index `platform.variant`;
  # amd64's are Go's GOAMD64 levels), as patterns.
  variantPatterns = { arm = "v[5-8]"; arm64 = "v8(\\.[0-9])?|v9(\\.[0-9])?"; amd64 = "v[1-4]"; };

  # The kernel of a Nix system (`linux` in `x86_64-linux`).
  systemKernel = system:
    let m = builtins.match "[^-]+-(.+)" system; in if m == null then system else builtins.head m;

  # The architecture and variant of images for a Linux Nix system, as the helper derives
  # them, or null for a CPU it does not know.
  platformOfSystem = system:
    let
      cpu = builtins.head (builtins.split "-" system);
      known = {
        x86_64 = { architecture = "amd64"; }; i686 = { architecture = "386"; };
        i586 = { architecture = "386"; }; i486 = { architecture = "386"; }; i386 = { architecture = "386"; };
        aarch64 = { architecture = "arm64"; };
        armv7l = { architecture = "arm"; variant = "v7"; }; armv7a = { architecture = "arm"; variant = "v7"; };
        armv6l = { architecture = "arm"; variant = "v6"; }; armv5tel = { architecture = "arm"; variant = "v5"; };
        powerpc64le = { architecture = "ppc64le"; }; powerpc64 = { architecture = "ppc64"; };
        s390x = { architecture = "s390x"; }; riscv64 = { architecture = "riscv64"; };
        mips64el = { architecture = "mips64le"; }; mipsel = { architecture = "mipsle"; };
        loongarch64 = { architecture = "loong64"; };
      };
    in
    if known ? ${cpu} then { variant = null; } // known.${cpu} else null;

  # Why `fn` cannot make an image for `imageSystem` with the `architecture` and `variant`
  # given (null: derived from the system), as one line; null when it can. Images run on
  # Linux: one for another kernel would hold binaries no container can execute.
  # (pullImage given an `arch` fetches that platform's image whatever the system: `linux`
  # false.)
  platformProblem = fn: { imageSystem, architecture ? null, variant ? null, archName ? "architecture", linux ? true }:
    let
      arch = if architecture != null then architecture
        else (platformOfSystem imageSystem).architecture or null;
      pattern = variantPatterns.${arch} or null;
    in
    if linux && (!(builtins.isString imageSystem) || systemKernel imageSystem != "linux") then
      "${fn}: images run on Linux, and the image system ${show imageSystem} is not a Linux system; build the image for a Linux system instead (`imageSystem = \"aarch64-linux\"`, with a Linux remote builder or a cross package set such as pkgsCross)"
    else if architecture != null && !(builtins.elem architecture architectures) then
      "${fn}: `${archName}` must be an OCI architecture name (${builtins.concatStringsSep ", " architectures}), got ${show architecture}"
    else if arch == null && architecture == null then
      "${fn}: no image architecture is known for the system ${show imageSystem}; give `${archName}`"
    else if variant != null && (pattern == null || !(builtins.isString variant) || builtins.match pattern variant == null) then
      "${fn}: `variant` ${show variant} is not a variant of ${arch}${if pattern == null then " (which has none)" else ""}"
    else null;

  # Throws `platformProblem`'s line, if any; true otherwise, for use in `assert`.
  checkPlatform = fn: args: let problem = platformProblem fn args; in problem == null || builtins.throw problem;
  # Whether `s` is an image name as docker reads one: `[DOMAIN/]PATH`, the domain a host with
  # a dot or a port, `localhost`, or an IPv6 address in brackets; each path part lowercase
  # letters and digits joined by `.`, `_`, `__` or dashes (the helper checks the same rules).
  isImageName = s:
    let
      label = "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?";
      port = "(:[0-9]{1,5})?";
      domain = "([[][0-9A-Fa-f:.]+[]]${port}|${label}(\\.${label})+${port}|${label}:[0-9]{1,5}|localhost${port})";
      part = "[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*";
    in
    builtins.isString s && builtins.stringLength s <= 255
    && builtins.match "(${domain}/)?${part}(/${part})*" s != null;

  # Whether `s` is a tag docker accepts.
  isTag = s: builtins.isString s && builtins.match "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}" s != null;
}
