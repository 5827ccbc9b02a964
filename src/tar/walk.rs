//! The walk that orders a layer's entries: store paths sorted bytewise, each directory's
//! children sorted bytewise, depth first (GNU `tar --sort=name`), with owners a root script
//! set taking the place of the stamp's.

use crate::file_error::FileError;
use crate::tar::header::{Kind, Stamp};
use crate::tar::source::{LayerError, LayerSource, ListedKind, Owners, STORE_DIR_MODE};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One entry as the walk sees it.
pub(super) struct Entry<'a> {
    /// Device and inode, for owner overrides ((0, 0) for made-up entries).
    pub(super) id: (u64, u64),
    pub(super) name: &'a [u8],
    pub(super) kind: Kind,
    pub(super) mode: u32,
    pub(super) link: &'a [u8],
    pub(super) path: &'a Path,
}

/// What the walk calls for every entry, with the stamp that entry gets.
pub(super) type Visit<'v> = dyn FnMut(&Entry<'_>, &Stamp) -> Result<(), LayerError> + 'v;

/// Walks `source` in archive order, calling `visit` for every entry.
pub(super) fn walk(
    source: &LayerSource,
    stamp: &Stamp,
    visit: &mut Visit<'_>,
) -> Result<(), LayerError> {
    match source {
        LayerSource::StorePaths(paths) => walk_store_paths(paths, stamp, visit),
        LayerSource::Tree {
            root,
            store_dirs,
            store_dirs_owner,
            owners,
        } => {
            let mut owned = |e: &Entry<'_>, stamp: &Stamp| match owners.as_deref() {
                Some(owners) => visit(e, &owned_stamp(owners, e.id, stamp)),
                None => visit(e, stamp),
            };
            if *store_dirs {
                let dirs = store_dirs_owner.as_ref().unwrap_or(stamp);
                tree_store_dir(root, b"nix", dirs, &mut owned)?;
                tree_store_dir(root, b"nix/store", dirs, &mut owned)?;
            }
            let mut fs_path = root.clone();
            let mut name = Vec::with_capacity(512);
            let skip = if *store_dirs { Skip::Nix } else { Skip::None };
            walk_children(&mut fs_path, &mut name, stamp, &mut owned, skip)
        }
        LayerSource::Listed(listed) => {
            let mut owned =
                |e: &Entry<'_>, stamp: &Stamp| visit(e, &owned_stamp(&listed.owners, e.id, stamp));
            for entry in &listed.entries {
                walk_listed(&entry.name, &entry.kind, stamp, &mut owned)?;
            }
            Ok(())
        }
        LayerSource::Tarball(_) => unreachable!("tarballs are streamed, not walked"),
    }
}

/// `nix` or `nix/store`: a directory every layer of store paths starts with.
fn store_dir(name: &[u8], stamp: &Stamp, visit: &mut Visit<'_>) -> Result<(), LayerError> {
    visit(
        &Entry {
            id: (0, 0),
            name,
            kind: Kind::Directory,
            mode: STORE_DIR_MODE,
            link: b"",
            path: Path::new("/nix/store"),
        },
        stamp,
    )
}

/// `nix` or `nix/store` of a tree: the tree's own directory when it has one, so the owner a
/// root script gave it (`chown 1000 nix/store`, a single-user Nix) and its mode are kept;
/// else the standard one.
fn tree_store_dir(
    root: &Path,
    name: &[u8],
    stamp: &Stamp,
    visit: &mut Visit<'_>,
) -> Result<(), LayerError> {
    let path = root.join(std::ffi::OsStr::from_bytes(name));
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => visit(
            &Entry {
                id: (meta.dev(), meta.ino()),
                name,
                kind: Kind::Directory,
                mode: meta.mode() & 0o7777,
                link: b"",
                path: &path,
            },
            stamp,
        ),
        _ => store_dir(name, stamp, visit),
    }
}

/// `nix`, `nix/store`, then each store path (sorted, once) with everything below it.
fn walk_store_paths(
    paths: &[PathBuf],
    stamp: &Stamp,
    visit: &mut Visit<'_>,
) -> Result<(), LayerError> {
    store_dir(b"nix", stamp, visit)?;
    store_dir(b"nix/store", stamp, visit)?;
    let mut sorted: Vec<&PathBuf> = paths.iter().collect();
    sorted.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    sorted.dedup();
    let mut name = Vec::with_capacity(512);
    for path in sorted {
        let base = path.file_name().ok_or_else(|| {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a store path");
            FileError::on("read", path)(source)
        })?;
        name.clear();
        name.extend_from_slice(b"nix/store/");
        name.extend_from_slice(base.as_bytes());
        let mut fs_path = path.clone();
        walk_path(&mut fs_path, &mut name, stamp, visit, Skip::None)?;
    }
    Ok(())
}

/// One entry of a listed layer (a layer of changes).
fn walk_listed(
    name: &[u8],
    kind: &ListedKind,
    stamp: &Stamp,
    visit: &mut Visit<'_>,
) -> Result<(), LayerError> {
    let mut name_buf = name.to_vec();
    match kind {
        ListedKind::StoreDir => store_dir(name, stamp, visit),
        ListedKind::Whiteout => visit(
            &Entry {
                id: (0, 0),
                name,
                kind: Kind::File(0),
                mode: 0o644,
                link: b"",
                path: Path::new("/dev/null"),
            },
            stamp,
        ),
        ListedKind::Single(path) => walk_path(
            &mut path.clone(),
            &mut name_buf,
            stamp,
            visit,
            Skip::Children,
        ),
        ListedKind::Subtree(path) => {
            walk_path(&mut path.clone(), &mut name_buf, stamp, visit, Skip::None)
        }
    }
}

/// Which already-written directory entries a tree walk must not write again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    /// At the root: `nix` was written first.
    Nix,
    /// Inside `nix`: `store` was written first.
    Store,
    /// Write this entry but not a directory's children.
    Children,
}

/// `stamp` with the owner a root script gave the file `id`, if any.
fn owned_stamp(owners: &Owners, id: (u64, u64), stamp: &Stamp) -> Stamp {
    match owners.get(&id) {
        None => stamp.clone(),
        Some(&(uid, gid)) => {
            let uid = uid.map_or(stamp.uid, u64::from);
            let gid = gid.map_or(stamp.gid, u64::from);
            Stamp {
                mtime: stamp.mtime,
                uid,
                gid,
                uname: if uid == stamp.uid {
                    stamp.uname.clone()
                } else {
                    String::new()
                },
                gname: if gid == stamp.gid {
                    stamp.gname.clone()
                } else {
                    String::new()
                },
            }
        }
    }
}

/// Visits the entry at `fs_path` (archive name `name`) and, for a directory, its subtree.
fn walk_path(
    fs_path: &mut PathBuf,
    name: &mut Vec<u8>,
    stamp: &Stamp,
    visit: &mut Visit<'_>,
    skip_self: Skip,
) -> Result<(), LayerError> {
    let io = |source| FileError::on("read", fs_path.as_path())(source);
    let meta = fs::symlink_metadata(&*fs_path).map_err(io)?;
    let ft = meta.file_type();
    if matches!(skip_self, Skip::Nix | Skip::Store) && !ft.is_dir() {
        return Err(LayerError::StoreDirNotDirectory {
            path: fs_path.clone(),
        });
    }
    let target = match ft.is_symlink() {
        true => Some(fs::read_link(&*fs_path).map_err(io)?),
        false => None,
    };
    let kind = if ft.is_dir() {
        Kind::Directory
    } else if ft.is_file() {
        Kind::File(meta.len())
    } else if target.is_some() {
        Kind::Symlink
    } else {
        return Err(LayerError::Unsupported {
            path: fs_path.clone(),
            kind: unsupported_kind(ft),
        });
    };
    let entry = Entry {
        id: (meta.dev(), meta.ino()),
        name,
        kind,
        mode: meta.mode() & 0o7777,
        link: target
            .as_ref()
            .map_or(&b""[..], |t| t.as_os_str().as_bytes()),
        path: fs_path,
    };
    if kind != Kind::Directory {
        return visit(&entry, stamp);
    }
    if matches!(skip_self, Skip::None | Skip::Children) {
        visit(&entry, stamp)?;
    }
    let child_skip = match skip_self {
        Skip::Children => return Ok(()),
        Skip::Nix => Skip::Store,
        _ => Skip::None,
    };
    walk_children(fs_path, name, stamp, visit, child_skip)
}

/// What a file type strata cannot put in a layer is called.
fn unsupported_kind(ft: fs::FileType) -> &'static str {
    if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "named pipe"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "character device"
    }
}

/// Visits the children of the directory at `fs_path` in bytewise name order. `skip` marks the
/// one child (`nix` at the root, `store` inside it) whose own entry was already written.
fn walk_children(
    fs_path: &mut PathBuf,
    name: &mut Vec<u8>,
    stamp: &Stamp,
    visit: &mut Visit<'_>,
    skip: Skip,
) -> Result<(), LayerError> {
    let mut children: Vec<OsString> = fs::read_dir(&*fs_path)
        .and_then(|rd| rd.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(FileError::on("read", fs_path))?;
    children.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for child in children {
        let child = child.into_vec();
        let name_len = name.len();
        if !name.is_empty() {
            name.push(b'/');
        }
        name.extend_from_slice(&child);
        fs_path.push(std::ffi::OsStr::from_bytes(&child));
        let child_skip = match skip {
            Skip::Nix if child == b"nix" => Skip::Nix,
            Skip::Store if child == b"store" => Skip::Store,
            _ => Skip::None,
        };
        let result = walk_path(fs_path, name, stamp, visit, child_skip);
        fs_path.pop();
        name.truncate(name_len);
        result?;
    }
    Ok(())
}
