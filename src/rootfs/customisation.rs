//! The customisation layer: the `contents` merged at the image root, `extraCommands` applied,
//! tarred at build time.
//!
//! It is tarred inside its derivation, before Nix makes the output read-only, so what
//! `extraCommands` sets up (a `tmp` with mode 1777, say) reaches the image as made. Contents
//! are merged the way nixpkgs' `symlinkJoin` does: directories become real directories,
//! everything else a symlink to the file in its store path; when two contents hold the same
//! file, the first one listed wins.

use crate::file_error::FileError;
use crate::plan::record::{compute_record, LayerRecord, RecordParts};
use crate::progress::Progress;
use crate::rootfs::scripts::Script;
use crate::rootfs::{BuildError, Workspace};
use crate::store::nix_db::NixDbContents;
use crate::tar::header::Stamp;
use crate::tar::layer::{LayerSource, Owners};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// Merges `contents` into `root` (which must exist) like `symlinkJoin`.
pub fn merge_contents(contents: &[PathBuf], root: &Path) -> Result<(), BuildError> {
    for content in contents {
        let meta = fs::metadata(content).map_err(FileError::on("read", content))?;
        if !meta.is_dir() {
            return Err(BuildError::ContentNotDirectory(content.clone()));
        }
        link_tree(content, root)?;
    }
    Ok(())
}

fn link_tree(src: &Path, dst: &Path) -> Result<(), BuildError> {
    let mut children: Vec<_> = fs::read_dir(src)
        .and_then(|rd| {
            rd.map(|e| e.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(FileError::on("read", src))?;
    children.sort();
    for name in children {
        let (s, d) = (src.join(&name), dst.join(&name));
        let s_meta = fs::symlink_metadata(&s).map_err(FileError::on("read", &s))?;
        let d_meta = fs::symlink_metadata(&d).ok();
        if s_meta.is_dir() {
            match d_meta {
                None => {
                    fs::create_dir(&d).map_err(FileError::on("create", &d))?;
                    fs::set_permissions(&d, fs::Permissions::from_mode(0o755))
                        .map_err(FileError::on("set the mode of", &d))?;
                    link_tree(&s, &d)?;
                }
                Some(m) if m.is_dir() => link_tree(&s, &d)?,
                Some(_) => {} // an earlier content holds this name: first wins
            }
        } else if d_meta.is_none() {
            symlink(&s, &d).map_err(FileError::on("create", &d))?;
        }
    }
    Ok(())
}

/// Writes `source` (owner `stamp`'s but where `owners` say otherwise) into `out` and returns
/// the layer's record, computed in the same pass.
pub fn write_layer_file(
    source: &LayerSource,
    stamp: &Stamp,
    out: &Path,
    progress: &Progress,
) -> Result<LayerRecord, BuildError> {
    let file = fs::File::create(out).map_err(FileError::on("create", out))?;
    let mut file = io::BufWriter::with_capacity(1 << 20, file);
    let record = compute_record(
        source,
        stamp,
        RecordParts::TARSUM,
        Some(&mut file),
        progress,
    )?;
    file.flush().map_err(FileError::on("write", out))?;
    Ok(record)
}

/// The owner of an image's `nix/` and `nix/store/` (`uid`, `gid`, `uname`, `gname`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct StoreOwner {
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Owner name.
    pub uname: String,
    /// Group name.
    pub gname: String,
}

impl StoreOwner {
    /// The stamp of entries this owner owns, at `mtime`.
    pub fn stamp(&self, mtime: u64) -> Stamp {
        Stamp {
            mtime,
            uid: self.uid,
            gid: self.gid,
            uname: self.uname.clone(),
            gname: self.gname.clone(),
        }
    }
}

/// What the customisation layer holds and how it is made (`internalCustomisationLayer`'s
/// arguments).
#[derive(Debug, Clone)]
pub struct CustomisationLayer {
    /// Packages merged at the root.
    pub contents: Vec<PathBuf>,
    /// Run in the root, as the build user.
    pub extra_commands: String,
    /// Run in the root as root, after `extra_commands`.
    pub fake_root_commands: String,
    /// Whether `fake_root_commands` see the root as `/`.
    pub enable_fakechroot: bool,
    /// Whether the image holds store paths: then a `store_owner` other than root gets `nix/`
    /// and `nix/store/` written in this layer, over the store layers' root-owned ones.
    pub include_store_paths: bool,
    /// Who owns `nix/` and `nix/store/` when not root (the image's `uid`/`gid`).
    pub store_owner: Option<StoreOwner>,
    /// mtime of every entry, seconds since the epoch.
    pub mtime: u64,
    /// The Nix database to write in the root, when asked for.
    pub nix_db: Option<NixDbContents>,
}

impl CustomisationLayer {
    /// Builds the layer in `root` (an empty directory) and tars it into `tar`, returning its
    /// record.
    pub fn build(&self, at: &Workspace, progress: &Progress) -> Result<LayerRecord, BuildError> {
        let (scripts, root) = (&at.scripts, at.root.as_path());
        merge_contents(&self.contents, root)?;
        if let Some(db) = &self.nix_db {
            db.write(root, self.mtime)?;
        }
        scripts.run_extra_commands(&self.extra_commands, root)?;
        let owners = scripts.run_as_root(
            Script::FakeRootCommands,
            &self.fake_root_commands,
            root,
            self.enable_fakechroot,
        )?;
        // Root's store directories come with the store layers, as in nixpkgs: an image whose
        // closure is empty (everything copied in by extraCommands) has no /nix/store. Another
        // owner's, or the root's own `nix` (made by a script; refused unless a directory),
        // go in this layer, over the store layers' ones.
        let own_nix = fs::symlink_metadata(root.join("nix")).is_ok();
        write_customisation_tar(
            root,
            self.include_store_paths && (self.store_owner.is_some() || own_nix),
            self.store_owner.as_ref(),
            owners,
            self.mtime,
            &at.tar,
            progress,
        )
    }
}

/// Tars `root` as the customisation layer into `out` (owner root unless a root script gave
/// files other owners, the given mtime) and
/// returns the layer's record, computed in the same pass.
pub fn write_customisation_tar(
    root: &Path,
    store_dirs: bool,
    store_owner: Option<&StoreOwner>,
    owners: Option<Owners>,
    mtime: u64,
    out: &Path,
    progress: &Progress,
) -> Result<LayerRecord, BuildError> {
    let source = LayerSource::Tree {
        root: root.to_owned(),
        store_dirs,
        store_dirs_owner: store_owner.map(|o| o.stamp(mtime)),
        owners: owners.map(std::sync::Arc::new),
    };
    write_layer_file(&source, &Stamp::root(mtime), out, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_symlink_join_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir_all(a.join("bin")).unwrap();
        fs::create_dir_all(b.join("bin")).unwrap();
        fs::create_dir_all(b.join("share/doc")).unwrap();
        fs::write(a.join("bin/tool"), b"a").unwrap();
        fs::write(b.join("bin/tool"), b"b").unwrap();
        fs::write(b.join("bin/other"), b"b").unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        merge_contents(&[a.clone(), b.clone()], &root).unwrap();
        assert_eq!(
            fs::read_link(root.join("bin/tool")).unwrap(),
            a.join("bin/tool")
        );
        assert_eq!(
            fs::read_link(root.join("bin/other")).unwrap(),
            b.join("bin/other")
        );
        assert!(fs::symlink_metadata(root.join("share/doc"))
            .unwrap()
            .is_dir());

        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = merge_contents(&[file], &root).unwrap_err();
        assert!(err.to_string().contains("`contents`"), "{err}");
    }
}
