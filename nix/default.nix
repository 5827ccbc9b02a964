# strata's Nix library: nixpkgs dockerTools' layered-image functions, built on the strata helper.
#
#   import ./nix { inherit pkgs; }                        # with nixpkgs
#   import ./nix { helper = HELPER; toolbox = TOOLBOX; }  # without (see scripts/bootstrap)
{
  # A nixpkgs package set. When given, the helper is built from this repository with
  # rustPlatform, and scripts run as nixpkgs runs them (docs/API.md, "Scripts").
  pkgs ? null,
  # A path or derivation whose bin/strata is the helper. Without nixpkgs it must be
  # statically linked, since sandboxed builds see nothing but the store paths they name.
  # It runs as the builder, so with nixpkgs it is built for the build platform.
  helper ? if pkgs != null then pkgs.buildPackages.callPackage ./package.nix { }
    else throw "strata: pass `pkgs` or `helper` (a path whose bin/strata is the helper; scripts/bootstrap makes one)",
  # A path or derivation whose bin/ holds sh and coreutils (busybox with applet links will
  # do); extraCommands run with it.
  toolbox ? if pkgs != null then pkgs.buildPackages.callPackage ./toolbox.nix { }
    else throw "strata: pass `pkgs` or `toolbox` (a path whose bin/ holds sh and coreutils; scripts/bootstrap makes one)",
  # The Nix system image derivations are built on.
  system ? if pkgs != null then pkgs.stdenv.buildPlatform.system else builtins.currentSystem,
  # The Nix system images are for; the default architecture follows from it.
  imageSystem ? if pkgs != null then pkgs.stdenv.hostPlatform.system else system,
}:
let
  lib = import ./internalLib.nix;
in
lib.makeScope (self: {
  inherit lib system imageSystem pkgs;
  helper = lib.asStorePath helper;
  toolbox = lib.asStorePath toolbox;
  # nixpkgs' stdenv, whose setup extraCommands and fakeRootCommands run after (as nixpkgs
  # runs them); null without nixpkgs.
  stdenv = if pkgs != null then pkgs.stdenv else null;

  # Image functions go through makeOverridableImage, so their results have `.override` and
  # `.overrideAttrs` as nixpkgs' do; packages that take arguments through makeOverridable.
  binSh = lib.makeOverridable (self.callFunction ./binSh.nix { }) { };
  buildImage = lib.makeOverridableImage (self.callFunction ./buildImage.nix { });
  buildImageWithNixDb = lib.makeOverridableImage (self.callFunction ./buildImageWithNixDb.nix { });
  buildLayer = self.callFunction ./buildLayer.nix { };
  buildLayeredImage = lib.makeOverridableImage (self.callFunction ./buildLayeredImage.nix { });
  buildLayeredImageWithNixDb = lib.makeOverridableImage (self.callFunction ./buildLayeredImageWithNixDb.nix { });
  buildNixShellImage = lib.makeOverridableImage (self.callFunction ./buildNixShellImage.nix { });
  caCertificates = lib.makeOverridable (self.callFunction ./caCertificates.nix { }) { };
  exportImage = lib.makeOverridableImage (self.callFunction ./exportImage.nix { });
  fakeNss = lib.makeOverridable (self.callFunction ./fakeNss.nix { }) { };
  imageFamily = self.callFunction ./imageFamily.nix { };
  imageIndex = lib.makeOverridableImage (self.callFunction ./imageIndex.nix { });
  internalArchive = self.callFunction ./internalArchive.nix { };
  internalBuilder = self.callFunction ./internalBuilder.nix { };
  internalCopyCommands = self.callFunction ./internalCopyCommands.nix { };
  internalCustomisationLayer = self.callFunction ./internalCustomisationLayer.nix { };
  internalExactLayer = self.callFunction ./internalExactLayer.nix { };
  internalFamilyLayering = self.callFunction ./internalFamilyLayering.nix { };
  internalParentImage = self.callFunction ./internalParentImage.nix { };
  internalPlan = self.callFunction ./internalPlan.nix { };
  internalResult = self.callFunction ./internalResult.nix { };
  internalSbom = self.callFunction ./internalSbom.nix { };
  internalSbomInImage = self.callFunction ./internalSbomInImage.nix { };
  internalTree = self.callFunction ./internalTree.nix { };
  internalWriteFile = self.callFunction ./internalWriteFile.nix { };
  mergeImages = lib.makeOverridableList (self.callFunction ./mergeImages.nix { });
  pullImage = lib.makeOverridableImage (self.callFunction ./pullImage.nix { });
  shadowSetup = self.callFunction ./shadowSetup.nix { };
  streamLayeredImage = lib.makeOverridableImage (self.callFunction ./streamLayeredImage.nix { });
  streamNixShellImage = lib.makeOverridableImage (self.callFunction ./streamNixShellImage.nix { });
  tarsum = self.callFunction ./tarsum.nix { };
  usrBinEnv = lib.makeOverridable (self.callFunction ./usrBinEnv.nix { }) { };
})
