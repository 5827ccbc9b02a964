//! A strata image and a parent, one as the other: a plan read as a parent (`fromImage` of a
//! strata image, read without tarring anything) and an imported image written back as a plan
//! (`mergeImages`).

use super::check::store_paths_of_tar;
use super::{ParentImage, PARENT_FORMAT};
use crate::compress::Compression;
use crate::file_error::FileError;
use crate::plan::{ImagePlan, LayerContent, PLAN_VERSION};
use crate::store::path::STORE_DIR;
use crate::when::{format_time, When, DEFAULT_TIME};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

impl ParentImage {
    /// A strata image, described as a parent: its layers and records as planned. A plan
    /// created "now" gets the default date in its history, as it has no fixed one.
    pub fn of_plan(plan: &ImagePlan) -> Result<ParentImage, FileError> {
        let created = match plan.created {
            When::At(t) => format_time(t),
            When::Now => DEFAULT_TIME.to_owned(),
        };
        let mut store_paths: BTreeSet<String> = plan
            .layers
            .iter()
            .flat_map(|l| l.content.store_paths())
            .filter_map(|p| p.strip_prefix(STORE_DIR)?.strip_prefix('/'))
            .map(str::to_owned)
            .collect();
        for layer in &plan.layers {
            if let LayerContent::Tarball { path } = &layer.content {
                let path = Path::new(path);
                let names = store_paths_of_tar(path)
                    .map_err(FileError::on("read the parent layer", path))?;
                store_paths.extend(names);
            }
        }
        Ok(ParentImage {
            strata_parent: PARENT_FORMAT,
            config: serde_json::json!({ "config": plan.config, "history": plan.history(&created) }),
            layers: plan.layers.clone(),
            store_paths,
            repo_tags: vec![plan.repo_tag.clone()],
        })
    }

    /// The image as a plan whose layers are all the parent's: written back as it came, under
    /// its first `name:tag`.
    pub fn into_plan(self) -> ImagePlan {
        let text = |key: &str| {
            self.config
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let created = text("created")
            .and_then(|t| When::parse("created", &t).ok())
            .unwrap_or_else(|| When::parse("created", DEFAULT_TIME).expect("a valid date"));
        ImagePlan {
            strata_plan: PLAN_VERSION,
            repo_tag: self.repo_tags.first().cloned().unwrap_or_default(),
            architecture: text("architecture").unwrap_or_else(|| "amd64".to_owned()),
            variant: text("variant"),
            os: text("os").unwrap_or_else(|| "linux".to_owned()),
            created,
            config: self.runtime_config(),
            parent_layers: self.layers.len(),
            parent_history: self.history(),
            layers: self.layers,
            legacy_layout: false,
            layer_compressor: Compression::None,
        }
    }
}
