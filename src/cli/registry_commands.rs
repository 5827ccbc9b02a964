//! Commands that talk to registries: `push`, `pull` (also `pullImage`'s builder) and
//! `prefetch` (prints a `pullImage` expression).

use crate::compress::Compression;
use crate::digest::{Digest, HashingWriter};
use crate::image::oci_layout;
use crate::plan::index::AnyPlan;
use crate::plan::record_cache::RecordCache;
use crate::progress::Progress;
use crate::registry::attach::{attach, document_of, referrers, Document, Listing};
use crate::registry::client::{Client, Connection, TlsOptions};
use crate::registry::pull::{pull, resolve, resolve_platform, Pulled, Wanted};
use crate::registry::push::{push_index, PushOptions, PushReport};
use crate::registry::reference::{name_as_written, Reference};
use crate::registry::signature::sign;
use crate::sbom::{platform_dir, read_documents};
use crate::signing::SigningKey;
use crate::store::attrs::Attrs;
use crate::whole_file::WholeFile;
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use std::io::{self, Write};
use std::path::Path;

/// Options of `strata push` and `copy-to-registry`.
#[derive(Debug, clap::Args)]
pub(super) struct PushArgs {
    /// Layer compression: gzip (gz), zstd or zstd:chunked.
    #[arg(long, value_enum, default_value = "gzip", alias = "compressor")]
    compression: Compression,
    /// A repository of the same registry to mount missing blobs from instead of uploading
    /// them (repeatable).
    #[arg(long, value_name = "REPOSITORY")]
    mount_from: Vec<String>,
    /// Layers uploaded at once.
    #[arg(long, default_value_t = 3)]
    parallel: usize,
    /// Attach the documents in this directory (the image's `sbom` output: CycloneDX, SPDX,
    /// provenance) to the pushed image as OCI referrers. copyToRegistry attaches its image's.
    #[arg(long, value_name = "DIR")]
    pub(super) attach: Option<std::path::PathBuf>,
    /// Attach nothing, not even what copyToRegistry would.
    #[arg(long, conflicts_with = "attach")]
    pub(super) no_attach: bool,
    /// Sign the pushed manifest (an index and each of its images) with this ECDSA P-256 key
    /// (PEM: PKCS#8, SEC1, or cosign's encrypted key with COSIGN_PASSWORD), in cosign's
    /// format: `cosign verify --key` and a `sigstoreSigned` policy check it. No transparency
    /// log is written.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// How registries are reached: `--tls-verify` and `--cert-dir`, as skopeo has them.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct TlsArgs {
    /// Check the registry's certificate (the default, except for loopback registries, which
    /// are treated as false unless it is given). false: HTTPS without checks, plain HTTP
    /// when the registry speaks nothing else.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set)]
    tls_verify: Option<bool>,
    /// A directory whose *.crt files are CAs to trust for the registry (default:
    /// /etc/containers/certs.d/HOST, /etc/docker/certs.d/HOST,
    /// ~/.config/containers/certs.d/HOST; the system store and SSL_CERT_FILE always count).
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The connection these options ask for.
    fn connection(&self) -> Connection {
        Connection::new(TlsOptions {
            verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            plain_http: false,
        })
    }
}

/// `strata push`: an image or a multi-platform index.
pub(super) fn push(plan_path: &Path, target: &str, args: PushArgs) -> Result<()> {
    let compressor = match args.compression {
        Compression::None => {
            bail!("`--compression` must be gzip, zstd or zstd:chunked: registries take compressed layers")
        }
        c => c,
    };
    let connection = args.tls.connection();
    let options = PushOptions {
        compressor,
        mount_from: args.mount_from,
        parallel: args.parallel,
        cache: RecordCache::user(),
    };
    let plan = AnyPlan::read(plan_path)?;
    // Read before anything is sent: a key that cannot be used fails the push at once.
    let key = match &args.sign_key {
        Some(path) => Some(SigningKey::read(
            path,
            std::env::var("COSIGN_PASSWORD").ok().as_deref(),
        )?),
        None => None,
    };
    let (plans, repo_tag) = plan.images();
    // So are the documents to attach.
    let documents = match args.attach.as_deref().filter(|_| !args.no_attach) {
        Some(dir) => Some(
            documents_to_attach(&plan, dir)
                .with_context(|| format!("--attach {}", dir.display()))?,
        ),
        None => None,
    };
    let mut target = Reference::parse(target)?;
    if !target.explicit {
        if let Some((_, tag)) = crate::image::oci_layout::split_tag(repo_tag) {
            target.reference = tag.to_owned();
        }
    }
    let mut client = Client::new(&target, &connection)?;
    let total = plans
        .iter()
        .flat_map(|p| &p.layers)
        .map(|l| l.record.size)
        .sum();
    let count = plans.iter().map(|p| p.layers.len()).sum();
    let progress = Progress::start("push", Some(total), count);
    let started = std::time::Instant::now();
    let report = match &plan {
        AnyPlan::Index(..) => {
            push_index(plans, &mut client, &target.reference, &options, &progress)?
        }
        AnyPlan::Image(image) => {
            crate::registry::push::push(image, &mut client, &target.reference, &options, &progress)?
        }
    };
    progress.finish();
    let attached = match documents {
        Some(documents) => attach_documents(&mut client, &report, documents)?,
        None => String::new(),
    };
    let signed = match &key {
        Some(key) => sign_pushed(&mut client, &target, &plan, &report, key)?,
        None => String::new(),
    };
    eprintln!(
        "pushed {target} ({}): {}{attached}{signed}",
        report.manifest.digest,
        pushed_blobs(&report, started.elapsed())
    );
    Ok(())
}

/// Signs what a push put under `target`: the manifest, and an index's image manifests too.
fn sign_pushed(
    client: &mut Client,
    target: &Reference,
    plan: &AnyPlan,
    report: &PushReport,
    key: &SigningKey,
) -> Result<String> {
    let repository = target.repository_name();
    let mut manifests = vec![report.manifest.digest];
    if matches!(plan, AnyPlan::Index(..)) {
        manifests.extend(report.images.iter().map(|b| b.digest));
    }
    for digest in &manifests {
        sign(client, &repository, digest, key)?;
    }
    Ok(format!("; signed ({} manifests)", manifests.len()))
}

/// What a push sent, for its report line.
fn pushed_blobs(report: &PushReport, took: std::time::Duration) -> String {
    let mounted = if report.mounted > 0 {
        format!(", {} mounted from another repository", report.mounted)
    } else {
        String::new()
    };
    let first = if report.compressed_first > 0 {
        format!(
            ", {} layers compressed first to ask the registry",
            report.compressed_first
        )
    } else {
        String::new()
    };
    format!(
        "{} blobs uploaded, {} already there{mounted}{first}, {} bytes sent in {:.1} s",
        report.uploaded,
        report.skipped,
        report.bytes_sent,
        took.as_secs_f64()
    )
}

/// The documents of `dir` for each image of `plan` (an index's: each image's platform
/// directory), in plan order.
fn documents_to_attach(plan: &AnyPlan, dir: &Path) -> Result<Vec<Vec<Document>>> {
    let (plans, _) = plan.images();
    plans
        .iter()
        .map(|image| {
            let docs_dir = match plan {
                AnyPlan::Index(..) => dir.join(platform_dir(image)),
                AnyPlan::Image(_) => dir.to_owned(),
            };
            Ok(read_documents(&docs_dir)?
                .into_iter()
                .map(|d| Document {
                    media_type: d.media_type.to_owned(),
                    title: d.file.to_owned(),
                    bytes: d.bytes,
                })
                .collect())
        })
        .collect()
}

/// Attaches each image's documents to its pushed manifest; says what it did, for the report
/// line.
fn attach_documents(
    client: &mut Client,
    report: &crate::registry::push::PushReport,
    documents: Vec<Vec<Document>>,
) -> Result<String> {
    let mut count = 0;
    let mut listing = Listing::Api;
    for (docs, manifest) in documents.iter().zip(&report.images) {
        count += docs.len();
        if attach(client, manifest, oci_layout::MANIFEST_MEDIA_TYPE, docs)? == Listing::TagSchema {
            listing = Listing::TagSchema;
        }
    }
    let how = match listing {
        Listing::Api => "the referrers API",
        Listing::TagSchema => "the referrers tag schema (sha256-<digest> tags)",
    };
    Ok(format!("; {count} documents attached through {how}"))
}

/// The document of type `media_type` attached to the image `reference` (through an index,
/// the image for `platform`).
pub(super) fn attached_document(
    reference: &str,
    media_type: &str,
    platform: &PlatformArgs,
    tls: &TlsArgs,
) -> Result<Vec<u8>> {
    let target = Reference::parse(reference)?;
    let mut client = Client::new(&target, &tls.connection())?;
    let digest = resolve_platform(&mut client, &target.reference, &platform.wanted()?)?;
    let listed = referrers(&mut client, &digest, Some(media_type))?;
    let Some(found) = listed
        .iter()
        .filter_map(|d| d["digest"].as_str().and_then(Digest::parse))
        .next()
    else {
        bail!("{reference} ({digest}) has no {media_type} attached (strata push --attach attaches an image's sbom)");
    };
    Ok(document_of(&mut client, &found)?)
}

/// Platform options shared by `pull` and `prefetch`.
#[derive(Debug, clap::Args)]
pub(super) struct PlatformArgs {
    /// Operating system of the image to take from a multi-platform index.
    #[arg(long, default_value = "linux")]
    os: String,
    /// Architecture (GOARCH: amd64, arm64, ...) to take from a multi-platform index; this
    /// machine's by default.
    #[arg(long)]
    arch: Option<String>,
    /// CPU variant (v7, v8, ...); any when not given.
    #[arg(long)]
    variant: Option<String>,
}

impl PlatformArgs {
    fn wanted(&self) -> Result<Wanted> {
        let this_machine = format!("{}-linux", std::env::consts::ARCH);
        Ok(Wanted::for_system(
            self.os.clone(),
            self.arch.clone(),
            self.variant.clone(),
            &this_machine,
        )?)
    }
}

/// `strata pull REF`: the image to a file (or stdout), as `pullImage` writes it.
pub(super) fn pull_by_hand(
    reference: &str,
    platform: &PlatformArgs,
    repo_tag: Option<&str>,
    output: Option<&Path>,
    tls: &TlsArgs,
) -> Result<()> {
    let parsed = Reference::parse(reference)?;
    let repo_tag = match repo_tag {
        Some(t) => t.to_owned(),
        None => default_repo_tag(reference, &parsed),
    };
    let wanted = platform.wanted()?;
    let mut client = Client::new(&parsed, &tls.connection())?;
    match output {
        Some(path) => pull_to_file(&mut client, &parsed.reference, &wanted, &repo_tag, path),
        None => {
            let stdout = io::stdout();
            if io::IsTerminal::is_terminal(&stdout) {
                bail!("stdout is a terminal; give `--output FILE` or pipe the image into `docker load`");
            }
            let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
            pull(
                &mut client,
                &parsed.reference,
                &wanted,
                &repo_tag,
                &mut out,
                &|total, layers| Progress::start("pull", Some(total), layers),
            )?;
            Ok(())
        }
    }
}

/// Pulls into `path`, whole or not at all (`WholeFile`): a failed pull leaves a file that was
/// there untouched.
fn pull_to_file(
    client: &mut Client,
    reference: &str,
    wanted: &Wanted,
    repo_tag: &str,
    path: &Path,
) -> Result<()> {
    let mut file = WholeFile::create(path)?;
    let progress = |total, layers| Progress::start("pull", Some(total), layers);
    let pulled = pull(client, reference, wanted, repo_tag, &mut file, &progress)?;
    file.finish()?;
    report(&pulled);
    Ok(())
}

fn report(p: &Pulled) {
    eprintln!(
        "pulled {} (image manifest {}): {} layers, {} bytes",
        p.digest, p.manifest, p.layers, p.bytes
    );
}

/// `name:tag` for an image pulled by hand: the reference as written, digest dropped.
fn default_repo_tag(written: &str, parsed: &Reference) -> String {
    let name = name_as_written(written);
    if parsed.is_digest() {
        format!("{name}:latest")
    } else {
        format!("{name}:{}", parsed.reference)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullAttrs {
    image_name: String,
    image_digest: String,
    os: String,
    /// null: that of `image_system`.
    arch: Option<String>,
    image_system: String,
    variant: Option<String>,
    final_image_name: String,
    final_image_tag: String,
    tls_verify: bool,
}

/// `pullImage`'s builder (a fixed-output derivation).
pub(super) fn pull_builder(attrs: Option<&Path>) -> Result<()> {
    let attrs = Attrs::load(attrs)?;
    let a: PullAttrs = attrs.parse()?;
    if !a.image_digest.starts_with("sha256:") {
        bail!(
            "`imageDigest` must be a sha256 digest (sha256:...), got {:?}",
            a.image_digest
        );
    }
    let reference = Reference::parse(&format!("{}@{}", a.image_name, a.image_digest))
        .with_context(|| "`imageName` or `imageDigest`".to_owned())?;
    let wanted = Wanted::for_system(a.os, a.arch, a.variant, &a.image_system)?;
    // tlsVerify = true is pullImage's default, not a demand: loopback stays docker's way.
    let connection = Connection::new(TlsOptions {
        verify: (!a.tls_verify).then_some(false),
        ..TlsOptions::default()
    });
    let mut client = Client::new(&reference, &connection)?;
    let repo_tag = format!("{}:{}", a.final_image_name, a.final_image_tag);
    pull_to_file(
        &mut client,
        &reference.reference,
        &wanted,
        &repo_tag,
        &attrs.output("out")?,
    )
}

/// `strata prefetch REF`: pulls the image without keeping it and prints the `pullImage`
/// expression (digest and hash) that fetches it.
pub(super) fn prefetch(
    reference: &str,
    platform: &PlatformArgs,
    final_image_name: Option<&str>,
    final_image_tag: Option<&str>,
    tls: &TlsArgs,
    json: bool,
) -> Result<()> {
    let parsed = Reference::parse(reference)?;
    let image_name = name_as_written(reference);
    let wanted = platform.wanted()?;
    let mut client = Client::new(&parsed, &tls.connection())?;
    let digest: Digest = if parsed.is_digest() {
        Digest::parse(&parsed.reference).ok_or_else(|| {
            anyhow::anyhow!("`{reference}`: strata fetches by sha256 digests only")
        })?
    } else {
        resolve(&mut client, &parsed.reference)?
    };
    let final_name = final_image_name.unwrap_or(&image_name).to_owned();
    let final_tag = match final_image_tag {
        Some(t) => t.to_owned(),
        None if parsed.is_digest() => "latest".to_owned(),
        None => parsed.reference.clone(),
    };
    let mut sink = HashingWriter::new(io::sink());
    let progress = |total, layers| Progress::start("prefetch", Some(total), layers);
    let pulled = pull(
        &mut client,
        &digest.to_string(),
        &wanted,
        &format!("{final_name}:{final_tag}"),
        &mut sink,
        &progress,
    )?;
    report(&pulled);
    let (_, archive) = sink.finish();
    let hash = format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(archive.digest.0)
    );
    let mut fields: Vec<(&str, Value)> = vec![
        ("imageName", image_name.into()),
        ("imageDigest", digest.to_string().into()),
        ("hash", hash.into()),
        ("finalImageName", final_name.into()),
        ("finalImageTag", final_tag.into()),
    ];
    // Always: the hash is that of this platform's image, whatever system evaluates the call.
    fields.push(("os", wanted.os.clone().into()));
    fields.push(("arch", wanted.architecture.clone().into()));
    if let Some(v) = &wanted.variant {
        fields.push(("variant", v.clone().into()));
    }
    if tls.tls_verify == Some(false) {
        fields.push(("tlsVerify", false.into()));
    }
    print_expression(fields, json)
}

/// Prints the `pullImage` arguments `fields` (strings and booleans) as a Nix expression, or as
/// JSON.
fn print_expression(fields: Vec<(&str, Value)>, json: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let map: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::to_writer_pretty(&mut out, &map)?;
        writeln!(out)?;
    } else {
        writeln!(out, "pullImage {{")?;
        for (k, v) in fields {
            let v = match v {
                Value::String(text) => nix_string(&text),
                other => other.to_string(),
            };
            writeln!(out, "  {k} = {v};")?;
        }
        writeln!(out, "}}")?;
    }
    Ok(())
}

/// `text` as a Nix string literal.
fn nix_string(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '$' => s.push_str("\\$"),
            '\n' => s.push_str("\\n"),
            _ => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_written_lose_tag_and_digest_only() {
        assert_eq!(
            name_as_written("docker://localhost:5000/a/b:v1"),
            "localhost:5000/a/b"
        );
        assert_eq!(
            name_as_written("localhost:5000/a@sha256:00"),
            "localhost:5000/a"
        );
        assert_eq!(name_as_written("hello"), "hello");
        assert_eq!(nix_string(r#"a"${b}"#), r#""a\"\${b}""#);
    }
}
