//! `strata layers`: how a closure is layered, and how well.

use crate::store::closure::Closure;
use crate::store::graph::ReferenceGraph;
use crate::store::layering::cohort::cohort_groups;
use crate::store::layering::measure::measure;
use crate::store::layering::pipeline::{check_pipeline, run_pipeline};
use crate::store::layering::{
    default_layering, limit_layers, paths_of, popularity_order, LayerBudget, LayeringError,
};
use anyhow::{bail, Context, Result};
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
    #[arg(long, default_value = "default", hide = true)]
    variant: String,
}

/// The pipeline `--pipeline` gives: JSON, or a file of JSON.
fn read_pipeline(given: &str) -> Result<Value> {
    let text = if given.trim_start().starts_with('[') {
        given.to_owned()
    } else {
        std::fs::read_to_string(given).with_context(|| format!("cannot read `{given}`"))?
    };
    let pipeline: Value = serde_json::from_str(&text).context("`--pipeline` is not JSON")?;
    check_pipeline(&pipeline)?;
    Ok(pipeline)
}

/// `strata layers`.
pub(super) fn layers(args: LayersArgs) -> Result<()> {
    let budget = LayerBudget::image(args.max_layers);
    budget.check().context("--max-layers")?;
    let room = budget.room(0, 0)?;
    let exclude: BTreeSet<String> = args.exclude.into_iter().collect();
    let variant = args.variant.clone();
    let pipeline = args.pipeline.as_deref().map(read_pipeline).transpose()?;
    let layering = |closure: &Closure| -> Result<Vec<Vec<String>>, LayeringError> {
        if let Some(pipeline) = &pipeline {
            let graph = ReferenceGraph::new(closure, &exclude)?;
            let groups = run_pipeline(&graph, pipeline).map_err(LayeringError::Pipeline)?;
            return Ok(paths_of(&graph, groups));
        }
        match variant.as_str() {
            "popularity" => Ok(limit_layers(popularity_order(closure, &exclude)?, room)),
            "size-cohort" => {
                let graph = ReferenceGraph::new(closure, &exclude)?;
                Ok(paths_of(&graph, cohort_groups(&graph, room)))
            }
            _ => default_layering(closure, &exclude, room),
        }
    };
    if !["default", "popularity", "size-cohort"].contains(&args.variant.as_str()) {
        bail!(
            "`--variant` must be default, popularity or size-cohort, got {:?}",
            args.variant
        );
    }
    let closure = Closure::read_file(&args.closure)?;
    let mut out = io::stdout().lock();
    if args.measure {
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
