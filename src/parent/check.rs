//! Checking a layer tar of a parent image without trusting it: every entry must stay inside
//! the root it is unpacked into.

use super::{member_error, ParentError};
use crate::tar::names::{clean_name, link_stays_inside};
use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What the layer entries checked so far hold.
#[derive(Debug, Default)]
pub struct LayerFacts {
    /// Store path names (`<hash>-<name>`) with entries below `nix/store/`.
    pub store_paths: BTreeSet<String>,
    /// Entries checked.
    pub entries: u64,
}

/// Reads the layer tar `reader` to its end, refusing any entry that could escape the root it
/// is unpacked into. `member` names the layer in errors. Returns the reader, with everything
/// read (so a tee around it saw every byte), and what the layer holds.
pub fn check_layer<R: Read>(reader: R, member: &str) -> Result<(R, LayerFacts), ParentError> {
    let mut archive = tar::Archive::new(reader);
    let mut facts = LayerFacts::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut files: HashSet<String> = HashSet::new();
    let bad = |entry: &str, reason: String| member_error(format!("{member}: {entry}"), reason);
    {
        let entries = archive
            .entries()
            .map_err(|e| member_error(member, format!("not a tar: {e}")))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| member_error(member, format!("malformed layer tar: {e}")))?;
            let raw = entry.path_bytes();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let name = clean_name(&raw).map_err(|r| bad(&shown, r))?;
            let kind = entry.header().entry_type();
            use tar::EntryType as T;
            match kind {
                T::Regular | T::Continuous => {
                    files.insert(name.clone());
                }
                T::Directory | T::Fifo => {}
                T::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    if target.is_empty() {
                        return Err(bad(&shown, "symlink without a target".to_owned()));
                    }
                    if !link_stays_inside(&name, &target) {
                        return Err(bad(
                            &shown,
                            format!(
                                "symlink to `{}` points out of the image",
                                String::from_utf8_lossy(&target)
                            ),
                        ));
                    }
                }
                T::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let target = clean_name(&target)
                        .map_err(|r| bad(&shown, format!("hard link target refused: {r}")))?;
                    if !files.contains(&target) {
                        return Err(bad(
                            &shown,
                            format!(
                                "hard link to `{target}`, which is not a file earlier in this layer"
                            ),
                        ));
                    }
                }
                T::Char | T::Block => {
                    return Err(bad(&shown, "device node".to_owned()));
                }
                T::XGlobalHeader => continue,
                other => {
                    return Err(bad(&shown, format!("unsupported entry type {other:?}")));
                }
            }
            if name.is_empty() {
                continue;
            }
            if !seen.insert(name.clone()) {
                return Err(bad(&shown, "appears twice in the layer".to_owned()));
            }
            if let Some(rest) = name.strip_prefix("nix/store/") {
                let base = rest.split('/').next().unwrap_or(rest);
                if !base.starts_with(".wh.") {
                    facts.store_paths.insert(base.to_owned());
                }
            }
            facts.entries += 1;
        }
    }
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink())
        .map_err(|e| member_error(member, format!("cannot read the layer to its end: {e}")))?;
    Ok((reader, facts))
}

/// Names of the store paths a layer tar written by strata holds, from its headers alone
/// (the reader seeks over file data).
pub fn store_paths_of_tar(path: &Path) -> io::Result<BTreeSet<String>> {
    let mut archive = tar::Archive::new(File::open(path)?);
    let mut names = BTreeSet::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let raw = entry.path_bytes();
        if let Some(rest) = raw.strip_prefix(b"nix/store/") {
            let base = rest.split(|&b| b == b'/').next().unwrap_or(rest);
            if !base.is_empty() {
                names.insert(String::from_utf8_lossy(base).into_owned());
            }
        }
    }
    Ok(names)
}
