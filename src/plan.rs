//! The image plan: everything needed to stream an image, decided at build time.
//!
//! `streamLayeredImage` builds a plan file: a `#!<helper> stream` line followed by the plan as
//! JSON. Running the file runs the helper on it, which streams the image. The plan names the
//! store paths of every layer, so the file's runtime closure is exactly the image's content
//! plus the helper; no image tarball is stored.

use crate::closure::Closure;
use crate::image_config::{
    architecture_of_system, check_config, format_time, mtime_seconds, SettingError, When,
};
use crate::layer_tar::LayerSource;
use crate::layering::{limit_layers, popularity_order, LayeringError};
use crate::store_path::hash_part;
use crate::tar_header::Stamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Version of the plan format; a helper refuses plans of another version.
pub const PLAN_VERSION: u32 = 1;

/// Why a plan could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// An argument has a value strata cannot use.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The closure cannot be layered.
    #[error(transparent)]
    Layering(#[from] LayeringError),
    /// `maxLayers` is below 2.
    #[error(
        "`maxLayers` must be at least 2 (one store layer and the customisation layer), got {0}"
    )]
    MaxLayers(u64),
    /// The plan file could not be read.
    #[error("cannot read image plan `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The plan file is not a plan this helper understands.
    #[error("`{path}` is not a strata image plan: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Owner of the files in store layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Numeric user id.
    pub uid: u64,
    /// Numeric group id.
    pub gid: u64,
    /// User name.
    pub uname: String,
    /// Group name.
    pub gname: String,
}

/// One layer of a plan, bottom to top.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PlannedLayer {
    /// Store paths, tarred when the image is streamed.
    StorePaths {
        /// The paths, in popularity order.
        paths: Vec<String>,
    },
    /// A tar built at build time (the customisation layer), streamed as it is.
    Tarball {
        /// The tar file.
        path: String,
    },
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
    /// mtime of every file in the store layers: RFC 3339, or "now" (the same instant as a
    /// `created` of "now").
    pub mtime: When,
    /// Owner of every file in the store layers.
    pub owner: Owner,
    /// The runtime config (`Cmd`, `Env`, ...).
    pub config: Value,
    /// Layers, bottom to top.
    pub layers: Vec<PlannedLayer>,
}

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
    /// Nix system the image is for (`x86_64-linux`).
    pub image_system: String,
    /// Creation time, "now" or a date.
    pub created: String,
    /// File mtime in store layers, "now" or a date.
    pub mtime: String,
    /// Owner uid of store files.
    pub uid: u64,
    /// Owner gid of store files.
    pub gid: u64,
    /// Owner name of store files.
    pub uname: String,
    /// Group name of store files.
    pub gname: String,
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
    /// The customisation layer tar.
    pub customisation_layer: String,
    /// Closure paths that are not image content (the config file, the customisation layer).
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl ImagePlan {
    /// Makes the plan for an image whose plan file will be `out` (its hash is the default tag).
    pub fn new(
        settings: &ImageSettings,
        config: Value,
        closure: &Closure,
        out: &Path,
    ) -> Result<ImagePlan, PlanError> {
        if settings.max_layers < 2 {
            return Err(PlanError::MaxLayers(settings.max_layers));
        }
        check_config(&config)?;
        let config = if config.is_null() {
            Value::Object(Default::default())
        } else {
            config
        };
        let (architecture, variant) = match &settings.architecture {
            Some(a) => (a.clone(), None),
            None => architecture_of_system(&settings.image_system)?,
        };
        let created = When::parse("created", &settings.created)?;
        let mtime = When::parse("mtime", &settings.mtime)?;
        if let When::At(t) = mtime {
            mtime_seconds(t, &settings.mtime)?;
        }
        let tag = match &settings.tag {
            Some(t) => t.clone(),
            None => hash_part(&out.to_string_lossy()).to_owned(),
        };
        let mut exclude: BTreeSet<String> = settings.exclude.iter().cloned().collect();
        exclude.insert(settings.customisation_layer.clone());
        let store_layers = if settings.include_store_paths {
            // One layer is the customisation layer.
            (settings.max_layers - 1) as usize
        } else {
            0
        };
        let ordered = popularity_order(closure, &exclude)?;
        let mut layers: Vec<PlannedLayer> = limit_layers(ordered, store_layers)
            .into_iter()
            .map(|paths| PlannedLayer::StorePaths { paths })
            .collect();
        layers.push(PlannedLayer::Tarball {
            path: settings.customisation_layer.clone(),
        });
        Ok(ImagePlan {
            strata_plan: PLAN_VERSION,
            repo_tag: format!("{}:{tag}", settings.image_name.to_ascii_lowercase()),
            architecture,
            variant,
            os: "linux".to_owned(),
            created,
            mtime,
            owner: Owner {
                uid: settings.uid,
                gid: settings.gid,
                uname: settings.uname.clone(),
                gname: settings.gname.clone(),
            },
            config,
            layers,
        })
    }

    /// The plan file's bytes: a shebang line that runs `helper stream` on the file, then JSON.
    pub fn to_script(&self, helper: &Path) -> Vec<u8> {
        let mut out = format!("#!{} stream\n", helper.display()).into_bytes();
        serde_json::to_writer_pretty(&mut out, self).expect("plan serialisation cannot fail");
        out.push(b'\n');
        out
    }

    /// Reads a plan file (with or without the shebang line).
    pub fn read(path: &Path) -> Result<ImagePlan, PlanError> {
        let bytes = std::fs::read(path).map_err(|source| PlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        let json = if bytes.starts_with(b"#!") {
            let end = bytes
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(bytes.len());
            &bytes[end..]
        } else {
            &bytes[..]
        };
        let malformed = |message: String| PlanError::Malformed {
            path: path.to_owned(),
            message,
        };
        let version: Value = serde_json::from_slice(json).map_err(|e| malformed(e.to_string()))?;
        match version.get("strataPlan").and_then(Value::as_u64) {
            Some(v) if v == u64::from(PLAN_VERSION) => {}
            Some(v) => {
                return Err(malformed(format!(
                    "plan format {v}, this helper reads format {PLAN_VERSION}"
                )))
            }
            None => return Err(malformed("no `strataPlan` field".to_owned())),
        }
        serde_json::from_value(version).map_err(|e| malformed(e.to_string()))
    }

    /// The creation time (RFC 3339) and store-file mtime (seconds) of an image written at
    /// `now`; "now" in both resolves to the same instant.
    pub fn times(&self, now: OffsetDateTime) -> (String, u64) {
        let created = format_time(self.created.resolve(now));
        // Checked when the plan was made; a hand-edited plan may still hold a pre-1970 date.
        let mtime = u64::try_from(self.mtime.resolve(now).unix_timestamp()).unwrap_or(0);
        (created, mtime)
    }

    /// Owner and mtime stamped on store-layer entries.
    pub fn stamp(&self, mtime: u64) -> Stamp {
        Stamp {
            mtime,
            uid: self.owner.uid,
            gid: self.owner.gid,
            uname: self.owner.uname.clone(),
            gname: self.owner.gname.clone(),
        }
    }
}

impl PlannedLayer {
    /// Where the layer's bytes come from.
    pub fn source(&self) -> LayerSource {
        match self {
            PlannedLayer::StorePaths { paths } => {
                LayerSource::StorePaths(paths.iter().map(PathBuf::from).collect())
            }
            PlannedLayer::Tarball { path } => LayerSource::Tarball(PathBuf::from(path)),
        }
    }

    /// A short description for history entries and error messages.
    pub fn describe(&self) -> String {
        match self {
            PlannedLayer::StorePaths { paths } => format!("store paths: {}", paths.join(" ")),
            PlannedLayer::Tarball { path } => format!("customisation layer: {path}"),
        }
    }

    /// A description short enough for a one-line error.
    pub fn describe_short(&self) -> String {
        match self {
            PlannedLayer::StorePaths { paths } if paths.len() > 3 => format!(
                "store paths: {} and {} more",
                paths[..3].join(" "),
                paths.len() - 3
            ),
            _ => self.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::ClosureEntry;
    use serde_json::json;

    fn settings(max_layers: u64) -> ImageSettings {
        ImageSettings {
            image_name: "Hello".into(),
            tag: None,
            architecture: None,
            image_system: "x86_64-linux".into(),
            created: "1970-01-01T00:00:01Z".into(),
            mtime: "1970-01-01T00:00:01Z".into(),
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            max_layers,
            include_store_paths: true,
            config: None,
            config_file: None,
            customisation_layer: "/nix/store/cccccccccccccccccccccccccccccccc-custom.tar".into(),
            exclude: vec![],
        }
    }

    fn closure(n: usize) -> Closure {
        let custom = "/nix/store/cccccccccccccccccccccccccccccccc-custom.tar".to_owned();
        let paths: Vec<String> = (0..n)
            .map(|i| format!("/nix/store/{:032}-p{i}", i))
            .collect();
        let mut entries: Vec<ClosureEntry> = paths
            .iter()
            .map(|p| ClosureEntry {
                path: p.clone(),
                references: vec![],
                nar_size: 1,
                nar_hash: None,
            })
            .collect();
        entries.push(ClosureEntry {
            path: custom,
            references: paths,
            nar_size: 1,
            nar_hash: None,
        });
        Closure::from_entries(entries)
    }

    #[test]
    fn plan_defaults_and_round_trip() {
        let out = Path::new("/nix/store/abcdefghijklmnopqrstuvwxyz012345-stream-hello");
        let plan = ImagePlan::new(&settings(100), json!({"Cmd": ["x"]}), &closure(3), out).unwrap();
        assert_eq!(plan.repo_tag, "hello:abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(plan.architecture, "amd64");
        assert_eq!(plan.layers.len(), 4, "3 store paths + customisation");
        assert!(matches!(plan.layers[3], PlannedLayer::Tarball { .. }));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan");
        std::fs::write(
            &file,
            plan.to_script(Path::new("/nix/store/h-strata/bin/strata")),
        )
        .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("#!/nix/store/h-strata/bin/strata stream\n{"));
        assert_eq!(ImagePlan::read(&file).unwrap(), plan);
    }

    #[test]
    fn max_layers_is_respected() {
        let out = Path::new("/nix/store/abcdefghijklmnopqrstuvwxyz012345-x");
        let plan = ImagePlan::new(&settings(3), Value::Null, &closure(10), out).unwrap();
        assert_eq!(plan.layers.len(), 3);
        let err = ImagePlan::new(&settings(1), Value::Null, &closure(1), out).unwrap_err();
        assert!(err.to_string().contains("`maxLayers`") && err.to_string().contains("got 1"));
        let mut no_store = settings(100);
        no_store.include_store_paths = false;
        let plan = ImagePlan::new(&no_store, Value::Null, &closure(10), out).unwrap();
        assert_eq!(plan.layers.len(), 1);
    }

    #[test]
    fn reading_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junk");
        std::fs::write(&file, b"#!/bin/sh\n{\"x\": 1}").unwrap();
        let err = ImagePlan::read(&file).unwrap_err().to_string();
        assert!(err.contains("junk") && err.contains("strataPlan"), "{err}");
    }
}
