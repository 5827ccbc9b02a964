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
  checks = {
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
  };
  failed = builtins.filter (name: !checks.${name}) (builtins.attrNames checks);
in
assert strata.lib.assertMsg (failed == [ ])
  "strata evaluation checks failed: ${builtins.concatStringsSep "; " failed}";
strata.internalWriteFile {
  name = "strata-eval-checks";
  text = builtins.concatStringsSep "\n" (builtins.attrNames checks) + "\n";
}
