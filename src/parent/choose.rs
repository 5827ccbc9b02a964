//! Choosing the image to import in a parent archive: `manifest.json` (docker-archive) or
//! `index.json` (OCI layout), by `name:tag` or position, and the layers it names with the
//! digests its config and manifest claim.

use super::members::Members;
use super::{member_error, ParentError};
use crate::digest::{Blob, Digest};
use crate::image::oci_layout::WireDescriptor as Descriptor;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct OciIndex {
    pub(super) manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// One layer to import: the member holding it, what its config says its content hashes to,
/// and (OCI) the digest and size of the member itself.
pub(super) struct LayerToImport {
    pub(super) member: String,
    pub(super) diff_id: Digest,
    pub(super) blob: Option<Blob>,
}

/// `name:tag` without the default registry prefixes, for comparing references.
fn normal_reference(reference: &str) -> &str {
    ["docker.io/library/", "docker.io/", "localhost/"]
        .iter()
        .find_map(|p| reference.strip_prefix(p))
        .unwrap_or(reference)
}

fn parse_digest(member: &str, field: &str, text: &str) -> Result<Digest, ParentError> {
    Digest::parse(text).ok_or_else(|| {
        member_error(
            member,
            format!("`{field}` is not a sha256 digest: {text:?}"),
        )
    })
}

fn blob_member(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// An image's config, its layers to import and its `name:tag` references.
pub(super) type Chosen = (Value, Vec<LayerToImport>, Vec<String>);

pub(super) fn docker_layers(
    members: &Members,
    pick: Option<&str>,
    at: usize,
) -> Result<Chosen, ParentError> {
    let manifest: Vec<DockerManifestEntry> = members.json("manifest.json")?;
    let entry = match pick {
        None => manifest.get(at),
        Some(reference) => manifest.iter().find(|e| {
            e.repo_tags
                .iter()
                .flatten()
                .any(|t| normal_reference(t) == normal_reference(reference))
        }),
    };
    let entry = entry.ok_or_else(|| {
        let tags: Vec<&str> = manifest
            .iter()
            .flat_map(|e| e.repo_tags.iter().flatten().map(String::as_str))
            .collect();
        match pick {
            None => ParentError::Image("`manifest.json` lists no image".to_owned()),
            Some(r) => ParentError::Image(format!(
                "no image `{r}` in the archive (it has: {})",
                tags.join(", ")
            )),
        }
    })?;
    let config: Value = members.json(&entry.config)?;
    let diff_ids = diff_ids(&entry.config, &config)?;
    if diff_ids.len() != entry.layers.len() {
        return Err(member_error(
            &entry.config,
            format!(
                "{} diff_ids, but `manifest.json` lists {} layers",
                diff_ids.len(),
                entry.layers.len()
            ),
        ));
    }
    let layers = entry
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(member, diff_id)| LayerToImport {
            member: member.clone(),
            diff_id,
            blob: None,
        })
        .collect();
    Ok((config, layers, entry.repo_tags.clone().unwrap_or_default()))
}

fn diff_ids(member: &str, config: &Value) -> Result<Vec<Digest>, ParentError> {
    let ids = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| member_error(member, "no `rootfs.diff_ids`"))?;
    ids.iter()
        .map(|v| parse_digest(member, "rootfs.diff_ids", v.as_str().unwrap_or_default()))
        .collect()
}

pub(super) fn oci_layers(
    members: &Members,
    pick: Option<&str>,
    at: usize,
) -> Result<Chosen, ParentError> {
    let index: OciIndex = members.json("index.json")?;
    let wanted = pick.map(normal_reference);
    let chosen = match wanted {
        None => index.manifests.get(at),
        Some(reference) => index.manifests.iter().find(|d| {
            let tag = reference.rsplit_once(':').map_or(reference, |(_, t)| t);
            d.annotations.iter().any(|(k, v)| match k.as_str() {
                "org.opencontainers.image.ref.name" => v == tag || normal_reference(v) == reference,
                "io.containerd.image.name" => normal_reference(v) == reference,
                _ => false,
            })
        }),
    }
    .ok_or_else(|| {
        ParentError::Image(match pick {
            None => "`index.json` lists no image".to_owned(),
            Some(r) => format!("no image `{r}` in the OCI layout's `index.json`"),
        })
    })?;
    if chosen.media_type.contains("index") || chosen.media_type.contains("manifest.list") {
        return Err(member_error(
            "index.json",
            "the image is a multi-platform index; give a single-platform image",
        ));
    }
    let manifest_member = blob_member(&chosen.digest);
    let digest = parse_digest("index.json", "digest", &chosen.digest)?;
    let manifest: OciManifest =
        serde_json::from_slice(&members.verified(&manifest_member, &digest)?)
            .map_err(|e| member_error(&manifest_member, format!("malformed manifest: {e}")))?;
    let config_member = blob_member(&manifest.config.digest);
    let config_digest = parse_digest(&manifest_member, "config.digest", &manifest.config.digest)?;
    let config: Value = serde_json::from_slice(&members.verified(&config_member, &config_digest)?)
        .map_err(|e| member_error(&config_member, format!("malformed config: {e}")))?;
    let diff_ids = diff_ids(&config_member, &config)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(member_error(
            &config_member,
            format!(
                "{} diff_ids, but the manifest lists {} layers",
                diff_ids.len(),
                manifest.layers.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
        layers.push(LayerToImport {
            member: blob_member(&desc.digest),
            diff_id,
            blob: Some(Blob {
                digest: parse_digest(&manifest_member, "layers[].digest", &desc.digest)?,
                size: desc.size,
            }),
        });
    }
    let repo_tags = chosen
        .annotations
        .get("io.containerd.image.name")
        .cloned()
        .into_iter()
        .collect();
    Ok((config, layers, repo_tags))
}
