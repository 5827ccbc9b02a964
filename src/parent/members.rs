//! The members of a parent archive, read once into numbered scratch files (never to paths the
//! archive names), and looked up by name with links followed.

use super::{member_error, ParentError};
use crate::digest::Digest;
use crate::file_error::FileError;
use crate::tar::names::{clean_name, link_stays_inside, resolve_dots};
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

impl Members {
    /// Reads every member of `reader` (the whole archive) into scratch files in `dir`.
    pub(super) fn read(reader: impl Read, dir: &Path) -> Result<Members, ParentError> {
        let mut archive = tar::Archive::new(reader);
        let mut members = HashMap::new();
        let mut count = 0usize;
        let entries = archive
            .entries()
            .map_err(|e| ParentError::Image(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| ParentError::Image(format!("malformed archive: {e}")))?;
            let raw = entry.path_bytes();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let name = clean_name(&raw).map_err(|r| member_error(&shown, r))?;
            use tar::EntryType as T;
            let member = match entry.header().entry_type() {
                T::Directory | T::XGlobalHeader => continue,
                T::Regular | T::Continuous => {
                    let path = dir.join(count.to_string());
                    count += 1;
                    let mut file =
                        File::create(&path).map_err(FileError::on("create", &path.clone()))?;
                    let size = io::copy(&mut entry, &mut file)
                        .map_err(|e| member_error(&shown, format!("cannot read it: {e}")))?;
                    Member::File {
                        index: count - 1,
                        size,
                    }
                }
                T::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let (dir_part, _) = name.rsplit_once('/').unwrap_or(("", ""));
                    let mut joined = dir_part.as_bytes().to_vec();
                    if !target.starts_with(b"/") && !link_stays_inside(&name, &target) {
                        return Err(member_error(&shown, "symlink points out of the archive"));
                    }
                    if target.starts_with(b"/") {
                        return Err(member_error(&shown, "symlink to an absolute path"));
                    }
                    joined.push(b'/');
                    joined.extend_from_slice(&target);
                    Member::Link(resolve_dots(&joined))
                }
                T::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let target = clean_name(&target).map_err(|r| {
                        member_error(&shown, format!("hard link target refused: {r}"))
                    })?;
                    Member::Link(target)
                }
                other => {
                    return Err(member_error(
                        &shown,
                        format!("unsupported member type {other:?}"),
                    ))
                }
            };
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
        let mut current = clean_name(name.as_bytes()).map_err(|r| member_error(name, r))?;
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

    /// Member `name`'s bytes.
    pub(super) fn bytes(&self, name: &str) -> Result<Vec<u8>, ParentError> {
        let (path, _) = self.file(name)?;
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
