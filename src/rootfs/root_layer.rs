//! buildImage's layer: `copyToRoot` merged over the unpacked parent, `runAsRoot` run as root
//! with the root as `/`, `extraCommands`, then the layer of what changed, with the closure's
//! store paths that the parent lacks.

use super::customisation::{merge_contents, write_layer_file};
use super::scripts::Script;
use super::unpack::Rootfs;
use super::{BuildError, Workspace};
use crate::parent::ParentImage;
use crate::plan::record::LayerRecord;
use crate::progress::Progress;
use crate::store::closure::Closure;
use crate::store::nix_db::NixDbContents;
use crate::store::path::STORE_DIR;
use crate::tar::header::Stamp;
use crate::tar::layer::LayerSource;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What buildImage's layer is made of (its builder's arguments).
#[derive(Debug, Clone)]
pub struct RootLayer {
    /// The parent image, when there is one.
    pub parent: Option<ParentImage>,
    /// Packages merged at the root (`copyToRoot`).
    pub contents: Vec<PathBuf>,
    /// Run in the root after `run_as_root`, as the build user.
    pub extra_commands: String,
    /// Run as root with the root as `/`.
    pub run_as_root: String,
    /// Owner and mtime of the layer's entries, where no script or parent layer set others.
    pub stamp: Stamp,
    /// The closure of `contents` and the config.
    pub closure: Closure,
    /// Closure paths that are not image content (the config file).
    pub exclude: Vec<String>,
    /// Whether the root gets a Nix database of the closure.
    pub include_nix_db: bool,
}

impl RootLayer {
    /// Builds the layer in `root` (an empty directory) and tars it into `tar`, returning its
    /// record; only what changed goes in.
    pub fn build(&self, at: &Workspace, progress: &Progress) -> Result<LayerRecord, BuildError> {
        let (scripts, root) = (&at.scripts, at.root.as_path());
        let mut rootfs = self.unpack_parent(root)?;
        merge_contents(&self.contents, root)?;
        if self.include_nix_db {
            NixDbContents::new(&self.closure, &self.contents, &self.exclude)
                .write(root, self.stamp.mtime)?;
        }
        if let Some(owners) =
            scripts.run_as_root(Script::RunAsRoot, &self.run_as_root, root, true)?
        {
            rootfs.add_script_owners(owners);
        }
        scripts.run_extra_commands(&self.extra_commands, root)?;
        let listed = rootfs
            .changes(root, &self.store_paths(), false)
            .map_err(BuildError::Changes)?;
        write_layer_file(
            &LayerSource::Listed(Arc::new(listed)),
            &self.stamp,
            &at.tar,
            progress,
        )
    }

    /// The parent's files in `root`, for `runAsRoot` to see; without a script, nothing needs
    /// unpacking.
    fn unpack_parent(&self, root: &Path) -> Result<Rootfs, BuildError> {
        let Some(parent) = self
            .parent
            .as_ref()
            .filter(|_| !self.run_as_root.trim().is_empty())
        else {
            return Ok(Rootfs::default());
        };
        // Store path layers need no unpacking: the build's /nix/store, which holds them
        // (they are inputs of this build), is mounted over the root's while it runs.
        let tars: Vec<PathBuf> = parent
            .layers
            .iter()
            .filter_map(|l| match l.content.source() {
                LayerSource::Tarball(t) => Some(t),
                _ => None,
            })
            .collect();
        Rootfs::unpack(&tars, root).map_err(BuildError::Unpack)
    }

    /// The closure's store paths that go in the layer: not excluded, not in the parent.
    fn store_paths(&self) -> Vec<PathBuf> {
        let mut exclude: BTreeSet<String> = self.exclude.iter().cloned().collect();
        if let Some(p) = &self.parent {
            exclude.extend(p.store_paths.iter().map(|n| format!("{STORE_DIR}/{n}")));
        }
        self.closure
            .entries()
            .iter()
            .map(|e| e.path.clone())
            .filter(|p| !exclude.contains(p))
            .map(PathBuf::from)
            .collect()
    }
}
