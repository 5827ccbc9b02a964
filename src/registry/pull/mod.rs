//! Pulling an image from a registry into an archive (`pullImage`, `strata prefetch`).
//!
//! The reference's manifest is fetched and checked against the digest asked for; an index
//! (OCI) or manifest list (Docker) is resolved to the wanted os/architecture/variant. The
//! image's blobs are then streamed into the archive exactly as the registry stores them
//! (compressed layers stay compressed), each hashed on the way and refused when its bytes
//! differ from its digest or size. The archive is strata's usual pair of layouts: an OCI
//! image layout (the registry's manifest, config and layers as blobs) and a docker-archive
//! (`manifest.json`) naming the same blob files, so `docker load`, `podman load`, skopeo and
//! `fromImage` all read it. Its bytes depend only on the manifest pulled and the name given:
//! a fixed-output derivation can pin them.

use crate::digest::{Blob, Digest};
use crate::image::archive::metadata::docker_manifest;
use crate::image::oci_layout::{
    self, blob_path, IndexEntry, Platform, WireDescriptor as Descriptor, WirePlatform, OCI_LAYOUT,
};
use crate::progress::Progress;
use crate::registry::client::{Client, RegistryError};
use crate::tar::header::Stamp;
use crate::tar::members::MemberWriter;
use oci_spec::image::MediaType;
use serde::Deserialize;
#[cfg(test)]
use serde_json::Value;
use std::io::{self, Read, Write};

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registry has no manifest under the reference.
    #[error("registry {host}: no manifest `{reference}` in repository `{repository}`")]
    NotFound {
        /// host[:port].
        host: String,
        /// Repository.
        repository: String,
        /// Tag or digest.
        reference: String,
    },
    /// A manifest or index cannot be used.
    #[error("manifest {digest}: {reason}")]
    Manifest {
        /// The manifest's reference or digest.
        digest: String,
        /// What is wrong with it.
        #[source]
        reason: ManifestFault,
    },
    /// A blob's bytes are not what its digest says.
    #[error("{what} {digest}: the registry sent {found}")]
    BlobMismatch {
        /// `layer N` or `config`.
        what: String,
        /// The digest asked for.
        digest: Digest,
        /// What arrived instead.
        found: String,
    },
    /// The index has no image for the platform wanted.
    #[error("{reference} has no image for {wanted}; it has: {available}")]
    NoPlatform {
        /// The reference pulled.
        reference: String,
        /// os/architecture[/variant] asked for.
        wanted: String,
        /// What the index lists.
        available: String,
    },
    /// Writing the archive failed.
    #[error("cannot write the archive: {0}")]
    Write(#[source] io::Error),
}

/// What is wrong with a manifest or index the registry sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestFault {
    /// Not JSON of a manifest's shape.
    #[error("not a manifest: {0}")]
    NotJson(#[source] serde_json::Error),
    /// Its bytes hash to another digest than the one asked for.
    #[error("the registry sent bytes whose digest is {0}")]
    Digest(Digest),
    /// Its size is not the one the index naming it gives.
    #[error("{got} bytes, but the index that names it gives {given}")]
    Size {
        /// Bytes received.
        got: usize,
        /// Bytes the index gives.
        given: u64,
    },
    /// An index, or a schema strata does not pull, where an image manifest should be.
    #[error("not an image manifest (only Docker schema 2 and OCI manifests are supported)")]
    NotImage,
    /// No `config` descriptor.
    #[error("no `config`")]
    NoConfig,
    /// A layer of a media type strata cannot pull.
    #[error("layer {index} has media type `{media_type}`, which strata cannot pull")]
    LayerType {
        /// Position from the bottom, from 1.
        index: usize,
        /// Its media type.
        media_type: String,
    },
    /// A descriptor's digest is not sha256.
    #[error("`{0}` is not a sha256 digest")]
    NotSha256(String),
    /// The index's entry for the platform wanted cannot be used.
    #[error("its entry for {wanted}: {fault}")]
    Entry {
        /// os/architecture[/variant].
        wanted: String,
        /// What is wrong with the entry.
        fault: Box<ManifestFault>,
    },
    /// The image's config is not JSON.
    #[error("its config is not JSON: {0}")]
    ConfigNotJson(#[source] serde_json::Error),
    /// The config lists another number of layers than the manifest.
    #[error("it lists {layers} layers but its config {diff_ids} diff_ids")]
    LayerCount {
        /// Layers in the manifest.
        layers: usize,
        /// `diff_ids` in the config.
        diff_ids: usize,
    },
}

/// The platform to resolve an index to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// GOOS name (`linux`).
    pub os: String,
    /// GOARCH name (`amd64`, `arm64`).
    pub architecture: String,
    /// CPU variant (`v7`, `v8`); any when `None`.
    pub variant: Option<String>,
}

impl Wanted {
    /// The platform to take: `architecture` and `variant` when given, else those of images
    /// built for the Nix `system` (its variant only where none is given).
    pub fn for_system(
        os: String,
        architecture: Option<String>,
        variant: Option<String>,
        system: &str,
    ) -> Result<Wanted, crate::image::config::SettingError> {
        let (architecture, variant) = match architecture {
            Some(arch) => (arch, variant),
            None => {
                let (arch, of_system) = crate::image::config::architecture_of_system(system)?;
                (arch, variant.or(of_system))
            }
        };
        Ok(Wanted {
            os,
            architecture,
            variant,
        })
    }
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What a pull fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// Digest of the manifest the reference named (an index, or the image manifest).
    pub digest: Digest,
    /// Digest of the image manifest for the platform.
    pub manifest: Digest,
    /// Layers in the image.
    pub layers: usize,
    /// Bytes of blobs downloaded.
    pub bytes: u64,
}

/// An image manifest, index or manifest list: the fields pulling needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyManifest {
    schema_version: u32,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl AnyManifest {
    /// Its media type, from its own bytes (never from the HTTP header, which a mirror may
    /// set otherwise: the archive must depend on the manifest alone). OCI allows leaving it
    /// out; the shape then tells.
    fn media(&self) -> String {
        match (self.media_type.as_str(), self.manifests.is_empty()) {
            ("", false) => "application/vnd.oci.image.index.v1+json".to_owned(),
            ("", true) => "application/vnd.oci.image.manifest.v1+json".to_owned(),
            (media, _) => media.to_owned(),
        }
    }

    fn is_index(&self) -> bool {
        let media = self.media();
        media.contains("index") || media.contains("manifest.list") || !self.manifests.is_empty()
    }
}

const LAYER_TYPES: &[&str] = &[
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
];

/// Resolves `reference` (tag or digest) in `client`'s repository to the image for `wanted`
/// and writes it to `out` as an archive naming it `repo_tag`. Progress is reported by what
/// `progress` starts once the layers' count and size are known.
pub fn pull(
    client: &mut Client,
    reference: &str,
    wanted: &Wanted,
    repo_tag: &str,
    out: &mut dyn Write,
    progress: &dyn Fn(u64, usize) -> Progress,
) -> Result<Pulled, PullError> {
    let (top, manifest) = resolve_image(client, reference, wanted)?;
    let image = ImageBlobs::of(&manifest)?;
    let config_bytes = client.get_blob(&image.config.digest)?;
    check_whole("config", &image.config, &config_bytes)?;
    let platform =
        platform_of(&config_bytes, image.layers.len()).map_err(|fault| manifest.error(fault))?;
    let total: u64 = image
        .layers
        .iter()
        .fold(0u64, |t, l| t.saturating_add(l.size));
    let progress = &progress(total, image.layers.len());
    let mut members = MemberWriter::new(out, Stamp::root(1));
    let written = copy_layers(client, &image.layers, &mut members, progress)?;
    let index = oci_layout::index(&[IndexEntry {
        blob: manifest.blob(),
        media_type: MediaType::from(manifest.parsed.media().as_str()),
        platform: Some(platform),
        repo_tag: repo_tag.to_owned(),
    }]);
    let config_name = blob_path(&image.config.digest);
    let layer_names: Vec<String> = image.layers.iter().map(|l| blob_path(&l.digest)).collect();
    let docker_manifest =
        docker_manifest(&[(config_name.clone(), repo_tag.to_owned(), layer_names)]);
    // Each blob once, even when a registry lists the same bytes in two roles.
    let mut rest: Vec<(String, &[u8])> = Vec::new();
    if !written.contains(&image.config.digest) {
        rest.push((config_name, &config_bytes));
    }
    if manifest.digest != image.config.digest && !written.contains(&manifest.digest) {
        rest.push((blob_path(&manifest.digest), &manifest.bytes));
    }
    rest.push(("index.json".to_owned(), &index));
    rest.push(("oci-layout".to_owned(), OCI_LAYOUT));
    rest.push(("manifest.json".to_owned(), &docker_manifest));
    for (name, data) in rest {
        members.file(&name, data).map_err(PullError::Write)?;
    }
    members.finish().map_err(PullError::Write)?;
    progress.finish();
    Ok(Pulled {
        digest: top,
        manifest: manifest.digest,
        layers: image.layers.len(),
        bytes: total.saturating_add(image.config.size),
    })
}

/// A manifest fetched from the registry: its digest, bytes and parsed fields.
struct Fetched {
    digest: Digest,
    bytes: Vec<u8>,
    parsed: AnyManifest,
}

impl Fetched {
    fn blob(&self) -> Blob {
        Blob {
            digest: self.digest,
            size: self.bytes.len() as u64,
        }
    }

    fn error(&self, reason: ManifestFault) -> PullError {
        PullError::Manifest {
            digest: self.digest.to_string(),
            reason,
        }
    }
}

/// The image manifest `reference` names for `wanted`, following indexes; also the digest of
/// what `reference` itself names.
/// The digest of the image manifest `reference` names: through an index, the image for
/// `wanted`.
pub fn resolve_platform(
    client: &mut Client,
    reference: &str,
    wanted: &Wanted,
) -> Result<Digest, PullError> {
    Ok(resolve_image(client, reference, wanted)?.1.digest)
}

fn resolve_image(
    client: &mut Client,
    reference: &str,
    wanted: &Wanted,
) -> Result<(Digest, Fetched), PullError> {
    let (top, bytes) = fetch_manifest(client, reference)?;
    let mut fetched = Fetched {
        digest: top,
        parsed: parse_manifest(reference, &bytes)?,
        bytes,
    };
    // An index may name another index; three levels is more than any registry uses.
    for _ in 0..3 {
        if !fetched.parsed.is_index() {
            break;
        }
        let chosen = choose(client, &fetched.digest, &fetched.parsed, wanted)?;
        let (digest, bytes) = fetch_manifest(client, &chosen.digest.to_string())?;
        if bytes.len() as u64 != chosen.size {
            return Err(PullError::Manifest {
                digest: chosen.digest.to_string(),
                reason: ManifestFault::Size {
                    got: bytes.len(),
                    given: chosen.size,
                },
            });
        }
        fetched = Fetched {
            digest,
            parsed: parse_manifest(&digest.to_string(), &bytes)?,
            bytes,
        };
    }
    if fetched.parsed.schema_version != 2 || fetched.parsed.is_index() {
        return Err(fetched.error(ManifestFault::NotImage));
    }
    Ok((top, fetched))
}

/// The blobs an image manifest names.
struct ImageBlobs {
    config: Blob,
    layers: Vec<Blob>,
}

impl ImageBlobs {
    fn of(manifest: &Fetched) -> Result<ImageBlobs, PullError> {
        let bad = |fault| manifest.error(fault);
        let m = &manifest.parsed;
        let config = m
            .config
            .as_ref()
            .ok_or_else(|| bad(ManifestFault::NoConfig))?;
        let config = blob_of_descriptor(config).map_err(bad)?;
        let mut layers = Vec::with_capacity(m.layers.len());
        for (i, l) in m.layers.iter().enumerate() {
            if !LAYER_TYPES.contains(&l.media_type.as_str()) {
                return Err(bad(ManifestFault::LayerType {
                    index: i + 1,
                    media_type: l.media_type.clone(),
                }));
            }
            layers.push(blob_of_descriptor(l).map_err(bad)?);
        }
        Ok(ImageBlobs { config, layers })
    }
}

/// Streams each distinct layer blob into the archive; returns the digests written.
fn copy_layers<W: Write>(
    client: &mut Client,
    layers: &[Blob],
    members: &mut MemberWriter<W>,
    progress: &Progress,
) -> Result<Vec<Digest>, PullError> {
    let mut written: Vec<Digest> = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        if !written.contains(&layer.digest) {
            members
                .begin_file(&blob_path(&layer.digest), layer.size)
                .map_err(PullError::Write)?;
            copy_blob(
                client,
                &format!("layer {}", i + 1),
                layer,
                members,
                progress,
            )?;
            members.end_file(layer.size).map_err(PullError::Write)?;
            written.push(layer.digest);
        }
        progress.layer_done();
    }
    Ok(written)
}

/// The digest a reference resolves to now: that of the manifest (or index) under it.
pub fn resolve(client: &mut Client, reference: &str) -> Result<Digest, PullError> {
    Ok(fetch_manifest(client, reference)?.0)
}

/// Fetches the manifest under `reference`, checked against it when it is a digest.
fn fetch_manifest(client: &mut Client, reference: &str) -> Result<(Digest, Vec<u8>), PullError> {
    let Some((_, bytes)) = client.get_manifest(reference)? else {
        let (host, repository) = client.location();
        return Err(PullError::NotFound {
            host,
            repository,
            reference: reference.to_owned(),
        });
    };
    let digest = Digest::of(&bytes);
    if reference.starts_with("sha256:") && digest.to_string() != reference {
        return Err(PullError::Manifest {
            digest: reference.to_owned(),
            reason: ManifestFault::Digest(digest),
        });
    }
    Ok((digest, bytes))
}

fn parse_manifest(reference: &str, bytes: &[u8]) -> Result<AnyManifest, PullError> {
    serde_json::from_slice(bytes).map_err(|e| PullError::Manifest {
        digest: reference.to_owned(),
        reason: ManifestFault::NotJson(e),
    })
}

/// The manifest the index (`index_digest`) names for `wanted`.
fn choose(
    client: &Client,
    index_digest: &Digest,
    index: &AnyManifest,
    wanted: &Wanted,
) -> Result<Blob, PullError> {
    let fits = |p: &WirePlatform| {
        p.os == wanted.os
            && p.architecture == wanted.architecture
            && match &wanted.variant {
                None => true,
                Some(v) => p.variant.as_deref() == Some(v.as_str()),
            }
    };
    if let Some(d) = index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(fits))
    {
        return blob_of_descriptor(d).map_err(|fault| PullError::Manifest {
            digest: index_digest.to_string(),
            reason: ManifestFault::Entry {
                wanted: wanted.to_string(),
                fault: Box::new(fault),
            },
        });
    }
    let available: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    let (host, repository) = client.location();
    Err(PullError::NoPlatform {
        reference: format!("{host}/{repository}@{index_digest}"),
        wanted: wanted.to_string(),
        available: if available.is_empty() {
            "no platforms".to_owned()
        } else {
            available.join(", ")
        },
    })
}

fn blob_of_descriptor(d: &Descriptor) -> Result<Blob, ManifestFault> {
    let digest =
        Digest::parse(&d.digest).ok_or_else(|| ManifestFault::NotSha256(d.digest.clone()))?;
    Ok(Blob {
        digest,
        size: d.size,
    })
}

/// The platform the config names; checks it lists as many layers as the manifest.
fn platform_of(config: &[u8], layers: usize) -> Result<Platform, ManifestFault> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        os: String,
        #[serde(default)]
        variant: Option<String>,
        #[serde(default)]
        rootfs: Option<RootFs>,
    }
    #[derive(Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    let c: Config = serde_json::from_slice(config).map_err(ManifestFault::ConfigNotJson)?;
    let diff_ids = c.rootfs.map_or(0, |r| r.diff_ids.len());
    if diff_ids != layers {
        return Err(ManifestFault::LayerCount { layers, diff_ids });
    }
    Ok(Platform {
        architecture: c.architecture,
        os: c.os,
        variant: c.variant,
    })
}

fn check_whole(what: &str, blob: &Blob, bytes: &[u8]) -> Result<(), PullError> {
    let found = Digest::of(bytes);
    if found != blob.digest || bytes.len() as u64 != blob.size {
        return Err(PullError::BlobMismatch {
            what: what.to_owned(),
            digest: blob.digest,
            found: format!(
                "{} bytes with digest {found}, not {} bytes",
                bytes.len(),
                blob.size
            ),
        });
    }
    Ok(())
}

/// Streams a blob into `out`, hashing it; refuses it when it is longer, shorter or other
/// than its descriptor says. A download cut off is asked for again, as often as the
/// client's connection allows, and resumed past the bytes already written (read again and
/// dropped: the digest covers the bytes written).
fn copy_blob(
    client: &mut Client,
    what: &str,
    blob: &Blob,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<(), PullError> {
    let mut hasher = crate::digest::Hasher::new();
    let mut written = 0u64;
    let mut attempt = 0;
    let mut buf = vec![0u8; 1 << 20];
    'open: loop {
        attempt += 1;
        let body = client.open_blob(&blob.digest, blob.size)?;
        let mut body = body.take(blob.size.saturating_add(1));
        let mut skip = written;
        while skip > 0 {
            let want = buf.len().min(skip as usize);
            match body.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => skip -= n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) if attempt < client.connection().attempts => {
                    std::thread::sleep(client.connection().wait_before(attempt, None));
                    continue 'open;
                }
                Err(e) => return Err(cut_off(client, what, blob, &e, attempt)),
            }
        }
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break 'open,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if attempt < client.connection().attempts => {
                    std::thread::sleep(client.connection().wait_before(attempt, None));
                    continue 'open;
                }
                Err(e) => return Err(cut_off(client, what, blob, &e, attempt)),
            };
            if written + n as u64 > blob.size {
                return Err(PullError::BlobMismatch {
                    what: what.to_owned(),
                    digest: blob.digest,
                    found: format!("more than the {} bytes its manifest gives", blob.size),
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(PullError::Write)?;
            written += n as u64;
            progress.add(n as u64);
        }
    }
    let found = hasher.finish();
    if found != *blob {
        return Err(PullError::BlobMismatch {
            what: what.to_owned(),
            digest: blob.digest,
            found: format!(
                "{} bytes with digest {}, not {} bytes",
                found.size, found.digest, blob.size
            ),
        });
    }
    Ok(())
}

/// The error for a blob download that failed on its last try.
fn cut_off(client: &Client, what: &str, blob: &Blob, e: &io::Error, attempts: u32) -> PullError {
    let (host, _) = client.location();
    RegistryError::Unreachable {
        host,
        message: format!(
            "{what} {}: {e} (timed out or cut off){}",
            blob.digest,
            crate::registry::client::tries(attempts)
        ),
        transient: true,
    }
    .into()
}

#[cfg(test)]
mod tests;
