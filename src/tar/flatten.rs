//! An image's layers flattened into one root filesystem tar (`exportImage`), without
//! unpacking them: a first pass over the headers, top layer first, decides which entry of
//! which layer survives (upper entries hide lower ones; whiteouts and opaque directories
//! delete); a second pass notes where the survivors are, and they are written sorted by name,
//! as nixpkgs' exportImage writes them (see [`flatten`]).

use crate::file_error::FileError;
use crate::tar::names::{clean_name, NameError, RefusedEntry};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Write};
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
    name: String,
    layer: usize,
    header: tar::Header,
    link: Option<String>,
    data_at: u64,
}

/// Writes the root filesystem of the layer tars `layers` (bottom first) to `out` as a tar,
/// as nixpkgs' exportImage writes one (`tar -C root --sort=name --hard-dereference
/// --mtime=@$SOURCE_DATE_EPOCH -cf out .`): names `./…` under a `./` entry, each
/// directory's children sorted by name, hard links as the files they link, every mtime
/// [`EXPORT_MTIME`]. Owners and modes (setuid included) are the layers' own, which an
/// unpacked copy inside the Nix sandbox could not keep.
pub fn flatten(layers: &[PathBuf], out: impl Write) -> Result<Flattened, FlattenError> {
    let keep = decide(layers)?;
    let mut summary = Flattened {
        hidden: keep.iter().flatten().filter(|k| k.is_none()).count() as u64,
        ..Flattened::default()
    };
    let mut survivors = locate(layers, &keep)?;
    // Component by component: a directory, then what is in it, then its next sibling.
    survivors.sort_by(|a, b| a.name.split('/').cmp(b.name.split('/')));
    let index: std::collections::HashMap<&str, usize> = survivors
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut files: Vec<Option<File>> = layers.iter().map(|_| None).collect();
    let mut builder = tar::Builder::new(out);
    let mut root = tar::Header::new_gnu();
    root.set_entry_type(tar::EntryType::Directory);
    root.set_mode(0o755);
    root.set_mtime(EXPORT_MTIME);
    root.set_size(0);
    append_named(&mut builder, &mut root, b"./", None, io::empty()).map_err(FlattenError::Write)?;
    for s in &survivors {
        let mut header = s.header.clone();
        header.set_mtime(EXPORT_MTIME);
        let kind = header.entry_type();
        let full = if kind.is_dir() {
            format!("./{}/", s.name)
        } else {
            format!("./{}", s.name)
        };
        let full = full.as_bytes();
        let result = match &s.link {
            Some(target) if kind.is_symlink() => append_named(
                &mut builder,
                &mut header,
                full,
                Some(target.as_bytes()),
                io::empty(),
            ),
            Some(target) => {
                let refuse = || -> FlattenError {
                    let reason = "hard link to a file an upper layer replaced or deleted";
                    RefusedEntry::new(&layers[s.layer], &s.name, reason).into()
                };
                let &t = index.get(target.as_str()).ok_or_else(refuse)?;
                let t = &survivors[t];
                if t.layer != s.layer || !t.header.entry_type().is_file() {
                    return Err(refuse());
                }
                let size = t.header.size().unwrap_or(0);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                let data = data_of(layers, &mut files, t.layer, t.data_at, size)?;
                append_named(&mut builder, &mut header, full, None, data)
            }
            None => {
                let size = header.size().unwrap_or(0);
                let data = data_of(layers, &mut files, s.layer, s.data_at, size)?;
                append_named(&mut builder, &mut header, full, None, data)
            }
        };
        result.map_err(FlattenError::Write)?;
        summary.entries += 1;
    }
    builder
        .into_inner()
        .map_err(FlattenError::Write)?
        .flush()
        .map_err(FlattenError::Write)?;
    Ok(summary)
}

/// Appends an entry named exactly `name` (the tar crate would drop its `./`), with GNU
/// long-name and long-link entries for what does not fit the header, as GNU tar writes them.
fn append_named<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl io::Read,
) -> io::Result<()> {
    let mut long = |kind: tar::EntryType, value: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(value.len() as u64 + 1);
        h.set_cksum();
        builder.append(&h, io::Read::chain(value, &[0u8][..]))
    };
    if let Some(target) = link {
        if target.len() > 100 {
            long(tar::EntryType::GNULongLink, target)?;
        }
    }
    if name.len() > 100 {
        long(tar::EntryType::GNULongName, name)?;
    }
    let fit = |field: &mut [u8; 100], value: &[u8]| {
        field.fill(0);
        let n = value.len().min(100);
        field[..n].copy_from_slice(&value[..n]);
    };
    fit(&mut header.as_old_mut().name, name);
    if let Some(target) = link {
        fit(&mut header.as_old_mut().linkname, target);
    }
    if let Some(ustar) = header.as_ustar_mut() {
        // The name is whole in `name` (or its long-name entry), none of it in the prefix.
        ustar.prefix.fill(0);
    }
    header.set_cksum();
    builder.append(header, data)
}

/// The surviving entries of each layer: headers, link targets and where their bytes are.
fn locate(layers: &[PathBuf], keep: &Kept) -> Result<Vec<Survivor>, FlattenError> {
    let mut survivors = Vec::new();
    for (i, (layer, keep)) in layers.iter().zip(keep).enumerate() {
        let read_err = |source| FlattenError::from(FileError::on("read layer", layer)(source));
        let file = File::open(layer).map_err(read_err)?;
        let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
        for (index, entry) in archive.entries().map_err(read_err)?.enumerate() {
            let entry = entry.map_err(read_err)?;
            let Some(Some(name)) = keep.get(index) else {
                continue;
            };
            let kind = entry.header().entry_type();
            let link = if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let target = String::from_utf8_lossy(&target).into_owned();
                if kind.is_hard_link() {
                    let refuse = |r: NameError| RefusedEntry::new(layer, name, &r.to_string());
                    Some(clean_name(target.as_bytes()).map_err(refuse)?)
                } else {
                    Some(target)
                }
            } else {
                None
            };
            let mut header = entry.header().clone();
            header.set_size(if link.is_some() { 0 } else { entry.size() });
            survivors.push(Survivor {
                name: name.clone(),
                layer: i,
                header,
                link,
                data_at: entry.raw_file_position(),
            });
        }
    }
    Ok(survivors)
}

/// `size` bytes of layer `layer` from `at`, its file opened once.
fn data_of<'f>(
    layers: &[PathBuf],
    files: &'f mut [Option<File>],
    layer: usize,
    at: u64,
    size: u64,
) -> Result<impl io::Read + 'f, FlattenError> {
    use std::io::{Read as _, Seek as _};
    let read_err = |source| FlattenError::from(FileError::on("read layer", &layers[layer])(source));
    let file = match &mut files[layer] {
        Some(f) => f,
        slot => slot.insert(File::open(&layers[layer]).map_err(read_err)?),
    };
    file.seek(io::SeekFrom::Start(at)).map_err(read_err)?;
    Ok(BufReader::with_capacity(1 << 20, file).take(size))
}

/// For each layer, for each of its entries in order: the name to write it under, or `None`
/// when an upper layer hides it. Whiteouts and metadata entries get `None` too.
type Kept = Vec<Vec<Option<String>>>;

fn decide(layers: &[PathBuf]) -> Result<Kept, FlattenError> {
    // What layers above the current one decided: names they hold, and names whose whole
    // subtree they replace (a non-directory, a whiteout, an opaque directory's children).
    let mut taken: HashSet<String> = HashSet::new();
    let mut subtree_gone: HashSet<String> = HashSet::new();
    let mut kept: Kept = vec![Vec::new(); layers.len()];
    for (i, layer) in layers.iter().enumerate().rev() {
        let read_err = |source| FlattenError::from(FileError::on("read layer", layer)(source));
        let mut new_taken = Vec::new();
        let mut new_gone = Vec::new();
        let file = File::open(layer).map_err(read_err)?;
        let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 16, file));
        for entry in archive.entries_with_seek().map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let raw = entry.path_bytes();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let name = clean_name(&raw)
                .map_err(|reason| RefusedEntry::new(layer, &shown, &reason.to_string()))?;
            let kind = entry.header().entry_type();
            let meta = !(kind.is_file()
                || kind.is_dir()
                || kind.is_symlink()
                || kind.is_hard_link()
                || kind.is_fifo()
                || kind == tar::EntryType::Continuous);
            let hidden = name.is_empty()
                || meta
                || taken.contains(&name)
                || ancestors(&name).any(|a| subtree_gone.contains(a));
            let (dir, base) = name.rsplit_once('/').unwrap_or(("", &name));
            let join = |child: &str| {
                if dir.is_empty() {
                    child.to_owned()
                } else {
                    format!("{dir}/{child}")
                }
            };
            let decision = if hidden {
                None
            } else if base == ".wh..wh..opq" {
                // Lower layers' children of `dir` go; this layer's own stay.
                new_gone.push(dir.to_owned());
                None
            } else if let Some(deleted) = base.strip_prefix(".wh.") {
                let deleted = join(deleted);
                new_taken.push(deleted.clone());
                new_gone.push(deleted);
                None
            } else {
                if !kind.is_dir() {
                    new_gone.push(name.clone());
                }
                new_taken.push(name.clone());
                Some(name)
            };
            kept[i].push(decision);
        }
        taken.extend(new_taken);
        subtree_gone.extend(new_gone);
    }
    Ok(kept)
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

    #[test]
    fn ancestors_are_nearest_first() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), vec!["a/b", "a"]);
        assert_eq!(ancestors("a").count(), 0);
    }
}
