//! `sbomInImage`: the documents carried in the image itself, for scanners that read files
//! (syft's and trivy's SBOM catalogers take `*.cdx.json` and `*.spdx.json` anywhere in an
//! image). They go in a top layer of their own, at [`SBOM_DIR`]; the image's plan gets that
//! layer on top ([`with_sbom_layer`]).
//!
//! The documents in the image describe the layers below theirs and every store path those
//! hold. They cannot name the image's config digest, which depends on their own layer, so
//! they give none; the documents of the image's `sbom` output describe the whole image.

use super::Description;
use crate::file_error::FileError;
use crate::plan::record::complete_record;
use crate::plan::{tarball_layer, ImagePlan, LayerContent, PlanError};
use crate::progress::Progress;
use crate::rootfs::customisation::write_customisation_tar;
use crate::rootfs::BuildError;
use crate::tar::layer::LayerError;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where the documents are in the image.
pub const SBOM_DIR: &str = "usr/share/sbom";

/// Why the layer could not be made or added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InImageError {
    /// A file could not be written or read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The layer could not be tarred.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The plan or the layer's record could not be read.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The layer's record could not be completed for the image.
    #[error("the SBOM layer: {0}")]
    Record(#[from] LayerError),
}

/// The file names the documents of `description` get in the image: `<name>.cdx.json`,
/// `<name>.spdx.json`, `<name>.intoto.json`, `<name>` being the image name's last part.
pub fn file_names(description: &Description) -> [String; 3] {
    let name = description
        .image
        .name
        .rsplit('/')
        .next()
        .unwrap_or("image")
        .to_owned();
    [
        format!("{name}.cdx.json"),
        format!("{name}.spdx.json"),
        format!("{name}.intoto.json"),
    ]
}

/// Writes the layer holding `description`'s documents (without a config digest) to
/// `out/layer.tar` with its record in `out/record.json`; `scratch` is a directory for the
/// tree. Root-owned, mode 0444 files in 0755 directories, at `mtime`.
pub fn write_sbom_layer(
    description: &Description,
    mtime: u64,
    scratch: &Path,
    out: &Path,
    progress: &Progress,
) -> Result<(), InImageError> {
    let mut below = description.clone();
    below.image.config_digest = None;
    let root = scratch.join("sbom-layer-root");
    let dir = root.join(SBOM_DIR);
    fs::create_dir_all(&dir).map_err(FileError::on("create", &dir))?;
    for (name, (_, _, bytes)) in file_names(&below).iter().zip(below.documents()) {
        let file = dir.join(name);
        fs::write(&file, bytes).map_err(FileError::on("write", &file))?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o444))
            .map_err(FileError::on("set the mode of", &file))?;
    }
    let mut at = dir.clone();
    while at != root {
        fs::set_permissions(&at, fs::Permissions::from_mode(0o755))
            .map_err(FileError::on("set the mode of", &at))?;
        at.pop();
    }
    let record = write_customisation_tar(
        &root,
        false,
        None,
        None,
        mtime,
        &out.join("layer.tar"),
        progress,
    )?;
    let text = serde_json::to_vec_pretty(&record).expect("records serialise");
    let record_file = out.join("record.json");
    fs::write(&record_file, text).map_err(FileError::on("write", &record_file))?;
    Ok(())
}

/// `plan` with the layer in `layer_dir` (what [`write_sbom_layer`] wrote) on top, its record
/// completed with what the image's records hold (a compressed digest, a tarsum).
pub fn with_sbom_layer(
    mut plan: ImagePlan,
    layer_dir: &Path,
    progress: &Progress,
) -> Result<ImagePlan, InImageError> {
    let mut layer = tarball_layer(layer_dir)?;
    layer.why = format!("the image's SBOMs and provenance, at /{SBOM_DIR} (sbomInImage)");
    let source = layer.content.source();
    complete_record(
        &source,
        &LayerContent::stamp(&layer.content),
        &mut layer.record,
        plan.record_parts(),
        progress,
    )?;
    plan.layers.push(layer);
    Ok(plan)
}
