//! An image's root filesystem as one tar (`exportImage`): its layers flattened, upper ones
//! winning ([`crate::tar::flatten`]).

use super::ParentImage;
use crate::file_error::FileError;
use crate::progress::Progress;
use crate::tar::flatten::{flatten, FlattenError, Flattened};
use crate::tar::layer::{write_layer_to, LayerError, LayerSource};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Why an image's root filesystem could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A store layer could not be tarred.
    #[error("layer {index}: {what}: {source}")]
    Layer {
        /// Position from the bottom, from 1.
        index: usize,
        /// Its store paths.
        what: String,
        /// The cause.
        source: LayerError,
    },
    /// A scratch file could not be written.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The layers could not be flattened.
    #[error("exportImage: {0}")]
    Flatten(#[from] FlattenError),
}

/// Writes the root filesystem of `image` to `out` as one tar. Layers that exist only as
/// store paths (a strata image's) are tarred into `scratch` first, once each, without a
/// record: only the tar is needed.
pub fn export_rootfs(
    image: &ParentImage,
    scratch: &Path,
    out: impl Write,
    progress: &Progress,
) -> Result<Flattened, ExportError> {
    let mut tars = Vec::with_capacity(image.layers.len());
    for (i, layer) in image.layers.iter().enumerate() {
        match layer.content.source() {
            LayerSource::Tarball(path) => tars.push(path),
            source => {
                let path = scratch.join(format!("{i}.tar"));
                let io = |source| ExportError::from(FileError::on("write", &path)(source));
                fs::create_dir_all(scratch).map_err(io)?;
                let file = fs::File::create(&path).map_err(io)?;
                let file = io::BufWriter::with_capacity(1 << 20, file);
                let file =
                    write_layer_to(&source, &layer.content.stamp(), file).map_err(|source| {
                        ExportError::Layer {
                            index: i + 1,
                            what: layer.content.describe_short(),
                            source,
                        }
                    })?;
                file.into_inner().map_err(|e| io(e.into_error()))?;
                progress.add(layer.record.size);
                tars.push(path);
            }
        }
        progress.layer_done();
    }
    Ok(flatten(&tars, out)?)
}

/// Bytes of `image`'s layers that [`export_rootfs`] tars first.
pub fn store_layer_bytes(image: &ParentImage) -> u64 {
    image
        .layers
        .iter()
        .filter(|l| !matches!(l.content.source(), LayerSource::Tarball(_)))
        .map(|l| l.record.size)
        .sum()
}
