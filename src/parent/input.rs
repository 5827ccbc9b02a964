//! What a user gives as an image to build on or merge (`fromImage`, `mergeImages`' inputs):
//! a strata image, whose plan is read as it is, or an archive to import within limits. The one
//! place that tells them apart.

use super::Limits;
use crate::file_error::FileError;
use crate::plan::file::is_script;
use crate::plan::{ImagePlan, PlanError};
use std::fs::File;
use std::path::Path;

/// An image given by path.
#[derive(Debug)]
pub enum ImageInput {
    /// A strata image: its plan already has every layer with its record.
    Plan(Box<ImagePlan>),
    /// An archive (docker-archive or OCI layout, compressed or not), opened, with what
    /// importing it may unpack.
    Archive {
        /// The open archive.
        file: File,
        /// What the import may unpack.
        limits: Limits,
    },
}

/// Why an image input cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A strata image whose plan cannot be read.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// An archive that cannot be opened or read.
    #[error(transparent)]
    File(#[from] FileError),
}

impl ImageInput {
    /// Opens the image at `path`; an archive may unpack `max_bytes`, or the default for its
    /// size ([`Limits::for_archive`]) when not given.
    pub fn open(path: &Path, max_bytes: Option<u64>) -> Result<ImageInput, InputError> {
        if is_script(path) {
            return Ok(ImageInput::Plan(Box::new(ImagePlan::read(path)?)));
        }
        let file = File::open(path).map_err(FileError::on("open", path))?;
        let limits = match max_bytes {
            Some(bytes) => Limits::at_most(bytes),
            None => {
                Limits::for_archive(file.metadata().map_err(FileError::on("read", path))?.len())
            }
        };
        Ok(ImageInput::Archive { file, limits })
    }
}
