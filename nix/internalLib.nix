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
}
