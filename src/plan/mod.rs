//! The image plan: everything needed to stream an image, decided at build time.
//!
//! `streamLayeredImage` builds a plan file: a `#!<helper> stream` line followed by the plan as
//! JSON. Running the file runs the helper on it, which streams the image. The plan names the
//! store paths of every layer with the layer's record ([`record`]), so the file's runtime
//! closure is exactly the image's content plus the helper, and no image tarball is stored.
//! `buildLayer` writes the same layer entries to a [`LayerSet`] file. This module holds the
//! plan's data and file format; [`planner`] decides what goes in it.

pub mod family;
pub mod family_file;
pub mod file;
pub mod index;
pub mod planner;
pub mod record;
pub mod record_cache;
pub mod settings;
#[cfg(test)]
pub(crate) mod test_fixture;

use crate::compress::Compression;
use crate::file_error::FileError;
use crate::image::config::{history, SettingError};
pub use crate::plan::file::read_json;
use crate::plan::file::{read_script, script_bytes};
use crate::plan::record::{LayerRecord, RECORD_VERSION};
use crate::store::layering::pipeline::PipelineError;
use crate::store::layering::LayeringError;
use crate::tar::header::Stamp;
use crate::tar::layer::{LayerError, LayerSource};
use crate::when::{format_time, BadTime, When};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Version of the plan format; a helper refuses plans of another version.
pub const PLAN_VERSION: u32 = 4;

/// Why a plan could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// An argument has a value strata cannot use.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// A time argument is neither "now" nor a date.
    #[error(transparent)]
    Time(#[from] BadTime),
    /// The closure cannot be layered.
    #[error(transparent)]
    Layering(#[from] LayeringError),
    /// `layeringPipeline` cannot run.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Two given layers hold the same store path.
    #[error("store path `{path}` is in two of `layers` (layers {first} and {second}); build the later one with `layers = [ ... ]` naming the earlier, so it leaves the path out")]
    Overlap {
        /// The path.
        path: String,
        /// Position of the first layer holding it, from 1.
        first: usize,
        /// Position of the second.
        second: usize,
    },
    /// A layer's record could not be computed.
    #[error("layer {index} ({what}): {source}")]
    Layer {
        /// Position from the bottom, starting at 1.
        index: usize,
        /// Its store paths.
        what: String,
        /// The cause.
        source: LayerError,
    },
    /// A plan, layer set or record file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// A file is not JSON of the shape this helper expects.
    #[error("`{path}` is not a {what} this helper understands: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
        /// What the JSON reader found.
        source: serde_json::Error,
    },
    /// A family's layers could not be decided or used.
    #[error(transparent)]
    Family(#[from] crate::plan::family_file::FamilyError),
    /// A file is not what this helper expects.
    #[error("`{path}` is not a {what} this helper understands: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// What a layer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum LayerContent {
    /// Store paths, tarred when the image is streamed.
    StorePaths {
        /// The paths, in layering order.
        paths: Vec<String>,
        /// Owner and mtime of every entry below `nix/store`.
        stamp: Stamp,
    },
    /// A tar built at build time (the customisation layer), streamed as it is.
    Tarball {
        /// The tar file.
        path: String,
    },
}

/// A layer and its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedLayer {
    /// What the layer holds.
    #[serde(flatten)]
    pub content: LayerContent,
    /// Its size and digests, computed when it was planned.
    pub record: LayerRecord,
    /// Why it holds what it holds (`strata explain` shows it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

/// Layers with their records, as `buildLayer` writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerSet {
    /// [`RECORD_VERSION`] of the records.
    pub strata_layers: u32,
    /// The layers, bottom to top.
    pub layers: Vec<PlannedLayer>,
}

/// Everything needed to stream an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagePlan {
    /// Format version, [`PLAN_VERSION`].
    pub strata_plan: u32,
    /// `name:tag` written to `manifest.json`.
    pub repo_tag: String,
    /// GOARCH name.
    pub architecture: String,
    /// CPU variant, when the architecture has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Always `linux`.
    pub os: String,
    /// Image creation time: RFC 3339, or "now" (resolved when the image is written).
    pub created: When,
    /// The runtime config (`Cmd`, `Env`, ...).
    pub config: Value,
    /// Layers, bottom to top.
    pub layers: Vec<PlannedLayer>,
    /// How many of `layers`, from the bottom, come from the parent image (`fromImage`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parent_layers: usize,
    /// The parent image's `history` entries, written before those of the other layers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_history: Vec<Value>,
    /// Whether archives of the image also carry Docker's v1.0 layout
    /// ([`crate::image::legacy_layout`]), as `buildImage`'s do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_layout: bool,
    /// How layers are stored in the image's archives: plain tars, or `tar+gzip` /
    /// `tar+zstd` blobs.
    #[serde(default, skip_serializing_if = "Compression::is_none")]
    pub layer_compressor: Compression,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ImagePlan {
    /// The plan file's bytes: a shebang line that runs `helper stream` on the file, then JSON.
    pub fn to_script(&self, helper: &Path) -> Vec<u8> {
        script_bytes(helper, "stream", self)
    }

    /// Reads a plan file (with or without the shebang line).
    pub fn read(path: &Path) -> Result<ImagePlan, PlanError> {
        ImagePlan::from_value(path, read_script(path)?)
    }

    /// The plan in `value`, the JSON of the plan file `path`; refuses other plan formats.
    pub fn from_value(path: &Path, value: Value) -> Result<ImagePlan, PlanError> {
        let malformed = |message: String| PlanError::Malformed {
            path: path.to_owned(),
            what: "strata image plan",
            message,
        };
        match value.get("strataPlan").and_then(Value::as_u64) {
            Some(v) if v == u64::from(PLAN_VERSION) => {}
            Some(v) => {
                return Err(malformed(format!(
                    "plan format {v}, this helper reads format {PLAN_VERSION}; rebuild the image"
                )))
            }
            None => return Err(malformed("no `strataPlan` field".to_owned())),
        }
        serde_json::from_value(value).map_err(|source| PlanError::Json {
            path: path.to_owned(),
            what: "strata image plan",
            source,
        })
    }

    /// The layers this image's own history entries describe: all of them, unless the parent
    /// brought a history of its own, which describes its layers.
    pub fn own_layers(&self) -> &[PlannedLayer] {
        if self.parent_history.is_empty() {
            &self.layers
        } else {
            &self.layers[self.parent_layers.min(self.layers.len())..]
        }
    }

    /// What this image's layer records hold.
    pub fn record_parts(&self) -> crate::plan::record::RecordParts {
        crate::plan::record::RecordParts::for_image(self.legacy_layout, self.layer_compressor)
    }

    /// Each layer's uncompressed blob (`diff_id` and size), as its record gives it.
    pub fn plain_blobs(&self) -> Vec<crate::digest::Blob> {
        self.layers
            .iter()
            .map(|l| crate::digest::Blob {
                digest: l.record.diff_id,
                size: l.record.size,
            })
            .collect()
    }

    /// The image's `history` entries, created at `created`.
    pub fn history(&self, created: &str) -> Vec<Value> {
        let own = self.own_layers().iter().map(|l| l.content.describe());
        history(&self.parent_history, own, created)
    }

    /// The creation time (RFC 3339) of an image written at `now`.
    pub fn created_at(&self, now: OffsetDateTime) -> String {
        format_time(self.created.resolve(now))
    }
}

impl LayerSet {
    /// Reads a `buildLayer` output, refusing records of another version.
    pub fn read(path: &Path) -> Result<LayerSet, PlanError> {
        let set: LayerSet = read_json(path, "strata layer set")?;
        if set.strata_layers != RECORD_VERSION {
            return Err(PlanError::Malformed {
                path: path.to_owned(),
                what: "strata layer set",
                message: format!(
                    "records of format {}, this helper makes format {RECORD_VERSION}; rebuild the layer",
                    set.strata_layers
                ),
            });
        }
        Ok(set)
    }
}

/// The layer a directory holding `layer.tar` and its `record.json` stands for (the
/// customisation layer, `buildLayer`'s contents layer).
pub fn tarball_layer(dir: &Path) -> Result<PlannedLayer, PlanError> {
    Ok(PlannedLayer {
        content: LayerContent::Tarball {
            path: dir.join("layer.tar").to_string_lossy().into_owned(),
        },
        record: read_json(&dir.join("record.json"), "layer record")?,
        why: "the customisation layer: contents, extraCommands, fakeRootCommands".to_owned(),
    })
}

impl LayerContent {
    /// Where the layer's bytes come from.
    pub fn source(&self) -> LayerSource {
        match self {
            LayerContent::StorePaths { paths, .. } => {
                LayerSource::StorePaths(paths.iter().map(PathBuf::from).collect())
            }
            LayerContent::Tarball { path } => LayerSource::Tarball(PathBuf::from(path)),
        }
    }

    /// Owner and mtime of the entries (a tarball's are its own).
    pub fn stamp(&self) -> Stamp {
        match self {
            LayerContent::StorePaths { stamp, .. } => stamp.clone(),
            LayerContent::Tarball { .. } => Stamp::root(0),
        }
    }

    /// The store paths the layer holds (none for a tarball).
    pub fn store_paths(&self) -> &[String] {
        match self {
            LayerContent::StorePaths { paths, .. } => paths,
            LayerContent::Tarball { .. } => &[],
        }
    }

    /// A description for history entries.
    pub fn describe(&self) -> String {
        match self {
            LayerContent::StorePaths { paths, .. } => format!("store paths: {}", paths.join(" ")),
            LayerContent::Tarball { path } => format!("layer tar: {path}"),
        }
    }

    /// A description short enough for a one-line error.
    pub fn describe_short(&self) -> String {
        self.describe_at_most(3)
    }

    /// A description naming at most `n` store paths.
    pub fn describe_at_most(&self, n: usize) -> String {
        match self {
            LayerContent::StorePaths { paths, .. } if paths.len() > n => format!(
                "store paths: {} and {} more",
                paths[..n].join(" "),
                paths.len() - n
            ),
            _ => self.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junk");
        std::fs::write(&file, b"#!/bin/sh\n{\"x\": 1}").unwrap();
        let err = ImagePlan::read(&file).unwrap_err().to_string();
        assert!(err.contains("junk") && err.contains("strataPlan"), "{err}");
        std::fs::write(&file, b"{\"strataPlan\": 1}").unwrap();
        let err = ImagePlan::read(&file).unwrap_err().to_string();
        assert!(err.contains("rebuild the image"), "{err}");
    }
}
