//! Multi-platform images (`imageIndex`): several images of one name, one per platform, behind
//! one OCI image index. The index plan names the images' plans; streaming it writes an archive
//! whose `index.json` points at the index (and `manifest.json` at the first image, the one
//! `docker load` takes), and pushing it pushes every image by digest, then the index under
//! the tag, so that a pull picks the image for its platform.

use crate::plan::file::{read_script, script_bytes};
use crate::plan::{ImagePlan, PlanError};
use crate::store::path::hash_part;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the index plan format.
pub const INDEX_VERSION: u32 = 1;

/// What `imageIndex` builds: the images of an index and its `name:tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexPlan {
    /// [`INDEX_VERSION`].
    pub strata_index: u32,
    /// `name:tag` of the index.
    pub repo_tag: String,
    /// Plans of the images, in index order (the first is the default).
    pub images: Vec<PathBuf>,
}

impl IndexPlan {
    /// The index of `images` (their plans) named `image_name:tag`, whose plan file will be
    /// `out` (its hash is the default tag); checks the images' plans.
    pub fn new(
        image_name: &str,
        tag: Option<&str>,
        images: Vec<PathBuf>,
        out: &Path,
    ) -> Result<IndexPlan, IndexError> {
        let tag = tag.map_or_else(
            || hash_part(&out.to_string_lossy()).to_owned(),
            str::to_owned,
        );
        let plan = IndexPlan {
            strata_index: INDEX_VERSION,
            repo_tag: format!("{image_name}:{tag}"),
            images,
        };
        plan.image_plans()?;
        Ok(plan)
    }

    /// The plan as an executable: the helper streams it.
    pub fn to_script(&self, helper: &Path) -> Vec<u8> {
        script_bytes(helper, "stream", self)
    }

    /// The images' plans, checked to be for different platforms.
    pub fn image_plans(&self) -> Result<Vec<ImagePlan>, IndexError> {
        let mut plans: Vec<ImagePlan> = Vec::with_capacity(self.images.len());
        for path in &self.images {
            let plan = ImagePlan::read(path)?;
            if let Some(other) = plans.iter().position(|p| same_platform(p, &plan)) {
                return Err(IndexError::SamePlatform {
                    first: self.images[other].clone(),
                    second: path.clone(),
                    platform: platform_name(&plan),
                });
            }
            plans.push(plan);
        }
        if plans.is_empty() {
            return Err(IndexError::Empty);
        }
        Ok(plans)
    }
}

/// A plan file of either kind, read once.
#[derive(Debug, Clone)]
pub enum AnyPlan {
    /// An image (streamLayeredImage and the others' `stream`).
    Image(Box<ImagePlan>),
    /// A multi-platform index (`imageIndex`) and its images' plans.
    Index(IndexPlan, Vec<ImagePlan>),
}

impl AnyPlan {
    /// Reads the plan file at `path`, and for an index the plans of its images.
    pub fn read(path: &Path) -> Result<AnyPlan, IndexError> {
        let value = read_script(path)?;
        if value.get("strataIndex").is_none() {
            return Ok(AnyPlan::Image(Box::new(ImagePlan::from_value(
                path, value,
            )?)));
        }
        let malformed = |message: String| PlanError::Malformed {
            path: path.to_owned(),
            what: "strata index plan",
            message,
        };
        let plan: IndexPlan = serde_json::from_value(value).map_err(|source| PlanError::Json {
            path: path.to_owned(),
            what: "strata index plan",
            source,
        })?;
        if plan.strata_index != INDEX_VERSION {
            return Err(malformed(format!(
                "format {}, this helper reads format {INDEX_VERSION}; rebuild it",
                plan.strata_index
            ))
            .into());
        }
        let images = plan.image_plans()?;
        Ok(AnyPlan::Index(plan, images))
    }

    /// The images, and the `name:tag` the plan gives them.
    pub fn images(&self) -> (&[ImagePlan], &str) {
        match self {
            AnyPlan::Image(plan) => (std::slice::from_ref(&**plan), &plan.repo_tag),
            AnyPlan::Index(index, images) => (images, &index.repo_tag),
        }
    }
}

/// Why an index cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// An image plan cannot be read.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Two images are for the same platform: a pull could not choose.
    #[error("`images`: `{first}` and `{second}` are both for {platform}; an index holds one image per platform (set `architecture`)")]
    SamePlatform {
        /// One image.
        first: PathBuf,
        /// The other.
        second: PathBuf,
        /// os/architecture[/variant].
        platform: String,
    },
    /// No images.
    #[error("`images` is empty")]
    Empty,
}

fn same_platform(a: &ImagePlan, b: &ImagePlan) -> bool {
    a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
}

fn platform_name(p: &ImagePlan) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}
