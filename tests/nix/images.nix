# The images the end-to-end tests build, in the no-nixpkgs form of the library.
# `appVersion2` names the changed application of the rebuild test.
# `parentArchive` is an archive file (docker save, or a crafted hostile one) for `onArchive`.
# `pullArgs` is the JSON of `strata prefetch --json` (plus a unique `name`) for `pulled`.
# `partialData` is a directory of data files for `partialImage` (tests/e2e/partial_pull.rs).
{ helper, toolbox, system ? builtins.currentSystem, appVersion2 ? "2", parentArchive ? null, pullArgs ? null, partialData ? null }:
let
  strata = import ../../nix { inherit helper toolbox system; };
  pkgs = import ./packages.nix { inherit toolbox system; };
  inherit (pkgs) hello tools;

  # A stable dependency layer and an application on top, as a user would split them; the
  # application's version is a parameter so the tests can change it.
  sharedDeps = strata.buildLayer { name = "shared-deps"; deps = [ pkgs.greeting pkgs.toolbox ]; };
  # buildLayer with contents and a split into two store layers.
  splitLayer = strata.buildLayer { name = "split"; deps = [ hello ]; contents = [ tools ]; maxLayers = 2; };
  appImage = version:
    let
      app = derivation {
        name = "app-${version}";
        inherit system;
        builder = "${toolbox}/bin/sh";
        args = [ "-ec" ''
          mkdir -p $out/bin
          printf '#!${toolbox}/bin/sh\ncat ${pkgs.greeting}/share/greeting/text\necho "app ${version}"\n' > $out/bin/app
          chmod 555 $out/bin/app
        '' ];
        PATH = "${toolbox}/bin";
      };
      appLayer = strata.buildLayer { name = "app"; deps = [ app ]; layers = [ sharedDeps ]; };
    in
    strata.streamLayeredImage {
      name = "strata-app";
      tag = version;
      layers = [ sharedDeps appLayer ];
      config.Cmd = [ "${app}/bin/app" ];
    } // { inherit app appLayer; };
  bigApp = version:
    let
      app = pkgs.mk "big-app-${version}" ''
        mkdir -p $out/bin
        printf '#!${toolbox}/bin/sh\necho "big app ${version}"\n' > $out/bin/app
        chmod 555 $out/bin/app
        echo ${toString (pkgs.smallLibs ++ pkgs.midLibs ++ [ pkgs.bigData ])} > $out/deps
      '';
    in
    strata.streamLayeredImage {
      name = "strata-big-app";
      tag = version;
      # Fewer layers than paths, so the default layering has to merge.
      maxLayers = 6;
      config.Cmd = [ "${app}/bin/app" ];
    };
in
rec {
  inherit strata pkgs;
  # Every example of examples/, on the same helper and toolbox.
  examples = import ../../examples { inherit helper toolbox system; };

  # The library's evaluation checks (checks/eval.nix), in the no-nixpkgs form.
  evalChecks = import ../../checks/eval.nix { inherit strata; };

  # The toolbox's store path (interpolation copies it into the store).
  toolboxPath = "${toolbox}";

  # config.Cmd alone brings hello's closure in; contents adds tools at the root.
  stream = strata.streamLayeredImage {
    name = "Strata-Hello";
    contents = [ tools ];
    config.Cmd = [ "${hello}/bin/hello" ];
    config.Env = [ "GREETING=1" ];
    extraCommands = ''
      mkdir -m 1777 tmp
      echo extra > extra.txt
    '';
  };

  # Packages with licences (tests/nix/packages.nix), for the SBOM.
  licensed = strata.streamLayeredImage {
    name = "strata-licensed";
    tag = "v1";
    contents = [ tools ];
    config.Cmd = [ "${hello}/bin/hello" ];
    # hello is in the image through Cmd; its licence (and greeting's, a build input) through
    # sbomPackages.
    sbomPackages = [ hello ];
  };

  # The same, carrying its SBOMs (and a buildImage carrying its own).
  licensedInImage = strata.buildLayeredImage {
    name = "strata-licensed-in-image";
    tag = "v1";
    contents = [ tools ];
    config.Cmd = [ "${hello}/bin/hello" ];
    sbomPackages = [ hello ];
    sbomInImage = true;
    layerCompressor = "gz";
  };
  singleInImage = strata.buildImage {
    name = "strata-single-in-image";
    tag = "v1";
    copyToRoot = tools;
    config.Cmd = [ "${hello}/bin/hello" ];
    sbomInImage = true;
  };

  layered = strata.buildLayeredImage {
    name = "strata-layered";
    tag = "v1";
    contents = tools;
    config.Cmd = [ "${hello}/bin/hello" ];
  };

  # A layered image on top of a layered image (nixpkgs' layered-on-top-layered), with Env
  # inherited and overridden.
  layeredOnTop = strata.streamLayeredImage {
    name = "strata-layered-on-top";
    fromImage = strata.buildLayeredImage {
      name = "env-parent";
      contents = tools;
      config.Env = [ "FROM_PARENT=true" "LAST_LAYER=parent" ];
    };
    config.Env = [ "FROM_CHILD=true" "LAST_LAYER=child" ];
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "tools-check; env | sort" ];
  };

  # The seeds' example: buildImage on top of a buildLayeredImage (nixpkgs' layered-on-top).
  onTopOfLayered = strata.buildImage {
    name = "strata-on-top";
    tag = "latest";
    fromImage = strata.buildLayeredImage {
      name = "strata-base";
      contents = toolbox;
      config.Env = [ "FROM_PARENT=true" "LAST_LAYER=parent" ];
    };
    extraCommands = ''
      mkdir ./example-output
      chmod 777 ./example-output
    '';
    config = {
      Env = [ "PATH=${toolbox}/bin" "LAST_LAYER=child" ];
      WorkingDir = "/example-output";
      Cmd = [ "${toolbox}/bin/sh" "-c" "echo hello > foo; cat foo; env | sort | grep -E 'LAYER|FROM'" ];
    };
  };

  # Three images chained with fromImage, each writing /tmp/layerN (nixpkgs' layersOrder),
  # the top one with runAsRoot appending to a file every layer wrote (layersUnpackOrder).
  chain3 =
    let
      step = n: parent: strata.buildImage {
        name = "strata-chain-${toString n}";
        tag = "latest";
        fromImage = parent;
        copyToRoot = if n == 1 then toolbox else null;
        runAsRoot = ''
          mkdir -p /tmp
          echo layer${toString n} > /tmp/layer${toString n}
          echo layer${toString n} > /tmp/top
          printf ${toString n} >> /layer-order
        '';
        config.Cmd = [ "${toolbox}/bin/sh" "-c" "cat /tmp/layer1 /tmp/layer2 /tmp/layer3 /tmp/top /layer-order" ];
      };
    in
    step 3 (step 2 (step 1 null));

  # Root-owned changes without a VM: runAsRoot over a parent, and fakeRootCommands.
  rootOwned = strata.buildImage {
    name = "strata-root-owned";
    tag = "latest";
    fromImage = strata.buildImage { name = "strata-root-base"; tag = "latest"; copyToRoot = toolbox; };
    runAsRoot = ''
      mkdir -p /home/alice /tmp
      chown 1000:1000 /home/alice
      chmod 1777 /tmp
      echo 'alice:x:1000:1000::/home/alice:/bin/sh' >> /etc-passwd-test
      chown 12345:54321 /etc-passwd-test
    '';
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "stat -c '%n %u:%g %a' /home/alice /tmp /etc-passwd-test" ];
  };

  fakeRoot = strata.streamLayeredImage {
    name = "strata-fake-root";
    tag = "latest";
    contents = toolbox;
    enableFakechroot = true;
    fakeRootCommands = ''
      mkdir -p /home/alice /data
      chown 1000:1000 /home/alice
      chown -R 12345:12345 /data
      chmod 1777 /data
    '';
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "stat -c '%n %u:%g %a' /home/alice /data" ];
  };

  # nixos/tests/docker-tools.nix's buildImage cases: no tag (loaded as imageName:imageTag,
  # for the NixDb variants too), compressor none and zstd, a registry prefix, arm64.
  imageNoTag = strata.buildImage {
    name = "strata-no-tag";
    copyToRoot = toolbox;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  nixDbImageNoTag = strata.buildImageWithNixDb {
    name = "strata-nixdb-no-tag";
    copyToRoot = toolbox;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  nixDbLayeredNoTag = strata.buildLayeredImageWithNixDb {
    name = "strata-nixdb-layered-no-tag";
    contents = tools;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  imageUncompressed = strata.buildImage {
    name = "strata-image-none";
    tag = "latest";
    compressor = "none";
    copyToRoot = toolbox;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  imageZstd = strata.buildImage {
    name = "strata-image-zstd";
    tag = "latest";
    compressor = "zstd";
    copyToRoot = toolbox;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  imagePrefixed = strata.buildImage {
    name = "registry.example.com/team/strata-prefixed";
    tag = "latest";
    copyToRoot = toolbox;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  imageArm64 = strata.buildImage {
    name = "strata-image-arm64";
    tag = "latest";
    architecture = "arm64";
    copyToRoot = toolbox;
  };

  # includeNixDB: the closure registered in a Nix database, read back by the tests with the
  # host's nix-store from the exported root filesystem.
  nixDbLayered = strata.buildLayeredImageWithNixDb {
    name = "strata-nixdb-layered";
    tag = "latest";
    contents = tools;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  nixDbImage = strata.buildImageWithNixDb {
    name = "strata-nixdb";
    tag = "latest";
    copyToRoot = toolbox;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  nixDbLayeredRootfs = strata.exportImage { fromImage = nixDbLayered; name = "nixdb-layered-rootfs.tar"; };
  nixDbImageRootfs = strata.exportImage { fromImage = nixDbImage; name = "nixdb-rootfs.tar"; };

  # exportImage of three chained buildImages (read from their plans) and of a docker-archive.
  chain3Rootfs = strata.exportImage { fromImage = chain3; };
  onArchiveRootfs = strata.exportImage {
    fromImage = builtins.path { path = parentArchive; name = "parent.tar"; };
    name = "on-archive-rootfs.tar";
  };

  # Three images in one archive: two share their store layers.
  merged = strata.mergeImages [ layered layeredZstd onTopOfLayered ];
  # A foreign archive (every image of it) merged with a strata image.
  mergedArchive = strata.mergeImages [
    (builtins.path { path = parentArchive; name = "parent.tar"; })
    stream
  ];

  # nixpkgs' nginx example with busybox's httpd: fakeNss (httpd drops to nobody), the
  # directories extraCommands makes, a port in ExposedPorts; PORT picks the port to bind.
  webServer = strata.buildLayeredImage {
    name = "strata-web-server";
    tag = "latest";
    contents = [ strata.fakeNss toolbox (pkgs.mk "web-root" ''
      mkdir -p $out/srv/www
      echo "<html><body><h1>Hello from httpd</h1></body></html>" > $out/srv/www/index.html
    '') ];
    extraCommands = ''
      mkdir -p tmp var/log/httpd
      chmod 1777 tmp
    '';
    config = {
      Cmd = [ "/bin/sh" "-c" "exec httpd -f -v -u nobody:nobody -p \"127.0.0.1:\${PORT:-80}\" -h /srv/www" ];
      ExposedPorts."80/tcp" = { };
    };
  };

  # nixpkgs' environmentVariablesParent (buildImage, Env only) and its children, a buildImage
  # and a buildLayeredImage that both set Env.
  envParentSingle = strata.buildImage {
    name = "strata-env-parent";
    tag = "latest";
    config.Env = [ "FROM_PARENT=true" "LAST_LAYER=parent" ];
  };
  envChildSingle = strata.buildImage {
    name = "strata-env-child";
    tag = "latest";
    fromImage = envParentSingle;
    copyToRoot = [ toolbox ];
    config.Env = [ "FROM_CHILD=true" "LAST_LAYER=child" ];
  };
  envChildLayered = strata.buildLayeredImage {
    name = "strata-env-child-layered";
    tag = "latest";
    fromImage = envParentSingle;
    contents = [ toolbox ];
    config.Env = [ "FROM_CHILD=true" "LAST_LAYER=child" ];
  };

  # nixpkgs' layered-image (extraCommands on L) and layered-on-top-layered (a layered child
  # writing in a WorkingDir its parent lacks).
  layeredImage = strata.buildLayeredImage {
    name = "strata-layered-image";
    tag = "latest";
    extraCommands = ''echo "(extraCommand)" > extraCommands'';
    config.Cmd = [ "${hello}/bin/hello" ];
    contents = [ hello toolbox ];
  };
  layeredOnTopLayered = strata.buildLayeredImage {
    name = "strata-layered-on-top-layered";
    tag = "latest";
    fromImage = layeredImage;
    extraCommands = ''
      mkdir ./example-input
      chmod 777 ./example-input
    '';
    config = {
      Env = [ "PATH=${toolbox}/bin/" ];
      WorkingDir = "/example-output";
      Cmd = [ "${toolbox}/bin/sh" "-c" "echo hello > foo; cat foo" ];
    };
  };
  # nixpkgs' bulk-layer: maxLayers = 2 puts the whole closure in one layer; /bin/hello is
  # at the root.
  bulkLayer = strata.buildLayeredImage {
    name = "strata-bulk-layer";
    tag = "latest";
    contents = [ toolbox hello ];
    maxLayers = 2;
  };

  # nixpkgs' layersOrder: three chained buildImages whose extraCommands write the same files.
  layersOrder =
    let
      l1 = strata.buildImage {
        name = "strata-l1";
        tag = "latest";
        extraCommands = ''
          mkdir -p tmp
          echo layer1 > tmp/layer1
          echo layer1 > tmp/layer2
          echo layer1 > tmp/layer3
        '';
      };
      l2 = strata.buildImage {
        name = "strata-l2";
        fromImage = l1;
        tag = "latest";
        extraCommands = ''
          mkdir -p tmp
          echo layer2 > tmp/layer2
          echo layer2 > tmp/layer3
        '';
      };
    in
    strata.buildImage {
      name = "strata-l3";
      fromImage = l2;
      tag = "latest";
      copyToRoot = [ toolbox ];
      extraCommands = ''
        mkdir -p tmp
        echo layer3 > tmp/layer3
      '';
    };
  # nixpkgs' imageViaFakeChroot: absolute paths under fakechroot, a link into the store.
  imageViaFakeChroot = strata.streamLayeredImage {
    name = "strata-image-via-fake-chroot";
    tag = "latest";
    config.Cmd = [ "hello" ];
    enableFakechroot = true;
    fakeRootCommands = ''
      mkdir /bin
      ln -s ${hello}/bin/hello /bin/hello
    '';
  };
  # nixpkgs' prefixedLayeredImage: a registry prefix on buildLayeredImage.
  prefixedLayeredImage = strata.buildLayeredImage {
    name = "registry.example.com/team/strata-prefixed-layered";
    tag = "latest";
    config.Cmd = [ "${hello}/bin/hello" ];
  };

  # nixpkgs' layeredImageWithFakeRootCommands: plain fakeroot on relative paths, and a link
  # to a package only the customisation layer names (so its closure must come with it).
  layeredFakeRoot = strata.buildLayeredImage {
    name = "strata-layered-fake-root";
    tag = "latest";
    contents = [ toolbox ];
    fakeRootCommands = ''
      mkdir -p ./home/alice
      chown 1000 ./home/alice
      ln -s ${pkgs.mk "fake-root-hello" ''
        mkdir -p $out/bin
        printf '#!${toolbox}/bin/sh\necho "hello from the fakeRootCommands link"\n' > $out/bin/hello
        chmod 555 $out/bin/hello
      ''} ./hello
    '';
  };
  # nixpkgs' mergedBashFakeRoot, with an uncompressed buildImage (mixed compressors).
  mergedFakeRoot = strata.mergeImages [ imageUncompressed layeredFakeRoot ];

  # The no-nixpkgs family: /bin/sh, /usr/bin/env, fakeNss, CA certificates, and a useradd
  # through shadowSetup in runAsRoot.
  family = strata.buildImage {
    name = "strata-family";
    tag = "latest";
    copyToRoot = [ strata.binSh strata.usrBinEnv strata.caCertificates
      (strata.fakeNss.override { extraPasswdLines = [ "bob:x:1001:1001::/var/empty:/bin/sh" ]; }) ];
    runAsRoot = ''
      ${strata.shadowSetup}
      groupadd -g 2000 staff
      useradd -m -u 1000 -G staff alice
    '';
    config.Cmd = [ "/bin/sh" "-c" ''
      grep -E '^(root|bob|alice):' /etc/passwd; grep -E '^(alice|staff):' /etc/group
      stat -c '%n %u:%g %a' /home/alice
      /usr/bin/env printf 'env ok\n'
      for f in /etc/ssl/certs/ca-bundle.crt /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
        grep -q 'BEGIN CERTIFICATE' $f || exit 1
      done && echo certs ok
      cat /etc/nsswitch.conf
      readlink ${toolbox}/bin/ls
    '' ];
  };

  # nixpkgs' layered-bulk-layer: a maxLayers = 4 image on a maxLayers = 2 parent has 4 layers.
  bulkOnBase = strata.buildLayeredImage {
    name = "strata-bulk-on-base";
    tag = "latest";
    fromImage = strata.buildLayeredImage {
      name = "strata-two-layered";
      tag = "latest";
      contents = [ tools ];
      maxLayers = 2;
    };
    contents = [ toolbox hello ];
    maxLayers = 4;
    config.Cmd = [ "${hello}/bin/hello" ];
  };

  # nixpkgs #34779: runAsRoot and extraCommands both run, in that order, quoting intact.
  runAsRootExtraCommands = strata.buildImage {
    name = "strata-run-as-root-extra";
    tag = "latest";
    copyToRoot = toolbox;
    runAsRoot = ''echo "(runAsRoot)" > runAsRoot'';
    extraCommands = ''echo "(extraCommand)" > extraCommands'';
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "cat /runAsRoot /extraCommands" ];
  };

  # runAsRoot on an archive given on the command line (nixpkgs #214434: a base whose
  # manifest lists the same layer twice).
  runAsRootOnArchive = strata.buildImage {
    name = "strata-root-on-archive";
    tag = "latest";
    fromImage = builtins.path { path = parentArchive; name = "parent.tar"; };
    runAsRoot = "echo ran > /ran";
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "cat /ran; exit 0" ];
  };

  # A streamLayeredImage on an archive given on the command line (from docker save, or a
  # hostile one).
  onArchive = strata.streamLayeredImage {
    name = "strata-on-archive";
    tag = "latest";
    fromImage = builtins.path { path = parentArchive; name = "parent.tar"; };
    config.Cmd = [ "${hello}/bin/hello" ];
  };

  layeredZstd = strata.buildLayeredImage {
    name = "strata-layered-zstd";
    compressor = "zstd";
    config.Cmd = [ "${hello}/bin/hello" ];
  };

  # More store paths than layers: 12 fillers + hello's closure in at most 5 layers.
  capped = strata.streamLayeredImage {
    name = "strata-capped";
    tag = "latest";
    maxLayers = 5;
    config.Cmd = [ "${hello}/bin/hello" ];
    config.Labels.fillers = toString pkgs.fillers;
  };

  # Store files owned by a non-root user, which the image runs as.
  nonRoot = strata.streamLayeredImage {
    name = "strata-nonroot";
    tag = "latest";
    uid = 1000;
    gid = 1000;
    uname = "user";
    gname = "user";
    config.User = "1000:1000";
    config.Cmd = [ "${hello}/bin/hello" "--whoami" ];
  };

  # nixpkgs' helloOnRootNoStore[Fakechroot]: contents at the root, their store paths left
  # out, so the image runs only with the host's store mounted.
  helloOnRootNoStore = strata.streamLayeredImage {
    name = "strata-hello-no-store";
    tag = "latest";
    contents = [ hello ];
    config.Cmd = [ "/bin/hello" ];
    includeStorePaths = false;
  };
  helloOnRootNoStoreFakechroot = strata.streamLayeredImage {
    name = "strata-hello-no-store-fakechroot";
    tag = "latest";
    contents = [ hello ];
    config.Cmd = [ "/bin/hello" ];
    includeStorePaths = false;
    enableFakechroot = true;
  };

  # nixpkgs' build-image-with-path / layered-image-with-path: a bare path in contents.
  imageWithPath = strata.buildImage {
    name = "strata-image-with-path";
    tag = "latest";
    copyToRoot = [ toolbox ./test-dummy ];
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "cat /hello.txt" ];
  };
  layeredWithPath = strata.streamLayeredImage {
    name = "strata-layered-with-path";
    tag = "latest";
    contents = [ toolbox ./test-dummy ];
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "cat /hello.txt" ];
  };
  # nixpkgs' layeredStoreSymlink: a store path that is itself a symlink stays one.
  storeSymlink = pkgs.mk "symlink" "ln -s ${pkgs.localeData} $out";
  layeredStoreSymlink = strata.buildLayeredImage {
    name = "strata-store-symlink";
    tag = "latest";
    contents = [ toolbox storeSymlink ];
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "test -L ${storeSymlink} && cat ${storeSymlink}/share/locale/default" ];
  };

  # No store paths at all: only the customisation layer, made by extraCommands.
  noStore = strata.streamLayeredImage {
    name = "strata-nostore";
    tag = "latest";
    includeStorePaths = false;
    config.Cmd = [ "/bin/busybox" "echo" "no store" ];
    extraCommands = ''
      mkdir bin
      cp ${toolbox}/bin/busybox bin/busybox
    '';
  };

  # Registry prefix and an explicit architecture.
  arm = strata.streamLayeredImage {
    name = "registry.example.com/team/Arm-App";
    tag = "1.0";
    architecture = "arm64";
    config.Cmd = [ "/bin/true" ];
  };

  # nixpkgs' `variant`: in the config beside the architecture, and the platform's.
  armV8 = strata.streamLayeredImage {
    name = "strata-arm64-v8";
    tag = "1.0";
    architecture = "arm64";
    variant = "v8";
    config.Cmd = [ "/bin/true" ];
  };

  # created = "now": the image date is the build's (nixpkgs' unstableDate example).
  nowDated = strata.streamLayeredImage {
    name = "strata-now";
    tag = "latest";
    created = "now";
    config.Cmd = [ "${hello}/bin/hello" ];
  };

  # nixpkgs' unstableDate: buildImage with created = "now", the build's time.
  imageNow = strata.buildImage {
    name = "strata-image-now";
    tag = "latest";
    created = "now";
    copyToRoot = toolbox;
    config.Cmd = [ "${hello}/bin/hello" ];
  };

  # Nothing but a name: no store paths, an (almost) empty customisation layer.
  empty = strata.streamLayeredImage { name = "strata-empty"; tag = "latest"; };

  # An application over a few hundred megabytes of dependencies, layered by default (no
  # buildLayer): pushing v2 after v1 must upload only the application's layer, the
  # customisation layer and the config.
  bigAppV1 = bigApp "1";
  bigAppV2 = bigApp appVersion2;

  # A pipeline with a misspelt operation must fail at evaluation, naming it.
  badPipeline = strata.streamLayeredImage {
    name = "bad";
    layeringPipeline = [ [ "popularity_contest" ] [ "limit_layer" 3 ] ];
  };

  # nixpkgs' old default layering, asked for by its pipeline.
  pipelineImage = strata.streamLayeredImage {
    name = "strata-pipeline";
    tag = "1";
    contents = [ tools ];
    config.Cmd = [ "${hello}/bin/hello" ];
    layeringPipeline = [ [ "popularity_contest" ] [ "limit_layers" 3 ] ];
  };

  inherit sharedDeps;
  appV1 = appImage "1";
  appV2 = appImage appVersion2;
  # A second image sharing the dependency layer, with contents and compression.
  sharedOther = strata.buildLayeredImage {
    name = "strata-shared-other";
    tag = "latest";
    layers = [ sharedDeps ];
    contents = tools;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  inherit splitLayer;
  splitImage = strata.streamLayeredImage {
    name = "strata-split";
    tag = "latest";
    layers = [ splitLayer ];
    config.Cmd = [ "/bin/tools-check" ];
  };

  # The same image twice, with and without a derivation per automatic layer: same layers.
  perLayer = strata.streamLayeredImage {
    name = "strata-per-layer";
    tag = "latest";
    maxLayers = 4;
    perLayerDerivations = true;
    contents = tools;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  perLayerOff = strata.streamLayeredImage {
    name = "strata-per-layer";
    tag = "latest";
    maxLayers = 4;
    contents = tools;
    config.Cmd = [ "${hello}/bin/hello" ];
  };

  # A date that is not one must fail at evaluation.
  badCreated = strata.streamLayeredImage { name = "bad"; created = "yesterday"; };

  # maxLayers = 1 must fail at evaluation.
  # Layers stored compressed inside the archive (tar+gzip, tar+zstd blobs).
  gzLayers = strata.buildLayeredImage {
    name = "strata-gz-layers";
    tag = "v1";
    compressor = "none";
    layerCompressor = "gz";
    contents = tools;
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  zstdLayers = strata.streamLayeredImage {
    name = "strata-zstd-layers";
    tag = "v1";
    layerCompressor = "zstd";
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  # zstd:chunked layers: plain zstd to every reader, files fetched one by one by podman 5's
  # partial pulls.
  chunkedLayers = strata.streamLayeredImage {
    name = "strata-chunked-layers";
    tag = "v1";
    layerCompressor = "zstd:chunked";
    config.Cmd = [ "${hello}/bin/hello" ];
  };
  # An image on a parent whose layers are zstd:chunked, itself with zstd:chunked layers.
  onChunked = strata.streamLayeredImage {
    name = "strata-on-chunked";
    tag = "v1";
    fromImage = chunkedLayers;
    layerCompressor = "zstd:chunked";
    contents = tools;
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "tools-check; ${hello}/bin/hello" ];
  };
  badLayerCompressor = strata.streamLayeredImage {
    name = "bad";
    layerCompressor = "xz";
  };

  # One name, two platforms: the hello image (amd64, first: what docker load takes) and an
  # arm64 image.
  multiArch = strata.imageIndex {
    name = "strata-multi";
    tag = "v1";
    images = [
      (strata.streamLayeredImage { name = "strata-multi"; config.Cmd = [ "${hello}/bin/hello" ]; })
      (strata.buildLayeredImage { name = "strata-multi"; architecture = "arm64"; config.Cmd = [ "/bin/true" ]; })
    ];
  };

  # An image fetched from the tests' registry by digest, and one built on top of it.
  pulled = strata.pullImage (builtins.fromJSON pullArgs);
  # nixpkgs' onTopOfPulledImage: buildImage on the pulled image.
  onPulledSingle = strata.buildImage {
    name = "strata-on-pulled-single";
    tag = "latest";
    fromImage = strata.pullImage (builtins.fromJSON pullArgs);
    copyToRoot = [ hello ];
    config.Cmd = [ "/bin/hello" ];
  };

  onPulled = strata.streamLayeredImage {
    name = "strata-on-pulled";
    tag = "latest";
    fromImage = strata.pullImage (builtins.fromJSON pullArgs);
    contents = tools;
    config.Cmd = [ "${toolbox}/bin/sh" "-c" "tools-check; ${appV1.app}/bin/app" ];
  };

  # The partial-pull checks' data, one store path the config names (so it is in the
  # closure), for `strata push --compression zstd:chunked`.
  partialImage = strata.streamLayeredImage {
    name = "strata-partial";
    tag = "latest";
    config.Env = [ "PARTIAL_DATA=${builtins.path { path = partialData; name = "partial-data"; }}" ];
  };

  # Images for systems that are not Linux, or architectures that are not OCI's: refused
  # at evaluation.
  darwinImage = (import ../../nix { inherit helper toolbox system; imageSystem = "aarch64-darwin"; }).streamLayeredImage { name = "d"; tag = "1"; };
  madeUpArchitecture = strata.buildImage { name = "a"; architecture = "x86"; };

  tooFewLayers = strata.streamLayeredImage {
    name = "bad";
    maxLayers = 1;
  };

  # A family of three images from one package set (imageFamily): each pair shares some
  # paths (hello's, the filler chain), each has an application of its own, and maxLayers
  # is small, so layers must be merged. `fleetAlone` are the same images laid one by one.
  fleetImages = let
    app = member: deps: pkgs.mk "fleet-${member}-1.0" ''
      mkdir -p $out/bin
      printf '#!${toolbox}/bin/sh\necho "fleet ${member}"\ncat ${builtins.head deps}/n\n' > $out/bin/app
      chmod 555 $out/bin/app
      echo ${toString deps} > $out/deps
    '';
    filler = builtins.elemAt pkgs.fillers;
    member = name: deps: { name = "strata-fleet-${name}"; tag = "1"; config.Cmd = [ "${app name deps}/bin/app" ]; };
  in {
    web = member "web" [ (filler 5) hello ];
    worker = member "worker" [ (filler 11) hello ];
    cron = member "cron" [ (filler 8) tools pkgs.localeData ] // { maxLayers = 4; };
  };
  fleet = strata.imageFamily { images = fleetImages; maxLayers = 5; };
  # The fleet with a layer derivation per automatic layer, before and after a change of
  # cron's config: web's and worker's plans stay the same derivations.
  fleetPerLayer = cronVersion: strata.imageFamily {
    maxLayers = 5;
    images = builtins.mapAttrs (_: a: a // { perLayerDerivations = true; }) (fleetImages // {
      cron = fleetImages.cron // { config.Env = [ "CRON_VERSION=${cronVersion}" ]; };
    });
  };
  fleetPerLayer1 = fleetPerLayer "1";
  fleetPerLayer2 = fleetPerLayer "2";
  fleetAlone = builtins.mapAttrs (_: args: strata.buildLayeredImage ({ maxLayers = 5; } // args)) fleetImages;
  # Bad families, refused at evaluation.
  fleetOfTwoArchitectures = strata.imageFamily {
    images = { a = fleetImages.web; b = fleetImages.worker // { architecture = "arm64"; }; };
  };
  fleetWithPipeline = strata.imageFamily {
    images = { a = fleetImages.web // { layeringPipeline = [ [ "popularity_contest" ] ]; }; };
  };
  # A member whose fromImage and layers leave no room for its own paths: the layering's
  # build fails naming the member.
  fleetOverBudget = strata.imageFamily {
    images = { a = fleetImages.web; b = fleetImages.worker // { maxLayers = 2; layers = [ sharedDeps ]; }; };
  };
}
