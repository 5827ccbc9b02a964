//! `strata layers`: how a closure is layered, and how well.

use crate::store::closure::Closure;
use crate::store::layering::family::{family_layering, measure_family};
use crate::store::layering::measure::measure;
use crate::store::layering::pipeline::Pipeline;
use crate::store::layering::{LayerBudget, Layering};
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::PathBuf;

/// `strata layers`' arguments.
#[derive(Debug, clap::Args)]
pub(super) struct LayersArgs {
    /// Closure JSON: an exportReferencesGraph array, `nix path-info --json -r` output or a
    /// structured-attributes file.
    #[arg(long)]
    closure: PathBuf,
    /// Most layers the image may have, customisation layer included.
    #[arg(long, default_value_t = 100)]
    max_layers: u64,
    /// Leave this path out (repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Print the figures the layering is judged by instead (JSON): the bytes a change of
    /// each path uploads against what changed, a root's change, the layer sizes.
    #[arg(long)]
    measure: bool,
    /// With `--measure`: a second image's closure, to measure how much of what the two hold
    /// in common is in layers they share.
    #[arg(long, value_name = "CLOSURE", requires = "measure")]
    shared_with: Option<PathBuf>,
    /// Layer with nixpkgs' `layeringPipeline` instead: its JSON, or a file holding it
    /// (`[["popularity_contest"],["limit_layers",99]]` is nixpkgs' old default).
    #[arg(long, value_name = "JSON|FILE")]
    pipeline: Option<String>,
    /// The layering to use: `default`, `popularity` (nixpkgs' old popularity contest) or
    /// `size-cohort` (the idea of nixpkgs' dockerAutoLayer), for comparisons.
    #[arg(long, value_enum, default_value = "default", hide = true)]
    variant: Variant,
    /// Layer `--closure` with these images' closures as one family (repeatable): a store
    /// path several of them hold is in an identical layer in each. Prints each member's
    /// layers, `--closure`'s first (with `--measure`: each member's figures, every pair's
    /// sharing, and what a registry stores for them all).
    #[arg(long, value_name = "CLOSURE", conflicts_with_all = ["pipeline", "shared_with", "exclude"])]
    family: Vec<PathBuf>,
}

/// `--variant`: the layerings `strata layers` compares the default with.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Variant {
    /// The default layering.
    Default,
    /// nixpkgs' old popularity contest.
    Popularity,
    /// Size cohorts, the idea of nixpkgs' dockerAutoLayer.
    SizeCohort,
}

/// The pipeline `--pipeline` gives: JSON, or a file of JSON.
fn read_pipeline(given: &str) -> Result<Pipeline> {
    let text = if given.trim_start().starts_with('[') {
        given.to_owned()
    } else {
        std::fs::read_to_string(given).with_context(|| format!("cannot read `{given}`"))?
    };
    let pipeline: Value = serde_json::from_str(&text).context("`--pipeline` is not JSON")?;
    Ok(Pipeline::parse(&pipeline)?)
}

/// `strata layers`.
pub(super) fn layers(args: LayersArgs) -> Result<()> {
    let budget = LayerBudget::image(args.max_layers);
    budget.check().context("--max-layers")?;
    let room = budget.room(0, 0)?;
    let exclude: BTreeSet<String> = args.exclude.into_iter().collect();
    let pipeline = args.pipeline.as_deref().map(read_pipeline).transpose()?;
    let chosen = match (&pipeline, args.variant) {
        (Some(pipeline), _) => Layering::Pipeline(pipeline),
        (None, Variant::Default) => Layering::Default,
        (None, Variant::Popularity) => Layering::Popularity,
        (None, Variant::SizeCohort) => Layering::SizeCohort,
    };
    let layering = |closure: &Closure| chosen.layers(closure, &exclude, room);
    let closure = Closure::read_file(&args.closure)?;
    let mut out = io::stdout().lock();
    if !args.family.is_empty() {
        let others = args
            .family
            .iter()
            .map(|p| Closure::read_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        let members: Vec<(&Closure, usize)> = std::iter::once(&closure)
            .chain(&others)
            .map(|c| (c, room))
            .collect();
        if args.measure {
            serde_json::to_writer_pretty(&mut out, &measure_family(&members)?)?;
        } else {
            serde_json::to_writer_pretty(&mut out, &family_layering(&members)?)?;
        }
    } else if args.measure {
        let other = args
            .shared_with
            .as_deref()
            .map(Closure::read_file)
            .transpose()?;
        let report = measure(&closure, &layering, other.as_ref())?;
        serde_json::to_writer_pretty(&mut out, &report)?;
    } else {
        serde_json::to_writer_pretty(&mut out, &layering(&closure)?)?;
    }
    writeln!(out)?;
    Ok(())
}
