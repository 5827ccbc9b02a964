//! The one error for a file operation that failed: what was being done, on which file, and
//! the system's reason.

use std::io;
use std::path::{Path, PathBuf};

/// A file operation failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} `{path}`: {source}")]
pub struct FileError {
    /// What was being done, the message's verb phrase (`read`, `create`, `read layer`, ...).
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl FileError {
    /// A `map_err` argument: the error of doing `what` on `path`.
    pub fn on<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> FileError + 'p {
        move |source| FileError {
            what,
            path: path.to_owned(),
            source,
        }
    }
}
