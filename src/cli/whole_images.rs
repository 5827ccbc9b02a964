//! Builders that take whole images in: `exportImage` (an image's root filesystem as one tar)
//! and `mergeImages` (several images in one archive).

use super::{build_top, is_plan, write_archive_file};
use crate::image::config::When;
use crate::parent::{import_all, ParentImage};
use crate::plan::{ImagePlan, PLAN_VERSION};
use crate::progress::Progress;
use crate::store::attrs::Attrs;
use crate::tar::flatten::flatten;
use crate::tar::layer::{write_layer_to, LayerSource};
use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct ExportAttrs {
    /// The imported image (internalParentImage's output).
    parent: PathBuf,
}

/// `exportImage`: the image's layers flattened into one tar.
pub(super) fn export_image_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: ExportAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let image = ParentImage::read(&a.parent.join("parent.json"))?;
    let scratch = build_top().join("store-layers");
    let total = image
        .layers
        .iter()
        .filter(|l| !matches!(l.content.source(), LayerSource::Tarball(_)))
        .map(|l| l.record.size)
        .sum();
    let progress = Progress::start("store layers", Some(total), image.layers.len());
    let mut tars = Vec::with_capacity(image.layers.len());
    for (i, layer) in image.layers.iter().enumerate() {
        match layer.content.source() {
            LayerSource::Tarball(path) => tars.push(path),
            // A strata image's store layers exist only as store paths: tar them once.
            source => {
                fs::create_dir_all(&scratch)
                    .with_context(|| format!("cannot create `{}`", scratch.display()))?;
                // Only the tar is needed: no record (its compressed digests cost compressing).
                let path = scratch.join(format!("{i}.tar"));
                let file = fs::File::create(&path)
                    .with_context(|| format!("cannot create `{}`", path.display()))?;
                let file = write_layer_to(
                    &source,
                    &layer.content.stamp(),
                    io::BufWriter::with_capacity(1 << 20, file),
                )
                .with_context(|| format!("layer {}: {}", i + 1, layer.content.describe_short()))?;
                file.into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
                progress.add(layer.record.size);
                tars.push(path);
            }
        }
        progress.layer_done();
    }
    progress.finish();
    let file =
        fs::File::create(&out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let summary =
        flatten(&tars, io::BufWriter::with_capacity(1 << 20, file)).context("exportImage")?;
    eprintln!(
        "strata: exportImage: {} entries ({} hidden by upper layers)",
        summary.entries, summary.hidden
    );
    Ok(())
}

#[derive(Deserialize)]
struct MergeAttrs {
    /// Image archives (any format fromImage takes) and strata plans.
    images: Vec<PathBuf>,
    /// none, gz, zstd, or "detect" (the last image's compression).
    compressor: String,
}

/// `mergeImages`: every image of every input in one docker-archive; a layer two images share
/// is stored once.
pub(super) fn merge_images_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: MergeAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let mut plans = Vec::new();
    let progress = Progress::quiet();
    for (k, input) in a.images.iter().enumerate() {
        let shown = input.display().to_string();
        if is_plan(input) {
            plans.push(ImagePlan::read(input)?);
            continue;
        }
        let file =
            fs::File::open(input).with_context(|| format!("mergeImages: cannot open `{shown}`"))?;
        let dir = build_top().join(format!("input-{k}"));
        let images = import_all(file, &dir, &build_top().join("members"), &progress)
            .with_context(|| format!("mergeImages: `{shown}`"))?;
        plans.extend(images.into_iter().map(plan_of_image));
    }
    let compressor = match a.compressor.as_str() {
        "detect" => a.images.last().map_or("none", |p| compression_of(p)),
        other => other,
    };
    let images: Vec<(&ImagePlan, Option<&str>)> = plans.iter().map(|p| (p, None)).collect();
    write_archive_file(&images, &out, compressor)
}

/// An imported image as a plan whose layers are all the parent's: written back as it came,
/// under its first `name:tag`.
fn plan_of_image(image: ParentImage) -> ImagePlan {
    let text = |key: &str| {
        image
            .config
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let created = text("created")
        .and_then(|t| When::parse("created", &t).ok())
        .unwrap_or_else(|| When::parse("created", "1970-01-01T00:00:01Z").expect("valid date"));
    ImagePlan {
        strata_plan: PLAN_VERSION,
        repo_tag: image.repo_tags.first().cloned().unwrap_or_default(),
        architecture: text("architecture").unwrap_or_else(|| "amd64".to_owned()),
        variant: text("variant"),
        os: text("os").unwrap_or_else(|| "linux".to_owned()),
        created,
        config: image.runtime_config(),
        parent_layers: image.layers.len(),
        parent_history: image.history(),
        layers: image.layers,
        legacy_layout: false,
        layer_compressor: crate::compress::Compressor::None,
    }
}

/// "gz", "zstd" or "none", from the file's first bytes (a plan is streamed plain).
fn compression_of(path: &Path) -> &'static str {
    let mut head = [0u8; 4];
    let read = fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    match (read, head) {
        (Ok(()), [0x1f, 0x8b, ..]) => "gz",
        (Ok(()), [0x28, 0xb5, 0x2f, 0xfd]) => "zstd",
        _ => "none",
    }
}
