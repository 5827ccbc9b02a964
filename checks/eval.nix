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
  checks = {
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
