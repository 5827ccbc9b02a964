//! Commands on images by hand: `stream`, `archive`, `tarsum`.

use crate::compress::Compression;
use crate::image::archive::{
    layers_to_write, write_docker_archive, write_docker_archive_of, write_index_archive,
};
use crate::plan::index::AnyPlan;
use crate::plan::ImagePlan;
use crate::progress::Progress;
use crate::tar::tarsum::TarsumHasher;
use crate::whole_file::WholeFile;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::Path;

/// `strata stream PLAN`: the image to stdout.
pub(super) fn stream(plan_path: &Path, repo_tag: Option<&str>) -> Result<()> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        bail!("stdout is a terminal; pipe the image into `docker load` or `podman load`, or redirect it to a file");
    }
    // A dup of fd 1 as a File: unbuffered writes of whole chunks, no line buffering.
    let mut out = fs::File::from(stdout.as_fd().try_clone_to_owned()?);
    stream_to(&AnyPlan::read(plan_path)?, repo_tag, &mut out)
}

/// Writes the archive of an image plan or index plan to `out`, with progress.
pub(super) fn stream_to(plan: &AnyPlan, repo_tag: Option<&str>, out: &mut dyn Write) -> Result<()> {
    let (plans, own_tag) = plan.images();
    let images: Vec<(&ImagePlan, Option<&str>)> = plans.iter().map(|p| (p, repo_tag)).collect();
    let progress = progress_of("stream", &images);
    match plan {
        AnyPlan::Index(..) => {
            write_index_archive(plans, repo_tag.unwrap_or(own_tag), out, &progress)?;
        }
        AnyPlan::Image(plan) => {
            write_docker_archive(plan, repo_tag, out, &progress)?;
        }
    }
    progress.finish();
    Ok(())
}

/// Progress over the distinct layers of `images`.
fn progress_of(label: &str, images: &[(&ImagePlan, Option<&str>)]) -> Progress {
    let (unique, _) = layers_to_write(images);
    let total = unique.iter().map(|l| l.record.size).sum();
    Progress::start(label, Some(total), unique.len())
}

/// `strata archive --plan PLAN --output FILE`: the image compressed into a file.
pub(super) fn archive(plan_path: &Path, output: &Path, compressor: Compression) -> Result<()> {
    let plan = ImagePlan::read(plan_path)?;
    write_archive_file(&[(&plan, None)], output, compressor)
}

/// Writes `images` to `output` as one docker-archive compressed with `compressor`, whole or
/// not at all (`WholeFile`).
pub(super) fn write_archive_file(
    images: &[(&ImagePlan, Option<&str>)],
    output: &Path,
    compression: Compression,
) -> Result<()> {
    if compression.layers_only() {
        bail!("`compressor` zstd:chunked compresses layers, not archives: use `layerCompressor = \"zstd:chunked\"` (the archive then stays a plain tar)");
    }
    let mut encoder = compression.encoder(WholeFile::create(output)?);
    let progress = progress_of("archive", images);
    write_docker_archive_of(images, &mut encoder, &progress)?;
    encoder
        .finish()
        .with_context(|| format!("cannot write `{}`", output.display()))?
        .finish()?;
    progress.finish();
    Ok(())
}

/// `strata tarsum`: the tarsum of the tar on stdin.
pub(super) fn tarsum_of_stdin(version: &str) -> Result<()> {
    let mut hasher = TarsumHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut stdin = io::stdin().lock();
    loop {
        let n = match io::Read::read(&mut stdin, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read stdin"),
        };
        hasher.update(&buf[..n]);
        if hasher.has_failed() {
            break;
        }
    }
    let sums = hasher.finish()?;
    let text = match version {
        "v0" => sums.v0,
        "v1" => sums.v1,
        "dev" => sums.dev,
        "all" => format!("{}\n{}\n{}", sums.v0, sums.v1, sums.dev),
        other => bail!("`--tarsum-version` must be v0, v1, dev or all, got {other:?}"),
    };
    println!("{text}");
    Ok(())
}
