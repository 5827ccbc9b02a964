//! Builders that take whole images in: `exportImage` (an image's root filesystem as one tar)
//! and `mergeImages` (several images in one archive).

use super::image_commands::write_archive_file;
use crate::compress::Compression;
use crate::parent::export::{export_rootfs, store_layer_bytes};
use crate::parent::input::ImageInput;
use crate::parent::scratch::ScratchDir;
use crate::parent::{import_all, ParentImage};
use crate::plan::ImagePlan;
use crate::progress::Progress;
use crate::store::attrs::{build_dir, Attrs};
use anyhow::{Context, Result};
use serde::Deserialize;
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
    let image = ParentImage::load(&a.parent)?;
    let progress = Progress::start(
        "store layers",
        Some(store_layer_bytes(&image)),
        image.layers.len(),
    );
    let file =
        fs::File::create(&out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let file = io::BufWriter::with_capacity(1 << 20, file);
    let scratch = build_dir().join(format!("store-layers-{}", std::process::id()));
    let _scratch = ScratchDir::new(&scratch);
    let summary = export_rootfs(&image, &scratch, file, &progress)?;
    progress.finish();
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
    /// none, gz, zstd, or "detect" (the last image's compression): `None` for detect.
    #[serde(deserialize_with = "compressor_or_detect")]
    compressor: Option<Compression>,
    /// Most bytes importing one archive may unpack; the default for its size when unset.
    #[serde(default)]
    from_image_max_bytes: Option<u64>,
}

/// `mergeImages`: every image of every input in one docker-archive; a layer two images share
/// is stored once.
pub(super) fn merge_images_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: MergeAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let mut plans = Vec::new();
    // The imported inputs are needed until the archive is written, then go.
    let mut inputs = Vec::new();
    let progress = Progress::quiet();
    for (k, input) in a.images.iter().enumerate() {
        let shown = input.display().to_string();
        let (file, limits) =
            match ImageInput::open(input, a.from_image_max_bytes).context("mergeImages")? {
                ImageInput::Plan(plan) => {
                    plans.push(*plan);
                    continue;
                }
                ImageInput::Archive { file, limits } => (file, limits),
            };
        let dir = build_dir().join(format!("input-{k}-{}", std::process::id()));
        inputs.push(ScratchDir::new(&dir));
        let members = build_dir().join(format!("members-{}", std::process::id()));
        let images = import_all(file, &dir, &members, limits, &progress)
            .with_context(|| format!("mergeImages: `{shown}`"))?;
        plans.extend(images.into_iter().map(ParentImage::into_plan));
    }
    let compressor = a.compressor.unwrap_or_else(|| {
        a.images
            .last()
            .map_or(Compression::None, |p| compression_of(p))
    });
    let images: Vec<(&ImagePlan, Option<&str>)> = plans.iter().map(|p| (p, None)).collect();
    write_archive_file(&images, &out, compressor)
}

/// A file's compression, from its first bytes (a plan is streamed plain).
fn compression_of(path: &Path) -> Compression {
    let mut head = [0u8; 4];
    let read = fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    read.map_or(Compression::None, |()| Compression::of_magic(&head))
}

/// `compressor`: "detect" (`None`), or a compression.
fn compressor_or_detect<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Compression>, D::Error> {
    let name = String::deserialize(d)?;
    match name.as_str() {
        "detect" => Ok(None),
        other => other.parse().map(Some).map_err(serde::de::Error::custom),
    }
}
