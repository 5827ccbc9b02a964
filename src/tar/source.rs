//! What a layer is made of: where its entries come from ([`LayerSource`]), the owners a root
//! script set, and why it could not be written.

use crate::file_error::FileError;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Owners that override a stamp's, by device and inode (what a root script's `chown` calls
/// asked for, [`crate::rootfs::root_shell`]): `(uid, gid)`, `None` where the call left that
/// id alone.
pub type Owners = std::collections::HashMap<(u64, u64), (Option<u32>, Option<u32>)>;

/// Mode of the `nix` and `nix/store` directories in every layer.
pub const STORE_DIR_MODE: u32 = 0o755;

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// A file or directory could not be read.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The tree holds something a layer cannot carry.
    #[error("`{path}` is a {kind}, which an image layer cannot hold")]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// What it is (socket, device, ...).
        kind: &'static str,
    },
    /// A file changed size between its header being written and its bytes being read.
    #[error("`{path}` changed while it was read: {expected} bytes when its header was written, {found} when read")]
    Changed {
        /// The file.
        path: PathBuf,
        /// Bytes the first walk saw.
        expected: u64,
        /// Bytes found when reading.
        found: u64,
    },
    /// A directory tree meant as a layer root has `nix` or `nix/store` as a non-directory.
    #[error("`{path}` must be a directory: every layer holds /nix/store")]
    StoreDirNotDirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// Writing the layer bytes failed (for example a closed pipe).
    #[error("cannot write the layer: {0}")]
    Write(#[source] io::Error),
}

/// Where a layer's entries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSource {
    /// Store paths, each written under `nix/store/` with everything below it.
    StorePaths(Vec<PathBuf>),
    /// The contents of a directory, written at the image root (the customisation layer).
    Tree {
        /// The directory whose children become `/`'s children.
        root: PathBuf,
        /// Whether to add `nix/` and `nix/store/` (false for an image without store paths).
        store_dirs: bool,
        /// Their stamp when not the layer's: the image's `uid`/`gid`, which nixpkgs gives
        /// them (a single-user Nix in the container needs to own the store).
        store_dirs_owner: Option<crate::tar::header::Stamp>,
        /// Owners a root script gave files, overriding the stamp's.
        owners: Option<Arc<Owners>>,
    },
    /// Exactly the listed entries, in order (a layer of changes, `buildImage`'s layer).
    Listed(Arc<Listed>),
    /// A tar already written by strata, streamed as it is.
    Tarball(PathBuf),
}

/// Entries of a [`LayerSource::Listed`] layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listed {
    /// The entries, parents before children.
    pub entries: Vec<ListedEntry>,
    /// Owners overriding the stamp's, by device and inode.
    pub owners: Owners,
}

/// One entry of a [`Listed`] layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// Name in the layer.
    pub name: Vec<u8>,
    /// Where it comes from.
    pub kind: ListedKind,
}

/// What a [`ListedEntry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedKind {
    /// The file, directory or symlink at this path; a directory without its children.
    Single(PathBuf),
    /// The path with everything below it (a store path).
    Subtree(PathBuf),
    /// `nix` or `nix/store`: a directory, mode 0755.
    StoreDir,
    /// An empty file marking a deletion (`.wh.<name>`).
    Whiteout,
}
