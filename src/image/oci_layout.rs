//! The OCI image layout written inside every archive, beside `manifest.json`, as `docker save`
//! writes it since Docker 25: blobs under `blobs/sha256/`, each image's OCI manifest among
//! them, `index.json` naming the manifests and `oci-layout`. `manifest.json` points at the
//! same blob files, so one archive is both a docker-archive and an OCI layout archive.
//!
//! Manifests and indexes are built with `oci-spec`'s types and written with sorted keys:
//! their annotations are hash maps, and the bytes must not depend on iteration order.

use crate::compress::{Compression, LayerBlob};
use crate::digest::{Blob, Digest};
use oci_spec::image::{
    Arch, DescriptorBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// The `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Annotation naming an image's tag in an index (skopeo's and umoci's `oci:DIR:TAG`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation naming an image's full `name:tag` (containerd's and Docker's).
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// A blob's member name.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The platform an image runs on, for its index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// GOARCH name.
    pub architecture: String,
    /// GOOS name.
    pub os: String,
    /// CPU variant, if any.
    pub variant: Option<String>,
}

/// Media type of the manifests [`manifest`] writes.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image manifest (OCI) for `config` and `layers` (bottom to top), all stored as `media`
/// (none of them zstd:chunked, whose descriptors need their TOCs: [`manifest_of`]).
pub fn manifest(config: &Blob, layers: &[Blob], media: Compression) -> Vec<u8> {
    let layers: Vec<LayerBlob> = layers.iter().map(|l| LayerBlob::plain(*l, media)).collect();
    manifest_of(config, &layers)
}

/// An image manifest (OCI) for `config` and `layers` (bottom to top), each with its media
/// type and, for zstd:chunked, the annotations locating its TOC.
pub fn manifest_of(config: &Blob, layers: &[LayerBlob]) -> Vec<u8> {
    let layers = layers
        .iter()
        .map(|l| {
            let mut d = descriptor(l.compression.layer_media_type(), &l.blob);
            if let Some(toc) = &l.toc {
                d.set_annotations(Some(toc.annotations().into_iter().collect()));
            }
            d
        })
        .collect::<Vec<_>>();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, config))
        .layers(layers)
        .build()
        .expect("every required manifest field is set");
    sorted_json(&manifest)
}

/// One entry of an index: a manifest (or a nested index), its platform and its `name:tag`.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// The manifest blob.
    pub blob: Blob,
    /// Its media type: an OCI manifest or index, or a Docker schema 2 manifest a registry
    /// served.
    pub media_type: MediaType,
    /// The platform of the image, when it has one.
    pub platform: Option<Platform>,
    /// `name:tag`; empty for an image without a name.
    pub repo_tag: String,
}

/// An image index naming `entries`.
pub fn index(entries: &[IndexEntry]) -> Vec<u8> {
    let manifests = entries
        .iter()
        .map(|e| {
            let mut d = descriptor(e.media_type.clone(), &e.blob);
            if let Some(p) = &e.platform {
                let mut platform = PlatformBuilder::default()
                    .architecture(Arch::from(p.architecture.as_str()))
                    .os(Os::from(p.os.as_str()));
                if let Some(v) = &p.variant {
                    platform = platform.variant(v.clone());
                }
                d.set_platform(Some(platform.build().expect("architecture and os are set")));
            }
            if let Some((_, tag)) = split_tag(&e.repo_tag) {
                d.set_annotations(Some(HashMap::from([
                    (REF_NAME.to_owned(), tag.to_owned()),
                    (IMAGE_NAME.to_owned(), e.repo_tag.clone()),
                ])));
            }
            d
        })
        .collect::<Vec<_>>();
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .expect("every required index field is set");
    sorted_json(&index)
}

/// `name:tag` split at the tag's colon (a registry port's colon is followed by a `/`);
/// `None` for an empty reference.
pub fn split_tag(repo_tag: &str) -> Option<(&str, &str)> {
    match repo_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') && !name.is_empty() => Some((name, tag)),
        _ if repo_tag.is_empty() => None,
        _ => Some((repo_tag, "latest")),
    }
}

fn descriptor(media: MediaType, blob: &Blob) -> oci_spec::image::Descriptor {
    let digest: oci_spec::image::Digest = blob
        .digest
        .to_string()
        .parse()
        .expect("a sha256 digest is a valid OCI digest");
    DescriptorBuilder::default()
        .media_type(media)
        .digest(digest)
        .size(blob.size)
        .build()
        .expect("every required descriptor field is set")
}

/// A descriptor as archives and registries write it (OCI and Docker schema 2 alike), read
/// leniently: the fields strata looks at.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireDescriptor {
    #[serde(default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) annotations: HashMap<String, String>,
    #[serde(default)]
    pub(crate) platform: Option<WirePlatform>,
}

/// A descriptor's `platform`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct WirePlatform {
    pub(crate) architecture: String,
    pub(crate) os: String,
    #[serde(default)]
    pub(crate) variant: Option<String>,
}

/// Compact JSON with every object's keys sorted, whatever the maps' iteration order.
fn sorted_json(value: &impl Serialize) -> Vec<u8> {
    fn sort(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.sort_keys();
                map.values_mut().for_each(sort);
            }
            Value::Array(items) => items.iter_mut().for_each(sort),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(value).expect("OCI types serialise");
    sort(&mut v);
    serde_json::to_vec(&v).expect("JSON values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(byte: u8, size: u64) -> Blob {
        Blob {
            digest: Digest([byte; 32]),
            size,
        }
    }

    #[test]
    fn manifest_and_index_are_sorted_and_stable() {
        let m = manifest(&blob(1, 10), &[blob(2, 20), blob(3, 30)], Compression::None);
        let v: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(
            v["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(v["layers"][1]["size"], 30);
        assert_eq!(
            v["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar"
        );
        let entry = IndexEntry {
            blob: blob(4, 40),
            media_type: MediaType::ImageManifest,
            platform: Some(Platform {
                architecture: "arm".into(),
                os: "linux".into(),
                variant: Some("v7".into()),
            }),
            repo_tag: "localhost:5000/a:v1".into(),
        };
        let first = index(std::slice::from_ref(&entry));
        for _ in 0..20 {
            assert_eq!(index(std::slice::from_ref(&entry)), first);
        }
        let text = String::from_utf8(first).unwrap();
        assert!(
            text.contains(r#""annotations":{"io.containerd.image.name":"localhost:5000/a:v1","org.opencontainers.image.ref.name":"v1"}"#),
            "{text}"
        );
        assert!(text.contains(r#""platform":{"architecture":"arm","os":"linux","variant":"v7"}"#));
        assert_eq!(
            split_tag("localhost:5000/a"),
            Some(("localhost:5000/a", "latest"))
        );
    }
}
