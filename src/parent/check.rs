//! Checking a layer tar of a parent image without trusting it: every entry must stay inside
//! the root it is unpacked into.

use super::members::tar_failure;
use super::{member_error, ParentError};
use crate::tar::header::EntryType;
use crate::tar::names::{self, check_length, clean_name, link_stays_inside, shown};
use crate::tar::reader::{ambiguity, TarReader};
use sha2::{Digest as _, Sha256};
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

/// A name as the sets of names seen hold it: 16 bytes of its sha256, whatever its length, so
/// a layer of long names costs no more memory than one of short names.
fn key(name: &str) -> [u8; 16] {
    let digest = Sha256::digest(name.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Reads the layer tar `reader` to its end (as Go's archive/tar reads it, since that is how
/// docker and podman unpack it), refusing any entry that could escape the root it is
/// unpacked into or that readers could read differently. `member` names the layer in errors.
/// Returns the reader, with everything read (so a tee around it saw every byte), and what the
/// layer holds.
pub fn check_layer<R: Read>(reader: R, member: &str) -> Result<(R, LayerFacts), ParentError> {
    let mut tar = TarReader::new(reader);
    let mut facts = LayerFacts::default();
    let mut seen: HashSet<[u8; 16]> = HashSet::new();
    let mut files: HashSet<[u8; 16]> = HashSet::new();
    let bad = |entry: &str, reason: String| member_error(format!("{member}: {entry}"), reason);
    while let Some(entry) = tar.next_entry().map_err(|e| tar_failure(Some(member), e))? {
        let shown = shown(&entry.name);
        if let Some(why) = ambiguity(&entry) {
            return Err(bad(&shown, why));
        }
        let name = clean_name(&entry.name).map_err(|r| bad(&shown, r.to_string()))?;
        match entry.entry_type {
            EntryType::Regular | EntryType::Contiguous => {
                files.insert(key(&name));
            }
            EntryType::Directory | EntryType::Fifo => {}
            EntryType::Symlink => {
                let target = &entry.link;
                if target.is_empty() {
                    return Err(bad(&shown, "symlink without a target".to_owned()));
                }
                check_length(target)
                    .map_err(|r| bad(&shown, format!("symlink target refused: {r}")))?;
                if !link_stays_inside(&name, target) {
                    return Err(bad(
                        &shown,
                        format!(
                            "symlink to `{}` points out of the image",
                            names::shown(target)
                        ),
                    ));
                }
            }
            EntryType::HardLink => {
                let target = clean_name(&entry.link)
                    .map_err(|r| bad(&shown, format!("hard link target refused: {r}")))?;
                if !files.contains(&key(&target)) {
                    return Err(bad(
                        &shown,
                        format!(
                            "hard link to `{target}`, which is not a file earlier in this layer"
                        ),
                    ));
                }
            }
            EntryType::CharDevice | EntryType::BlockDevice => {
                return Err(bad(&shown, "device node".to_owned()));
            }
            EntryType::PaxGlobal => continue,
            other => {
                return Err(bad(
                    &shown,
                    format!(
                        "unsupported entry type `{}`",
                        (other.flag() as char).escape_default()
                    ),
                ));
            }
        }
        if name.is_empty() {
            continue;
        }
        if !seen.insert(key(&name)) {
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
    let mut reader = tar.into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(|e| super::limits::read_failure(member, &e))?;
    Ok((reader, facts))
}

/// Names of the store paths a layer tar holds, from its headers alone (the reader seeks over
/// file data). The tar is a plan's layer, which may be a parent's: read as any tar strata does
/// not trust.
pub fn store_paths_of_tar(path: &Path) -> io::Result<BTreeSet<String>> {
    let mut tar = TarReader::seeking(File::open(path)?);
    let mut names = BTreeSet::new();
    while let Some(entry) = tar.next_entry().map_err(io::Error::from)? {
        if let Some(rest) = entry.name.strip_prefix(b"nix/store/") {
            let base = rest.split(|&b| b == b'/').next().unwrap_or(rest);
            if !base.is_empty() {
                names.insert(String::from_utf8_lossy(base).into_owned());
            }
        }
    }
    Ok(names)
}
