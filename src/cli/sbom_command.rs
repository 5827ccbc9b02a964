//! `strata sbom`: an image's SBOMs and provenance, as the Nix builder of an image's `sbom`
//! (every document into `$out`) or by hand (one document to stdout or a file).

use super::files::{closure_of, create_dir, write_file};
use super::registry_commands;
use crate::image::explain::read_image;
use crate::plan::file::is_script;
use crate::plan::index::AnyPlan;
use crate::plan::ImagePlan;
use crate::progress::Progress;
use crate::sbom::in_image::{with_sbom_layer, write_sbom_layer};
use crate::sbom::{platform_dir, BuildFacts, Description, PathLicenses};
use crate::store::attrs::build_dir;
use crate::store::attrs::Attrs;
use crate::store::closure::Closure;
use crate::when::fixed_mtime;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Which document to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
    /// SPDX 2.3 JSON.
    Spdx,
    /// An in-toto statement with a SLSA v1 provenance predicate.
    Provenance,
}

impl Format {
    fn media_type(self) -> &'static str {
        match self {
            Format::Cyclonedx => crate::sbom::cyclonedx::MEDIA_TYPE,
            Format::Spdx => crate::sbom::spdx::MEDIA_TYPE,
            Format::Provenance => crate::sbom::provenance::MEDIA_TYPE,
        }
    }
}

/// `strata sbom`'s arguments.
#[derive(Debug, clap::Args)]
pub(super) struct SbomArgs {
    /// A plan (what streamLayeredImage builds), an archive (docker-archive or OCI layout,
    /// plain or compressed: layers and store paths only), or an image in a registry
    /// (`HOST[:PORT]/NAME[:TAG|@DIGEST]`) whose documents `strata push` attached. Without it,
    /// runs as the Nix builder of an image's `sbom`.
    input: Option<String>,
    /// Which document.
    #[arg(long, value_enum, default_value = "cyclonedx")]
    format: Format,
    /// The closure's metadata, for NAR hashes and references: `nix path-info --json
    /// --recursive PLAN` output (or an exportReferencesGraph file).
    #[arg(long, requires = "input")]
    closure: Option<PathBuf>,
    /// The file to write (stdout when not given).
    #[arg(long, short = 'o', requires = "input")]
    output: Option<PathBuf>,
    #[command(flatten)]
    platform: registry_commands::PlatformArgs,
    #[command(flatten)]
    tls: registry_commands::TlsArgs,
    /// Structured attributes file (default: the one Nix provides).
    #[arg(long, conflicts_with = "input")]
    attrs: Option<PathBuf>,
}

/// Runs `strata sbom`.
pub(super) fn sbom(args: SbomArgs) -> Result<()> {
    let Some(input) = &args.input else {
        return builder(args.attrs.as_deref());
    };
    let path = Path::new(input);
    let bytes = if path.exists() && !is_script(path) {
        of_archive(path, &args)?
    } else if path.exists() {
        of_plan(path, &args)?
    } else {
        registry_commands::attached_document(
            input,
            args.format.media_type(),
            &args.platform,
            &args.tls,
        )?
    };
    match &args.output {
        Some(out) => write_file(out, &bytes, 0o644),
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&bytes)
                .context("cannot write to stdout")
        }
    }
}

/// The document `args.format` asks for, of the archive `input`: its layers and the store
/// paths strata's history entries name.
fn of_archive(input: &Path, args: &SbomArgs) -> Result<Vec<u8>> {
    let facts = read_image(input)?;
    eprintln!(
        "strata: sbom: an archive carries no NAR hashes, references or licences; the image's `sbom` output (or its plan with --closure) has them"
    );
    Ok(pick(Description::of_archive(&facts), args.format))
}

/// The document `args.format` asks for, of the plan `input`.
fn of_plan(input: &Path, args: &SbomArgs) -> Result<Vec<u8>> {
    let plan = ImagePlan::read(input)?;
    let closure = match &args.closure {
        Some(file) => Closure::read_file(file)?,
        None => {
            eprintln!(
                "strata: sbom: no --closure: components get no NAR hash and no references (pass `--closure <(nix path-info --json --recursive {})`)",
                input.display()
            );
            Closure::default()
        }
    };
    let description = Description::of_plan(&plan, &closure, &[], BuildFacts::default())?;
    Ok(pick(description, args.format))
}

/// The document of `description` in `format`.
fn pick(description: Description, format: Format) -> Vec<u8> {
    match format {
        Format::Cyclonedx => crate::sbom::cyclonedx::document(&description),
        Format::Spdx => crate::sbom::spdx::document(&description),
        Format::Provenance => crate::sbom::provenance::document(&description),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SbomAttrs {
    /// The image's plan, or an index's.
    plan: PathBuf,
    /// Licences known at evaluation, by store path.
    #[serde(default)]
    licenses: Vec<PathLicenses>,
    /// `builtins.nixVersion` where the image was evaluated.
    #[serde(default)]
    nix_version: Option<String>,
    /// The plan's derivation.
    #[serde(default)]
    plan_drv: Option<String>,
    /// The Nix system the image is for.
    #[serde(default)]
    image_system: Option<String>,
    /// Whether to write the layer carrying the documents in the image (`sbomInImage`):
    /// `layer.tar` and `record.json` beside the documents.
    #[serde(default)]
    in_image: bool,
    /// The layer's mtime, with `inImage`.
    #[serde(default)]
    mtime: Option<String>,
}

/// The Nix builder: every document of the image (of each image of an index, in a directory
/// per image) into `$out`.
fn builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: SbomAttrs = attrs.parse()?;
    let out = attrs.output("out")?;
    let closure = closure_of(&attrs)?;
    let build = BuildFacts {
        nix_version: a.nix_version,
        derivation: a.plan_drv,
        system: a.image_system,
    };
    create_dir(&out)?;
    match AnyPlan::read(&a.plan)? {
        AnyPlan::Image(plan) if a.in_image => {
            let description = Description::of_plan(&plan, &closure, &a.licenses, build)?;
            let mtime = fixed_mtime(
                "SBOM layer",
                a.mtime.as_deref().unwrap_or("1970-01-01T00:00:01Z"),
            )?;
            let progress = Progress::start("SBOM layer", None, 1);
            write_sbom_layer(&description, mtime, &build_dir(), &out, &progress)?;
            progress.finish();
            Ok(())
        }
        AnyPlan::Image(plan) => write_documents(&out, &plan, &closure, &a.licenses, build),
        AnyPlan::Index(_, images) => {
            for plan in &images {
                let dir = out.join(platform_dir(plan));
                create_dir(&dir)?;
                write_documents(&dir, plan, &closure, &a.licenses, build.clone())?;
            }
            Ok(())
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppendAttrs {
    /// The plan below the SBOM layer.
    plan: PathBuf,
    /// The `sbom` builder's `inImage` output.
    layer: PathBuf,
    /// The helper the plan's shebang line runs.
    helper_bin: PathBuf,
}

/// Nix builder for `sbomInImage`: the plan with the SBOM layer on top.
pub(super) fn append_sbom_layer(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: AppendAttrs = attrs.parse()?;
    let plan = ImagePlan::read(&a.plan)?;
    let progress = Progress::start("SBOM layer record", None, 1);
    let plan = with_sbom_layer(plan, &a.layer, &progress)?;
    progress.finish();
    write_file(&attrs.output("out")?, &plan.to_script(&a.helper_bin), 0o555)
}

fn write_documents(
    dir: &Path,
    plan: &ImagePlan,
    closure: &Closure,
    licenses: &[PathLicenses],
    build: BuildFacts,
) -> Result<()> {
    let description = Description::of_plan(plan, closure, licenses, build)?;
    for (file, _, bytes) in description.documents() {
        write_file(&dir.join(file), &bytes, 0o444)?;
    }
    Ok(())
}
