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

pub use crate::tar::sink::{
    read_retrying, BufferSink, CopyError, LayerSink, Shipper, WriteShipper,
};
pub use crate::tar::source::{
    LayerError, LayerSource, Listed, ListedEntry, ListedKind, Owners, STORE_DIR_MODE,
};

use crate::file_error::FileError;
use crate::tar::header::{encode_header, padding, Kind, Stamp, END_OF_ARCHIVE};
use crate::tar::walk::walk;
use std::fs::File;
use std::io;
use std::path::Path;

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

/// Writes the layer tar for `source` to `sink`, reading every file once.
pub fn write_layer(
    source: &LayerSource,
    stamp: &Stamp,
    sink: &mut dyn LayerSink,
) -> Result<(), LayerError> {
    if let LayerSource::Tarball(path) = source {
        let mut file = File::open(path).map_err(FileError::on("read", path))?;
        let len = file.metadata().map_err(FileError::on("read", path))?.len();
        return copy_exact(&mut file, path, len, sink);
    }
    let mut header = Vec::with_capacity(2048);
    walk(source, stamp, &mut |e, stamp| {
        header.clear();
        encode_header(&mut header, e.name, e.kind, e.mode, e.link, stamp);
        sink.put(&header).map_err(LayerError::Write)?;
        if let Kind::File(size) = e.kind {
            let mut file = File::open(e.path).map_err(FileError::on("read", e.path))?;
            copy_exact(&mut file, e.path, size, sink)?;
            sink.put(&[0u8; 512][..padding(size)])
                .map_err(LayerError::Write)?;
        }
        Ok(())
    })?;
    sink.put(&END_OF_ARCHIVE).map_err(LayerError::Write)
}

/// Calls `each` with the path and size of every regular file the layer tar of `source`
/// holds, in its order, without writing the tar (nor opening the files): for those who want
/// some files' contents only (`strata explain`'s partial-pull prediction). Returns `false`,
/// calling nothing, for a tarball, which has no walk: read it as a tar.
pub fn for_each_file(
    source: &LayerSource,
    each: &mut dyn FnMut(&Path, u64) -> Result<(), LayerError>,
) -> Result<bool, LayerError> {
    if let LayerSource::Tarball(_) = source {
        return Ok(false);
    }
    walk(source, &Stamp::root(0), &mut |e, _| match e.kind {
        Kind::File(size) => each(e.path, size),
        _ => Ok(()),
    })?;
    Ok(true)
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
        CopyError::Read(source) => FileError::on("read", path)(source).into(),
    })?;
    let mut probe = [0u8; 1];
    let extra = if read == size {
        read_retrying(file, &mut probe).map_err(FileError::on("read", path))?
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::path::PathBuf;

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
            store_dirs_owner: None,
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
            store_dirs_owner: None,
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
    fn a_trees_own_store_dirs_keep_the_owner_and_mode_a_root_script_gave() {
        // streamNixShellImage's fakeRootCommands: `chown -R 1000:1000 ./nix`, `chmod 1777`.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("nix/store")).unwrap();
        fs::set_permissions(root.join("nix"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(root.join("nix/store"), fs::Permissions::from_mode(0o1775)).unwrap();
        let id = |p: &str| {
            let m = fs::metadata(root.join(p)).unwrap();
            (m.dev(), m.ino())
        };
        let owners: Owners = [
            (id("nix"), (Some(1000), Some(100))),
            (id("nix/store"), (Some(1000), Some(100))),
        ]
        .into_iter()
        .collect();
        let bytes = build(&LayerSource::Tree {
            root,
            store_dirs: true,
            store_dirs_owner: None,
            owners: Some(std::sync::Arc::new(owners)),
        });
        let l = listing(&bytes);
        assert_eq!((l[0].0.as_str(), l[0].1), ("nix", 0o755));
        assert_eq!((l[1].0.as_str(), l[1].1), ("nix/store", 0o1775));
        let mut archive = tar::Archive::new(&bytes[..]);
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(
                (e.header().uid().unwrap(), e.header().gid().unwrap()),
                (1000, 100)
            );
        }
    }

    #[test]
    fn nix_as_a_file_in_a_tree_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("nix"), b"").unwrap();
        let err = try_build(&LayerSource::Tree {
            root: dir.path().into(),
            store_dirs: true,
            store_dirs_owner: None,
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
