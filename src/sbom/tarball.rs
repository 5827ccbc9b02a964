//! The store paths a tarball layer holds (buildImage's layer with the closure its parent
//! lacks, a parent's layers): its top-level entries below `nix/store`, read with the reader
//! for tars strata does not trust.

use crate::file_error::FileError;
use crate::store::path::{is_store_path, STORE_DIR};
use crate::tar::reader::{TarReadError, TarReader};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Why a layer's store paths could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarballError {
    /// The file could not be opened.
    #[error(transparent)]
    Open(#[from] FileError),
    /// The tar could not be read.
    #[error("layer `{path}`: {source}")]
    Tar {
        /// The layer file.
        path: PathBuf,
        /// What is wrong.
        source: TarReadError,
    },
}

/// The store paths (`/nix/store/<hash>-<name>`) with an entry in the tar at `path`, sorted.
pub fn store_paths_in(path: &Path) -> Result<Vec<String>, TarballError> {
    let file = File::open(path).map_err(FileError::on("read layer", path))?;
    let mut reader = TarReader::new(BufReader::with_capacity(1 << 16, file));
    let mut found = BTreeSet::new();
    while let Some(entry) = reader.next_entry().map_err(|source| TarballError::Tar {
        path: path.to_owned(),
        source,
    })? {
        if let Some(store_path) = store_path_of(&entry.name) {
            found.insert(store_path);
        }
    }
    Ok(found.into_iter().collect())
}

/// The store path an entry name lies in (`./nix/store/abc-x/bin/y` gives `/nix/store/abc-x`).
fn store_path_of(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let name = name.trim_start_matches("./").trim_start_matches('/');
    let rest = name.strip_prefix(&STORE_DIR[1..])?.strip_prefix('/')?;
    let base = rest.split('/').next()?;
    let path = format!("{STORE_DIR}/{base}");
    is_store_path(&path).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_the_store_path_they_lie_in() {
        assert_eq!(
            store_path_of(b"./nix/store/abc-x/bin/y").as_deref(),
            Some("/nix/store/abc-x")
        );
        assert_eq!(
            store_path_of(b"nix/store/abc-x/").as_deref(),
            Some("/nix/store/abc-x")
        );
        assert_eq!(store_path_of(b"nix/store/"), None);
        assert_eq!(store_path_of(b"nix/store"), None);
        assert_eq!(store_path_of(b"bin/hello"), None);
        assert_eq!(store_path_of(b"nix/store/.."), None);
    }

    #[test]
    fn a_layer_lists_its_store_paths_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layer.tar");
        let mut b = tar::Builder::new(Vec::new());
        for name in [
            "nix/store/abc-x/",
            "nix/store/abc-x/bin/y",
            "nix/store/def-z",
            "etc/passwd",
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(0);
            h.set_entry_type(if name.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_cksum();
            b.append_data(&mut h, name, &[][..]).unwrap();
        }
        std::fs::write(&file, b.into_inner().unwrap()).unwrap();
        assert_eq!(
            store_paths_in(&file).unwrap(),
            ["/nix/store/abc-x", "/nix/store/def-z"]
        );
    }
}
