//! The Nix builders: each reads its derivation's structured attributes, calls the library,
//! and writes the output.

use super::files::{closure_of, create_dir, write_file, write_json};
use super::image_commands;
use crate::parent::input::ImageInput;
use crate::parent::{import, ParentImage, PARENT_FILE};
use crate::plan::family::{plan_family, FamilyMember};
use crate::plan::index::IndexPlan;
use crate::plan::planner::{automatic_groups, plan_image, plan_layer_set};
use crate::plan::record::LayerRecord;
use crate::plan::settings::ImageSettings;
use crate::progress::Progress;
use crate::rootfs::customisation::CustomisationLayer;
use crate::rootfs::root_layer::RootLayer;
use crate::rootfs::scripts::Scripts;
use crate::rootfs::tree::{write_tree, TreeEntry};
use crate::rootfs::{BuildError, Workspace};
use crate::store::attrs::{build_dir, named_errors, Attrs};
use crate::store::closure::Closure;
use crate::store::layering::LayerBudget;
use crate::store::nix_db::NixDbContents;
use crate::tar::header::Stamp;
use crate::when::fixed_mtime;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanAttrs {
    /// The helper the plan's shebang line runs.
    helper_bin: PathBuf,
    #[serde(flatten, deserialize_with = "named_errors")]
    settings: ImageSettings,
}

/// `streamLayeredImage`'s (and buildImage's) plan.
pub(super) fn plan(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let PlanAttrs {
        helper_bin,
        settings,
    } = attrs.parse()?;
    let out = attrs.output("out")?;
    let config = settings.runtime_config()?;
    let plan = plan_image(&settings, config, &closure_of(&attrs)?, &out, true)?;
    write_file(&out, &plan.to_script(&helper_bin), 0o555)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexPlanAttrs {
    helper_bin: PathBuf,
    image_name: String,
    /// null: the output's hash part.
    tag: Option<String>,
    images: Vec<PathBuf>,
}

/// `imageIndex`'s plan.
pub(super) fn index_plan(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: IndexPlanAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let plan = IndexPlan::new(&a.image_name, a.tag.as_deref(), a.images, &out)?;
    write_file(&out, &plan.to_script(&a.helper_bin), 0o555)
}

#[derive(Deserialize)]
struct ArchiveAttrs {
    plan: PathBuf,
    compressor: crate::compress::Compression,
}

/// `buildLayeredImage`'s and `buildImage`'s archive.
pub(super) fn archive(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: ArchiveAttrs = attrs.parse()?;
    image_commands::archive(&a.plan, &attrs.output("out")?, a.compressor)
}

/// `perLayerDerivations`' grouping: the automatic layers' store paths, as JSON.
pub(super) fn plan_layering(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let settings: ImageSettings = attrs.parse()?;
    let parent = settings
        .parent
        .as_deref()
        .map(ParentImage::load)
        .transpose()?;
    let grouping = automatic_groups(&settings, &closure_of(&attrs)?, parent.as_ref())?;
    write_json(&attrs.output("out")?, &grouping.groups)
}

#[derive(Deserialize)]
struct FamilyAttrs {
    /// The members, each with the name of its closure's graph.
    members: Vec<FamilyMemberAttrs>,
}

#[derive(Deserialize)]
struct FamilyMemberAttrs {
    /// Its name in `imageFamily`'s `images`.
    name: String,
    /// The `exportReferencesGraph` entry holding its closure.
    graph: String,
    /// Its image's settings, as its plan gets them.
    settings: ImageSettings,
}

/// `imageFamily`'s layering: every member's automatic layers, chosen together.
pub(super) fn plan_family_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: FamilyAttrs = attrs.parse()?;
    let members = a
        .members
        .into_iter()
        .map(|m| {
            let closure = Closure::graph(&attrs.value, &m.graph).with_context(|| {
                format!(
                    "malformed closure of member `{}` in `{}`",
                    m.name,
                    attrs.path.display()
                )
            })?;
            Ok(FamilyMember {
                name: m.name,
                settings: m.settings,
                closure,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let family = plan_family(&members).context("imageFamily")?;
    write_json(&attrs.output("out")?, &family)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildLayerAttrs {
    /// Earlier `buildLayer` outputs: their store paths are left out.
    #[serde(default)]
    layers: Vec<PathBuf>,
    max_layers: u64,
    /// A tarball layer (directory with `layer.tar` and `record.json`) for `contents`.
    #[serde(default)]
    contents_layer: Option<PathBuf>,
    /// Exactly these store paths, as one layer (no closure, no layering).
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(flatten, deserialize_with = "named_errors")]
    stamp: Stamp,
}

/// `buildLayer`'s (and each `perLayerDerivations` layer's) layer set.
pub(super) fn build_layer(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: BuildLayerAttrs = attrs.parse()?;
    let budget = LayerBudget::layer_set(a.max_layers);
    budget.check()?;
    let progress = Progress::start("records", None, 0);
    let set = plan_layer_set(
        &closure_of(&attrs)?,
        &a.layers,
        budget,
        a.paths,
        a.contents_layer.as_deref(),
        &a.stamp,
        &progress,
    )?;
    progress.finish();
    if set.layers.is_empty() {
        eprintln!(
            "strata: buildLayer: every store path is already in `layers`; this layer is empty"
        );
    }
    write_json(&attrs.output("out")?, &set)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportParentAttrs {
    from_image: PathBuf,
    #[serde(default)]
    from_image_name: Option<String>,
    #[serde(default)]
    from_image_tag: Option<String>,
    /// Most bytes the import may unpack; the default for its size when unset.
    #[serde(default)]
    from_image_max_bytes: Option<u64>,
}

/// `fromImage`'s import: a strata image's plan read as it is, an archive checked and its
/// layers kept as tars.
pub(super) fn import_parent(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: ImportParentAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let shown = a.from_image.display().to_string();
    let pick = match (&a.from_image_name, &a.from_image_tag) {
        (Some(n), Some(t)) => Some(format!("{n}:{t}")),
        _ => None,
    };
    let input = ImageInput::open(&a.from_image, a.from_image_max_bytes).context("fromImage")?;
    let parent = match input {
        ImageInput::Plan(plan) => ParentImage::of_plan(&plan)?,
        ImageInput::Archive { file, limits } => {
            // Named after the process, so two imports run by hand in one directory do not meet.
            let scratch = build_dir().join(format!("parent-members-{}", std::process::id()));
            let progress = Progress::start("parent layers", None, 0);
            let parent = import(file, pick.as_deref(), &out, &scratch, limits, &progress)
                .with_context(|| format!("fromImage `{shown}`"))?;
            progress.finish();
            parent
        }
    };
    fs::create_dir_all(&out)?;
    write_json(&out.join(PARENT_FILE), &parent)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomisationAttrs {
    #[serde(default)]
    contents: Vec<PathBuf>,
    #[serde(default)]
    extra_commands: String,
    toolbox: PathBuf,
    /// nixpkgs' stdenv, when the library has nixpkgs: scripts run after its setup.
    #[serde(default)]
    stdenv: Option<PathBuf>,
    mtime: String,
    include_store_paths: bool,
    #[serde(default)]
    fake_root_commands: String,
    #[serde(default)]
    enable_fakechroot: bool,
    /// Absent when root owns the store directories.
    #[serde(default)]
    store_owner: Option<crate::rootfs::customisation::StoreOwner>,
    #[serde(default, rename = "includeNixDB")]
    include_nix_db: bool,
    /// Left out of the Nix database (the config file, which is not in the image).
    #[serde(default)]
    exclude: Vec<String>,
}

/// The customisation layer: `layer.tar` and `record.json` in the output directory.
pub(super) fn customisation_layer(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: CustomisationAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let nix_db = match a.include_nix_db {
        true => Some(NixDbContents::new(
            &closure_of(&attrs)?,
            &a.contents,
            &a.exclude,
        )),
        false => None,
    };
    let layer = CustomisationLayer {
        mtime: fixed_mtime("customisation layer", &a.mtime)?,
        contents: a.contents,
        extra_commands: a.extra_commands,
        fake_root_commands: a.fake_root_commands,
        enable_fakechroot: a.enable_fakechroot,
        include_store_paths: a.include_store_paths,
        store_owner: a.store_owner,
        nix_db,
    };
    build_layer_dir(
        &out,
        "customisation-root",
        scripts(a.toolbox, a.stdenv),
        "customisation layer",
        |at, p| layer.build(at, p),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootLayerAttrs {
    #[serde(default)]
    parent: Option<PathBuf>,
    #[serde(default)]
    contents: Vec<PathBuf>,
    #[serde(default)]
    extra_commands: String,
    #[serde(default)]
    run_as_root: String,
    toolbox: PathBuf,
    /// nixpkgs' stdenv, when the library has nixpkgs: scripts run after its setup.
    #[serde(default)]
    stdenv: Option<PathBuf>,
    mtime: String,
    uid: u64,
    gid: u64,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default, rename = "includeNixDB")]
    include_nix_db: bool,
}

/// `buildImage`'s layer: `layer.tar` and `record.json` in the output directory.
pub(super) fn root_layer(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: RootLayerAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let mtime = fixed_mtime("image layer", &a.mtime)?;
    let layer = RootLayer {
        parent: a.parent.as_deref().map(ParentImage::load).transpose()?,
        contents: a.contents,
        extra_commands: a.extra_commands,
        run_as_root: a.run_as_root,
        stamp: Stamp::numeric(mtime, a.uid, a.gid),
        closure: closure_of(&attrs)?,
        exclude: a.exclude,
        include_nix_db: a.include_nix_db,
    };
    build_layer_dir(
        &out,
        "root",
        scripts(a.toolbox, a.stdenv),
        "image layer",
        |at, p| layer.build(at, p),
    )
}

/// How the build's scripts run: with `toolbox`, in the build directory, after `stdenv`'s
/// setup when there is one.
fn scripts(toolbox: PathBuf, stdenv: Option<PathBuf>) -> Scripts {
    Scripts {
        toolbox,
        build_dir: build_dir(),
        stdenv,
    }
}

/// Builds a layer from a fresh root (`root_name` in the build directory, its scripts run as
/// `scripts` says) into `out`: `layer.tar` and its `record.json`.
fn build_layer_dir(
    out: &Path,
    root_name: &str,
    scripts: Scripts,
    label: &str,
    build: impl FnOnce(&Workspace, &Progress) -> Result<LayerRecord, BuildError>,
) -> Result<()> {
    let at = Workspace {
        scripts,
        root: build_dir().join(root_name),
        tar: out.join("layer.tar"),
    };
    create_dir(&at.root)?;
    create_dir(out)?;
    let progress = Progress::start(label, None, 1);
    let record = build(&at, &progress)?;
    progress.layer_done();
    progress.finish();
    write_json(&out.join("record.json"), &record)
}

#[derive(Deserialize)]
struct WriteFileAttrs {
    text: String,
}

/// `internalWriteFile`: the `text` attribute as the output file.
pub(super) fn write_file_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: WriteFileAttrs = attrs.parse()?;
    write_file(&attrs.output("out")?, a.text.as_bytes(), 0o444)
}

#[derive(Deserialize)]
struct TreeAttrs {
    entries: Vec<TreeEntry>,
}

/// `internalTree`: a directory of links, files and directories.
pub(super) fn write_tree_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: TreeAttrs = attrs.parse()?;
    Ok(write_tree(&attrs.output("out")?, &a.entries)?)
}
