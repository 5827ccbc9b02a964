//! Small trees of files, directories and symlinks written from a description: what `binSh`,
//! `usrBinEnv`, `caCertificates` and `fakeNss` are made of, built without a shell.

use super::BuildError;
use crate::file_error::FileError;
use crate::tar::names::{clean_name, NameError};
use serde::Deserialize;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why a tree entry cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeEntryError {
    /// Its path is refused.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Its path is the tree's root.
    #[error("the root itself")]
    Root,
    /// `executable` on an entry that is not `text`.
    #[error("`executable` is for `text` entries")]
    Executable,
    /// Not exactly one of `symlink`, `text` and `directory`.
    #[error("give exactly one of `symlink`, `text` and `directory`")]
    Kind,
}

/// One entry of a tree: exactly one of `symlink`, `text` and `directory`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TreeEntry {
    /// Where it goes, relative to the tree's root.
    pub path: String,
    /// A symlink to this target.
    #[serde(default)]
    pub symlink: Option<String>,
    /// A file holding this text.
    #[serde(default)]
    pub text: Option<String>,
    /// An empty directory.
    #[serde(default)]
    pub directory: bool,
    /// Whether the `text` file is executable (a script).
    #[serde(default)]
    pub executable: bool,
}

/// Writes `entries` under `out` (created), parents as needed. Entry paths must stay inside.
pub fn write_tree(out: &Path, entries: &[TreeEntry]) -> Result<(), BuildError> {
    fs::create_dir_all(out).map_err(FileError::on("create", out))?;
    for entry in entries {
        let bad = |source: TreeEntryError| BuildError::Tree {
            path: entry.path.clone(),
            source,
        };
        let rel = clean_name(entry.path.as_bytes()).map_err(|e| bad(e.into()))?;
        if rel.is_empty() {
            return Err(bad(TreeEntryError::Root));
        }
        if entry.executable && entry.text.is_none() {
            return Err(bad(TreeEntryError::Executable));
        }
        let at = out.join(&rel);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(FileError::on("create", parent))?;
        }
        match (&entry.symlink, &entry.text, entry.directory) {
            (Some(target), None, false) => {
                std::os::unix::fs::symlink(target, &at).map_err(FileError::on("create", &at))?
            }
            (None, Some(text), false) => {
                fs::write(&at, text).map_err(FileError::on("write", &at))?;
                if entry.executable {
                    let mode = fs::Permissions::from_mode(0o755);
                    fs::set_permissions(&at, mode)
                        .map_err(FileError::on("set the mode of", &at))?;
                }
            }
            (None, None, true) => fs::create_dir_all(&at).map_err(FileError::on("create", &at))?,
            _ => return Err(bad(TreeEntryError::Kind)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> TreeEntry {
        TreeEntry {
            path: path.to_owned(),
            symlink: None,
            text: None,
            directory: false,
            executable: false,
        }
    }

    #[test]
    fn writes_links_files_and_directories_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let entries = [
            TreeEntry {
                symlink: Some("/nix/store/x-bash/bin/bash".into()),
                ..entry("bin/sh")
            },
            TreeEntry {
                text: Some("root:x:0:0::/:/bin/sh\n".into()),
                ..entry("etc/passwd")
            },
            TreeEntry {
                directory: true,
                ..entry("var/empty")
            },
            TreeEntry {
                text: Some("#!/bin/sh\n".into()),
                executable: true,
                ..entry("bin/run")
            },
        ];
        write_tree(&out, &entries).unwrap();
        assert_eq!(
            fs::read_link(out.join("bin/sh")).unwrap(),
            Path::new("/nix/store/x-bash/bin/bash")
        );
        assert_eq!(
            fs::read(out.join("etc/passwd")).unwrap(),
            b"root:x:0:0::/:/bin/sh\n"
        );
        assert!(out.join("var/empty").is_dir());
        let mode = fs::metadata(out.join("bin/run"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            fs::metadata(out.join("etc/passwd"))
                .unwrap()
                .permissions()
                .mode()
                & 0o111,
            0
        );
        for bad in [
            TreeEntry {
                text: Some(String::new()),
                ..entry("../x")
            },
            entry("etc/none"),
            TreeEntry {
                directory: true,
                executable: true,
                ..entry("var/x")
            },
        ] {
            let err = write_tree(&dir.path().join("other"), &[bad]).unwrap_err();
            assert!(err.to_string().contains("`internalTree`"), "{err}");
        }
    }
}
