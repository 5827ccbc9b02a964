//! Command-line front end: subcommands for Nix builders and for running the helper by hand.
//!
//! Builder subcommands read the derivation's structured attributes (`.attrs.json`); every
//! other input comes from arguments. Data goes to stdout, messages to stderr.

use crate::compress::Compressor;
use crate::image::archive::{write_docker_archive, write_docker_archive_of, write_index_archive};
use crate::image::config::{mtime_seconds, When};
use crate::parent::{import, store_paths_of_tar, ParentImage, PARENT_FORMAT};
use crate::plan::index::{AnyPlan, IndexPlan, INDEX_VERSION};
use crate::plan::record::RECORD_VERSION;
use crate::plan::{
    plan_store_layers, tarball_layer, ImagePlan, ImageSettings, LayerSet, StoreStamp,
};
use crate::progress::Progress;
use crate::rootfs::customisation::{
    merge_contents, run_extra_commands, write_customisation_tar, write_layer_file,
};
use crate::rootfs::unpack::Rootfs;
use crate::store::attrs::Attrs;
use crate::store::closure::Closure;
use crate::store::layering::{limit_layers, popularity_order};
use crate::tar::header::Stamp;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod copy_commands;
mod registry_commands;
mod whole_images;

/// strata: builds Docker/OCI images out of Nix store closures.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream the image of a plan (what `streamLayeredImage` builds) to stdout as a
    /// docker-archive, for `docker load` or `podman load`.
    Stream {
        /// The plan file.
        plan: PathBuf,
        /// Write this `name:tag` into the archive instead of the plan's.
        #[arg(long, short = 't', value_name = "NAME:TAG")]
        repo_tag: Option<String>,
    },
    /// Push the image of a plan to a registry, uploading only the blobs it lacks.
    Push {
        /// The plan file.
        plan: PathBuf,
        /// Where to: `[docker://]HOST[:PORT]/NAME[:TAG]` (the plan's tag when none).
        target: String,
        #[command(flatten)]
        options: registry_commands::PushArgs,
    },
    /// Pull an image from a registry into an archive (what `pullImage` does), each blob
    /// checked against its digest. Without a reference, runs as `pullImage`'s Nix builder.
    Pull {
        /// `[docker://]HOST[:PORT]/NAME[:TAG|@sha256:DIGEST]`.
        reference: Option<String>,
        #[command(flatten)]
        platform: registry_commands::PlatformArgs,
        /// The `name:tag` the archive gives the image (the reference's by default).
        #[arg(long, short = 't', value_name = "NAME:TAG")]
        repo_tag: Option<String>,
        /// The file to write (stdout when not given).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Use HTTPS with certificate checks (plain HTTP when false; loopback hosts always
        /// use plain HTTP).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        tls_verify: bool,
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long, conflicts_with = "reference")]
        attrs: Option<PathBuf>,
    },
    /// Print the `pullImage { ... }` expression (digest and hash) that fetches an image,
    /// like nix-prefetch-docker.
    Prefetch {
        /// `[docker://]HOST[:PORT]/NAME[:TAG|@sha256:DIGEST]`.
        reference: String,
        #[command(flatten)]
        platform: registry_commands::PlatformArgs,
        /// The name the image gets when loaded (the reference's by default).
        #[arg(long)]
        final_image_name: Option<String>,
        /// The tag the image gets when loaded (the reference's tag, else `latest`).
        #[arg(long)]
        final_image_tag: Option<String>,
        /// Use HTTPS with certificate checks (plain HTTP when false).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        tls_verify: bool,
        /// Print JSON instead of a Nix expression.
        #[arg(long)]
        json: bool,
    },
    /// Write the image of a plan to a file, compressed (what `buildLayeredImage` does).
    /// Without arguments, runs as a Nix builder.
    Archive {
        /// The plan file.
        #[arg(long, requires = "output")]
        plan: Option<PathBuf>,
        /// The file to write.
        #[arg(long, requires = "plan")]
        output: Option<PathBuf>,
        /// none, gz or zstd.
        #[arg(long, default_value = "gz")]
        compressor: String,
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long, conflicts_with = "plan")]
        attrs: Option<PathBuf>,
    },
    /// Nix builder: decide the layers of an image from its closure and write its plan.
    Plan {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Run a copy script (`copyToRegistry`, `copyToDockerDaemon`, `copyToPodman`): what
    /// their `#!` line calls.
    #[command(hide = true, disable_help_flag = true, disable_version_flag = true)]
    RunScript {
        /// The script.
        script: PathBuf,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Nix builder: a copy script (`copyToRegistry`, ...) for an image.
    CopyScript {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder for `imageIndex`: write the plan of a multi-platform index.
    IndexPlan {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder: merge `contents`, run `extraCommands`, tar the result with its record.
    CustomisationLayer {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder for `perLayerDerivations`: write how the closure of an image is grouped
    /// into automatic layers, as a JSON list of lists of store paths.
    PlanLayering {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder for `buildLayer`: layer a closure (minus what earlier layers hold), or
    /// exactly the store paths given, and write the layers' records.
    BuildLayer {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder: import a parent image (`fromImage`) for building on: check it, and keep
    /// its layers as plain tars with their records and its config.
    ImportParent {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder: `buildImage`'s layer (contents, runAsRoot over the parent, extraCommands,
    /// the closure the parent lacks).
    RootLayer {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder for `exportImage`: an image's root filesystem, its layers flattened, as
    /// one tar.
    ExportImage {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder for `mergeImages`: several images in one docker-archive.
    MergeImages {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Nix builder: write the `text` attribute to the output.
    WriteFile {
        /// Structured attributes file (default: the one Nix provides).
        #[arg(long)]
        attrs: Option<PathBuf>,
    },
    /// Print the tarsum (Docker's legacy layer checksum) of the tar read from stdin.
    Tarsum {
        /// Which tarsum: v0, v1 (what Docker's legacy `json` files carry), dev, or all.
        #[arg(long = "tarsum-version", default_value = "v1")]
        version: String,
    },
    /// Print the popularity layering of a closure as JSON (a list of layers, bottom first,
    /// each a list of store paths).
    Layers {
        /// Closure JSON: an exportReferencesGraph array, `nix path-info --json -r` output or
        /// a structured-attributes file.
        #[arg(long)]
        closure: PathBuf,
        /// Most layers the image may have, customisation layer included.
        #[arg(long, default_value_t = 100)]
        max_layers: u64,
        /// Leave this path out (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
    },
}

/// A command line clap refused; the message is clap's first line.
#[derive(Debug, thiserror::Error)]
#[error("{0} (see `strata --help`)")]
pub struct UsageError(String);

/// Sizes rayon's pool from `NIX_BUILD_CORES` (what a Nix builder may use) unless
/// `RAYON_NUM_THREADS` says otherwise; 0 or unset means every core.
fn configure_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let cores = std::env::var("NIX_BUILD_CORES")
        .ok()
        .and_then(|c| c.parse::<usize>().ok());
    if let Some(cores) = cores.filter(|&c| c > 0) {
        // Fails only when the pool already exists, which then stays as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .build_global();
    }
}

/// The closure `exportReferencesGraph` put in the attributes.
fn closure_of(attrs: &Attrs) -> Result<Closure> {
    Closure::from_attrs(&attrs.value).map_err(|message| {
        anyhow::anyhow!("malformed closure in `{}`: {message}", attrs.path.display())
    })
}

/// Runs the command line `args` (program name first).
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    configure_threads();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own output, to stdout.
            e.print()?;
            return Ok(());
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            return Err(UsageError(first.trim_start_matches("error: ").to_owned()).into());
        }
    };
    match cli.command {
        Command::Stream { plan, repo_tag } => stream(&plan, repo_tag.as_deref()),
        Command::Push {
            plan,
            target,
            options,
        } => registry_commands::push(&plan, &target, options),
        Command::Pull {
            reference: Some(reference),
            platform,
            repo_tag,
            output,
            tls_verify,
            ..
        } => registry_commands::pull_by_hand(
            &reference,
            &platform,
            repo_tag.as_deref(),
            output.as_deref(),
            tls_verify,
        ),
        Command::Pull { attrs, .. } => registry_commands::pull_builder(attrs.as_deref()),
        Command::Prefetch {
            reference,
            platform,
            final_image_name,
            final_image_tag,
            tls_verify,
            json,
        } => registry_commands::prefetch(
            &reference,
            &platform,
            final_image_name.as_deref(),
            final_image_tag.as_deref(),
            tls_verify,
            json,
        ),
        Command::Archive {
            plan: Some(plan),
            output: Some(output),
            compressor,
            ..
        } => archive(&plan, &output, &compressor),
        Command::Archive { attrs, .. } => archive_builder(attrs.as_deref()),
        Command::Plan { attrs } => plan_builder(attrs.as_deref()),
        Command::RunScript { script, args } => copy_commands::run_script(&script, &args),
        Command::CopyScript { attrs } => copy_commands::copy_script_builder(attrs.as_deref()),
        Command::IndexPlan { attrs } => index_plan_builder(attrs.as_deref()),
        Command::CustomisationLayer { attrs } => customisation_builder(attrs.as_deref()),
        Command::BuildLayer { attrs } => build_layer_builder(attrs.as_deref()),
        Command::PlanLayering { attrs } => plan_layering_builder(attrs.as_deref()),
        Command::WriteFile { attrs } => write_file_builder(attrs.as_deref()),
        Command::ImportParent { attrs } => import_parent_builder(attrs.as_deref()),
        Command::RootLayer { attrs } => root_layer_builder(attrs.as_deref()),
        Command::ExportImage { attrs } => whole_images::export_image_builder(attrs.as_deref()),
        Command::MergeImages { attrs } => whole_images::merge_images_builder(attrs.as_deref()),
        Command::Tarsum { version } => tarsum_of_stdin(&version),
        Command::Layers {
            closure,
            max_layers,
            exclude,
        } => layers(&closure, max_layers, exclude),
    }
}

fn stream(plan_path: &Path, repo_tag: Option<&str>) -> Result<()> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        bail!("stdout is a terminal; pipe the image into `docker load` or `podman load`, or redirect it to a file");
    }
    // A dup of fd 1 as a File: unbuffered writes of whole chunks, no line buffering.
    let mut out = fs::File::from(stdout.as_fd().try_clone_to_owned()?);
    stream_to(&AnyPlan::read(plan_path)?, repo_tag, &mut out)
}

/// Writes the archive of an image plan or index plan to `out`, with progress.
fn stream_to(plan: &AnyPlan, repo_tag: Option<&str>, out: &mut dyn Write) -> Result<()> {
    match plan {
        AnyPlan::Index(index, plans) => {
            let images: Vec<(&ImagePlan, Option<&str>)> = plans.iter().map(|p| (p, None)).collect();
            let (unique, _) = crate::image::archive::layers_to_write(&images);
            let total = unique.iter().map(|l| l.record.size).sum();
            let progress = Progress::start("stream", Some(total), unique.len());
            let tag = repo_tag.unwrap_or(&index.repo_tag);
            write_index_archive(plans, tag, out, &progress)?;
            progress.finish();
        }
        AnyPlan::Image(plan) => {
            let progress = stream_progress("stream", plan);
            write_docker_archive(plan, repo_tag, out, &progress)?;
            progress.finish();
        }
    }
    Ok(())
}

fn archive(plan_path: &Path, output: &Path, compressor: &str) -> Result<()> {
    let plan = ImagePlan::read(plan_path)?;
    write_archive_file(&[(&plan, None)], output, compressor)
}

/// Writes `images` to `output` as one docker-archive compressed with `compressor`.
fn write_archive_file(
    images: &[(&ImagePlan, Option<&str>)],
    output: &Path,
    compressor: &str,
) -> Result<()> {
    let compressor: Compressor = compressor.parse()?;
    let file = fs::File::create(output)
        .with_context(|| format!("cannot create `{}`", output.display()))?;
    let written = (|| -> Result<()> {
        let mut encoder = compressor.encoder(io::BufWriter::with_capacity(1 << 20, file));
        let (unique, _) = crate::image::archive::layers_to_write(images);
        let total = unique.iter().map(|l| l.record.size).sum();
        let count = unique.len();
        let progress = Progress::start("archive", Some(total), count);
        write_docker_archive_of(images, &mut encoder, &progress)?;
        encoder
            .finish()?
            .flush()
            .with_context(|| format!("cannot write `{}`", output.display()))?;
        progress.finish();
        Ok(())
    })();
    if written.is_err() {
        // Leave no partial archive behind (but never remove a device such as /dev/null).
        if fs::metadata(output).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(output);
        }
    }
    written
}

pub(crate) fn stream_progress(label: &str, plan: &ImagePlan) -> Progress {
    let total = plan.layers.iter().map(|l| l.record.size).sum();
    Progress::start(label, Some(total), plan.layers.len())
}

#[derive(Deserialize)]
struct ArchiveAttrs {
    plan: PathBuf,
    compressor: String,
}

fn archive_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: ArchiveAttrs = attrs.parse()?;
    archive(&a.plan, &attrs.output("out")?, &a.compressor)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanAttrs {
    /// The helper the plan's shebang line runs.
    helper_bin: PathBuf,
    #[serde(flatten)]
    settings: ImageSettings,
}

fn plan_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let PlanAttrs {
        helper_bin,
        settings,
    } = attrs.parse()?;
    let out = attrs.output("out")?;
    let config = match (&settings.config_file, &settings.config) {
        (Some(file), _) => {
            let bytes = fs::read(file)
                .with_context(|| format!("cannot read config file `{}`", file.display()))?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("config file `{}` is not JSON", file.display()))?
        }
        (None, Some(config)) => config.clone(),
        (None, None) => Value::Null,
    };
    let plan = ImagePlan::new(&settings, config, &closure_of(&attrs)?, &out, true)?;
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

fn index_plan_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: IndexPlanAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let tag = match a.tag {
        Some(tag) => tag,
        None => crate::store::path::hash_part(&out.to_string_lossy()).to_owned(),
    };
    let plan = IndexPlan {
        strata_index: INDEX_VERSION,
        repo_tag: format!("{}:{tag}", a.image_name),
        images: a.images,
    };
    plan.image_plans()?;
    write_file(&out, &plan.to_script(&a.helper_bin), 0o555)
}

fn plan_layering_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let settings: ImageSettings = attrs.parse()?;
    let parent = match &settings.parent {
        Some(dir) => Some(ParentImage::read(&dir.join("parent.json"))?),
        None => None,
    };
    let (_, groups) = settings.automatic_groups(&closure_of(&attrs)?, parent.as_ref())?;
    write_file(
        &attrs.output("out")?,
        &serde_json::to_vec_pretty(&groups)?,
        0o444,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomisationAttrs {
    #[serde(default)]
    contents: Vec<PathBuf>,
    #[serde(default)]
    extra_commands: String,
    toolbox: PathBuf,
    mtime: String,
    include_store_paths: bool,
    #[serde(default)]
    fake_root_commands: String,
    #[serde(default)]
    enable_fakechroot: bool,
    #[serde(default, rename = "includeNixDB")]
    include_nix_db: bool,
    /// Left out of the Nix database (the config file, which is not in the image).
    #[serde(default)]
    exclude: Vec<String>,
}

/// With `includeNixDB`, registers the closure `exportReferencesGraph` gave (minus `exclude`)
/// in a Nix database under `root`, GC roots for `roots`.
fn include_nix_db(
    attrs: &Attrs,
    root: &Path,
    roots: &[PathBuf],
    exclude: &[String],
    registered: u64,
) -> Result<()> {
    let closure = Closure::from_entries(
        closure_of(attrs)?
            .entries()
            .iter()
            .filter(|e| !exclude.contains(&e.path))
            .cloned(),
    );
    let roots: Vec<String> = roots
        .iter()
        .map(|r| r.to_string_lossy().into_owned())
        .filter(|r| r.starts_with("/nix/store/") && !exclude.contains(r))
        .collect();
    crate::store::nix_db::write_nix_db(root, &closure, &roots, registered)
        .context("includeNixDB")?;
    Ok(())
}

/// The environment scripts run with: the toolbox on PATH, the build directory as TMPDIR.
fn script_env(toolbox: &Path) -> Vec<(String, String)> {
    let top = build_top().to_string_lossy().into_owned();
    vec![
        (
            "PATH".into(),
            toolbox.join("bin").to_string_lossy().into_owned(),
        ),
        ("HOME".into(), "/homeless-shelter".into()),
        ("NIX_BUILD_TOP".into(), top.clone()),
        ("TMPDIR".into(), top),
        (
            "NIX_BUILD_CORES".into(),
            std::env::var("NIX_BUILD_CORES").unwrap_or_else(|_| "1".into()),
        ),
    ]
}

/// Runs `extraCommands` in `root` with the toolbox's sh, not as root.
fn extra_commands(script: &str, toolbox: &Path, root: &Path) -> Result<()> {
    let env = script_env(toolbox);
    // PATH and HOME are set by run_extra_commands itself.
    let env: Vec<(&str, &str)> = env[2..]
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bin = toolbox.join("bin");
    run_extra_commands(script, &bin.join("sh"), &bin.to_string_lossy(), root, &env)?;
    Ok(())
}

/// Runs `script` as root (see [`crate::rootfs::root_shell`]) in `dir`, or with `dir` as `/`.
fn run_as_root(
    what: &'static str,
    script: &str,
    toolbox: &Path,
    dir: &Path,
    chroot: bool,
) -> Result<Option<crate::rootfs::root_shell::Owners>> {
    if script.trim().is_empty() {
        return Ok(None);
    }
    let shell = toolbox.join("bin/sh");
    let owners = crate::rootfs::root_shell::RootShell {
        what,
        shell: &shell,
        script,
        dir,
        chroot,
        env: script_env(toolbox),
    }
    .run()?;
    Ok(Some(owners))
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
    mtime: String,
    uid: u64,
    gid: u64,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default, rename = "includeNixDB")]
    include_nix_db: bool,
}

/// `buildImage`'s layer: contents, runAsRoot over the unpacked parent, extraCommands, and the
/// closure's store paths the parent lacks; only what changed goes in.
fn root_layer_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: RootLayerAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let mtime = fixed_mtime("image layer", &a.mtime)?;
    let parent = match &a.parent {
        Some(dir) => Some(ParentImage::read(&dir.join("parent.json"))?),
        None => None,
    };
    let root = build_top().join("root");
    fs::create_dir(&root).with_context(|| format!("cannot create `{}`", root.display()))?;
    let mut rootfs = match (&parent, a.run_as_root.trim().is_empty()) {
        // runAsRoot sees the parent's files; without it, nothing needs unpacking.
        (Some(p), false) => {
            // Store path layers need no unpacking: the build's /nix/store, which holds them
            // (they are inputs of this build), is mounted over the root's while it runs.
            let tars: Vec<PathBuf> = p
                .layers
                .iter()
                .filter_map(|l| match l.content.source() {
                    crate::tar::layer::LayerSource::Tarball(t) => Some(t),
                    _ => None,
                })
                .collect();
            Rootfs::unpack(&tars, &root).context("fromImage")?
        }
        _ => Rootfs::default(),
    };
    merge_contents(&a.contents, &root)?;
    if a.include_nix_db {
        include_nix_db(&attrs, &root, &a.contents, &a.exclude, mtime)?;
    }
    if let Some(owners) = run_as_root("runAsRoot", &a.run_as_root, &a.toolbox, &root, true)? {
        rootfs.add_script_owners(owners);
    }
    extra_commands(&a.extra_commands, &a.toolbox, &root)?;

    let mut exclude: BTreeSet<String> = a.exclude.iter().cloned().collect();
    if let Some(p) = &parent {
        exclude.extend(p.store_paths.iter().map(|n| format!("/nix/store/{n}")));
    }
    let store_paths: Vec<PathBuf> = closure_of(&attrs)?
        .entries()
        .iter()
        .map(|e| e.path.clone())
        .filter(|p| !exclude.contains(p))
        .map(PathBuf::from)
        .collect();
    let listed = rootfs.changes(&root, &store_paths, false)?;
    let stamp = Stamp {
        mtime,
        uid: a.uid,
        gid: a.gid,
        uname: if a.uid == 0 {
            "root".into()
        } else {
            String::new()
        },
        gname: if a.gid == 0 {
            "root".into()
        } else {
            String::new()
        },
    };
    fs::create_dir(&out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let progress = Progress::start("image layer", None, 1);
    let record = write_layer_file(
        &crate::tar::layer::LayerSource::Listed(std::sync::Arc::new(listed)),
        &stamp,
        &out.join("layer.tar"),
        &progress,
    )?;
    progress.layer_done();
    progress.finish();
    write_file(
        &out.join("record.json"),
        &serde_json::to_vec_pretty(&record)?,
        0o444,
    )
}

fn customisation_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: CustomisationAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let mtime = fixed_mtime("customisation layer", &a.mtime)?;
    let root = build_top().join("customisation-root");
    fs::create_dir(&root).with_context(|| format!("cannot create `{}`", root.display()))?;
    merge_contents(&a.contents, &root)?;
    if a.include_nix_db {
        include_nix_db(&attrs, &root, &a.contents, &a.exclude, mtime)?;
    }
    extra_commands(&a.extra_commands, &a.toolbox, &root)?;
    fs::create_dir(&out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let progress = Progress::start("customisation layer", None, 1);
    let layer = out.join("layer.tar");
    let owners = run_as_root(
        "fakeRootCommands",
        &a.fake_root_commands,
        &a.toolbox,
        &root,
        a.enable_fakechroot,
    )?;
    let record = write_customisation_tar(
        &root,
        a.include_store_paths,
        owners,
        mtime,
        &layer,
        &progress,
    )?;
    progress.layer_done();
    progress.finish();
    write_file(
        &out.join("record.json"),
        &serde_json::to_vec_pretty(&record)?,
        0o444,
    )
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
    /// Exactly these store paths, as one layer (no closure, no popularity).
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(flatten)]
    stamp: StoreStamp,
}

fn build_layer_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: BuildLayerAttrs = attrs.parse()?;
    if a.max_layers < 1 {
        bail!("`maxLayers` must be at least 1, got {}", a.max_layers);
    }
    let closure = closure_of(&attrs)?;
    let mut exclude = BTreeSet::new();
    for file in &a.layers {
        for layer in LayerSet::read(file)?.layers {
            exclude.extend(layer.content.store_paths().iter().cloned());
        }
    }
    let groups = match a.paths {
        Some(paths) => vec![paths],
        None => limit_layers(popularity_order(&closure, &exclude)?, a.max_layers as usize),
    };
    if groups.is_empty() && a.contents_layer.is_none() {
        eprintln!(
            "strata: buildLayer: every store path is already in `layers`; this layer is empty"
        );
    }
    let progress = Progress::start("records", None, groups.len());
    let mut layers = plan_store_layers(groups, &a.stamp, 0, false, &progress)?;
    progress.finish();
    if let Some(c) = &a.contents_layer {
        layers.push(tarball_layer(c)?);
    }
    let set = LayerSet {
        strata_layers: RECORD_VERSION,
        layers,
    };
    write_file(
        &attrs.output("out")?,
        &serde_json::to_vec_pretty(&set)?,
        0o444,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportParentAttrs {
    from_image: PathBuf,
    #[serde(default)]
    from_image_name: Option<String>,
    #[serde(default)]
    from_image_tag: Option<String>,
}

fn import_parent_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: ImportParentAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let shown = a.from_image.display().to_string();
    let pick = match (&a.from_image_name, &a.from_image_tag) {
        (Some(n), Some(t)) => Some(format!("{n}:{t}")),
        _ => None,
    };
    let parent = if is_plan(&a.from_image) {
        // A strata image: its plan already has every layer with its record.
        parent_of_plan(&ImagePlan::read(&a.from_image)?)?
    } else {
        let file = fs::File::open(&a.from_image)
            .with_context(|| format!("fromImage: cannot open `{shown}`"))?;
        let scratch = build_top().join("parent-members");
        let progress = Progress::start("parent layers", None, 0);
        let parent = import(file, pick.as_deref(), &out, &scratch, &progress)
            .with_context(|| format!("fromImage `{shown}`"))?;
        progress.finish();
        parent
    };
    fs::create_dir_all(&out)?;
    write_file(
        &out.join("parent.json"),
        &serde_json::to_vec_pretty(&parent)?,
        0o444,
    )
}

/// Whether `path` is a strata plan file (a streamLayeredImage result) rather than an archive.
fn is_plan(path: &Path) -> bool {
    let mut head = [0u8; 2];
    fs::File::open(path)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"#!"
}

/// A strata image, described as a parent: its layers and records as planned.
fn parent_of_plan(plan: &ImagePlan) -> Result<ParentImage> {
    let created = match plan.created {
        When::At(t) => crate::image::config::format_time(t),
        When::Now => "1970-01-01T00:00:01Z".to_owned(),
    };
    let mut history = plan.parent_history.clone();
    let own = if history.is_empty() {
        0
    } else {
        plan.parent_layers
    };
    history.extend(plan.layers[own.min(plan.layers.len())..].iter().map(|l| {
        serde_json::json!({"created": created, "created_by": "strata", "comment": l.content.describe()})
    }));
    let mut store_paths: BTreeSet<String> = plan
        .layers
        .iter()
        .flat_map(|l| l.content.store_paths())
        .filter_map(|p| p.strip_prefix("/nix/store/"))
        .map(str::to_owned)
        .collect();
    for layer in &plan.layers {
        if let crate::plan::LayerContent::Tarball { path } = &layer.content {
            store_paths.extend(
                store_paths_of_tar(Path::new(path))
                    .with_context(|| format!("cannot read the parent layer `{path}`"))?,
            );
        }
    }
    Ok(ParentImage {
        strata_parent: PARENT_FORMAT,
        config: serde_json::json!({ "config": plan.config, "history": history }),
        layers: plan.layers.clone(),
        store_paths,
        repo_tags: vec![plan.repo_tag.clone()],
    })
}

/// A layer built once takes a fixed `mtime`: "now" would make it differ on every rebuild.
fn fixed_mtime(layer: &str, value: &str) -> Result<u64> {
    match When::parse("mtime", value)? {
        When::At(t) => Ok(mtime_seconds(t, value)?),
        When::Now => bail!("the {layer} needs a fixed `mtime`, got \"now\""),
    }
}

/// The build directory (`NIX_BUILD_TOP`), or the temporary directory outside Nix.
fn build_top() -> PathBuf {
    std::env::var_os("NIX_BUILD_TOP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

#[derive(Deserialize)]
struct WriteFileAttrs {
    text: String,
}

fn tarsum_of_stdin(version: &str) -> Result<()> {
    let mut hasher = crate::tar::tarsum::TarsumHasher::new();
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

fn write_file_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: WriteFileAttrs = attrs.parse()?;
    write_file(&attrs.output("out")?, a.text.as_bytes(), 0o444)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write `{}`", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of `{}`", path.display()))
}

fn layers(closure: &Path, max_layers: u64, exclude: Vec<String>) -> Result<()> {
    if max_layers < 2 {
        bail!("`--max-layers` must be at least 2, got {max_layers}");
    }
    let closure = Closure::read_file(closure)?;
    let exclude: BTreeSet<String> = exclude.into_iter().collect();
    let order = popularity_order(&closure, &exclude)?;
    let layers = limit_layers(order, (max_layers - 1) as usize);
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &layers)?;
    writeln!(out)?;
    Ok(())
}

/// The message printed for a failed run: one line, causes joined with `: `, with a plainer
/// wording when the reader of stdout went away.
pub fn error_line(err: &anyhow::Error) -> String {
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return "output closed before the image was complete (broken pipe)".to_owned();
    }
    // Library errors name their cause in their own message, so a cause whose text is
    // already there is not repeated.
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

/// Process exit code for a failed run: 2 for command-line usage, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_not_repeated() {
        let io = io::Error::new(io::ErrorKind::NotFound, "No such file or directory");
        let err = anyhow::Error::new(crate::tar::layer::LayerError::Io {
            path: "/nix/store/x-gone".into(),
            source: io,
        })
        .context("layer 1");
        assert_eq!(
            error_line(&err),
            "layer 1: cannot read `/nix/store/x-gone`: No such file or directory"
        );
    }

    #[test]
    fn usage_errors_are_one_line_with_code_2() {
        let err = run(["strata", "--bogus"].map(OsString::from)).unwrap_err();
        assert_eq!(exit_code(&err), 2);
        let line = error_line(&err);
        assert!(line.contains("--bogus") && !line.contains('\n'), "{line}");
        assert!(run(["strata", "--version"].map(OsString::from)).is_ok());
    }
}
