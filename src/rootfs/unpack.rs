//! A root filesystem to change: a parent image unpacked for `runAsRoot`, and the layer of
//! what changed in it.
//!
//! Layers are read as they were checked, as Go's archive/tar reads them ([`TarReader`]).
//! Unpacking never follows a symlink the layers made and refuses names that leave the root,
//! so a hostile parent cannot write outside it. Owners cannot be set without privileges, so
//! they are kept by device and inode, like the owners a root script sets
//! ([`crate::rootfs::root_shell`]). After the scripts ran, every entry whose inode or change time
//! differs from the snapshot taken after unpacking, or whose owner a script set, goes into the
//! layer, with whiteouts for what was deleted.

use crate::file_error::FileError;
use crate::rootfs::root_shell::Owners;
use crate::tar::header::EntryType;
use crate::tar::layer::{Listed, ListedEntry, ListedKind};
use crate::tar::names::{clean_name, RefusedEntry};
use crate::tar::reader::{TarEntry, TarReadError, TarReader};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a parent could not be unpacked or the changes listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// A layer entry is refused.
    #[error(transparent)]
    Entry(#[from] RefusedEntry),
    /// A layer entry's directory cannot be made without leaving the root.
    #[error("layer `{layer}`, entry `{entry}`: {source}")]
    Dir {
        /// The layer tar.
        layer: PathBuf,
        /// The entry's name, as the tar has it.
        entry: String,
        /// Why.
        source: DirError,
    },
}

/// Why the directories above an entry cannot be made: writing through a link could leave
/// the root.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// The directory is not below the root.
    #[error("outside the root")]
    OutsideRoot,
    /// A directory on the way is a symlink (relative to the root).
    #[error("goes through the symlink `{0}`")]
    Symlink(PathBuf),
    /// A directory on the way is something else (relative to the root).
    #[error("`{0}` is not a directory")]
    NotDirectory(PathBuf),
    /// A missing directory could not be created.
    #[error(transparent)]
    Create(#[from] FileError),
}

/// Where an entry being unpacked is, for its errors.
struct EntryAt<'a> {
    layer: &'a Path,
    entry: &'a str,
}

impl EntryAt<'_> {
    /// The entry refused for `reason`.
    fn refuse(&self, reason: &str) -> UnpackError {
        RefusedEntry::new(self.layer, self.entry, reason).into()
    }

    /// The entry's directories could not be made.
    fn dir(&self, source: DirError) -> UnpackError {
        UnpackError::Dir {
            layer: self.layer.to_owned(),
            entry: self.entry.to_owned(),
            source,
        }
    }
}

/// What an entry looked like after unpacking: inode and change time.
type Snapshot = HashMap<PathBuf, (u64, i64, i64)>;

/// An unpacked root and what is known about its entries.
#[derive(Debug, Default)]
pub struct Rootfs {
    /// Owners from the parent's layers and the scripts, by device and inode.
    pub owners: Owners,
    snapshot: Snapshot,
    /// Entries whose owner a script set: they changed even if nothing else did.
    script_owned: HashSet<(u64, u64)>,
}

impl Rootfs {
    /// Unpacks the layer tars `layers`, bottom first, into the empty directory `root`.
    pub fn unpack(layers: &[PathBuf], root: &Path) -> Result<Rootfs, UnpackError> {
        let mut fs_state = Rootfs::default();
        for layer in layers {
            fs_state.unpack_layer(layer, root)?;
        }
        fs_state.snapshot = snapshot(root)?;
        Ok(fs_state)
    }

    fn unpack_layer(&mut self, layer: &Path, root: &Path) -> Result<(), UnpackError> {
        let file = File::open(layer).map_err(FileError::on("open", layer))?;
        let mut tar = TarReader::new(io::BufReader::with_capacity(1 << 20, file));
        let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
        let read_err = |e: TarReadError| FileError::on("read", layer)(e.into());
        while let Some(entry) = tar.next_entry().map_err(read_err)? {
            let shown = String::from_utf8_lossy(&entry.name).into_owned();
            let at = EntryAt {
                layer,
                entry: &shown,
            };
            let name = clean_name(&entry.name).map_err(|r| at.refuse(&r.to_string()))?;
            if name.is_empty() {
                continue;
            }
            let target = root.join(&name);
            let parent = target.parent().unwrap_or(root);
            ensure_real_dirs(root, parent).map_err(|e| at.dir(e))?;
            let base = name.rsplit('/').next().unwrap_or(&name);
            if base == ".wh..wh..opq" {
                clear_dir(parent)?;
                continue;
            }
            if let Some(hidden) = base.strip_prefix(".wh.") {
                remove_any(&parent.join(hidden))?;
                continue;
            }
            if let Some(mode) = self.unpack_entry(&entry, &mut tar.data(), root, &target, &at)? {
                dir_modes.push((target, mode));
            }
        }
        for (dir, mode) in dir_modes.into_iter().rev() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode & 0o1777))
                .map_err(FileError::on("chmod", &dir))?;
        }
        Ok(())
    }

    /// Unpacks `entry`, whose data `data` reads, at `target` (its parents are real
    /// directories); returns a directory's mode, set once the layer is unpacked so that a
    /// read-only directory can still be filled. `at` names the entry in errors.
    fn unpack_entry(
        &mut self,
        entry: &TarEntry,
        data: &mut impl io::Read,
        root: &Path,
        target: &Path,
        at: &EntryAt<'_>,
    ) -> Result<Option<u32>, UnpackError> {
        let mode = (entry.mode & 0o7777) as u32;
        let (uid, gid) = (entry.uid as u32, entry.gid as u32);
        let kind = entry.entry_type;
        let existing = fs::symlink_metadata(target).ok();
        if kind != EntryType::Directory || existing.as_ref().is_some_and(|m| !m.is_dir()) {
            remove_any(target)?;
        }
        let mut dir_mode = None;
        match kind {
            EntryType::Directory => {
                if fs::symlink_metadata(target).is_err() {
                    fs::create_dir(target).map_err(FileError::on("create", target))?;
                }
                fs::set_permissions(target, fs::Permissions::from_mode(0o755))
                    .map_err(FileError::on("chmod", target))?;
                dir_mode = Some(mode);
            }
            EntryType::Regular | EntryType::Contiguous => {
                let mut out = File::create(target).map_err(FileError::on("create", target))?;
                io::copy(data, &mut out).map_err(FileError::on("write", target))?;
                // The sandbox forbids setuid and setgid bits.
                fs::set_permissions(target, fs::Permissions::from_mode(mode & 0o1777))
                    .map_err(FileError::on("chmod", target))?;
            }
            EntryType::Symlink => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&entry.link), target)
                    .map_err(FileError::on("create", target))?;
            }
            EntryType::HardLink => {
                let link = clean_name(&entry.link).map_err(|r| at.refuse(&r.to_string()))?;
                let source = root.join(&link);
                ensure_real_dirs(root, source.parent().unwrap_or(root)).map_err(|e| at.dir(e))?;
                if !fs::symlink_metadata(&source).is_ok_and(|m| m.is_file()) {
                    return Err(at.refuse("hard link to a file that is not there"));
                }
                fs::hard_link(&source, target).map_err(FileError::on("link", target))?;
            }
            EntryType::CharDevice | EntryType::BlockDevice => return Err(at.refuse("device node")),
            _ => return Ok(None), // fifos and metadata entries: nothing to unpack
        }
        if uid != 0 || gid != 0 {
            let m = fs::symlink_metadata(target).map_err(FileError::on("stat", target))?;
            self.owners
                .insert((m.dev(), m.ino()), (Some(uid), Some(gid)));
        }
        Ok(dir_mode)
    }

    /// The layer of what changed in `root` since it was unpacked (everything, for a root that
    /// was never unpacked), plus `store_paths` below `nix/store/` (with `nix` and `nix/store`
    /// themselves when there are any or `store_dirs` asks for them).
    pub fn changes(
        &self,
        root: &Path,
        store_paths: &[PathBuf],
        store_dirs: bool,
    ) -> Result<Listed, UnpackError> {
        let now = snapshot(root)?;
        let mut entries: BTreeMap<Vec<u8>, ListedKind> = BTreeMap::new();
        for (rel, &(ino, ctime, ctime_ns)) in &now {
            let changed = match self.snapshot.get(rel) {
                Some(&(i, c, n)) => i != ino || c != ctime || n != ctime_ns,
                None => true,
            };
            let full = root.join(rel);
            let owned = fs::symlink_metadata(&full)
                .map(|m| self.owners_set_by_script(m.dev(), m.ino()))
                .unwrap_or(false);
            if changed || owned {
                entries.insert(
                    rel.as_os_str().as_bytes().to_vec(),
                    ListedKind::Single(full),
                );
                // Parents go in too (as they are now), so the entry has a place.
                let mut up = rel.parent();
                while let Some(p) = up.filter(|p| !p.as_os_str().is_empty()) {
                    entries
                        .entry(p.as_os_str().as_bytes().to_vec())
                        .or_insert_with(|| ListedKind::Single(root.join(p)));
                    up = p.parent();
                }
            }
        }
        // Deleted: one whiteout at the topmost deleted entry.
        let gone: BTreeSet<&PathBuf> = self
            .snapshot
            .keys()
            .filter(|p| !now.contains_key(*p))
            .collect();
        for rel in &gone {
            if rel
                .parent()
                .is_some_and(|p| gone.contains(&p.to_path_buf()))
            {
                continue;
            }
            let mut name = Vec::new();
            if let Some(p) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                name.extend_from_slice(p.as_os_str().as_bytes());
                name.push(b'/');
            }
            name.extend_from_slice(b".wh.");
            name.extend_from_slice(rel.file_name().unwrap_or_default().as_bytes());
            entries.insert(name, ListedKind::Whiteout);
        }
        if store_dirs || !store_paths.is_empty() {
            entries.insert(b"nix".to_vec(), ListedKind::StoreDir);
            entries.insert(b"nix/store".to_vec(), ListedKind::StoreDir);
        }
        for path in store_paths {
            let mut name = b"nix/store/".to_vec();
            name.extend_from_slice(path.file_name().unwrap_or_default().as_bytes());
            entries.insert(name, ListedKind::Subtree(path.clone()));
        }
        Ok(Listed {
            entries: entries
                .into_iter()
                .map(|(name, kind)| ListedEntry { name, kind })
                .collect(),
            owners: self.owners.clone(),
        })
    }

    fn owners_set_by_script(&self, dev: u64, ino: u64) -> bool {
        self.script_owned.contains(&(dev, ino))
    }

    /// Takes in the owners a root script set.
    pub fn add_script_owners(&mut self, owners: Owners) {
        for (key, (uid, gid)) in owners {
            let entry = self.owners.entry(key).or_insert((None, None));
            entry.0 = uid.or(entry.0);
            entry.1 = gid.or(entry.1);
            self.script_owned.insert(key);
        }
    }
}

/// Makes sure every directory from `root` down to `dir` is a real directory (creating missing
/// ones), never a symlink: writing through a link could leave the root.
fn ensure_real_dirs(root: &Path, dir: &Path) -> Result<(), DirError> {
    let rel = dir.strip_prefix(root).map_err(|_| DirError::OutsideRoot)?;
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        let relative = || at.strip_prefix(root).unwrap_or(&at).to_owned();
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => return Err(DirError::Symlink(relative())),
            Ok(_) => return Err(DirError::NotDirectory(relative())),
            Err(_) => fs::create_dir(&at).map_err(FileError::on("create", &at))?,
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => {
            make_writable(path);
            Ok(fs::remove_dir_all(path).map_err(FileError::on("remove", path))?)
        }
        Ok(_) => Ok(fs::remove_file(path).map_err(FileError::on("remove", path))?),
    }
}

fn make_writable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}

fn clear_dir(dir: &Path) -> Result<(), UnpackError> {
    for e in fs::read_dir(dir)
        .map_err(FileError::on("read", dir))?
        .flatten()
    {
        remove_any(&e.path())?;
    }
    Ok(())
}

/// Inode and change time of every entry below `root` (relative paths), not descending into
/// `nix/store` (the host's store is mounted there while scripts run).
fn snapshot(root: &Path) -> Result<Snapshot, UnpackError> {
    let mut out = Snapshot::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in fs::read_dir(&dir).map_err(FileError::on("read", &dir))? {
            let e = e.map_err(FileError::on("read", &dir))?;
            let child = rel.join(e.file_name());
            let m =
                fs::symlink_metadata(root.join(&child)).map_err(FileError::on("stat", &child))?;
            out.insert(child.clone(), (m.ino(), m.ctime(), m.ctime_nsec()));
            if m.is_dir() && child != Path::new("nix/store") {
                stack.push(child);
            }
        }
    }
    Ok(out)
}
