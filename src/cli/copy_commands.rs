//! The executables every image carries (`copyToRegistry`, `copyToDockerDaemon`,
//! `copyToPodman`): small JSON files whose `#!` line runs `strata run-script`, so they need
//! no shell. Each names its image's plan and what to do with it.

use super::files::write_file;
use super::image_commands::stream_to;
use super::{parse_args, registry_commands};
use crate::plan::file::{read_script, script_bytes};
use crate::plan::index::AnyPlan;
use crate::progress::{human, Progress};
use crate::registry::load::{load, Engine};
use crate::store::attrs::Attrs;
use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Version of the script format.
const SCRIPT_VERSION: u32 = 1;

/// Where a copy script copies its image to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum CopyTo {
    /// `strata push`.
    #[serde(rename = "copy-to-registry")]
    Registry,
    /// `strata load --engine docker`.
    #[serde(rename = "copy-to-docker-daemon")]
    DockerDaemon,
    /// `strata load --engine podman`.
    #[serde(rename = "copy-to-podman")]
    Podman,
}

impl CopyTo {
    /// The executable's name, which is also how Nix names the action.
    fn name(self) -> &'static str {
        match self {
            CopyTo::Registry => "copy-to-registry",
            CopyTo::DockerDaemon => "copy-to-docker-daemon",
            CopyTo::Podman => "copy-to-podman",
        }
    }
}

/// What a copy script holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Script {
    strata_script: u32,
    /// What it does.
    action: CopyTo,
    /// The image's (or index's) plan.
    plan: PathBuf,
    /// `name:tag` the image is pushed or loaded as by default.
    repo_tag: String,
    /// The image's SBOMs and provenance, which copy-to-registry attaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attach: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScriptAttrs {
    helper_bin: PathBuf,
    action: CopyTo,
    plan: PathBuf,
    repo_tag: String,
    #[serde(default)]
    attach: Option<PathBuf>,
}

/// Nix builder: writes `$out/bin/<action>`.
pub(super) fn copy_script_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: ScriptAttrs = attrs.parse()?;
    let bin = attrs.output("out")?.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("cannot create `{}`", bin.display()))?;
    let script = Script {
        strata_script: SCRIPT_VERSION,
        action: a.action,
        plan: a.plan,
        repo_tag: a.repo_tag,
        attach: a.attach.filter(|_| a.action == CopyTo::Registry),
    };
    let text = script_bytes(&a.helper_bin, "run-script", &script);
    write_file(&bin.join(a.action.name()), &text, 0o555)
}

/// `copyToRegistry`'s options.
#[derive(Debug, Parser)]
#[command(name = "copy-to-registry", about = "Push this image to a registry")]
struct RegistryArgs {
    /// Where to: `[docker://]HOST[:PORT]/NAME[:TAG]` (the image's name and tag by default).
    target: Option<String>,
    #[command(flatten)]
    options: registry_commands::PushArgs,
}

/// `copyToDockerDaemon`'s and `copyToPodman`'s options.
#[derive(Debug, Parser)]
#[command(about = "Load this image into the local engine")]
struct LoadArgs {
    /// Load it under this `name:tag` instead of its own.
    #[arg(long, short = 't', value_name = "NAME:TAG")]
    repo_tag: Option<String>,
}

/// `strata run-script SCRIPT ARGS...`: what a copy script's `#!` line runs.
pub(super) fn run_script(script: &Path, args: &[String]) -> Result<()> {
    let s: Script = serde_json::from_value(read_script(script)?)
        .with_context(|| format!("`{}` is not a strata copy script", script.display()))?;
    if s.strata_script != SCRIPT_VERSION {
        bail!(
            "`{}` is a copy script of format {}, this helper runs format {SCRIPT_VERSION}",
            script.display(),
            s.strata_script
        );
    }
    let argv = std::iter::once(s.action.name().to_owned()).chain(args.iter().cloned());
    match s.action {
        CopyTo::Registry => {
            let Some(mut a) = parse_args::<RegistryArgs>(argv)? else {
                return Ok(());
            };
            let target = a.target.unwrap_or_else(|| s.repo_tag.clone());
            if a.options.attach.is_none() {
                a.options.attach = s.attach.clone();
            }
            registry_commands::push(&s.plan, &target, a.options)
        }
        CopyTo::DockerDaemon | CopyTo::Podman => {
            let Some(a) = parse_args::<LoadArgs>(argv)? else {
                return Ok(());
            };
            let engine = if s.action == CopyTo::Podman {
                Engine::Podman
            } else {
                Engine::Docker
            };
            load_into(engine, &s.plan, a.repo_tag.as_deref())
        }
    }
}

/// Loads the image into `engine` (found on PATH; `DOCKER_HOST` and podman's own settings
/// apply as usual): pulled from a loopback server, so the engine reads only the layers it
/// lacks; an index, or a docker daemon on another machine, gets `<engine> load` instead.
pub(super) fn load_into(engine: Engine, plan: &Path, repo_tag: Option<&str>) -> Result<()> {
    // Read before starting the engine, so a bad plan is reported as such.
    let plan = AnyPlan::read(plan)?;
    match &plan {
        AnyPlan::Image(image) if engine.pulls_locally() => {
            let name = repo_tag.unwrap_or(&image.repo_tag);
            let progress = Arc::new(Progress::start("load", None, image.layers.len()));
            let report = load(image, engine, name, Arc::clone(&progress))?;
            progress.finish();
            eprintln!(
                "strata: loaded {name} into {}: {} of {} layers sent ({}), the others were there",
                engine.command(),
                report.layers_sent,
                image.layers.len(),
                human(report.bytes_sent)
            );
            Ok(())
        }
        _ => stream_into(engine.command(), &plan, repo_tag),
    }
}

/// Streams the image into `<engine> load`.
fn stream_into(engine: &str, plan: &AnyPlan, repo_tag: Option<&str>) -> Result<()> {
    let mut child = Command::new(engine)
        .arg("load")
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{engine} load` (is {engine} on PATH?)"))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let streamed = stream_to(plan, repo_tag, &mut stdin);
    drop(stdin);
    let status = child
        .wait()
        .with_context(|| format!("`{engine} load` did not finish"));
    // The image's own failure first: the engine fails too when the stream stops.
    streamed?;
    let status = status?;
    if !status.success() {
        bail!("`{engine} load` failed ({status})");
    }
    Ok(())
}
