//! The image plan: everything needed to stream an image, decided at build time.
//!
//! `streamLayeredImage` builds a plan file: a `#!<helper> stream` line followed by the plan as
//! JSON. Running the file runs the helper on it, which streams the image. The plan names the
//! store paths of every layer with the layer's record ([`crate::plan::record`]), so the file's
//! runtime closure is exactly the image's content plus the helper, and no image tarball is
//! stored. `buildLayer` writes the same layer entries to a [`LayerSet`] file.

pub mod index;
pub mod record;

use crate::compress::Compressor;
use crate::image::config::{
    architecture_of_system, check_config, format_time, mtime_seconds, SettingError, When,
};
use crate::parent::ParentImage;
use crate::plan::record::{compute_records, LayerRecord, RECORD_VERSION};
use crate::progress::Progress;
use crate::store::closure::Closure;
use crate::store::layering::{limit_layers, popularity_order, LayeringError};
use crate::store::path::hash_part;
use crate::tar::header::Stamp;
use crate::tar::layer::{LayerError, LayerSource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Version of the plan format; a helper refuses plans of another version.
pub const PLAN_VERSION: u32 = 3;

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
    /// The given layers and the customisation layer leave no room for the rest.
    #[error("`maxLayers` is {max_layers}, but `fromImage` and `layers` bring {given} layers and {left} store paths of the closure are in none of them; raise `maxLayers` or put those paths in `layers`")]
    NoRoom {
        /// The limit.
        max_layers: u64,
        /// Layers the `layers` argument brings.
        given: usize,
        /// Closure paths outside them.
        left: usize,
    },
    /// The given layers alone exceed the limit.
    #[error("`maxLayers` is {max_layers}, but `fromImage` and `layers` bring {given} layers and the customisation layer needs one more")]
    TooManyGiven {
        /// The limit.
        max_layers: u64,
        /// Layers the `layers` argument brings.
        given: usize,
    },
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
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
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

/// Owner of the files in a store layer.
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

/// What a layer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum LayerContent {
    /// Store paths, tarred when the image is streamed.
    StorePaths {
        /// The paths, in popularity order.
        paths: Vec<String>,
        /// mtime of every entry, seconds since the epoch.
        mtime: u64,
        /// Owner of every entry below `nix/store`.
        owner: Owner,
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
    #[serde(default, skip_serializing_if = "Compressor::is_none")]
    pub layer_compressor: Compressor,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Owner and mtime arguments shared by images and `buildLayer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStamp {
    /// File mtime in store layers, "now" (the build time) or a date.
    pub mtime: String,
    /// Owner uid of store files.
    pub uid: u64,
    /// Owner gid of store files.
    pub gid: u64,
    /// Owner name of store files.
    pub uname: String,
    /// Group name of store files.
    pub gname: String,
}

impl StoreStamp {
    /// The owner and the mtime in seconds; "now" is the build time, since records fix the
    /// layer bytes when they are computed.
    pub fn resolve(&self) -> Result<(Owner, u64), SettingError> {
        let t = When::parse("mtime", &self.mtime)?.resolve(OffsetDateTime::now_utc());
        let owner = Owner {
            uid: self.uid,
            gid: self.gid,
            uname: self.uname.clone(),
            gname: self.gname.clone(),
        };
        Ok((owner, mtime_seconds(t, &self.mtime)?))
    }
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
    /// Owner and mtime of store files.
    #[serde(flatten)]
    pub stamp: StoreStamp,
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
    /// How layers are stored in archives (`layerCompressor`).
    #[serde(default)]
    pub layer_compressor: Compressor,
}

/// `config` on top of the parent's runtime config `base`, as nixpkgs does it: only `Env` is
/// inherited, parent entries first, and a variable both set keeps the child's value once.
pub fn inherit_env(base: &Value, config: Value) -> Value {
    let Some(base_env) = base.get("Env").and_then(Value::as_array) else {
        return config;
    };
    let mut config = match config {
        Value::Object(o) => o,
        _ => Default::default(),
    };
    let key = |v: &Value| {
        let text = v.as_str().unwrap_or_default();
        text.split_once('=').map_or(text, |(k, _)| k).to_owned()
    };
    let child: Vec<Value> = config
        .get("Env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let child_keys: BTreeSet<String> = child.iter().map(key).collect();
    let mut env: Vec<Value> = Vec::new();
    let mut seen = BTreeSet::new();
    for v in base_env {
        let k = key(v);
        if !child_keys.contains(&k) && seen.insert(k) {
            env.push(v.clone());
        }
    }
    env.extend(child);
    config.insert("Env".to_owned(), Value::Array(env));
    Value::Object(config)
}

/// Computes the tarsums that the records of `layers` lack (a parent's store layers,
/// planned without them), tarring those layers once.
fn add_missing_tarsums(layers: &mut [PlannedLayer], report: bool) -> Result<(), PlanError> {
    let missing = layers.iter().filter(|l| l.record.tarsum.is_none()).count();
    if missing == 0 {
        return Ok(());
    }
    let progress = if report {
        Progress::start("tarsums", None, missing)
    } else {
        Progress::quiet()
    };
    for (i, layer) in layers.iter_mut().enumerate() {
        if layer.record.tarsum.is_none() {
            let content = &layer.content;
            let sum = crate::plan::record::compute_tarsum(
                &content.source(),
                &content.stamp(),
                &layer.record,
                &progress,
            )
            .map_err(|source| PlanError::Layer {
                index: i + 1,
                what: content.describe_short(),
                source,
            })?;
            layer.record.tarsum = Some(sum);
            progress.layer_done();
        }
    }
    progress.finish();
    Ok(())
}

/// Builds the layers of popularity-ordered `groups` with their records (and tarsums when
/// `tarsum`).
pub fn plan_store_layers(
    groups: Vec<Vec<String>>,
    stamp: &StoreStamp,
    first_index: usize,
    tarsum: bool,
    progress: &Progress,
) -> Result<Vec<PlannedLayer>, PlanError> {
    let (owner, mtime) = stamp.resolve()?;
    let contents: Vec<LayerContent> = groups
        .into_iter()
        .map(|paths| LayerContent::StorePaths {
            paths,
            mtime,
            owner: owner.clone(),
        })
        .collect();
    let sources: Vec<(LayerSource, Stamp)> =
        contents.iter().map(|c| (c.source(), c.stamp())).collect();
    let records =
        compute_records(&sources, tarsum, progress).map_err(|(i, source)| PlanError::Layer {
            index: first_index + i + 1,
            what: contents[i].describe_short(),
            source,
        })?;
    Ok(contents
        .into_iter()
        .zip(records)
        .map(|(content, record)| PlannedLayer { content, record })
        .collect())
}

impl ImageSettings {
    /// The layers `layers` brings and how the rest of the closure is grouped into layers by
    /// popularity within `maxLayers`.
    pub fn automatic_groups(
        &self,
        closure: &Closure,
        parent: Option<&ParentImage>,
    ) -> Result<(Vec<PlannedLayer>, Vec<Vec<String>>), PlanError> {
        if self.max_layers < 2 {
            return Err(PlanError::MaxLayers(self.max_layers));
        }
        let mut layers = Vec::new();
        let mut exclude: BTreeSet<String> = self.exclude.iter().cloned().collect();
        if let Some(parent) = parent {
            layers.extend(parent.layers.iter().cloned());
            // The parent's copy of a store path is the same path: no need to ship it twice.
            exclude.extend(parent.store_paths.iter().map(|n| format!("/nix/store/{n}")));
        }
        let parent_layers = layers.len();
        for file in &self.layers {
            layers.extend(LayerSet::read(file)?.layers);
        }
        let given = layers.len();
        if given as u64 + 1 > self.max_layers {
            return Err(PlanError::TooManyGiven {
                max_layers: self.max_layers,
                given,
            });
        }
        exclude.insert(self.customisation_layer.clone());
        let mut holder: std::collections::HashMap<&str, usize> = Default::default();
        for (i, layer) in layers.iter().enumerate().skip(parent_layers) {
            for path in layer.content.store_paths() {
                if let Some(first) = holder.insert(path, i) {
                    return Err(PlanError::Overlap {
                        path: path.clone(),
                        first: first + 1,
                        second: i + 1,
                    });
                }
            }
        }
        exclude.extend(holder.into_keys().map(str::to_owned));
        let ordered = if self.include_store_paths {
            popularity_order(closure, &exclude)?
        } else {
            Vec::new()
        };
        // One layer is the customisation layer.
        let room = self.max_layers - 1 - given as u64;
        if room == 0 && !ordered.is_empty() {
            return Err(PlanError::NoRoom {
                max_layers: self.max_layers,
                given,
                left: ordered.len(),
            });
        }
        Ok((layers, limit_layers(ordered, room as usize)))
    }
}

impl ImagePlan {
    /// Makes the plan for an image whose plan file will be `out` (its hash is the default
    /// tag), computing the records of its automatic layers.
    pub fn new(
        settings: &ImageSettings,
        config: Value,
        closure: &Closure,
        out: &Path,
        report: bool,
    ) -> Result<ImagePlan, PlanError> {
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
        let tag = match &settings.tag {
            Some(t) => t.clone(),
            None => hash_part(&out.to_string_lossy()).to_owned(),
        };

        let parent = match &settings.parent {
            Some(dir) => Some(ParentImage::read(&dir.join("parent.json"))?),
            None => None,
        };
        let config = match &parent {
            Some(p) => inherit_env(&p.runtime_config(), config),
            None => config,
        };
        let (mut layers, groups) = settings.automatic_groups(closure, parent.as_ref())?;
        let given = layers.len();
        let progress = if report {
            Progress::start("records", None, groups.len())
        } else {
            Progress::quiet()
        };
        layers.extend(plan_store_layers(
            groups,
            &settings.stamp,
            given,
            settings.legacy_layout,
            &progress,
        )?);
        progress.finish();
        if settings.legacy_layout {
            add_missing_tarsums(&mut layers[..given], report)?;
        }
        layers.push(tarball_layer(Path::new(&settings.customisation_layer))?);
        Ok(ImagePlan {
            strata_plan: PLAN_VERSION,
            repo_tag: format!("{}:{tag}", settings.image_name.to_ascii_lowercase()),
            architecture,
            variant,
            os: "linux".to_owned(),
            created,
            config,
            layers,
            parent_layers: parent.as_ref().map_or(0, |p| p.layers.len()),
            parent_history: parent.as_ref().map_or_else(Vec::new, ParentImage::history),
            legacy_layout: settings.legacy_layout,
            layer_compressor: settings.layer_compressor,
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
        serde_json::from_value(value).map_err(|e| malformed(e.to_string()))
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

/// The JSON of an executable plan file: what follows its `#!` line, if it has one.
pub fn script_json(bytes: &[u8]) -> &[u8] {
    match bytes.strip_prefix(b"#!") {
        Some(rest) => rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[][..], |end| &rest[end..]),
        None => bytes,
    }
}

/// Reads a plan file (image or index, with or without its `#!` line) as JSON.
pub fn read_script(path: &Path) -> Result<Value, PlanError> {
    let bytes = std::fs::read(path).map_err(|source| PlanError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(script_json(&bytes)).map_err(|e| PlanError::Malformed {
        path: path.to_owned(),
        what: "strata plan",
        message: e.to_string(),
    })
}

/// The layer a directory holding `layer.tar` and its `record.json` stands for (the
/// customisation layer, `buildLayer`'s contents layer).
pub fn tarball_layer(dir: &Path) -> Result<PlannedLayer, PlanError> {
    Ok(PlannedLayer {
        content: LayerContent::Tarball {
            path: dir.join("layer.tar").to_string_lossy().into_owned(),
        },
        record: read_json(&dir.join("record.json"), "layer record")?,
    })
}

/// Reads a JSON file, naming it in errors.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, PlanError> {
    let bytes = std::fs::read(path).map_err(|source| PlanError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| PlanError::Malformed {
        path: path.to_owned(),
        what,
        message: e.to_string(),
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
            LayerContent::StorePaths { mtime, owner, .. } => Stamp {
                mtime: *mtime,
                uid: owner.uid,
                gid: owner.gid,
                uname: owner.uname.clone(),
                gname: owner.gname.clone(),
            },
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
    use crate::store::closure::ClosureEntry;
    use serde_json::json;

    /// A store-like directory with `n` paths and a customisation layer, referenced by it.
    struct Fixture {
        _dir: tempfile::TempDir,
        closure: Closure,
        custom: String,
    }

    fn fixture(n: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<String> = (0..n)
            .map(|i| {
                let p = dir.path().join(format!("{:032}-p{i}", i));
                std::fs::create_dir(&p).unwrap();
                std::fs::write(p.join("f"), format!("{i}")).unwrap();
                p.to_string_lossy().into_owned()
            })
            .collect();
        let custom = dir.path().join("cccc-custom");
        std::fs::create_dir(&custom).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let mut tar = std::fs::File::create(custom.join("layer.tar")).unwrap();
        let record = crate::plan::record::compute_record(
            &LayerSource::Tree {
                root,
                store_dirs: true,
                owners: None,
            },
            &Stamp::root(1),
            true,
            Some(&mut tar),
            &Progress::quiet(),
        )
        .unwrap();
        std::fs::write(
            custom.join("record.json"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        let custom = custom.to_string_lossy().into_owned();
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
            path: custom.clone(),
            references: paths,
            nar_size: 1,
            nar_hash: None,
        });
        Fixture {
            _dir: dir,
            closure: Closure::from_entries(entries),
            custom,
        }
    }

    #[test]
    fn env_is_inherited_parent_first_child_wins() {
        let base = json!({"Env": ["PATH=/bin", "A=parent", "B=1"], "Cmd": ["parent"]});
        let merged = inherit_env(&base, json!({"Env": ["A=child", "C=2"]}));
        assert_eq!(
            merged,
            json!({"Env": ["PATH=/bin", "B=1", "A=child", "C=2"]})
        );
        let merged = inherit_env(&base, json!({}));
        assert_eq!(merged, json!({"Env": ["PATH=/bin", "A=parent", "B=1"]}));
        assert_eq!(
            inherit_env(&json!({}), json!({"Cmd": ["x"]})),
            json!({"Cmd": ["x"]})
        );
    }

    fn settings(max_layers: u64, f: &Fixture) -> ImageSettings {
        ImageSettings {
            image_name: "Hello".into(),
            tag: None,
            architecture: None,
            image_system: "x86_64-linux".into(),
            created: "1970-01-01T00:00:01Z".into(),
            stamp: StoreStamp {
                mtime: "1970-01-01T00:00:01Z".into(),
                uid: 0,
                gid: 0,
                uname: "root".into(),
                gname: "root".into(),
            },
            max_layers,
            include_store_paths: true,
            config: None,
            config_file: None,
            customisation_layer: f.custom.clone(),
            layers: vec![],
            exclude: vec![],
            parent: None,
            legacy_layout: false,
            layer_compressor: Compressor::None,
        }
    }

    const OUT: &str = "/nix/store/abcdefghijklmnopqrstuvwxyz012345-stream-hello";

    #[test]
    fn plan_defaults_records_and_round_trip() {
        let f = fixture(3);
        let plan = ImagePlan::new(
            &settings(100, &f),
            json!({"Cmd": ["x"]}),
            &f.closure,
            Path::new(OUT),
            false,
        )
        .unwrap();
        assert_eq!(plan.repo_tag, "hello:abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(plan.architecture, "amd64");
        assert_eq!(plan.layers.len(), 4, "3 store paths + customisation");
        assert!(matches!(
            plan.layers[3].content,
            LayerContent::Tarball { .. }
        ));
        assert!(plan.layers.iter().all(|l| l.record.size > 0));
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
    fn max_layers_and_given_layers_are_respected() {
        let f = fixture(10);
        let out = Path::new(OUT);
        let q = Progress::quiet();
        let plan = ImagePlan::new(&settings(3, &f), Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(plan.layers.len(), 3);
        let err =
            ImagePlan::new(&settings(1, &f), Value::Null, &f.closure, out, false).unwrap_err();
        assert!(err.to_string().contains("`maxLayers`") && err.to_string().contains("got 1"));
        let mut no_store = settings(100, &f);
        no_store.include_store_paths = false;
        let plan = ImagePlan::new(&no_store, Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(plan.layers.len(), 1);

        // A layer set holding two of the paths: they go first and are not layered again.
        let given_paths: Vec<String> = f.closure.entries()[..2]
            .iter()
            .map(|e| e.path.clone())
            .collect();
        let set = LayerSet {
            strata_layers: RECORD_VERSION,
            layers: plan_store_layers(
                vec![given_paths.clone()],
                &settings(3, &f).stamp,
                0,
                false,
                &q,
            )
            .unwrap(),
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layers.json");
        std::fs::write(&file, serde_json::to_vec(&set).unwrap()).unwrap();
        let mut with_layers = settings(100, &f);
        with_layers.layers = vec![file.clone()];
        let plan = ImagePlan::new(&with_layers, Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(plan.layers[0], set.layers[0]);
        assert_eq!(plan.layers.len(), 1 + 8 + 1);
        let held: Vec<&String> = plan
            .layers
            .iter()
            .flat_map(|l| l.content.store_paths())
            .collect();
        assert_eq!(held.len(), 10, "every path once");
        assert!(plan.layers[1..9].iter().all(|l| l.record.tarsum.is_none()));
        // With the legacy layout, every layer gets a tarsum, the given one's computed now.
        let mut legacy = with_layers.clone();
        legacy.legacy_layout = true;
        let plan = ImagePlan::new(&legacy, Value::Null, &f.closure, out, false).unwrap();
        for layer in &plan.layers {
            let bytes = crate::tar::layer::write_layer_to(
                &layer.content.source(),
                &layer.content.stamp(),
                Vec::new(),
            )
            .unwrap();
            let mut sum = crate::tar::tarsum::TarsumHasher::new();
            sum.update(&bytes);
            assert_eq!(layer.record.tarsum, Some(sum.finish().unwrap().v1));
        }
        with_layers.max_layers = 2;
        let err = ImagePlan::new(&with_layers, Value::Null, &f.closure, out, false).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::NoRoom {
                    given: 1,
                    left: 8,
                    ..
                }
            ),
            "{err}"
        );
        with_layers.max_layers = 100;
        with_layers.layers = vec![file.clone(), file];
        let err = ImagePlan::new(&with_layers, Value::Null, &f.closure, out, false).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::Overlap {
                    first: 1,
                    second: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("is in two of `layers`"), "{err}");
    }

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
