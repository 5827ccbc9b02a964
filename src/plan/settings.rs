//! The arguments of the image builders (`streamLayeredImage`, `buildImage`) that the plan
//! builder reads from its structured attributes.

use crate::compress::Compression;
use crate::plan::family_file::FamilyPart;
use crate::plan::file::read_json;
use crate::plan::record::RecordParts;
use crate::plan::PlanError;
use crate::store::attrs::named_errors;
use crate::store::layering::pipeline::Pipeline;
use crate::tar::header::Stamp;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

/// The arguments of `streamLayeredImage` that the plan needs, as the Nix builder receives them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSettings {
    /// Image name (lowercased here too).
    pub image_name: String,
    /// Tag; `None` derives it from the plan's store path.
    #[serde(default)]
    pub tag: Option<String>,
    /// Explicit architecture; `None` derives it from `image_system`.
    #[serde(default)]
    pub architecture: Option<String>,
    /// CPU variant (`v8` of arm64, as nixpkgs' `variant`); `None` takes the one derived from
    /// `image_system` (`v7` for armv7l), or none with an explicit `architecture`.
    #[serde(default)]
    pub variant: Option<String>,
    /// Nix system the image is for (`x86_64-linux`).
    pub image_system: String,
    /// Creation time, "now" or a date.
    pub created: String,
    /// Owner and mtime of store files (`mtime` may be "now": the build time).
    #[serde(flatten, deserialize_with = "named_errors")]
    pub stamp: Stamp,
    /// Most layers the image may have, customisation layer included.
    pub max_layers: u64,
    /// Whether the closure goes into the image.
    pub include_store_paths: bool,
    /// The runtime config inline (used when `config_file` is absent).
    #[serde(default)]
    pub config: Option<Value>,
    /// A JSON file holding the runtime config (what the Nix library passes).
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// The customisation layer: a directory with `layer.tar` and `record.json`.
    pub customisation_layer: String,
    /// `buildLayer` outputs whose layers go first, bottom to top.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    /// Closure paths that are not image content (the config file).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// An imported parent image (`fromImage`): a directory holding `parent.json`.
    #[serde(default)]
    pub parent: Option<PathBuf>,
    /// Whether archives also carry Docker's v1.0 layout (`buildImage`).
    #[serde(default)]
    pub legacy_layout: bool,
    /// nixpkgs' `layeringPipeline`, when given: it decides the automatic layers instead of
    /// the default layering.
    #[serde(default)]
    pub layering_pipeline: Option<Pipeline>,
    /// The image's part of its family's layers (`imageFamily`): they replace the default
    /// layering.
    #[serde(default)]
    pub family: Option<FamilyPart>,
    /// How layers are stored in archives (`layerCompressor`).
    #[serde(default)]
    pub layer_compressor: Compression,
}

impl ImageSettings {
    /// What the image's layer records must hold: the tarsum for Docker's legacy layout, the
    /// compressed digest when layers are stored compressed (never beside the legacy layout,
    /// whose layers are plain tars). Nothing else: a push computes what it lacks.
    pub fn record_parts(&self) -> RecordParts {
        RecordParts::for_image(self.legacy_layout, self.layer_compressor)
    }

    /// The runtime config: the file's when there is one, else the inline one, else null.
    pub fn runtime_config(&self) -> Result<Value, PlanError> {
        match (&self.config_file, &self.config) {
            (Some(file), _) => read_json(file, "runtime config (JSON)"),
            (None, Some(config)) => Ok(config.clone()),
            (None, None) => Ok(Value::Null),
        }
    }
}
