//! An image's layers flattened into one root filesystem tar (`exportImage`), without
//! unpacking them: a first pass over the headers, top layer first, decides which entry of
//! which layer survives (upper entries hide lower ones; whiteouts and opaque directories
//! delete); a second pass, bottom layer first, copies the survivors' headers and bytes. Owners,
//! modes (setuid included) and mtimes are the layers' own, which an unpacked copy inside the
//! Nix sandbox could not keep.

use crate::tar::names::{clean_name, RefusedEntry};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;

/// Why the layers could not be flattened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlattenError {
    /// A layer could not be read.
    #[error("cannot read layer `{layer}`: {source}")]
    Read {
        /// The layer tar.
        layer: PathBuf,
        /// The cause.
        source: io::Error,
    },
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

/// Writes the root filesystem of the layer tars `layers` (bottom first) to `out` as a tar.
pub fn flatten(layers: &[PathBuf], out: impl Write) -> Result<Flattened, FlattenError> {
    let keep = decide(layers)?;
    let mut builder = tar::Builder::new(out);
    let mut summary = Flattened::default();
    for (layer, keep) in layers.iter().zip(&keep) {
        let read_err = |source| FlattenError::Read {
            layer: layer.clone(),
            source,
        };
        let file = File::open(layer).map_err(read_err)?;
        let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
        // Names this layer wrote, for its hard links.
        let mut written: HashSet<String> = HashSet::new();
        for (index, entry) in archive.entries().map_err(read_err)?.enumerate() {
            let mut entry = entry.map_err(read_err)?;
            let name = match keep.get(index) {
                Some(Some(name)) => name.clone(),
                _ => {
                    summary.hidden += u64::from(keep.get(index).is_some_and(|k| k.is_none()));
                    continue;
                }
            };
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            let shown = name.clone();
            let refuse =
                |reason: &str| -> FlattenError { RefusedEntry::new(layer, &shown, reason).into() };
            let full = if kind.is_dir() {
                format!("{name}/")
            } else {
                name.clone()
            };
            let result = if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let target = String::from_utf8_lossy(&target).into_owned();
                if kind.is_hard_link() {
                    let target = clean_name(target.as_bytes()).map_err(|r| refuse(&r))?;
                    if !written.contains(&target) {
                        return Err(refuse(
                            "hard link to a file an upper layer replaced or deleted",
                        ));
                    }
                    header.set_size(0);
                    builder.append_link(&mut header, &full, &target)
                } else {
                    builder.append_link(&mut header, &full, &target)
                }
            } else {
                let size = entry.size();
                header.set_size(size);
                builder.append_data(&mut header, &full, &mut entry)
            };
            result.map_err(FlattenError::Write)?;
            written.insert(name);
            summary.entries += 1;
        }
    }
    builder
        .into_inner()
        .map_err(FlattenError::Write)?
        .flush()
        .map_err(FlattenError::Write)?;
    Ok(summary)
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
        let read_err = |source| FlattenError::Read {
            layer: layer.clone(),
            source,
        };
        let mut new_taken = Vec::new();
        let mut new_gone = Vec::new();
        let file = File::open(layer).map_err(read_err)?;
        let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 16, file));
        for entry in archive.entries_with_seek().map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let raw = entry.path_bytes();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let name =
                clean_name(&raw).map_err(|reason| RefusedEntry::new(layer, &shown, &reason))?;
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
                let name = e
                    .path()
                    .unwrap()
                    .to_string_lossy()
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
        let want: Vec<(String, String)> = [
            ("etc/a", "a1"),
            ("etc", ""),
            ("opt", ""),
            ("opt/y", "y1"),
            ("bin", "now a file"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let mut sorted_got = got.clone();
        sorted_got.sort();
        let mut sorted_want = want;
        sorted_want.sort();
        assert_eq!(sorted_got, sorted_want, "{got:?}");
        assert_eq!(summary.entries, 5);
        assert_eq!(listing(&out)[0].2, 0o755, "bottom etc dir");
        let y = listing(&out).into_iter().find(|e| e.0 == "opt/y").unwrap();
        assert_eq!(y.2, 0o4755, "setuid bits kept");
    }

    #[test]
    fn ancestors_are_nearest_first() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), vec!["a/b", "a"]);
        assert_eq!(ancestors("a").count(), 0);
    }
}
