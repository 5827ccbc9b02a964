//! Deterministic layer tars, written from store paths or from a directory tree.
//!
//! Every layer starts with `nix/` and `nix/store/` (mode 0755, so non-root users can traverse
//! them) and then holds its entries in name order: each directory's children sorted bytewise,
//! depth first, the order GNU `tar --sort=name` gives. Names are relative. Owner, group and
//! mtime come from a [`Stamp`]; modes are kept; symlinks stay symlinks; hard links are written
//! as regular files, because the links `nix-store --optimise` makes differ between machines
//! and would make the same closure give different layers.
//!
//! [`write_layer`] reads each file once and checks that it still has the size the walk saw
//! when it wrote the file's header.

use crate::tar::header::{encode_header, padding, Kind, Stamp, END_OF_ARCHIVE};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Owners that override a stamp's, by device and inode (what a root script's `chown` calls
/// asked for, [`crate::rootfs::root_shell`]): `(uid, gid)`, `None` where the call left that
/// id alone.
pub type Owners = std::collections::HashMap<(u64, u64), (Option<u32>, Option<u32>)>;

/// Mode of the `nix` and `nix/store` directories in every layer.
pub const STORE_DIR_MODE: u32 = 0o755;

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// A file or directory could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The tree holds something a layer cannot carry.
    #[error("`{path}` is a {kind}, which an image layer cannot hold")]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// What it is (socket, device, ...).
        kind: &'static str,
    },
    /// A file changed size between its header being written and its bytes being read.
    #[error("`{path}` changed while it was read: {expected} bytes when its header was written, {found} when read")]
    Changed {
        /// The file.
        path: PathBuf,
        /// Bytes the first walk saw.
        expected: u64,
        /// Bytes found when reading.
        found: u64,
    },
    /// A directory tree meant as a layer root has `nix` or `nix/store` as a non-directory.
    #[error("`{path}` must be a directory: every layer holds /nix/store")]
    StoreDirNotDirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// Writing the layer bytes failed (for example a closed pipe).
    #[error("cannot write the layer: {0}")]
    Write(#[source] io::Error),
}

/// Where a layer's entries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSource {
    /// Store paths, each written under `nix/store/` with everything below it.
    StorePaths(Vec<PathBuf>),
    /// The contents of a directory, written at the image root (the customisation layer).
    Tree {
        /// The directory whose children become `/`'s children.
        root: PathBuf,
        /// Whether to add `nix/` and `nix/store/` (false for an image without store paths).
        store_dirs: bool,
        /// Owners a root script gave files, overriding the stamp's.
        owners: Option<Arc<Owners>>,
    },
    /// Exactly the listed entries, in order (a layer of changes, `buildImage`'s layer).
    Listed(Arc<Listed>),
    /// A tar already written by strata, streamed as it is.
    Tarball(PathBuf),
}

/// Entries of a [`LayerSource::Listed`] layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listed {
    /// The entries, parents before children.
    pub entries: Vec<ListedEntry>,
    /// Owners overriding the stamp's, by device and inode.
    pub owners: Owners,
}

/// One entry of a [`Listed`] layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// Name in the layer.
    pub name: Vec<u8>,
    /// Where it comes from.
    pub kind: ListedKind,
}

/// What a [`ListedEntry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedKind {
    /// The file, directory or symlink at this path; a directory without its children.
    Single(PathBuf),
    /// The path with everything below it (a store path).
    Subtree(PathBuf),
    /// `nix` or `nix/store`: a directory, mode 0755.
    StoreDir,
    /// An empty file marking a deletion (`.wh.<name>`).
    Whiteout,
}

/// Receives a layer's bytes in order. File data is handed over as a reader so a sink can read
/// it straight into its own buffers.
pub trait LayerSink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Appends up to `len` bytes read from `file`; returns how many were read (fewer at EOF).
    fn put_from(&mut self, file: &mut File, len: u64) -> Result<u64, CopyError>;
}

/// A failed copy from a file into a sink: which side failed.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the file failed.
    Read(io::Error),
    /// Writing to the sink failed.
    Write(io::Error),
}

/// Takes the full buffers of a [`BufferSink`].
pub trait Shipper {
    /// Takes the first `filled` bytes of `buf`, which it may swap for another buffer of the
    /// same length.
    fn ship(&mut self, buf: &mut Vec<u8>, filled: usize) -> io::Result<()>;
}

/// A [`LayerSink`] that fills a fixed-size buffer, reading file data straight into it, and
/// hands it to a [`Shipper`] whenever it is full (and on [`BufferSink::flush`]).
#[derive(Debug)]
pub struct BufferSink<S> {
    buf: Vec<u8>,
    filled: usize,
    /// Where full buffers go.
    pub shipper: S,
}

impl<S: Shipper> BufferSink<S> {
    /// A sink with a buffer of `size` bytes.
    pub fn new(size: usize, shipper: S) -> BufferSink<S> {
        BufferSink {
            buf: vec![0; size],
            filled: 0,
            shipper,
        }
    }

    /// Ships the filled part of the buffer, if any.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.filled > 0 {
            self.shipper.ship(&mut self.buf, self.filled)?;
            self.filled = 0;
        }
        Ok(())
    }
}

impl<S: Shipper> LayerSink for BufferSink<S> {
    fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.filled == self.buf.len() {
                self.flush()?;
            }
            let n = bytes.len().min(self.buf.len() - self.filled);
            self.buf[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn put_from(&mut self, file: &mut File, len: u64) -> Result<u64, CopyError> {
        let mut done = 0u64;
        while done < len {
            if self.filled == self.buf.len() {
                self.flush().map_err(CopyError::Write)?;
            }
            let want = ((len - done) as usize).min(self.buf.len() - self.filled);
            let n = read_retrying(file, &mut self.buf[self.filled..self.filled + want])
                .map_err(CopyError::Read)?;
            if n == 0 {
                break;
            }
            self.filled += n;
            done += n as u64;
        }
        Ok(done)
    }
}

/// A [`Shipper`] that writes full buffers to a writer.
#[derive(Debug)]
pub struct WriteShipper<W>(pub W);

impl<W: io::Write> Shipper for WriteShipper<W> {
    fn ship(&mut self, buf: &mut Vec<u8>, filled: usize) -> io::Result<()> {
        self.0.write_all(&buf[..filled])
    }
}

/// Writes the layer tar for `source` to `out` and returns it (for tests and tools).
pub fn write_layer_to<W: io::Write>(
    source: &LayerSource,
    stamp: &Stamp,
    out: W,
) -> Result<W, LayerError> {
    let mut sink = BufferSink::new(256 * 1024, WriteShipper(out));
    write_layer(source, stamp, &mut sink)?;
    sink.flush().map_err(LayerError::Write)?;
    Ok(sink.shipper.0)
}

/// Reads into `buf`, retrying on EINTR.
pub fn read_retrying(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// One entry as the walk sees it.
struct Entry<'a> {
    /// Device and inode, for owner overrides ((0, 0) for made-up entries).
    id: (u64, u64),
    name: &'a [u8],
    kind: Kind,
    mode: u32,
    link: &'a [u8],
    path: &'a Path,
}

/// Writes the layer tar for `source` to `sink`, reading every file once.
pub fn write_layer(
    source: &LayerSource,
    stamp: &Stamp,
    sink: &mut dyn LayerSink,
) -> Result<(), LayerError> {
    if let LayerSource::Tarball(path) = source {
        let mut file = File::open(path).map_err(|source| LayerError::Io {
            path: path.clone(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| LayerError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        return copy_exact(&mut file, path, len, sink);
    }
    let mut header = Vec::with_capacity(2048);
    walk(source, stamp, &mut |e, stamp| {
        header.clear();
        encode_header(&mut header, e.name, e.kind, e.mode, e.link, stamp);
        sink.put(&header).map_err(LayerError::Write)?;
        if let Kind::File(size) = e.kind {
            let mut file = File::open(e.path).map_err(|source| LayerError::Io {
                path: e.path.to_owned(),
                source,
            })?;
            copy_exact(&mut file, e.path, size, sink)?;
            sink.put(&[0u8; 512][..padding(size)])
                .map_err(LayerError::Write)?;
        }
        Ok(())
    })?;
    sink.put(&END_OF_ARCHIVE).map_err(LayerError::Write)
}

/// Copies exactly `size` bytes of `file` to `sink` and checks nothing follows them.
fn copy_exact(
    file: &mut File,
    path: &Path,
    size: u64,
    sink: &mut dyn LayerSink,
) -> Result<(), LayerError> {
    let read = sink.put_from(file, size).map_err(|e| match e {
        CopyError::Write(e) => LayerError::Write(e),
        CopyError::Read(source) => LayerError::Io {
            path: path.to_owned(),
            source,
        },
    })?;
    let mut probe = [0u8; 1];
    let extra = if read == size {
        read_retrying(file, &mut probe).map_err(|source| LayerError::Io {
            path: path.to_owned(),
            source,
        })?
    } else {
        0
    };
    if read != size || extra != 0 {
        return Err(LayerError::Changed {
            path: path.to_owned(),
            expected: size,
            found: read + extra as u64,
        });
    }
    Ok(())
}

type Visit<'v> = dyn FnMut(&Entry<'_>, &Stamp) -> Result<(), LayerError> + 'v;

/// Walks `source` in archive order, calling `visit` for every entry.
fn walk(source: &LayerSource, stamp: &Stamp, visit: &mut Visit<'_>) -> Result<(), LayerError> {
    let store_dir = |name: &[u8], visit: &mut Visit<'_>| {
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
    };
    match source {
        LayerSource::StorePaths(paths) => {
            store_dir(b"nix", visit)?;
            store_dir(b"nix/store", visit)?;
            let mut sorted: Vec<&PathBuf> = paths.iter().collect();
            sorted.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
            sorted.dedup();
            let mut name = Vec::with_capacity(512);
            for path in sorted {
                let base = path.file_name().ok_or_else(|| LayerError::Io {
                    path: path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "not a store path"),
                })?;
                name.clear();
                name.extend_from_slice(b"nix/store/");
                name.extend_from_slice(base.as_bytes());
                let mut fs_path = path.clone();
                walk_path(&mut fs_path, &mut name, stamp, visit, Skip::None)?;
            }
            Ok(())
        }
        LayerSource::Tree {
            root,
            store_dirs,
            owners,
        } => {
            let mut owned = |e: &Entry<'_>, stamp: &Stamp| match owners.as_deref() {
                Some(owners) => visit(e, &owned_stamp(owners, e.id, stamp)),
                None => visit(e, stamp),
            };
            if *store_dirs {
                store_dir(b"nix", &mut owned)?;
                store_dir(b"nix/store", &mut owned)?;
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
                let mut name = entry.name.clone();
                match &entry.kind {
                    ListedKind::StoreDir => store_dir(&entry.name, &mut owned)?,
                    ListedKind::Whiteout => owned(
                        &Entry {
                            id: (0, 0),
                            name: &entry.name,
                            kind: Kind::File(0),
                            mode: 0o644,
                            link: b"",
                            path: Path::new("/dev/null"),
                        },
                        stamp,
                    )?,
                    ListedKind::Single(path) => walk_path(
                        &mut path.clone(),
                        &mut name,
                        stamp,
                        &mut owned,
                        Skip::Children,
                    )?,
                    ListedKind::Subtree(path) => {
                        walk_path(&mut path.clone(), &mut name, stamp, &mut owned, Skip::None)?
                    }
                }
            }
            Ok(())
        }
        LayerSource::Tarball(_) => unreachable!("tarballs are streamed, not walked"),
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
    let meta = fs::symlink_metadata(&*fs_path).map_err(|source| LayerError::Io {
        path: fs_path.clone(),
        source,
    })?;
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    if matches!(skip_self, Skip::Nix | Skip::Store) && !ft.is_dir() {
        return Err(LayerError::StoreDirNotDirectory {
            path: fs_path.clone(),
        });
    }
    if ft.is_dir() {
        if matches!(skip_self, Skip::None | Skip::Children) {
            visit(
                &Entry {
                    id: (meta.dev(), meta.ino()),
                    name,
                    kind: Kind::Directory,
                    mode,
                    link: b"",
                    path: fs_path,
                },
                stamp,
            )?;
        }
        let child_skip = match skip_self {
            Skip::Children => return Ok(()),
            Skip::Nix => Skip::Store,
            _ => Skip::None,
        };
        walk_children(fs_path, name, stamp, visit, child_skip)
    } else if ft.is_file() {
        visit(
            &Entry {
                id: (meta.dev(), meta.ino()),
                name,
                kind: Kind::File(meta.len()),
                mode,
                link: b"",
                path: fs_path,
            },
            stamp,
        )
    } else if ft.is_symlink() {
        let target = fs::read_link(&*fs_path).map_err(|source| LayerError::Io {
            path: fs_path.clone(),
            source,
        })?;
        visit(
            &Entry {
                id: (meta.dev(), meta.ino()),
                name,
                kind: Kind::Symlink,
                mode,
                link: target.as_os_str().as_bytes(),
                path: fs_path,
            },
            stamp,
        )
    } else {
        let kind = if ft.is_socket() {
            "socket"
        } else if ft.is_fifo() {
            "named pipe"
        } else if ft.is_block_device() {
            "block device"
        } else {
            "character device"
        };
        Err(LayerError::Unsupported {
            path: fs_path.clone(),
            kind,
        })
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
        .map_err(|source| LayerError::Io {
            path: fs_path.clone(),
            source,
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn stamp() -> Stamp {
        Stamp::root(1)
    }

    fn build(source: &LayerSource) -> Vec<u8> {
        try_build(source).unwrap()
    }

    fn try_build(source: &LayerSource) -> Result<Vec<u8>, LayerError> {
        write_layer_to(source, &stamp(), Vec::new())
    }

    fn listing(bytes: &[u8]) -> Vec<(String, u32, char)> {
        tar::Archive::new(bytes)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let t = match h.entry_type() {
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Symlink => 'l',
                    tar::EntryType::Regular => 'f',
                    other => panic!("unexpected {other:?}"),
                };
                (
                    e.path()
                        .unwrap()
                        .to_string_lossy()
                        .trim_end_matches('/')
                        .to_owned(),
                    h.mode().unwrap(),
                    t,
                )
            })
            .collect()
    }

    /// A fake store path with a file, a subdirectory, a symlink and a hard link.
    fn fake_store_path(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        fs::create_dir_all(p.join("bin")).unwrap();
        fs::write(p.join("bin/hello"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(p.join("bin/hello"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::write(p.join("a-b"), b"x").unwrap();
        fs::hard_link(p.join("a-b"), p.join("z-hardlink")).unwrap();
        symlink("bin/hello", p.join("link")).unwrap();
        p
    }

    #[test]
    fn store_layer_order_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let b = fake_store_path(dir.path(), "bbb-two");
        let a = fake_store_path(dir.path(), "aaa-one");
        let bytes = build(&LayerSource::StorePaths(vec![b, a]));
        let l = listing(&bytes);
        let names: Vec<&str> = l.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            &names[..9],
            [
                "nix",
                "nix/store",
                "nix/store/aaa-one",
                "nix/store/aaa-one/a-b",
                "nix/store/aaa-one/bin",
                "nix/store/aaa-one/bin/hello",
                "nix/store/aaa-one/link",
                "nix/store/aaa-one/z-hardlink",
                "nix/store/bbb-two",
            ]
        );
        assert_eq!(l[0].1, 0o755);
        assert_eq!(l[1].1, 0o755);
        assert_eq!(l[5].1, 0o555);
        assert_eq!(l[6].2, 'l');
        assert_eq!(l[7].2, 'f', "hard links become regular files");
        // Owner and mtime come from the stamp.
        let mut archive = tar::Archive::new(&bytes[..]);
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 1);
            assert_eq!(e.header().uid().unwrap(), 0);
            assert_eq!(e.header().username().unwrap(), Some("root"));
        }
    }

    #[test]
    fn same_input_gives_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = fake_store_path(dir.path(), "aaa-one");
        let src = LayerSource::StorePaths(vec![a]);
        assert_eq!(build(&src), build(&src));
    }

    #[test]
    fn tree_layer_merges_existing_nix_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("nix/var/nix")).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir(root.join("tmp")).unwrap();
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        symlink("/nix/store/x-hello/bin/hello", root.join("bin/hello")).unwrap();
        let l = listing(&build(&LayerSource::Tree {
            root: root.clone(),
            store_dirs: true,
            owners: None,
        }));
        let names: Vec<&str> = l.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "nix",
                "nix/store",
                "bin",
                "bin/hello",
                "nix/var",
                "nix/var/nix",
                "tmp"
            ]
        );
        assert_eq!(l[6].1, 0o1777, "modes are kept, sticky bit included");

        let l = listing(&build(&LayerSource::Tree {
            root,
            store_dirs: false,
            owners: None,
        }));
        assert_eq!(l[0].0, "bin");
        assert!(
            l.iter().any(|e| e.0 == "nix"),
            "an existing nix dir is kept"
        );
        assert!(!l.iter().any(|e| e.0 == "nix/store"));
    }

    #[test]
    fn nix_as_a_file_in_a_tree_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("nix"), b"").unwrap();
        let err = try_build(&LayerSource::Tree {
            root: dir.path().into(),
            store_dirs: true,
            owners: None,
        })
        .unwrap_err();
        assert!(
            matches!(err, LayerError::StoreDirNotDirectory { .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_path_error_names_it() {
        let err = try_build(&LayerSource::StorePaths(vec![
            "/nonexistent/store/abc-x".into()
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/store/abc-x"),
            "{err}"
        );
    }

    /// Counts bytes and keeps the first few KiB (the headers).
    struct Head {
        head: Vec<u8>,
        total: u64,
    }

    impl io::Write for Head {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = 4096usize.saturating_sub(self.head.len()).min(buf.len());
            self.head.extend_from_slice(&buf[..room]);
            self.total += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn file_over_8_gib_gets_a_pax_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("aaa-big");
        fs::create_dir(&p).unwrap();
        let size = 8 * (1u64 << 30) + 4097; // past the 11-octal-digit limit
        File::create(p.join("sparse"))
            .unwrap()
            .set_len(size)
            .unwrap();
        let src = LayerSource::StorePaths(vec![p]);
        let head = write_layer_to(
            &src,
            &stamp(),
            Head {
                head: Vec::new(),
                total: 0,
            },
        )
        .unwrap();
        // Six header blocks (nix/, nix/store/, the path, PAX header and record, the file),
        // the data rounded up to a block, the end of archive.
        assert_eq!(head.total, 6 * 512 + size.div_ceil(512) * 512 + 1024);
        // nix/, nix/store/, the path, then the PAX header of the file and its record.
        let pax = String::from_utf8_lossy(&head.head[4 * 512..5 * 512]).into_owned();
        assert!(pax.contains(&format!("size={size}\n")), "{pax}");
        let mut archive = tar::Archive::new(&head.head[..]);
        let entries: Vec<_> = archive
            .entries()
            .unwrap()
            .take(4)
            .map(|e| e.map(|e| e.size()))
            .collect();
        assert!(matches!(entries[3], Ok(s) if s == size), "{entries:?}");
    }

    #[test]
    fn a_file_that_grew_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("aaa-x");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("f"), b"1234").unwrap();
        let mut file = File::open(p.join("f")).unwrap();
        let mut sink = BufferSink::new(1024, WriteShipper(Vec::new()));
        let err = copy_exact(&mut file, &p.join("f"), 2, &mut sink).unwrap_err();
        assert!(
            matches!(err, LayerError::Changed { expected: 2, .. }),
            "{err}"
        );
        let mut file = File::open(p.join("f")).unwrap();
        let err = copy_exact(&mut file, &p.join("f"), 9, &mut sink).unwrap_err();
        assert!(matches!(err, LayerError::Changed { found: 4, .. }), "{err}");
    }
}
