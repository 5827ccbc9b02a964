//! `strata explain`: an image's layers, what each holds and why, and what a change moves.

use crate::image::explain::{add_partial_pull, explain, read_image, Explanation};
use crate::progress::human;
use crate::store::path::name_part;
use anyhow::{Context, Result};
use std::io::{self, Write};
use std::path::PathBuf;

/// `strata explain`'s arguments.
#[derive(Debug, clap::Args)]
pub(super) struct ExplainArgs {
    /// The image: a strata plan (what `streamLayeredImage` builds) or an archive
    /// (docker-archive or OCI layout, plain, gzip or zstd).
    image: PathBuf,
    /// An older image: which layers it has already, and the bytes a push or pull of IMAGE
    /// moves after it, whole layers and, with zstd:chunked partial pulls, files.
    #[arg(long, value_name = "IMAGE")]
    against: Option<PathBuf>,
    /// With --against: leave out what a zstd:chunked partial pull moves (which writes each
    /// new layer as zstd:chunked and reads the older image's files of the same sizes).
    #[arg(long, requires = "against")]
    no_files: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `strata explain`.
pub(super) fn explain_image(args: ExplainArgs) -> Result<()> {
    let image = read_image(&args.image)?;
    let older = args
        .against
        .as_ref()
        .map(|p| read_image(p).context("--against"))
        .transpose()?;
    let mut explanation = explain(&image, older.as_ref());
    if let Some(older) = older.as_ref().filter(|_| !args.no_files) {
        add_partial_pull(&mut explanation, &image, older)
            .context("what a zstd:chunked partial pull moves (--no-files leaves it out)")?;
    }
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &explanation)?;
        writeln!(out)?;
    } else {
        write_table(&explanation, &mut out)?;
    }
    Ok(())
}

/// The most store paths named on a layer's line.
const NAMED_PATHS: usize = 3;

/// The explanation as lines a person reads.
fn write_table(e: &Explanation, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} layers, {}",
        e.image,
        e.layers.len(),
        human(e.bytes)
    )?;
    for l in &e.layers {
        let mark = match l.reused {
            Some(true) => "  have ",
            Some(false) => "  NEW  ",
            None => "  ",
        };
        let names: Vec<&str> = l
            .layer
            .paths
            .iter()
            .take(NAMED_PATHS)
            .map(|p| name_part(p))
            .collect();
        let more = l.layer.paths.len().saturating_sub(NAMED_PATHS);
        let held = match (names.is_empty(), more) {
            (true, _) => "(not store paths)".to_owned(),
            (false, 0) => names.join(" "),
            (false, n) => format!("{} and {n} more", names.join(" ")),
        };
        let pushed = l.layer.push_bytes.map_or("?".to_owned(), human);
        writeln!(
            out,
            "{:>3}{mark}{:>10}  {pushed:>10} pushed  {held}",
            l.index,
            human(l.layer.bytes),
        )?;
        if !l.layer.why.is_empty() {
            writeln!(out, "{:>13}{}", "", l.layer.why)?;
        }
    }
    if let Some(against) = &e.against {
        let unknown = if e.push_bytes_unknown {
            " and the compressed bytes of new layers not compressed yet (a push computes them)"
        } else {
            ""
        };
        writeln!(
            out,
            "against {against}: {} layers ({}) present, {} new ({}): a push or pull moves {}{unknown}",
            e.reused_layers,
            human(e.reused_bytes),
            e.new_layers,
            human(e.new_bytes),
            human(e.new_push_bytes)
        )?;
        if let Some(p) = e.chunked_pull.as_ref().filter(|_| e.new_layers > 0) {
            writeln!(
                out,
                "with zstd:chunked layers and partial pulls (podman 5, enable_partial_images; \
                 {against}'s layers pulled so): a pull moves {} ({} of {} files in the new \
                 layers, + {} of tables)",
                human(p.bytes),
                p.files_missing,
                p.files,
                human(p.metadata_bytes)
            )?;
        }
    }
    Ok(())
}
