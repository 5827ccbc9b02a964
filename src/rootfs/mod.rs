//! Layers built from a root filesystem at build time: the customisation layer (`contents`,
//! `extraCommands`, `fakeRootCommands`), root scripts in a user namespace (`runAsRoot`,
//! `fakeRootCommands`) and buildImage's layer of what they change in an unpacked parent.

mod chown_calls;
pub mod customisation;
pub mod root_layer;
pub mod root_shell;
pub mod scripts;
pub mod tree;
pub mod unpack;

use crate::file_error::FileError;
use crate::store::nix_db::NixDbError;
use crate::tar::layer::LayerError;
use root_shell::RootShellError;
use std::io;
use std::path::PathBuf;
use unpack::UnpackError;

/// Why a layer built from a root filesystem could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A `contents` entry is not a directory (or a link to one).
    #[error("`contents` entry `{0}` is not a directory; contents are merged at the image root")]
    ContentNotDirectory(PathBuf),
    /// A filesystem operation failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The shell running `extraCommands` could not be started.
    #[error("cannot run `extraCommands` with `{shell}`: {source}")]
    Shell {
        /// The shell.
        shell: PathBuf,
        /// Why it did not start.
        source: io::Error,
    },
    /// `extraCommands` exited with an error.
    #[error("`extraCommands` failed ({0})")]
    ExtraCommands(std::process::ExitStatus),
    /// A root script could not run or failed.
    #[error(transparent)]
    RootShell(#[from] RootShellError),
    /// The parent could not be unpacked.
    #[error("fromImage: {0}")]
    Unpack(#[source] UnpackError),
    /// The changes could not be listed.
    #[error(transparent)]
    Changes(UnpackError),
    /// The Nix database could not be written.
    #[error("includeNixDB: {0}")]
    NixDb(#[from] NixDbError),
    /// A tree entry cannot be written.
    #[error("`internalTree` entry `{path}`: {source}")]
    Tree {
        /// The entry's path.
        path: String,
        /// Why.
        source: tree::TreeEntryError,
    },
    /// Tarring the result failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// Where a layer is built from a root filesystem: the scripts it runs, the empty directory
/// that becomes its root, and the tar it is written to.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The toolbox and build directory scripts run with.
    pub scripts: scripts::Scripts,
    /// The root, an empty directory at first.
    pub root: PathBuf,
    /// The layer tar to write.
    pub tar: PathBuf,
}
