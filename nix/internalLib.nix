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
  # "now", @SECONDS, or a date as `date -Iseconds -d` (nixpkgs' normaliser) takes one: the
  # time, its seconds and the offset optional; offsets Z, +HH:MM, +HHMM or +HH. The helper
  # reads the same forms.
  isTime = s: builtins.isString s && (s == "now" || builtins.match "@[0-9]+" s != null || builtins.match
    "[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?)?" s != null);

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
  # takes, as the helper reads them (src/store/layering/pipeline.rs; both are checked on
  # tests/fixtures/pipelines/cases.json): a positive count, a key, store paths, split specs,
  # nested operations, or nothing.
  isPipelineCall = call:
    builtins.isList call && call != [ ] && builtins.isString (builtins.head call)
    && builtins.elem (builtins.head call) pipelineOperations
    && (let
      name = builtins.head call;
      args = builtins.tail call;
      one = check: builtins.length args == 1 && check (builtins.head args);
      isPaths = x: builtins.isString x || (builtins.isList x && builtins.all builtins.isString x);
      isSplitSpec = x: isPaths x || (builtins.isAttrs x && x ? children_of && isPaths x.children_of);
    in
      if name == "over" then builtins.length args == 2 && builtins.isString (builtins.head args) && isPipelineCall (builtins.elemAt args 1)
      else if name == "map" then one isPipelineCall
      else if name == "pipe" then one isPipeline
      else if builtins.elem name [ "limit_layers" "split_every" ] then one (n: builtins.isInt n && n > 0)
      else if builtins.elem name [ "popularity_contest" "reverse" "flatten" ] then args == [ ]
      else if name == "split_paths" then one (x: isSplitSpec x || (builtins.isList x && builtins.all isSplitSpec x))
      else one isPaths);

  # Whether `p` is a list of pipeline operations.
  isPipeline = p: builtins.isList p && builtins.all isPipelineCall p;

  # For an error message: the first operation of `p` that is not one, named.
  badPipelineCall = p:
    let bad = if builtins.isList p then builtins.filter (c: !isPipelineCall c) p else [ ];
    in if bad == [ ] then "" else "; the first wrong one: ${builtins.toJSON (builtins.head bad)}";

  # `x` as a list (nixpkgs accepts a single package for `contents`).
  toList = x: if builtins.isList x then x else [ x ];

  # `list` without repeated elements, first occurrences kept in order.
  unique = builtins.foldl' (seen: x: if builtins.elem x seen then seen else seen ++ [ x ]) [ ];

  # An attribute set with one attribute per name, its value `f name`.
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);

  # The licences of `packages` and of what they are built with (`buildInputs`,
  # `propagatedBuildInputs`, recursively), as the helper's `sbom` builder reads them: one
  # `{ path; licenses = [ { spdxId; name; } ]; }` per output path of a derivation whose
  # `meta.license` is known. Paths carry no context: naming a build input builds nothing.
  licensesOf = packages:
    let
      isDrv = x: builtins.isAttrs x && (x.type or null) == "derivation" && x ? outPath;
      entry = d: { key = builtins.unsafeDiscardStringContext (toString d.outPath); drv = d; };
      inputsOf = d: builtins.filter isDrv (builtins.concatMap
        (a: let v = builtins.tryEval (d.${a} or [ ]); in if v.success then toList v.value else [ ])
        [ "buildInputs" "propagatedBuildInputs" ]);
      all = builtins.genericClosure {
        startSet = map entry (builtins.filter isDrv (toList packages));
        operator = e: map entry (inputsOf e.drv);
      };
      licenseOf = d: let l = builtins.tryEval (d.meta.license or null); in if l.success then l.value else null;
      one = l:
        if builtins.isAttrs l then { spdxId = l.spdxId or null; name = l.fullName or l.shortName or null; }
        else { spdxId = null; name = toString l; };
      outputPaths = d: map
        (o: builtins.unsafeDiscardStringContext (toString (d.${o} or d).outPath))
        (d.outputs or [ "out" ]);
    in
    builtins.concatMap (e:
      let l = licenseOf e.drv; in
      if l == null then [ ]
      else map (path: { inherit path; licenses = map one (toList l); }) (outputPaths e.drv))
      all;

  # `s` quoted for a POSIX shell, always in single quotes (nixpkgs' lib.escapeShellArg leaves
  # safe strings bare; the shell reads both the same).
  escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
  # Each of `args` quoted, joined by spaces.
  escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);

  # `f args` with `.override newArgs` giving `f (args // newArgs)`, again overridable, as
  # nixpkgs' lib.makeOverridable gives; `newArgs` may be a function of the arguments given
  # (`.override (old: { tag = old.tag + "-debug"; })`). Written here rather than taken from
  # nixpkgs' lib, so results behave the same with and without nixpkgs.
  makeOverridable = f: args: f args // { override = newArgs: makeOverridable f (args // toFunction newArgs args); };

  # `x` if it is a function, else the function giving `x` whatever its argument (nixpkgs'
  # override and overrideAttrs take both forms).
  toFunction = x: if builtins.isFunction x then x else _: x;

  # An image function made overridable as nixpkgs' dockerTools functions are: `.override` as
  # makeOverridable gives, and `.overrideAttrs` too, which nixpkgs results have since they
  # are mkDerivation's. A strata image's derivations read the image's arguments and no other
  # attribute, so `.overrideAttrs (old: { fromImage = base; })` (nixos/tests/docker-tools.nix)
  # re-calls the function with that argument, as `.override` does; `old` is the arguments
  # given, with `passthru` and `meta` ({ } when not given) so `old.meta // { ... }` works. An
  # attribute that is no argument fails as an unknown argument does (Nix names it).
  makeOverridableImage = f: args:
    let
      change = old: newArgs: makeOverridableImage f (args // toFunction newArgs old);
    in
    f args // {
      override = change args;
      overrideAttrs = change ({ passthru = { }; meta = { }; } // args);
    };

  # `f images` for a function of a list (mergeImages), with `.override` taking a new list or
  # a function of the old one; again overridable.
  makeOverridableList = f: items: f items // {
    override = new: makeOverridableList f (toFunction new items);
  };

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

  # Why the string `s` is not an image name (isImageName decides), for a message: the first
  # rule it breaks, or null. Docker reads a first part with a `.` or `:`, or `localhost`, as
  # the registry host.
  imageNameReason = s:
    let
      parts = builtins.filter builtins.isString (builtins.split "/" s);
      hasHost = builtins.length parts > 1
        && (builtins.match ".*[.:].*" (builtins.head parts) != null || builtins.head parts == "localhost");
      path = if hasHost then builtins.tail parts else parts;
      badParts = builtins.filter (p: builtins.match "[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*" p == null) path;
      bad = builtins.head badParts;
    in
    if s == "" then "it is empty"
    else if builtins.stringLength s > 255 then "it is longer than 255 characters"
    else if builtins.elem "" parts then "it has an empty part (`//`, or a `/` at an end)"
    else if hasHost && !(isImageName "${builtins.head parts}/x") then "its registry host ${builtins.toJSON (builtins.head parts)} is not a host name, host:port, localhost or [IPv6 address]"
    else if badParts == [ ] then null
    else if builtins.match "[a-z0-9._-]*" bad == null then "its part ${builtins.toJSON bad} holds a character other than lowercase letters, digits, `.`, `_` and `-`"
    else "its part ${builtins.toJSON bad} starts or ends with a separator, or joins letters and digits by another than `.`, `_`, `__` or dashes";

  # Whether `x` is a package as nixpkgs' `contents` and `copyToRoot` take one: a derivation
  # (or any set with an `outPath`, such as a flake input), a path, or an absolute path string.
  isPackage = x:
    builtins.isPath x || (builtins.isAttrs x && x ? outPath)
    || (builtins.isString x && builtins.substring 0 1 x == "/");

  # What a value is, for an error message: its type and, when it is short, the value
  # (strings as JSON, so the message stays one line). Never fails, whatever the value.
  describe = v:
    if builtins.isFunction v then "a function"
    else if builtins.isString v then "the string ${builtins.toJSON v}"
    else if builtins.isInt v then "the integer ${toString v}"
    else if builtins.isFloat v then "the float ${builtins.toJSON v}"
    else if builtins.isBool v then "the Boolean ${builtins.toJSON v}"
    else if v == null then "null"
    else if builtins.isPath v then "the path ${toString v}"
    else if builtins.isList v then (if v == [ ] then "an empty list" else "a list")
    else if builtins.isAttrs v && (v.type or null) == "derivation" && builtins.isString (v.name or null) then "the derivation ${builtins.toJSON v.name}"
    else if builtins.isAttrs v && v ? outPath then "a set with an outPath"
    else if builtins.isAttrs v then "a set"
    else "a ${builtins.typeOf v}";

  # The first message of `problems` that is not null, or null.
  firstProblem = problems:
    let given = builtins.filter (p: p != null) problems;
    in if given == [ ] then null else builtins.head given;

  # Throws `problem` unless it is null; true otherwise, for use in `assert`.
  checkProblem = problem: problem == null || builtins.throw problem;

  # Kinds of argument value. A kind says what its values are (`expect`) and, of a value,
  # what is wrong with it (`got`: null for a value of the kind, else what it is, the first
  # entry at fault in a list or a set); `problem` makes the one-line message naming the
  # function and the argument. A kind may give its own `problem` instead (config).
  kindOf = expect: ok: { inherit expect; got = v: if ok v then null else describe v; };
  listKindOf = expect: ok: {
    inherit expect;
    got = v:
      let bad = if builtins.isList v then builtins.filter (e: !ok e) v else [ ];
      in if !(builtins.isList v) then describe v
      else if bad == [ ] then null
      else "a list holding ${describe (builtins.head bad)}";
  };
  # Sets that are not packages (a derivation is a set too, but never a map of values).
  setKindOf = expect: ok: {
    inherit expect;
    got = v:
      let
        isSet = builtins.isAttrs v && !(v ? outPath);
        bad = if isSet then builtins.filter (n: !ok v.${n}) (builtins.attrNames v) else [ ];
      in
      if !isSet then describe v
      else if bad == [ ] then null
      else "a set whose ${builtins.toJSON (builtins.head bad)} is ${describe v.${builtins.head bad}}";
  };
  # `kind`, or null (which the function reads as "not given").
  orNull = kind:
    if kind ? problem then { problem = fn: arg: v: if v == null then null else kind.problem fn arg v; }
    else { expect = "null or ${kind.expect}"; got = v: if v == null then null else kind.got v; };
  # The message saying that `v`, given as `arg` to `fn`, is not of `kind`; null if it is.
  kindProblem = kind: fn: arg: v:
    if kind ? problem then kind.problem fn arg v
    else let got = kind.got v; in
      if got == null then null else "${fn}: `${arg}` must be ${kind.expect}, got ${got}";

  # Whether `x` becomes a string in JSON (builtins.toJSON, structured attributes) and in
  # interpolation: a string, a path (copied to the store), or a set with an `outPath` (a
  # derivation, as its path). nixpkgs users write `Cmd = [ ./start.sh ]` and
  # `extraCommands = writeScript ...`, and those work.
  isStringLike = x: builtins.isString x || builtins.isPath x || (builtins.isAttrs x && x ? outPath);

  kinds = {
    string = kindOf "a string" builtins.isString;
    # Shell commands: nixpkgs interpolates them into a script, so a script's path will do.
    commands = kindOf "a string" isStringLike;
    bool = kindOf "a Boolean" builtins.isBool;
    # uid and gid: the helper stamps them on tar entries, which hold no negative ids.
    id = kindOf "a non-negative integer" (v: builtins.isInt v && v >= 0);
    set = setKindOf "an attribute set" (_: true);
    time = kindOf "\"now\", @SECONDS or a date such as 1970-01-01T00:00:01Z (time, seconds and offset optional)" isTime;
    # null: the image's tag is its plan's hash.
    optionalTag = orNull (kindOf "a docker tag (letters, digits, `_`, `.`, `-`; at most 128, not starting with `.` or `-`)" isTag);
    # Lowercased first, as the image functions do (nixpkgs does not, and docker refuses
    # capitals); what is left must be a name docker reads, or `docker load` refuses it.
    imageName = {
      expect = "an image name docker accepts once lowercased ([HOST[:PORT]/]PATH, PATH's parts lowercase letters and digits joined by `.`, `_`, `__` or `-`, separated by `/`)";
      got = v:
        let reason = if builtins.isString v then imageNameReason (toLower v) else null;
        in if builtins.isString v && isImageName (toLower v) then null
        else "${describe v}${if reason == null then "" else ": ${reason}"}";
    };
    package = kindOf "a package (a derivation or a path)" isPackage;
    # nixpkgs takes a single package or a list of them.
    packages = let expect = "a package (a derivation or a path) or a list of them"; in {
      inherit expect;
      got = v: if builtins.isList v then (listKindOf expect isPackage).got v else (kindOf expect isPackage).got v;
    };
    layers = listKindOf "a list of buildLayer results" (l: l.isStrataLayer or false);
    compressor = kindOf "one of \"none\", \"gz\", \"zstd\"" (c: builtins.elem c [ "none" "gz" "zstd" ]);
    # Layers may also be zstd:chunked (a layer format; an archive so compressed would be none).
    layerCompressor = kindOf "one of \"none\", \"gz\", \"zstd\", \"zstd:chunked\"" (c: builtins.elem c [ "none" "gz" "zstd" "zstd:chunked" ]);
    config = { problem = fn: _: configProblem fn; };
  };

  # The runtime config's fields and their kinds: the OCI image spec's (config.md) and
  # Docker's Healthcheck, as docker and podman decode them. A value of another type passes
  # `nix-build` and fails `docker load` or `docker run`. A null field is taken as absent,
  # as Go's decoder takes it; fields not listed pass unchecked (engines ignore them).
  configKinds =
    let
      strings = listKindOf "a list of strings" isStringLike;
      # docker reads a single string as a one-element list (nixpkgs' etc example passes a
      # script); the config strata writes holds the list (`configForImage`).
      commandLine = {
        expect = "a list of strings, or one string";
        got = v: if isStringLike v then null else (listKindOf "" isStringLike).got v;
      };
      int = kindOf "an integer" builtins.isInt;
      emptySets = example: setKindOf "an attribute set of empty sets such as { ${example} = { }; }" (x: x == { });
      # Without a `=` (or a name before it) an entry sets no variable.
      isEnvEntry = e: isStringLike e
        && (let parts = builtins.split "=" (builtins.unsafeDiscardStringContext (toString e));
          in builtins.length parts > 1 && builtins.head parts != "");
    in
    {
      User = kindOf "a string such as \"1000:1000\" or \"nobody\"" isStringLike;
      ExposedPorts = emptySets "\"80/tcp\"";
      Env = listKindOf "a list of strings \"NAME=value\"" isEnvEntry;
      Entrypoint = commandLine;
      Cmd = commandLine;
      Volumes = emptySets "\"/data\"";
      WorkingDir = kindOf "a string" isStringLike;
      Labels = setKindOf "an attribute set of strings" isStringLike;
      StopSignal = kindOf "a string such as \"SIGTERM\"" isStringLike;
      ArgsEscaped = kinds.bool;
      Memory = int;
      MemorySwap = int;
      CpuShares = int;
      Healthcheck = setKindOf "an attribute set (Test, Interval, Timeout, StartPeriod, StartInterval, Retries)" (_: true);
      OnBuild = strings;
      Shell = strings;
    };

  # The config as the image holds it: `null` is `{ }`, and a `Cmd` or `Entrypoint` given as
  # one string (a script's path) is the list of it, as the spec has it and docker reads it.
  configForImage = config:
    let
      asList = v: if builtins.isList v || v == null then v else [ v ];
      set = if config == null then { } else config;
    in
    set // builtins.mapAttrs (_: asList) (builtins.intersectAttrs { Cmd = null; Entrypoint = null; } set);

  # Docker's Healthcheck fields; durations are integers of nanoseconds.
  healthcheckKinds =
    let nanoseconds = kindOf "an integer (nanoseconds)" builtins.isInt;
    in {
      Test = listKindOf "a list of strings such as [ \"CMD\" \"true\" ]" isStringLike;
      Interval = nanoseconds;
      Timeout = nanoseconds;
      StartPeriod = nanoseconds;
      StartInterval = nanoseconds;
      Retries = kindOf "an integer" builtins.isInt;
    };

  # The message for `config` of `fn`, or null: the set itself, then each field `configKinds`
  # lists, then Healthcheck's.
  configProblem = fn: config:
    let
      fields = kindsOf: prefix: set: map
        (f: if set ? ${f} && set.${f} != null then kindProblem kindsOf.${f} fn "${prefix}${f}" set.${f} else null)
        (builtins.attrNames kindsOf);
    in
    if !(builtins.isAttrs config) || config ? outPath then "${fn}: `config` must be an attribute set, got ${describe config}"
    else firstProblem (fields configKinds "config." config
      ++ (if builtins.isAttrs (config.Healthcheck or null) then fields healthcheckKinds "config.Healthcheck." config.Healthcheck else [ ]));

  # The message for the first argument of `args` (a call's arguments) not of its kind in
  # `argKinds`, or null. Only arguments given are checked: the defaults are of their kinds.
  argsProblem = fn: argKinds: args:
    if !(builtins.isAttrs args) then "${fn}: expects a set of arguments, got ${describe args}"
    else firstProblem (map (a: if args ? ${a} then kindProblem argKinds.${a} fn a args.${a} else null)
      (builtins.attrNames argKinds));

  # argsProblem, then platformProblem for the `architecture` and `variant` given: what every
  # image function checks first, under its own name (so a wrapper such as buildLayeredImage
  # names itself, not the function it calls).
  imageArgsProblem = fn: argKinds: imageSystem: args:
    let given = argsProblem fn argKinds args; in
    if given != null then given
    else platformProblem fn { inherit imageSystem; architecture = args.architecture or null; variant = args.variant or null; };

  # Throws imageArgsProblem's message, if any; true otherwise, for use in `assert`.
  checkImageArgs = fn: argKinds: imageSystem: args: checkProblem (imageArgsProblem fn argKinds imageSystem args);

  # The arguments of streamLayeredImage and buildLayeredImage (and its NixDb variant) that
  # reach the helper, by kind. maxLayers and layeringPipeline depend on each other and are
  # streamLayeredImage's to check.
  layeredImageKinds = let k = kinds; in {
    inherit (k) layers;
    # null: no config, as in nixpkgs (the same image as { }).
    config = orNull k.config;
    name = k.imageName;
    tag = k.optionalTag;
    contents = k.packages;
    created = k.time;
    mtime = k.time;
    uid = k.id;
    gid = k.id;
    uname = k.string;
    gname = k.string;
    extraCommands = k.commands;
    fakeRootCommands = k.commands;
    includeStorePaths = k.bool;
    perLayerDerivations = k.bool;
    enableFakechroot = k.bool;
    includeNixDB = k.bool;
    layerCompressor = k.layerCompressor;
    sbomPackages = k.packages;
    sbomInImage = k.bool;
    layeringPipeline = orNull (kindOf "a list of operations or a JSON file holding one" (p: builtins.isList p || builtins.isPath p || builtins.isString p));
    fromImage = orNull k.package;
    fromImageName = orNull k.string;
    fromImageTag = orNull k.string;
    passthru = k.set;
    meta = k.set;
    # buildLayeredImage's; null chooses by layerCompressor.
    compressor = orNull k.compressor;
  };

  # buildImage's arguments (and its NixDb variant's) that reach the helper, by kind.
  buildImageKinds = let k = kinds; in {
    inherit (k) compressor;
    name = k.imageName;
    tag = k.optionalTag;
    fromImage = orNull k.package;
    fromImageName = orNull k.string;
    fromImageTag = orNull k.string;
    copyToRoot = orNull k.packages;
    contents = orNull k.packages;
    sbomPackages = k.packages;
    sbomInImage = k.bool;
    config = orNull k.config;
    created = k.time;
    extraCommands = k.commands;
    runAsRoot = orNull k.commands;
    uid = k.id;
    gid = k.id;
    includeNixDB = k.bool;
    passthru = k.set;
    meta = k.set;
  };
}
