# Evaluation checks: how the library's functions take their arguments, with no build. Each
# check is a boolean; the result is a small file listing them, whose evaluation throws naming
# every check that does not hold. Built by the flake's `checks` and by the end-to-end tests.
{ strata }:
let
  # Whether evaluating the derivation `x` fails (a refused argument).
  refused = x: !(builtins.tryEval x.drvPath).success;
  image = args: strata.streamLayeredImage ({ name = "check"; } // args);
  # A scope whose results carry a marker, to see that overrideScope reaches every function.
  marked = strata.overrideScope (final: prev: {
    internalResult = args: prev.internalResult args // { marked = true; };
  });
  # The library for images of another system.
  on = imageSystem: strata.overrideScope (final: prev: { inherit imageSystem; });
  # Every Linux system nixpkgs maps, with the architecture and variant its images get.
  linuxSystems = {
    x86_64-linux = { architecture = "amd64"; variant = null; };
    aarch64-linux = { architecture = "arm64"; variant = null; };
    armv7l-linux = { architecture = "arm"; variant = "v7"; };
    armv6l-linux = { architecture = "arm"; variant = "v6"; };
    i686-linux = { architecture = "386"; variant = null; };
    powerpc64le-linux = { architecture = "ppc64le"; variant = null; };
    s390x-linux = { architecture = "s390x"; variant = null; };
    riscv64-linux = { architecture = "riscv64"; variant = null; };
  };
  # The functions that make one image, with a name and nothing else required.
  imageFunctions = [ "streamLayeredImage" "buildLayeredImage" "buildLayeredImageWithNixDb" "buildImage" "buildImageWithNixDb" ];
  # A meta as nixpkgs users give one.
  meta17 = { description = "an image"; mainProgram = "hello"; platforms = [ "x86_64-linux" ]; };
  # A derivation whose path a config names, as nixpkgs users name their packages'.
  hello = derivation { name = "hello"; system = "x86_64-linux"; builder = "/bin/sh"; };
  # Whether evaluating the derivation `x` succeeds.
  accepted = x: (builtins.tryEval x.drvPath).success;
  # The argument kinds each image function checks.
  argKinds = with strata.lib; {
    streamLayeredImage = layeredImageKinds;
    buildLayeredImage = layeredImageKinds;
    buildLayeredImageWithNixDb = layeredImageKinds;
    buildImage = buildImageKinds;
    buildImageWithNixDb = buildImageKinds;
  };
  # Whether image function `fn` refuses `args` at evaluation, with the message `msg` (tryEval
  # cannot see a message: it is the one the function's argument check makes).
  refusedWith = fn: args: msg:
    refused (strata.${fn} args)
    && strata.lib.imageArgsProblem fn argKinds.${fn} strata.imageSystem args == msg;
  # A runtime config as nixpkgs users write one: every field of the OCI image spec (and
  # Docker's Healthcheck), strings with context, a derivation where a string goes (toJSON
  # writes its path), null fields, and a field engines ignore.
  nixpkgsConfig = {
    Cmd = [ "${hello}/bin/hello" "--greeting" "hi" ];
    Entrypoint = [ hello "-c" ];
    Env = [ "PATH=/bin:${hello}/bin" "EMPTY=" "A==b" ];
    ExposedPorts = { "80/tcp" = { }; "53/udp" = { }; };
    User = "1000:1000";
    Labels = { a = "b"; "org.opencontainers.image.source" = "${hello}"; };
    WorkingDir = "/";
    Volumes = { "/data" = { }; };
    StopSignal = "SIGTERM";
    ArgsEscaped = true;
    Memory = 0;
    MemorySwap = 0;
    CpuShares = 512;
    Healthcheck = { Test = [ "CMD" "${hello}/bin/hello" ]; Interval = 30000000000; Timeout = 1000000000; StartPeriod = 0; Retries = 3; };
    OnBuild = null;
    Shell = [ "/bin/sh" "-c" ];
    MadeUp = 5;
  };
  nameRule = "an image name docker accepts once lowercased ([HOST[:PORT]/]PATH, PATH's parts lowercase letters and digits joined by `.`, `_`, `__` or `-`, separated by `/`)";
  ownChecks = {
    "image functions take nixpkgs-style config and arguments" =
      accepted (image { config = nixpkgsConfig; contents = hello; uid = 1000; gid = 1000; uname = "u"; gname = "g"; extraCommands = "mkdir tmp"; fakeRootCommands = hello; includeStorePaths = true; fromImage = null; })
      && accepted (strata.buildLayeredImage { name = "registry.example.com:5000/team/My-App"; config = nixpkgsConfig; contents = [ hello "${hello}" ]; compressor = "zstd"; })
      && accepted (strata.buildLayeredImageWithNixDb { name = "localhost/app"; config = nixpkgsConfig; })
      && accepted (strata.buildImage { name = "check"; tag = null; config = nixpkgsConfig; copyToRoot = hello; runAsRoot = "mkdir /x"; uid = 0; })
      && accepted (strata.buildImage { name = "check"; tag = "1.0"; config = null; copyToRoot = [ hello ]; runAsRoot = null; })
      && accepted (strata.buildImageWithNixDb { name = "check"; config = nixpkgsConfig; copyToRoot = [ hello ]; })
      && accepted (strata.buildLayer { deps = hello; contents = [ hello ]; uid = 1; uname = "u"; });
    "buildImage refuses a name with a space" = refusedWith "buildImage" { name = "My App"; }
      "buildImage: `name` must be ${nameRule}, got the string \"My App\": its part \"my app\" holds a character other than lowercase letters, digits, `.`, `_` and `-`";
    "streamLayeredImage refuses a name with empty parts" = refusedWith "streamLayeredImage" { name = "app//x/"; }
      "streamLayeredImage: `name` must be ${nameRule}, got the string \"app//x/\": it has an empty part (`//`, or a `/` at an end)";
    "buildLayeredImage refuses a name that is not a string" = refusedWith "buildLayeredImage" { name = 5; }
      "buildLayeredImage: `name` must be ${nameRule}, got the integer 5";
    "imageFamily gives every member, built by buildLayeredImage by default" =
      let f = strata.imageFamily { images = { a = { name = "a"; }; b = { name = "b"; maxLayers = 10; }; }; };
      in f.a ? drvPath && f.b ? drvPath && f.a ? stream && builtins.attrNames f == [ "a" "b" ];
    "imageFamily takes streamLayeredImage" =
      (strata.imageFamily { function = strata.streamLayeredImage; images.a = { name = "a"; }; }).a.isExe or false;
    "imageFamily refuses an empty family, two architectures, and a member's own layering" =
      !(builtins.tryEval (strata.imageFamily { images = { }; })).success
      && refused (strata.imageFamily { images = { a = { name = "a"; }; b = { name = "b"; architecture = "arm64"; }; }; }).a
      && refused (strata.imageFamily { images.a = { name = "a"; layeringPipeline = [ [ "flatten" ] ]; }; }).a;
    "imageIndex refuses a name docker refuses" = refused (strata.imageIndex { name = "My App"; images = [ (image { }) ]; })
      && refused (strata.imageIndex { name = "check"; tag = "a b"; images = [ (image { }) ]; });
    "buildImage refuses a tag docker refuses" = refusedWith "buildImage" { name = "check"; tag = "a b"; }
      "buildImage: `tag` must be null or a docker tag (letters, digits, `_`, `.`, `-`; at most 128, not starting with `.` or `-`), got the string \"a b\"";
    "buildImage refuses an Env that is a string" = refusedWith "buildImage" { name = "check"; config.Env = "A=1"; }
      "buildImage: `config.Env` must be a list of strings \"NAME=value\", got the string \"A=1\"";
    "buildLayeredImage refuses an Env entry that is not a string" = refusedWith "buildLayeredImage" { name = "check"; config.Env = [ 1 ]; }
      "buildLayeredImage: `config.Env` must be a list of strings \"NAME=value\", got a list holding the integer 1";
    "streamLayeredImage refuses an Env entry without a name" = refusedWith "streamLayeredImage" { name = "check"; config.Env = [ "PATH=/bin" "=1" ]; }
      "streamLayeredImage: `config.Env` must be a list of strings \"NAME=value\", got a list holding the string \"=1\"";
    "streamLayeredImage refuses ExposedPorts as a list" = refusedWith "streamLayeredImage" { name = "check"; config.ExposedPorts = [ "80/tcp" ]; }
      "streamLayeredImage: `config.ExposedPorts` must be an attribute set of empty sets such as { \"80/tcp\" = { }; }, got a list";
    "streamLayeredImage refuses an ExposedPorts entry that is not an empty set" = refusedWith "streamLayeredImage" { name = "check"; config.ExposedPorts."80/tcp" = true; }
      "streamLayeredImage: `config.ExposedPorts` must be an attribute set of empty sets such as { \"80/tcp\" = { }; }, got a set whose \"80/tcp\" is the Boolean true";
    "buildImageWithNixDb refuses a numeric User" = refusedWith "buildImageWithNixDb" { name = "check"; config.User = 1000; }
      "buildImageWithNixDb: `config.User` must be a string such as \"1000:1000\" or \"nobody\", got the integer 1000";
    "buildLayeredImageWithNixDb refuses a Cmd of numbers" = refusedWith "buildLayeredImageWithNixDb" { name = "check"; config.Cmd = [ 1 2 ]; }
      "buildLayeredImageWithNixDb: `config.Cmd` must be a list of strings, or one string, got a list holding the integer 1";
    "a Cmd or Entrypoint of one string (nixpkgs' etc example) is the list of it in the config" =
      builtins.fromJSON (strata.streamLayeredImage { name = "check"; config = { Cmd = "/bin/x"; Entrypoint = [ "/bin/e" ]; }; }).configFile.text
        == { Cmd = [ "/bin/x" ]; Entrypoint = [ "/bin/e" ]; };
    "streamLayeredImage refuses an Entrypoint that is a number" = refusedWith "streamLayeredImage" { name = "check"; config.Entrypoint = 1; }
      "streamLayeredImage: `config.Entrypoint` must be a list of strings, or one string, got the integer 1";
    "buildImage refuses Labels that are not strings" = refusedWith "buildImage" { name = "check"; config.Labels.version = 2; }
      "buildImage: `config.Labels` must be an attribute set of strings, got a set whose \"version\" is the integer 2";
    "streamLayeredImage refuses a Healthcheck test that is a string" = refusedWith "streamLayeredImage" { name = "check"; config.Healthcheck.Test = "true"; }
      "streamLayeredImage: `config.Healthcheck.Test` must be a list of strings such as [ \"CMD\" \"true\" ], got the string \"true\"";
    "streamLayeredImage refuses a Healthcheck interval that is a string" = refusedWith "streamLayeredImage" { name = "check"; config.Healthcheck.Interval = "30s"; }
      "streamLayeredImage: `config.Healthcheck.Interval` must be an integer (nanoseconds), got the string \"30s\"";
    "every config field is checked" = builtins.all (f: strata.lib.configProblem "f" { ${f} = 1.5; } != null) (builtins.attrNames strata.lib.configKinds)
      && builtins.all (f: strata.lib.configProblem "f" { Healthcheck.${f} = 1.5; } != null) (builtins.attrNames strata.lib.healthcheckKinds)
      && builtins.sort builtins.lessThan (builtins.attrNames strata.lib.configKinds) == [ "ArgsEscaped" "Cmd" "CpuShares" "Entrypoint" "Env" "ExposedPorts" "Healthcheck" "Labels" "Memory" "MemorySwap" "OnBuild" "Shell" "StopSignal" "User" "Volumes" "WorkingDir" ];
    "buildLayeredImage refuses a made-up architecture under its own name" = refusedWith "buildLayeredImage" { name = "check"; architecture = "foo"; }
      "buildLayeredImage: `architecture` must be an OCI architecture name (${builtins.concatStringsSep ", " strata.lib.architectures}), got \"foo\"";
    "streamLayeredImage refuses a uid that is a name" = refusedWith "streamLayeredImage" { name = "check"; uid = "root"; }
      "streamLayeredImage: `uid` must be a non-negative integer, got the string \"root\"";
    "buildImage refuses a negative gid" = refusedWith "buildImage" { name = "check"; gid = -1; }
      "buildImage: `gid` must be a non-negative integer, got the integer -1";
    "buildLayeredImage refuses a uname that is a number" = refusedWith "buildLayeredImage" { name = "check"; uname = 0; }
      "buildLayeredImage: `uname` must be a string, got the integer 0";
    "streamLayeredImage refuses extraCommands as a list" = refusedWith "streamLayeredImage" { name = "check"; extraCommands = [ "mkdir tmp" ]; }
      "streamLayeredImage: `extraCommands` must be a string, got a list";
    "streamLayeredImage refuses fakeRootCommands as a list" = refusedWith "streamLayeredImage" { name = "check"; fakeRootCommands = [ "chown 1:1 x" ]; }
      "streamLayeredImage: `fakeRootCommands` must be a string, got a list";
    "buildImage refuses runAsRoot as a list" = refusedWith "buildImage" { name = "check"; runAsRoot = [ "mkdir /x" ]; }
      "buildImage: `runAsRoot` must be null or a string, got a list";
    "streamLayeredImage refuses contents holding a number" = refusedWith "streamLayeredImage" { name = "check"; contents = [ hello 5 ]; }
      "streamLayeredImage: `contents` must be a package (a derivation or a path) or a list of them, got a list holding the integer 5";
    "buildImage refuses copyToRoot that is a number" = refusedWith "buildImage" { name = "check"; copyToRoot = 5; }
      "buildImage: `copyToRoot` must be null or a package (a derivation or a path) or a list of them, got the integer 5";
    "streamLayeredImage refuses maxLayers as a string" = refused (image { maxLayers = "100"; });
    "streamLayeredImage refuses a created date that is a number" = refusedWith "streamLayeredImage" { name = "check"; created = 0; }
      "streamLayeredImage: `created` must be \"now\", @SECONDS or a date such as 1970-01-01T00:00:01Z (time, seconds and offset optional), got the integer 0";
    "streamLayeredImage takes the dates date -Iseconds -d takes" = builtins.all (created: accepted (image { inherit created; mtime = created; }))
      [ "2024-05-01T12:00:00+0000" "2024-05-01T12:00:00+02" "2024-05-01 12:00" "2024-05-01" "@1700000000" "now" "1970-01-01T00:00:01+00:00" ];
    "buildLayeredImage refuses includeStorePaths that is not a Boolean" = refusedWith "buildLayeredImage" { name = "check"; includeStorePaths = "no"; }
      "buildLayeredImage: `includeStorePaths` must be a Boolean, got the string \"no\"";
    "streamLayeredImage refuses a tag that is a number" = refusedWith "streamLayeredImage" { name = "check"; tag = 1; }
      "streamLayeredImage: `tag` must be null or a docker tag (letters, digits, `_`, `.`, `-`; at most 128, not starting with `.` or `-`), got the integer 1";
    "buildLayeredImageWithNixDb refuses an unknown compressor under its own name" = refusedWith "buildLayeredImageWithNixDb" { name = "check"; compressor = "xz"; }
      "buildLayeredImageWithNixDb: `compressor` must be null or one of \"none\", \"gz\", \"zstd\", got the string \"xz\"";
    "buildLayer refuses a uid that is a name" = refused (strata.buildLayer { uid = "root"; })
      && strata.lib.argsProblem "buildLayer" { uid = strata.lib.kinds.id; } { uid = "root"; } == "buildLayer: `uid` must be a non-negative integer, got the string \"root\"";
    "buildLayer refuses deps holding a number" = refused (strata.buildLayer { deps = [ 5 ]; });
    "mergeImages refuses images that are not images" = refused (strata.mergeImages [ 5 ]);
    "exportImage refuses a fromImage that is not an image" = refused (strata.exportImage { fromImage = 5; name = "x"; });
    "pullImage refuses tlsVerify that is not a Boolean" = refused (strata.pullImage { imageName = "a/b"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; tlsVerify = "no"; });
    "streamLayeredImage refuses an image for darwin" = refused ((on "aarch64-darwin").streamLayeredImage { name = "check"; });
    "buildLayeredImage refuses an image for darwin" = refused ((on "x86_64-darwin").buildLayeredImage { name = "check"; });
    "buildImage refuses an image for freebsd" = refused ((on "x86_64-freebsd").buildImage { name = "check"; });
    "the NixDb variants refuse an image for darwin" = refused ((on "aarch64-darwin").buildLayeredImageWithNixDb { name = "check"; }) && refused ((on "aarch64-darwin").buildImageWithNixDb { name = "check"; });
    "imageIndex refuses an entry for darwin" = refused (strata.imageIndex { name = "check"; images = [ ((on "aarch64-darwin").streamLayeredImage { name = "check"; }) ]; });
    "pullImage refuses to derive a platform from darwin" = refused ((on "aarch64-darwin").pullImage { imageName = "a/b"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; });
    "pullImage takes an explicit arch on darwin" = ((on "aarch64-darwin").pullImage { imageName = "a/b"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; arch = "arm64"; }) ? drvPath;
    "pullImage refuses a variant of an architecture that has none" = refused (strata.pullImage { imageName = "a/b"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; arch = "s390x"; variant = "v7"; });
    "pullImage takes arm's v7" = (strata.pullImage { imageName = "a/b"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; arch = "arm"; variant = "v7"; }) ? drvPath;
    "image names are read as docker reads them" = builtins.all strata.lib.isImageName [ "nginx" "library/nginx" "docker.io/library/nginx" "index.docker.io/a/b" "localhost/app" "localhost:5000/app" "127.0.0.1:5000/a/b" "[::1]:5000/app" "Example.COM/x__y.z-w---v" "test:5000/repo" ]
      && !(builtins.any strata.lib.isImageName [ "" "Upper" "Foo/bar" "a.b/../x" "a.b/x/" "a.b//x" "a.b/x-" "a.b/x_-y" "!127.0.0.1:0000/x" "a.b/x:tag" ]);
    "pullImage refuses an image name docker refuses" = refused (strata.pullImage { imageName = "docker.io/../etc"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; });
    "pullImage refuses a final tag docker refuses" = refused (strata.pullImage { imageName = "a/b"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; finalImageTag = "bad tag"; });
    "pullImage takes a Docker Hub name with its domain" = (strata.pullImage { imageName = "docker.io/library/nginx"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; }) ? drvPath;
    "streamLayeredImage refuses a made-up architecture" = refused (image { architecture = "x86"; });
    "buildImage refuses a made-up architecture" = refused (strata.buildImage { name = "check"; architecture = "pentium"; });
    "streamLayeredImage takes every OCI architecture" = builtins.all (a: (image { architecture = a; }) ? drvPath) strata.lib.architectures;
    "every Linux system maps to its architecture and variant" = builtins.all (s: strata.lib.platformOfSystem s == linuxSystems.${s}) (builtins.attrNames linuxSystems);
    "every Linux system's image evaluates" = builtins.all (s: ((on s).streamLayeredImage { name = "check"; }) ? drvPath) (builtins.attrNames linuxSystems);
    "streamLayeredImage refuses maxLayers 1" = refused (image { maxLayers = 1; });
    "streamLayeredImage refuses a created date it cannot read" = refused (image { created = "yesterday"; });
    "streamLayeredImage refuses a tag docker refuses" = refused (image { tag = "a b"; });
    "streamLayeredImage refuses a config that is not a set" = refused (image { config = [ ]; });
    "streamLayeredImage refuses an unknown layerCompressor" = refused (image { layerCompressor = "xz"; });
    "streamLayeredImage takes layerCompressor zstd:chunked" = accepted (image { layerCompressor = "zstd:chunked"; });
    "buildLayeredImage takes layerCompressor zstd:chunked, its archive then plain" = accepted (strata.buildLayeredImage { name = "check"; layerCompressor = "zstd:chunked"; });
    "buildLayeredImage refuses zstd:chunked as the archive's compressor" = refused (strata.buildLayeredImage { name = "check"; compressor = "zstd:chunked"; });
    "buildLayeredImage refuses an unknown compressor" = refused (strata.buildLayeredImage { name = "check"; compressor = "xz"; });
    "buildImage refuses an unknown compressor" = refused (strata.buildImage { name = "check"; compressor = "xz"; });
    "buildImage refuses copyToRoot with contents" = refused (strata.buildImage { name = "check"; copyToRoot = [ ]; contents = [ ]; });
    "streamLayeredImage refuses an unknown layeringPipeline operation" = refused (image { layeringPipeline = [ [ "popularity_contest" ] [ "shuffle" ] ]; });
    "streamLayeredImage refuses limit_layers without a count" = refused (image { layeringPipeline = [ [ "limit_layers" ] ]; });
    "streamLayeredImage takes nixpkgs' old layering as a pipeline" = (image { layeringPipeline = [ [ "popularity_contest" ] [ "limit_layers" 99 ] ]; }) ? drvPath;
    "buildLayer refuses maxLayers 0" = refused (strata.buildLayer { maxLayers = 0; });
    "pullImage refuses a tag for a digest" = refused (strata.pullImage { imageName = "a/b"; imageDigest = "latest"; hash = ""; });
    "mergeImages refuses no images" = refused (strata.mergeImages [ ]);
    "fromImageMaxBytes must be a positive number of bytes" = let parent = ../tests/fixtures/parents/docker-archive.tar; in
      refused (image { fromImage = parent; fromImageMaxBytes = 0; })
      && refused (strata.buildImage { name = "check"; fromImage = parent; fromImageMaxBytes = "1G"; })
      && refused (strata.exportImage { fromImage = parent; fromImageMaxBytes = -1; })
      && (image { fromImage = parent; fromImageMaxBytes = 64 * 1024 * 1024 * 1024; }) ? drvPath;
    "the tag given is the image tag" = (image { tag = "1.0"; }).imageTag == "1.0";
    "the image name is lowercased" = (image { name = "Registry.example/App"; }).imageName == "registry.example/app";
    "passthru reaches the result" = (image { passthru.extra = 1; }).extra == 1 && (image { passthru.extra = 1; }).passthru.extra == 1;
    "results carry their copy executables" = (image { }) ? copyToRegistry && (strata.buildImage { name = "check"; }) ? copyToPodman;
    "buildLayeredImage carries its stream" = (strata.buildLayeredImage { name = "check"; }).stream.isExe;
    "buildLayer results are layers" = (strata.buildLayer { }).isStrataLayer;
    "overrideScope reaches streamLayeredImage" = (marked.streamLayeredImage { name = "check"; }).marked or false;
    "overrideScope reaches functions built on others" = (marked.buildLayeredImage { name = "check"; }).marked or false;
    # Issue 17: every dockerTools expression moves over by changing only the import.
    "meta reaches the result's meta" = builtins.all (fn: (strata.${fn} { name = "check"; meta = meta17; }).meta == meta17) imageFunctions
      && (strata.imageIndex { name = "check"; images = [ (image { }) ]; meta = meta17; }).meta == meta17
      && (strata.buildLayeredImage { name = "check"; meta = meta17; }).stream.meta == meta17
      && (image { }).meta == { };
    "meta changes no derivation" = (image { meta = meta17; }).drvPath == (image { }).drvPath
      && (strata.buildImage { name = "check"; meta = meta17; }).drvPath == (strata.buildImage { name = "check"; }).drvPath;
    "streamLayeredImage refuses a meta that is not a set" = refusedWith "streamLayeredImage" { name = "check"; meta = "x"; }
      "streamLayeredImage: `meta` must be an attribute set, got the string \"x\"";
    "variant goes into the plan beside the architecture" =
      let
        planOf = fn: args: let r = strata.${fn} ({ name = "check"; architecture = "arm64"; variant = "v8"; } // args); in r.stream or r;
      in
      builtins.all (fn: let p = planOf fn { }; in p.architecture == "arm64" && p.variant == "v8") imageFunctions
      && (planOf "buildLayeredImage" { }).conf.variant == "v8"
      && (strata.imageIndex { name = "check"; images = [ (image { }) (image { architecture = "arm64"; variant = "v8"; }) ]; }) ? drvPath;
    "variant defaults to none, leaving plans as they were" = !((image { }) ? variant) && !((strata.buildImage { name = "check"; }).stream ? variant)
      && (image { variant = null; }).drvPath == (image { }).drvPath;
    "variant without architecture takes the system's" = ((on "armv7l-linux").streamLayeredImage { name = "check"; variant = "v6"; }).variant == "v6";
    "buildImage refuses a variant of another architecture" = refusedWith "buildImage" { name = "check"; architecture = "amd64"; variant = "v8"; }
      "buildImage: `variant` \"v8\" is not a variant of amd64";
    "streamLayeredImage refuses a variant of an architecture that has none" = refusedWith "streamLayeredImage" { name = "check"; architecture = "s390x"; variant = "v1"; }
      "streamLayeredImage: `variant` \"v1\" is not a variant of s390x (which has none)";
    "buildLayeredImage refuses a variant that is not a string" = refused (strata.buildLayeredImage { name = "check"; architecture = "arm"; variant = 7; });
    ".override changes an argument" = builtins.all (fn: ((strata.${fn} { name = "check"; tag = "1"; }).override { tag = "2"; }).imageTag == "2") imageFunctions
      && ((image { tag = "1"; }).override (old: { tag = old.tag + "-debug"; })).imageTag == "1-debug"
      && (((image { tag = "1"; }).override { tag = "2"; }).override { name = "other"; }).imageName == "other"
      && ((image { tag = "1"; }).override { tag = "2"; }).buildArgs == { name = "check"; tag = "2"; }
      && ((strata.imageIndex { name = "check"; tag = "1"; images = [ (image { }) ]; }).override { tag = "2"; }).imageTag == "2";
    ".overrideAttrs works on buildImage and buildLayeredImage results" =
      let
        base = strata.buildImage { name = "empty"; };
        # nixos/tests/docker-tools.nix's repeatedLayerTestImage.
        onItself = base.overrideAttrs (_: { fromImage = base; });
        layered = (strata.buildLayeredImage { name = "check"; tag = "1"; }).overrideAttrs (old: { tag = "2"; meta = old.meta // { description = "d"; }; });
      in
      onItself.buildArgs.fromImage == base && onItself.stream.drvPath != base.stream.drvPath
      && layered.imageTag == "2" && layered.meta.description == "d" && layered.stream.imageTag == "2"
      && (layered.overrideAttrs (old: { passthru = old.passthru // { extra = 1; }; })).extra == 1
      && ((image { }).overrideAttrs { tag = "3"; }).imageTag == "3"
      && ((strata.buildImageWithNixDb { name = "check"; }).overrideAttrs (_: { tag = "4"; })).imageTag == "4";
    ".override and .overrideAttrs work on exportImage, pullImage, mergeImages and nix-shell image results" =
      let
        exported = strata.exportImage { fromImage = image { }; };
        pulled = strata.pullImage { imageName = "nixos/nix"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; };
        shell = strata.streamNixShellImage { drv = derivation { name = "d"; system = "x"; builder = "/b"; }; shell = "/bin/bash"; tag = "1"; };
      in
      (exported.override { name = "other.tar"; }).name == "other.tar"
      && (pulled.overrideAttrs (old: { finalImageTag = old.finalImageTag or "latest" + "-2"; })).imageTag == "latest-2"
      && (shell.override { tag = "2"; }).imageTag == "2"
      && ((strata.mergeImages [ (image { }) ]).override (old: old ++ [ (image { tag = "9"; }) ])).drvPath
        == (strata.mergeImages [ (image { }) (image { tag = "9"; }) ]).drvPath;
    "results carry buildArgs, conf and streamScript" =
      let
        args = { name = "check"; tag = "1"; config.Cmd = [ "x" ]; };
        stream = image args;
        layered = strata.buildLayeredImage (args // { compressor = "zstd"; });
      in
      stream.buildArgs == args && stream.passthru.buildArgs == args
      && layered.buildArgs == args // { compressor = "zstd"; } && layered.passthru.buildArgs == layered.buildArgs
      && (strata.buildImage args).buildArgs == args && (strata.buildImage args).passthru ? buildArgs
      && stream.conf.drvPath == stream.drvPath && stream.streamScript.drvPath == stream.drvPath && stream.passthru ? conf
      && layered.conf.drvPath == layered.stream.drvPath && layered.streamScript.drvPath == layered.stream.drvPath && layered.streamScript.isExe
      && layered.passthru ? conf && layered.passthru ? streamScript;
    "config = null is no config" = (image { config = null; }).drvPath == (image { config = { }; }).drvPath
      && accepted (strata.buildLayeredImage { name = "check"; config = null; })
      && accepted (strata.buildLayeredImageWithNixDb { name = "check"; config = null; })
      && accepted (strata.buildImage { name = "check"; config = null; });
    "tarsum is a package of bin/tarsum" = strata.tarsum ? drvPath && strata.tarsum.meta.mainProgram == "tarsum"
      && builtins.any (e: e.path == "bin/tarsum" && e.symlink == "${strata.helper}/bin/strata") strata.tarsum.entries;
  };
  # The pipelines the helper takes and refuses (its unit tests read the same file): the
  # library's check at evaluation agrees, case by case.
  pipelineCases = builtins.fromJSON (builtins.readFile ../tests/fixtures/pipelines/cases.json);
  pipelineChecks = builtins.listToAttrs (map (case: {
    name = "layeringPipeline ${if case.valid then "takes" else "refuses"} ${builtins.toJSON case.pipeline}";
    value = strata.lib.isPipeline case.pipeline == case.valid;
  }) pipelineCases);
  checks = ownChecks // pipelineChecks;
  failed = builtins.filter (name: !checks.${name}) (builtins.attrNames checks);
in
assert strata.lib.assertMsg (failed == [ ])
  "strata evaluation checks failed: ${builtins.concatStringsSep "; " failed}";
strata.internalWriteFile {
  name = "strata-eval-checks";
  text = builtins.concatStringsSep "\n" (builtins.attrNames checks) + "\n";
}
