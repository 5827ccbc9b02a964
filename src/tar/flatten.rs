//! An image's layers flattened into one root filesystem tar (`exportImage`), without
//! unpacking them: one pass over each layer's headers, top layer first, decides which entries
//! survive (upper entries hide lower ones; whiteouts and opaque directories delete) and notes
//! where their bytes are; they are then written sorted by name, as nixpkgs' exportImage
//! writes them (see [`flatten`]). Layers are read with [`TarReader`], as docker reads them;
//! headers are written by [`encode_header`], as every tar strata writes.

use crate::file_error::FileError;
use crate::tar::header::{encode_header, padding, EntryType, Kind, Stamp, END_OF_ARCHIVE};
use crate::tar::names::{clean_name, NameError, RefusedEntry};
use crate::tar::reader::{TarEntry, TarReadError, TarReader};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::PathBuf;

/// Why the layers could not be flattened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlattenError {
    /// A layer could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// An entry cannot be carried over.
    #[error(transparent)]
    Entry(#[from] RefusedEntry),
    /// The output could not be written.
    #[error("cannot write the root filesystem: {0}")]
    Write(#[source] io::Error),
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flattened {
    /// Entries written.
    pub entries: u64,
    /// Entries of lower layers that upper layers hid or deleted.
    pub hidden: u64,
}

/// The mtime of every entry of an export: nixpkgs' exportImage tars with
/// `--mtime=@$SOURCE_DATE_EPOCH`, which its stdenv sets to 1980-01-01.
pub const EXPORT_MTIME: u64 = 315_532_800;

/// An entry that survives, and where its bytes are.
struct Survivor {
    /// Its name, clean (no `./`, no trailing `/`).
    name: String,
    /// Which layer holds it.
    layer: usize,
    entry_type: EntryType,
    mode: u32,
    /// Its owner, at [`EXPORT_MTIME`].
    stamp: Stamp,
    /// Bytes of data (0 for links).
    size: u64,
    /// A symlink's target as the layer has it; a hard link's, clean.
    link: Vec<u8>,
    /// Where its data starts in the layer.
    data_at: u64,
}

impl Survivor {
    /// `entry` of layer `layer`, named `name`, its data at `data_at`; refused when it is a
    /// hard link whose target is.
    fn new(
        entry: TarEntry,
        name: String,
        layer: usize,
        data_at: u64,
    ) -> Result<Survivor, NameError> {
        let link = if entry.entry_type == EntryType::HardLink {
            clean_name(&entry.link)?.into_bytes()
        } else {
            entry.link
        };
        let id = |id: i64| u64::try_from(id).unwrap_or(0);
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Ok(Survivor {
            layer,
            entry_type: entry.entry_type,
            mode: (entry.mode & 0o7777) as u32,
            stamp: Stamp {
                mtime: EXPORT_MTIME,
                uid: id(entry.uid),
                gid: id(entry.gid),
                uname: text(&entry.uname),
                gname: text(&entry.gname),
            },
            size: entry.size,
            link,
            data_at,
            name,
        })
    }
}

/// Writes the root filesystem of the layer tars `layers` (bottom first) to `out` as a tar,
/// as nixpkgs' exportImage writes one (`tar -C root --sort=name --hard-dereference
/// --mtime=@$SOURCE_DATE_EPOCH -cf out .`): names `./…` under a `./` entry, each
/// directory's children sorted by name, hard links as the files they link, every mtime
/// [`EXPORT_MTIME`]. Owners and modes (setuid included) are the layers' own, which an
/// unpacked copy inside the Nix sandbox could not keep. Headers are strata's ([`encode_header`]:
/// ustar, PAX records where ustar cannot hold a value), as `docker export` writes POSIX
/// headers too.
pub fn flatten(layers: &[PathBuf], mut out: impl Write) -> Result<Flattened, FlattenError> {
    let (mut survivors, hidden) = survivors(layers)?;
    // Component by component: a directory, then what is in it, then its next sibling.
    survivors.sort_by(|a, b| a.name.split('/').cmp(b.name.split('/')));
    let index: HashMap<&str, usize> = survivors
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut files: Vec<Option<File>> = layers.iter().map(|_| None).collect();
    let mut header = Vec::with_capacity(2048);
    let root = Stamp {
        mtime: EXPORT_MTIME,
        uid: 0,
        gid: 0,
        uname: String::new(),
        gname: String::new(),
    };
    encode_header(&mut header, b"./", Kind::Directory, 0o755, b"", &root);
    out.write_all(&header).map_err(FlattenError::Write)?;
    for s in &survivors {
        let (kind, link, data) = match s.entry_type {
            EntryType::Directory => (Kind::Directory, &b""[..], None),
            EntryType::Symlink => (Kind::Symlink, &s.link[..], None),
            EntryType::Fifo => (Kind::Fifo, &b""[..], None),
            EntryType::HardLink => {
                let t = link_target(layers, &survivors, &index, s)?;
                (Kind::File(t.size), &b""[..], Some(t))
            }
            _ => (Kind::File(s.size), &b""[..], Some(s)),
        };
        header.clear();
        encode_header(
            &mut header,
            format!("./{}", s.name).as_bytes(),
            kind,
            s.mode,
            link,
            &s.stamp,
        );
        out.write_all(&header).map_err(FlattenError::Write)?;
        if let Some(from) = data {
            copy_data(layers, &mut files, from, &mut out)?;
        }
    }
    out.write_all(&END_OF_ARCHIVE)
        .map_err(FlattenError::Write)?;
    out.flush().map_err(FlattenError::Write)?;
    Ok(Flattened {
        entries: survivors.len() as u64,
        hidden,
    })
}

/// The file hard link `s` links: a regular file of the same layer that survives (the link
/// is written as a copy of it, and a file an upper layer replaced is not the one it linked).
fn link_target<'s>(
    layers: &[PathBuf],
    survivors: &'s [Survivor],
    index: &HashMap<&str, usize>,
    s: &Survivor,
) -> Result<&'s Survivor, FlattenError> {
    let reason = "hard link to a file an upper layer replaced or deleted";
    let target = std::str::from_utf8(&s.link).ok();
    match target.and_then(|t| index.get(t)).map(|&t| &survivors[t]) {
        Some(t) if t.layer == s.layer && t.entry_type.is_file() => Ok(t),
        _ => Err(RefusedEntry::new(&layers[s.layer], &s.name, reason).into()),
    }
}

/// Copies the data of `from` to `out`, then its padding; the layer's file is opened once.
fn copy_data(
    layers: &[PathBuf],
    files: &mut [Option<File>],
    from: &Survivor,
    out: &mut impl Write,
) -> Result<(), FlattenError> {
    let layer = &layers[from.layer];
    let read_err = |source| FlattenError::from(FileError::on("read layer", layer)(source));
    let file = match &mut files[from.layer] {
        Some(f) => f,
        slot => slot.insert(File::open(layer).map_err(read_err)?),
    };
    file.seek(io::SeekFrom::Start(from.data_at))
        .map_err(read_err)?;
    let mut data = file.take(from.size);
    let copied = io::copy(&mut data, out).map_err(FlattenError::Write)?;
    if copied != from.size {
        let ended = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the layer ends inside an entry",
        );
        return Err(read_err(ended));
    }
    out.write_all(&[0u8; 512][..padding(from.size)])
        .map_err(FlattenError::Write)
}

/// The entries of `layers` that survive, unsorted, and how many do not: hidden by upper
/// layers, whiteouts, metadata entries and the layers' own `./`.
fn survivors(layers: &[PathBuf]) -> Result<(Vec<Survivor>, u64), FlattenError> {
    // What layers above the current one decided: names they hold, and names whose whole
    // subtree they replace (a non-directory, a whiteout, an opaque directory's children).
    let mut above = Above::default();
    let mut survivors = Vec::new();
    let mut hidden = 0;
    for (i, layer) in layers.iter().enumerate().rev() {
        let read_err =
            |e: TarReadError| FlattenError::from(FileError::on("read layer", layer)(e.into()));
        let file = File::open(layer).map_err(FileError::on("read layer", layer))?;
        let mut tar = TarReader::seeking(BufReader::with_capacity(1 << 16, file));
        let mut this = Above::default();
        while let Some(entry) = tar.next_entry().map_err(read_err)? {
            let name = clean_name(&entry.name).map_err(|r| {
                RefusedEntry::new(layer, &String::from_utf8_lossy(&entry.name), &r.to_string())
            })?;
            let Some(name) = above.decide(name, entry.entry_type, &mut this) else {
                hidden += 1;
                continue;
            };
            let refuse = |r: NameError| RefusedEntry::new(layer, &name, &r.to_string());
            let at = tar.position();
            survivors.push(Survivor::new(entry, name.clone(), i, at).map_err(refuse)?);
        }
        above.taken.extend(this.taken);
        above.subtree_gone.extend(this.subtree_gone);
    }
    Ok((survivors, hidden))
}

/// Names layers above decided on: held by one, and whose whole subtree one replaced.
#[derive(Default)]
struct Above {
    taken: HashSet<String>,
    subtree_gone: HashSet<String>,
}

impl Above {
    /// Whether the entry `name` of type `entry_type` survives what the layers above decided
    /// (the name it is written under), and what it decides for the layers below, in `this`.
    fn decide(&self, name: String, entry_type: EntryType, this: &mut Above) -> Option<String> {
        let kept = entry_type.is_file()
            || matches!(
                entry_type,
                EntryType::Directory | EntryType::Symlink | EntryType::HardLink | EntryType::Fifo
            );
        if name.is_empty()
            || !kept
            || self.taken.contains(&name)
            || ancestors(&name).any(|a| self.subtree_gone.contains(a))
        {
            return None;
        }
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", &name));
        if base == ".wh..wh..opq" {
            // Lower layers' children of `dir` go; this layer's own stay.
            this.subtree_gone.insert(dir.to_owned());
            return None;
        }
        if let Some(deleted) = base.strip_prefix(".wh.") {
            let deleted = if dir.is_empty() {
                deleted.to_owned()
            } else {
                format!("{dir}/{deleted}")
            };
            this.taken.insert(deleted.clone());
            this.subtree_gone.insert(deleted);
            return None;
        }
        if entry_type != EntryType::Directory {
            this.subtree_gone.insert(name.clone());
        }
        this.taken.insert(name.clone());
        Some(name)
    }
}

/// `a/b/c` → `a/b`, `a` (proper ancestors, nearest first).
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = name;
    std::iter::from_fn(move || {
        let (parent, _) = rest.rsplit_once('/')?;
        rest = parent;
        Some(parent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::Path;

    fn layer(dir: &Path, name: &str, entries: &[(&str, Option<&str>)]) -> PathBuf {
        let path = dir.join(name);
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for (entry, content) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(1);
            match content {
                Some(text) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o4755);
                    h.set_size(text.len() as u64);
                    b.append_data(&mut h, entry, text.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, entry, io::empty()).unwrap();
                }
            }
        }
        b.finish().unwrap();
        path
    }

    fn listing(tar_bytes: &[u8]) -> Vec<(String, String, u32)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes())
                    .trim_end_matches('/')
                    .to_owned();
                let mode = e.header().mode().unwrap();
                let mut text = String::new();
                e.read_to_string(&mut text).unwrap();
                (name, text, mode)
            })
            .collect()
    }

    #[test]
    fn upper_layers_win_and_whiteouts_delete() {
        let dir = tempfile::tempdir().unwrap();
        let bottom = layer(
            dir.path(),
            "0.tar",
            &[
                ("etc", None),
                ("etc/a", Some("a0")),
                ("etc/b", Some("b0")),
                ("opt", None),
                ("opt/x", Some("x0")),
                ("bin", None),
                ("bin/tool", Some("t0")),
            ],
        );
        let top = layer(
            dir.path(),
            "1.tar",
            &[
                ("etc", None),
                ("etc/a", Some("a1")),
                ("etc/.wh.b", Some("")),
                ("opt", None),
                ("opt/.wh..wh..opq", Some("")),
                ("opt/y", Some("y1")),
                ("bin", Some("now a file")),
            ],
        );
        let mut out = Vec::new();
        let summary = flatten(&[bottom, top], &mut out).unwrap();
        let got: Vec<(String, String)> =
            listing(&out).into_iter().map(|(n, t, _)| (n, t)).collect();
        // As nixpkgs' `tar --sort=name -C root .`: `./` first, each directory then its
        // children by name.
        let want: Vec<(String, String)> = [
            (".", ""),
            ("./bin", "now a file"),
            ("./etc", ""),
            ("./etc/a", "a1"),
            ("./opt", ""),
            ("./opt/y", "y1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(summary.entries, 5);
        assert_eq!(summary.hidden, 9, "7 hidden entries and 2 whiteouts");
        let etc = listing(&out).into_iter().find(|e| e.0 == "./etc").unwrap();
        assert_eq!(etc.2, 0o755, "the upper etc dir");
        let y = listing(&out)
            .into_iter()
            .find(|e| e.0 == "./opt/y")
            .unwrap();
        assert_eq!(y.2, 0o4755, "setuid bits kept");
        let mut a = tar::Archive::new(&out[..]);
        for e in a.entries().unwrap() {
            assert_eq!(e.unwrap().header().mtime().unwrap(), EXPORT_MTIME);
        }
    }

    #[test]
    fn hard_links_are_written_as_the_files_they_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(4);
        b.append_data(&mut h, "z-file", &b"data"[..]).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_mode(0o644);
        l.set_size(0);
        b.append_link(&mut l, "a-link", "z-file").unwrap();
        b.finish().unwrap();
        drop(b);
        let mut out = Vec::new();
        flatten(&[path], &mut out).unwrap();
        let got = listing(&out);
        assert_eq!(got[1], ("./a-link".into(), "data".into(), 0o644));
        assert_eq!(got[2], ("./z-file".into(), "data".into(), 0o644));
    }

    /// One entry of a fixture layer: name, type, mode, owner (uid, gid, uname, gname), link
    /// target, data.
    type Spec<'a> = (
        &'a str,
        u8,
        u32,
        (u64, u64, &'a str, &'a str),
        &'a str,
        &'a str,
    );

    /// A layer of GNU headers, with GNU long names and links where names do not fit (as GNU
    /// tar and the tar crate write them).
    fn gnu_layer(path: &Path, entries: &[Spec<'_>]) -> PathBuf {
        let mut b = tar::Builder::new(File::create(path).unwrap());
        for &(name, flag, mode, (uid, gid, uname, gname), link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::new(flag));
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mtime(7);
            h.set_username(uname).unwrap();
            h.set_groupname(gname).unwrap();
            h.set_size(data.len() as u64);
            if link.is_empty() {
                b.append_data(&mut h, name, data.as_bytes()).unwrap();
            } else {
                b.append_link(&mut h, name, link).unwrap();
            }
        }
        b.finish().unwrap();
        path.to_owned()
    }

    /// Every field of every entry, as the tar crate (an independent reader) reads them:
    /// name, type, mode, uid, gid, uname, gname, mtime, link target, data.
    fn fields(tar_bytes: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let text =
                    |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let link = e.link_name_bytes().map(|l| l.into_owned());
                let mut data = String::new();
                e.read_to_string(&mut data).unwrap();
                // An empty numeric field (the old writer's `./`) shows as `-`.
                let number = |n: io::Result<u64>| n.map_or("-".to_owned(), |n| n.to_string());
                format!(
                    "{name} {} {:o} {}:{} {}:{} {} {:?} {data:?}",
                    h.entry_type().as_byte() as char,
                    h.mode().unwrap(),
                    number(h.uid()),
                    number(h.gid()),
                    text(h.username_bytes()),
                    text(h.groupname_bytes()),
                    h.mtime().unwrap(),
                    link.map(|l| String::from_utf8_lossy(&l).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn every_field_of_every_entry_is_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = (0, 0, "root", "root");
        let user = (1000, 100, "user", "users");
        let deep = format!("usr/lib/{}", "d".repeat(120));
        let long_file = format!("{deep}/{}", "f".repeat(110));
        let long_target = format!("/{}", "t".repeat(150));
        let bottom = gnu_layer(
            &dir.path().join("0.tar"),
            &[
                ("./", b'5', 0o755, root, "", ""),
                ("data/", b'5', 0o755, root, "", ""),
                ("data/contig", b'7', 0o644, root, "", "contig"),
                ("dev/", b'5', 0o755, root, "", ""),
                ("dev/null", b'3', 0o666, root, "", ""),
                ("etc/", b'5', 0o700, root, "", ""),
                ("etc/gone", b'0', 0o644, root, "", "x"),
                ("etc/kept", b'0', 0o644, root, "", "k0"),
                ("home/", b'5', 0o755, root, "", ""),
                ("home/user/", b'5', 0o700, user, "", ""),
                ("home/user/notes", b'0', 0o600, user, "", "notes0"),
                ("link-long", b'2', 0o777, root, &long_target, ""),
                ("run/", b'5', 0o755, root, "", ""),
                ("run/fifo", b'6', 0o620, user, "", ""),
                ("usr/", b'5', 0o755, root, "", ""),
                ("usr/bin/", b'5', 0o755, root, "", ""),
                ("usr/bin/sh", b'2', 0o777, root, "tool", ""),
                ("usr/bin/tool", b'0', 0o4755, root, "", "tool\n"),
                ("usr/bin/tool-again", b'1', 0o750, user, "usr/bin/tool", ""),
                ("usr/lib/", b'5', 0o755, root, "", ""),
                (&format!("{deep}/"), b'5', 0o711, user, "", ""),
                (&long_file, b'0', 0o444, user, "", "long"),
            ],
        );
        let top = gnu_layer(
            &dir.path().join("1.tar"),
            &[
                ("etc/", b'5', 0o755, root, "", ""),
                ("etc/.wh.gone", b'0', 0o644, root, "", ""),
                ("home/user/notes", b'0', 0o640, user, "", "notes1"),
                ("usr/bin/.wh.sh", b'0', 0o644, root, "", ""),
            ],
        );
        let mut out = Vec::new();
        let summary = flatten(&[bottom, top], &mut out).unwrap();
        // The entries the tar crate's builder wrote (GNU headers, long names as `L` and `K`
        // entries) before strata's header writer, field by field, but for three fields that
        // writer left as it found them: `./` had empty uid and gid fields, the contiguous
        // file kept its `7`, and the hard link written as a file kept its link name.
        let got = fields(&out);
        let t = EXPORT_MTIME;
        let want = [
            format!("./ 5 755 0:0 : {t} None \"\""),
            format!("./data/ 5 755 0:0 root:root {t} None \"\""),
            format!("./data/contig 0 644 0:0 root:root {t} None \"contig\""),
            format!("./dev/ 5 755 0:0 root:root {t} None \"\""),
            format!("./etc/ 5 755 0:0 root:root {t} None \"\""),
            format!("./etc/kept 0 644 0:0 root:root {t} None \"k0\""),
            format!("./home/ 5 755 0:0 root:root {t} None \"\""),
            format!("./home/user/ 5 700 1000:100 user:users {t} None \"\""),
            format!("./home/user/notes 0 640 1000:100 user:users {t} None \"notes1\""),
            format!("./link-long 2 777 0:0 root:root {t} Some({long_target:?}) \"\""),
            format!("./run/ 5 755 0:0 root:root {t} None \"\""),
            format!("./run/fifo 6 620 1000:100 user:users {t} None \"\""),
            format!("./usr/ 5 755 0:0 root:root {t} None \"\""),
            format!("./usr/bin/ 5 755 0:0 root:root {t} None \"\""),
            format!("./usr/bin/tool 0 4755 0:0 root:root {t} None \"tool\\n\""),
            format!("./usr/bin/tool-again 0 750 1000:100 user:users {t} None \"tool\\n\""),
            format!("./usr/lib/ 5 755 0:0 root:root {t} None \"\""),
            format!("./{deep}/ 5 711 1000:100 user:users {t} None \"\""),
            format!("./{long_file} 0 444 1000:100 user:users {t} None \"long\""),
        ];
        assert_eq!(got, want);
        assert_eq!(summary.entries, 18);
        // The layer's `./`, the device, `etc/gone` and its whiteout, the lower `etc` and
        // `notes`, `usr/bin/sh` and its whiteout.
        assert_eq!(summary.hidden, 8);
        // POSIX headers, as strata's layers: a PAX `path`, no GNU long name.
        assert_eq!(&out[257..265], b"ustar\x0000");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(&format!(" path=./{long_file}\n")));
        assert!(text.contains(&format!(" linkpath={long_target}\n")));
        assert!(!text.contains("././@LongLink"));
    }

    #[test]
    fn a_layer_cut_short_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = layer(dir.path(), "0.tar", &[("f", Some(&"x".repeat(2000)))]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..1024]).unwrap();
        let err = flatten(&[path], Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("read layer") && err.contains("ends inside"),
            "{err}"
        );
    }

    #[test]
    fn ancestors_are_nearest_first() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), vec!["a/b", "a"]);
        assert_eq!(ancestors("a").count(), 0);
    }
}
