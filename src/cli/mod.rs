//! Command-line front end: subcommands for Nix builders and for running the helper by hand.
//! It only parses and reports: every subcommand reads its arguments (builders: the
//! derivation's structured attributes, `.attrs.json`), calls the library, and writes what it
//! made. Data goes to stdout, messages to stderr.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

mod builders;
mod copy_commands;
mod explain_command;
mod files;
mod image_commands;
mod layering_commands;
mod registry_commands;
mod sbom_command;
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
        #[arg(long, short = 't', alias = "repo_tag", value_name = "NAME:TAG")]
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
        #[arg(long, short = 't', alias = "repo_tag", value_name = "NAME:TAG")]
        repo_tag: Option<String>,
        /// The file to write (stdout when not given).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        #[command(flatten)]
        tls: registry_commands::TlsArgs,
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
        #[command(flatten)]
        tls: registry_commands::TlsArgs,
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
        /// How the archive is compressed.
        #[arg(long, value_enum, default_value = "gz", alias = "compression")]
        compressor: crate::compress::Compression,
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
    /// Nix builder for `imageFamily`: choose the automatic layers of several images together,
    /// so that a store path several hold sits in the same layer in each; writes them as JSON.
    PlanFamily {
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
    /// Nix builder for `sbomInImage`: an image's plan with the layer carrying its SBOMs on
    /// top.
    AppendSbomLayer {
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
    /// Nix builder: a directory of links, files and directories described by `entries`.
    WriteTree {
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
    /// Print the default layering of a closure as JSON (a list of layers, bottom first,
    /// each a list of store paths), or with `--measure` the figures it is judged by.
    Layers(layering_commands::LayersArgs),
    /// Load an image plan into docker or podman, sending only the layers the engine lacks
    /// (it pulls them from a loopback port); what copyToDockerDaemon and copyToPodman run.
    Load {
        /// The plan (what streamLayeredImage builds).
        plan: PathBuf,
        /// The engine (found on PATH).
        #[arg(long, value_enum, default_value = "docker")]
        engine: crate::registry::load::Engine,
        /// Load it under this `name:tag` instead of its own.
        #[arg(long, short = 't', alias = "repo_tag", value_name = "NAME:TAG")]
        repo_tag: Option<String>,
    },
    /// Print an image's SBOM (CycloneDX 1.6 or SPDX 2.3) or provenance (in-toto, SLSA v1):
    /// every store path its layers hold, with its version, NAR hash, references and layer.
    /// Without an input, runs as the Nix builder of an image's `sbom`.
    Sbom(sbom_command::SbomArgs),
    /// Print an image's layers (a plan or an archive): each one's store paths, bytes and why
    /// it holds them, and with `--against OLD` which layers a push or pull would move.
    Explain(explain_command::ExplainArgs),
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

/// Parses `args` as `P`'s command line. `None` when clap printed what was asked for
/// (`--help`, `--version`, to stdout); a refused command line is a [`UsageError`].
fn parse_args<P: Parser>(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<Option<P>> {
    match P::try_parse_from(args) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(e) if !e.use_stderr() => {
            e.print()?;
            Ok(None)
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            Err(UsageError(first.trim_start_matches("error: ").to_owned()).into())
        }
    }
}

/// Runs the command line `args` (program name first).
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    configure_threads();
    match parse_args::<Cli>(as_called(args.into_iter().collect()))? {
        Some(cli) => cli.command.run(),
        None => Ok(()),
    }
}

/// The command line with `tarsum` put in as the subcommand when the helper was called by the
/// name `tarsum`: the library's `tarsum` package (nixpkgs' `dockerTools.tarsum`, a program
/// run as `tarsum < layer.tar`) is a link of that name to the helper, so it needs no shell.
fn as_called(mut args: Vec<OsString>) -> Vec<OsString> {
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name());
    if name == Some(std::ffi::OsStr::new("tarsum")) {
        args.insert(1, "tarsum".into());
    }
    args
}

impl Command {
    fn run(self) -> Result<()> {
        use Command as C;
        match self {
            C::Stream { plan, repo_tag } => image_commands::stream(&plan, repo_tag.as_deref()),
            C::Push {
                plan,
                target,
                options,
            } => registry_commands::push(&plan, &target, options),
            C::Pull {
                reference: Some(reference),
                platform,
                repo_tag,
                output,
                tls,
                ..
            } => registry_commands::pull_by_hand(
                &reference,
                &platform,
                repo_tag.as_deref(),
                output.as_deref(),
                &tls,
            ),
            C::Pull { attrs, .. } => registry_commands::pull_builder(attrs.as_deref()),
            C::Prefetch {
                reference,
                platform,
                final_image_name,
                final_image_tag,
                tls,
                json,
            } => registry_commands::prefetch(
                &reference,
                &platform,
                final_image_name.as_deref(),
                final_image_tag.as_deref(),
                &tls,
                json,
            ),
            C::Archive {
                plan: Some(plan),
                output: Some(output),
                compressor,
                ..
            } => image_commands::archive(&plan, &output, compressor),
            C::Archive { attrs, .. } => builders::archive(attrs.as_deref()),
            C::Plan { attrs } => builders::plan(attrs.as_deref()),
            C::RunScript { script, args } => copy_commands::run_script(&script, &args),
            C::CopyScript { attrs } => copy_commands::copy_script_builder(attrs.as_deref()),
            C::IndexPlan { attrs } => builders::index_plan(attrs.as_deref()),
            C::CustomisationLayer { attrs } => builders::customisation_layer(attrs.as_deref()),
            C::BuildLayer { attrs } => builders::build_layer(attrs.as_deref()),
            C::PlanLayering { attrs } => builders::plan_layering(attrs.as_deref()),
            C::PlanFamily { attrs } => builders::plan_family_builder(attrs.as_deref()),
            C::WriteFile { attrs } => builders::write_file_builder(attrs.as_deref()),
            C::WriteTree { attrs } => builders::write_tree_builder(attrs.as_deref()),
            C::ImportParent { attrs } => builders::import_parent(attrs.as_deref()),
            C::RootLayer { attrs } => builders::root_layer(attrs.as_deref()),
            C::ExportImage { attrs } => whole_images::export_image_builder(attrs.as_deref()),
            C::MergeImages { attrs } => whole_images::merge_images_builder(attrs.as_deref()),
            C::Tarsum { version } => image_commands::tarsum_of_stdin(&version),
            C::Layers(args) => layering_commands::layers(args),
            C::Explain(args) => explain_command::explain_image(args),
            C::Sbom(args) => sbom_command::sbom(args),
            C::AppendSbomLayer { attrs } => sbom_command::append_sbom_layer(attrs.as_deref()),
            C::Load {
                plan,
                engine,
                repo_tag,
            } => copy_commands::load_into(engine, &plan, repo_tag.as_deref()),
        }
    }
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
        let gone = std::path::Path::new("/nix/store/x-gone");
        let file = crate::file_error::FileError::on("read", gone)(io);
        let err = anyhow::Error::new(crate::tar::layer::LayerError::from(file)).context("layer 1");
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

    #[test]
    fn called_as_tarsum_it_is_strata_tarsum() {
        let called = |args: &[&str]| as_called(args.iter().map(OsString::from).collect());
        assert_eq!(
            called(&["/nix/store/x-tarsum/bin/tarsum", "--tarsum-version", "v0"]),
            [
                "/nix/store/x-tarsum/bin/tarsum",
                "tarsum",
                "--tarsum-version",
                "v0"
            ]
        );
        assert_eq!(called(&["tarsum"]), ["tarsum", "tarsum"]);
        assert_eq!(
            called(&["strata", "stream", "p"]),
            ["strata", "stream", "p"]
        );
    }
}
