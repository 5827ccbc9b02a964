//! The members of a parent archive, read once into numbered scratch files (never to paths the
//! archive names), and looked up by name with links followed.

use super::limits::{check_json_size, expansion_limit, read_failure, Budget, MAX_MEMBER_TABLE};
use super::{member_error, ParentError};
use crate::digest::Digest;
use crate::file_error::FileError;
use crate::tar::header::EntryType;
use crate::tar::names::{clean_name, link_stays_inside, resolve_dots, shown};
use crate::tar::reader::{ambiguity, TarReadError, TarReader};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// A member of the archive: a scratch file, or a link to another member.
#[derive(Debug)]
enum Member {
    File { index: usize, size: u64 },
    Link(String),
}

/// The archive's members, in scratch files under `dir`.
#[derive(Debug)]
pub(super) struct Members {
    dir: PathBuf,
    members: HashMap<String, Member>,
}

/// Whether a member of this name is read as JSON by name (so is refused from its header
/// when too large, before it is written out).
fn read_as_json(name: &str) -> bool {
    name.ends_with(".json") || name == "oci-layout" || name == "repositories"
}

/// The error for a tar that could not be read: named after the member (an extension
/// header's own name) when there is one.
pub(super) fn tar_failure(scope: Option<&str>, e: TarReadError) -> ParentError {
    let within = |name: &str| match scope {
        Some(layer) => format!("{layer}: {name}"),
        None => name.to_owned(),
    };
    match (&e, scope) {
        (TarReadError::TooLarge { header_name, .. }, _) => {
            member_error(within(header_name), e.to_string())
        }
        (TarReadError::Io(io), Some(layer)) => read_failure(layer, io),
        (TarReadError::Io(io), None) => match expansion_limit(io) {
            Some(limit) => ParentError::Image(format!("the archive: {limit}")),
            None => ParentError::Image(format!("cannot read the archive: {io}")),
        },
        (_, Some(layer)) => member_error(layer, format!("malformed layer tar: {e}")),
        (_, None) => ParentError::Image(format!("malformed archive: {e}")),
    }
}

impl Members {
    /// Reads every member of `reader` (the whole archive, decompressed) into scratch files in
    /// `dir`, every byte counted against `budget`.
    pub(super) fn read(
        reader: impl Read,
        dir: &Path,
        budget: &Budget,
    ) -> Result<Members, ParentError> {
        let mut tar = TarReader::new(budget.reader(reader));
        let mut members = HashMap::new();
        let mut count = 0usize;
        let mut table = 0u64;
        while let Some(entry) = tar.next_entry().map_err(|e| tar_failure(None, e))? {
            let shown = shown(&entry.name);
            if let Some(why) = ambiguity(&entry) {
                return Err(member_error(&shown, why));
            }
            let name = clean_name(&entry.name).map_err(|r| member_error(&shown, r.to_string()))?;
            let member = match entry.entry_type {
                EntryType::Directory | EntryType::PaxGlobal => continue,
                EntryType::Regular | EntryType::Contiguous => {
                    if read_as_json(&name) {
                        check_json_size(&shown, entry.size)?;
                    }
                    let path = dir.join(count.to_string());
                    count += 1;
                    let mut file = File::create(&path).map_err(FileError::on("create", &path))?;
                    let size = io::copy(&mut tar.data(), &mut file)
                        .map_err(|e| read_failure(&shown, &e))?;
                    Member::File {
                        index: count - 1,
                        size,
                    }
                }
                EntryType::Symlink => {
                    let target = &entry.link;
                    let (dir_part, _) = name.rsplit_once('/').unwrap_or(("", ""));
                    let mut joined = dir_part.as_bytes().to_vec();
                    if target.starts_with(b"/") {
                        return Err(member_error(&shown, "symlink to an absolute path"));
                    }
                    if !link_stays_inside(&name, target) {
                        return Err(member_error(&shown, "symlink points out of the archive"));
                    }
                    joined.push(b'/');
                    joined.extend_from_slice(target);
                    Member::Link(resolve_dots(&joined))
                }
                EntryType::HardLink => {
                    let target = clean_name(&entry.link).map_err(|r| {
                        member_error(&shown, format!("hard link target refused: {r}"))
                    })?;
                    Member::Link(target)
                }
                other => {
                    return Err(member_error(
                        &shown,
                        format!(
                            "unsupported member type `{}`",
                            (other.flag() as char).escape_default()
                        ),
                    ))
                }
            };
            // Names and link targets are bounded one by one; their number is bounded here.
            table += 64 + name.len() as u64 + entry.link.len() as u64;
            if table > MAX_MEMBER_TABLE {
                return Err(member_error(
                    &shown,
                    format!("the archive's members take more than {MAX_MEMBER_TABLE} bytes to list (names, links), more than an image archive has"),
                ));
            }
            if members.insert(name, member).is_some() {
                return Err(member_error(&shown, "appears twice in the archive"));
            }
        }
        Ok(Members {
            dir: dir.to_owned(),
            members,
        })
    }

    /// The scratch file and size of member `name`, following links.
    pub(super) fn file(&self, name: &str) -> Result<(PathBuf, u64), ParentError> {
        let mut current =
            clean_name(name.as_bytes()).map_err(|r| member_error(name, r.to_string()))?;
        for _ in 0..32 {
            match self.members.get(&current) {
                Some(Member::File { index, size }) => {
                    return Ok((self.dir.join(index.to_string()), *size))
                }
                Some(Member::Link(target)) => current = target.clone(),
                None => {
                    return Err(member_error(
                        name,
                        "named by the manifest but not in the archive",
                    ))
                }
            }
        }
        Err(member_error(name, "too many links"))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// Member `name`'s bytes, to be parsed as JSON: at most [`super::limits::MAX_JSON`].
    pub(super) fn bytes(&self, name: &str) -> Result<Vec<u8>, ParentError> {
        let (path, size) = self.file(name)?;
        check_json_size(name, size)?;
        Ok(fs::read(&path).map_err(FileError::on("read", &path))?)
    }

    /// Member `name` parsed as JSON.
    pub(super) fn json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<T, ParentError> {
        serde_json::from_slice(&self.bytes(name)?)
            .map_err(|e| member_error(name, format!("malformed: {e}")))
    }

    /// Member `name`'s bytes, checked against `digest`.
    pub(super) fn verified(&self, name: &str, digest: &Digest) -> Result<Vec<u8>, ParentError> {
        let bytes = self.bytes(name)?;
        let found = Digest::of(&bytes);
        if found != *digest {
            return Err(member_error(
                name,
                format!("its content hashes to {found}, not {digest}"),
            ));
        }
        Ok(bytes)
    }
}
