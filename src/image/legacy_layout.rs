//! Docker's v1.0 archive layout, written beside `manifest.json` by `buildImage` for tools
//! that still read it: a directory per layer named by its legacy id, holding `layer.tar`,
//! `VERSION` (`1.0`) and `json`, and a `repositories` file naming the top layer of each
//! image.
//!
//! A layer's `json` carries its id, its `parent` (all but the bottom layer), `created`, the
//! platform, its tarsum as `checksum` (from the layer's record) and the image's runtime
//! `config`, as nixpkgs' buildImage writes it. The id is the sha256 of that JSON without the
//! `id` field, so it names the layer together with everything below it; the same image gives
//! the same ids, and images that share a chain of layers share their directories.

use crate::digest::Digest;
use crate::image::oci_layout::split_tag;
use crate::plan::ImagePlan;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Content of every layer's `VERSION` file.
pub const VERSION: &[u8] = b"1.0";

/// One layer's directory in the legacy layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyLayer {
    /// The legacy id: 64 hex digits, the directory's name.
    pub id: String,
    /// The `json` file's bytes.
    pub json: Vec<u8>,
}

/// The fields of a legacy layer `json`, in the order Docker writes them.
#[derive(Serialize)]
struct LayerJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    created: &'a str,
    config: &'a Value,
    architecture: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum: Option<&'a str>,
}

/// The legacy directories of `plan`'s layers, bottom to top, for an image created at
/// `created`.
pub fn legacy_layers(plan: &ImagePlan, created: &str) -> Vec<LegacyLayer> {
    let mut layers: Vec<LegacyLayer> = Vec::with_capacity(plan.layers.len());
    for layer in &plan.layers {
        let mut json = LayerJson {
            id: None,
            parent: layers.last().map(|l| l.id.as_str()),
            created,
            config: &plan.config,
            architecture: &plan.architecture,
            variant: plan.variant.as_deref(),
            os: &plan.os,
            checksum: layer.record.tarsum.as_deref(),
        };
        let id = Digest::of(&to_bytes(&json)).hex();
        json.id = Some(&id);
        let json = to_bytes(&json);
        layers.push(LegacyLayer { id, json });
    }
    layers
}

/// The `repositories` file: `{name: {tag: top layer id}}` for each `(name:tag, top id)`;
/// images without a name are left out.
pub fn repositories<'a>(images: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut repos: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (repo_tag, top) in images {
        if let Some((name, tag)) = split_tag(repo_tag) {
            repos.entry(name).or_default().insert(tag, top);
        }
    }
    serde_json::to_vec(&repos).expect("repositories serialisation cannot fail")
}

fn to_bytes(json: &LayerJson) -> Vec<u8> {
    serde_json::to_vec(json).expect("layer json serialisation cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_by_name_then_tag() {
        assert_eq!(
            String::from_utf8(repositories([
                ("b:2", "y"),
                ("a:1", "x"),
                ("b:1", "z"),
                ("", "w")
            ]))
            .unwrap(),
            r#"{"a":{"1":"x"},"b":{"1":"z","2":"y"}}"#
        );
    }
}
