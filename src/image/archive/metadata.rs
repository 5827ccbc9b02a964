//! The members an archive holds after its layers: each image's config and OCI manifest,
//! `index.json` (with a nested index for a multi-platform image), `oci-layout`, Docker's
//! legacy layout when asked for, and `manifest.json`.

use super::ArchiveSummary;
use crate::compress::LayerBlob;
use crate::digest::{Blob, Digest};
use crate::image::config::{ImageConfig, RootFs};
use crate::image::legacy_layout::{repositories, LegacyLayer, VERSION};
use crate::image::oci_layout::{self, blob_path, IndexEntry, Platform, OCI_LAYOUT};
use crate::plan::ImagePlan;
use crate::tar::members::MemberWriter;
use oci_spec::image::MediaType;
use serde::Serialize;
use std::io::{self, Write};

/// One image of a docker-archive's `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManifestEntry<'a> {
    pub(crate) config: &'a str,
    pub(crate) repo_tags: Vec<&'a str>,
    pub(crate) layers: &'a [String],
}

/// `manifest.json` for images given as (config member, `name:tag`, layer members); an image
/// that came without a name stays without one.
pub(crate) fn docker_manifest(images: &[(String, String, Vec<String>)]) -> Vec<u8> {
    let entries: Vec<ManifestEntry> = images
        .iter()
        .map(|(config, tag, layers)| ManifestEntry {
            config,
            repo_tags: if tag.is_empty() { vec![] } else { vec![tag] },
            layers,
        })
        .collect();
    serde_json::to_vec(&entries).expect("manifest serialisation cannot fail")
}

/// A member written after the layers.
enum Member {
    /// A file.
    Bytes(Vec<u8>),
    /// A symbolic link to this target.
    Link(String),
}

/// One image of the archive, as the layers were written.
pub(super) struct WrittenImage<'a> {
    pub(super) plan: &'a ImagePlan,
    pub(super) repo_tag: &'a str,
    pub(super) created: &'a str,
    /// Its layers' plain blobs, bottom to top.
    pub(super) blobs: Vec<Blob>,
    /// Its layers as stored, bottom to top.
    pub(super) stored: Vec<LayerBlob>,
    /// Its layers' member names.
    pub(super) layer_names: Vec<String>,
    /// Its legacy layout, when it has one.
    pub(super) legacy: Option<&'a [LegacyLayer]>,
}

/// The members after the layers, in order, each name once (a blob two images share is
/// written once).
#[derive(Default)]
pub(super) struct Metadata {
    members: Vec<(String, Member)>,
    manifest: Vec<(String, String, Vec<String>)>,
    index: Vec<IndexEntry>,
    legacy_tops: Vec<(String, String)>,
}

impl Metadata {
    /// Adds an image: its legacy directories, config and OCI manifest.
    pub(super) fn add_image(&mut self, image: WrittenImage) -> ArchiveSummary {
        if let Some(legacy) = image.legacy {
            self.add_legacy(legacy, &image.layer_names, image.repo_tag);
        }
        let config = blob_of(image_config(image.plan, image.created, &image.blobs));
        let oci_manifest = blob_of(oci_layout::manifest_of(&config.0, &image.stored));
        self.index.push(IndexEntry {
            blob: oci_manifest.0,
            media_type: MediaType::ImageManifest,
            platform: Some(Platform {
                architecture: image.plan.architecture.clone(),
                os: image.plan.os.clone(),
                variant: image.plan.variant.clone(),
            }),
            repo_tag: image.repo_tag.to_owned(),
        });
        let config_name = blob_path(&config.0.digest);
        self.manifest.push((
            config_name.clone(),
            image.repo_tag.to_owned(),
            image.layer_names,
        ));
        self.add(config_name, Member::Bytes(config.1));
        self.add(
            blob_path(&oci_manifest.0.digest),
            Member::Bytes(oci_manifest.1),
        );
        ArchiveSummary {
            layers: image.blobs,
            config: config.0.digest,
            bytes: 0,
        }
    }

    fn add_legacy(&mut self, legacy: &[LegacyLayer], layer_names: &[String], repo_tag: &str) {
        for (layer, name) in legacy.iter().zip(layer_names) {
            let dir = &layer.id;
            self.add(
                format!("{dir}/layer.tar"),
                Member::Link(format!("../{name}")),
            );
            self.add(format!("{dir}/VERSION"), Member::Bytes(VERSION.to_vec()));
            self.add(format!("{dir}/json"), Member::Bytes(layer.json.clone()));
        }
        if let Some(top) = legacy.last() {
            self.legacy_tops.push((repo_tag.to_owned(), top.id.clone()));
        }
    }

    /// Puts every image behind one index named `tag` (a multi-platform image): `index.json`
    /// names that index, `manifest.json` only the first image (`docker load` takes one image
    /// per name).
    pub(super) fn nest_index(&mut self, tag: &str) {
        for entry in &mut self.index {
            entry.repo_tag.clear();
        }
        let nested = blob_of(oci_layout::index(&self.index));
        self.index = vec![IndexEntry {
            blob: nested.0,
            media_type: MediaType::ImageIndex,
            platform: None,
            repo_tag: tag.to_owned(),
        }];
        self.add(blob_path(&nested.0.digest), Member::Bytes(nested.1));
        self.manifest.truncate(1);
    }

    /// Writes the members, then the archive's top-level files.
    pub(super) fn write<W: Write>(mut self, out: &mut MemberWriter<W>) -> io::Result<()> {
        let index = oci_layout::index(&self.index);
        self.add("index.json".to_owned(), Member::Bytes(index));
        self.add("oci-layout".to_owned(), Member::Bytes(OCI_LAYOUT.to_vec()));
        if !self.legacy_tops.is_empty() {
            let tops = self
                .legacy_tops
                .iter()
                .map(|(t, id)| (t.as_str(), id.as_str()));
            let repositories = repositories(tops);
            self.add("repositories".to_owned(), Member::Bytes(repositories));
        }
        let manifest = docker_manifest(&self.manifest);
        self.add("manifest.json".to_owned(), Member::Bytes(manifest));
        for (name, member) in &self.members {
            match member {
                Member::Bytes(bytes) => out.file(name, bytes)?,
                Member::Link(target) => out.symlink(name, target)?,
            }
        }
        Ok(())
    }

    /// Adds a member unless one of that name is there already (a blob two images share).
    fn add(&mut self, name: String, member: Member) {
        if !self.members.iter().any(|(n, _)| *n == name) {
            self.members.push((name, member));
        }
    }
}

/// The image config of `plan`, created at `created`, whose layers hash to `blobs`.
pub(crate) fn image_config(plan: &ImagePlan, created: &str, blobs: &[Blob]) -> Vec<u8> {
    let diff_ids: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
    ImageConfig {
        created,
        architecture: &plan.architecture,
        variant: plan.variant.as_deref(),
        os: &plan.os,
        config: &plan.config,
        rootfs: RootFs::new(&diff_ids),
        history: plan.history(created),
    }
    .to_bytes()
}

/// `bytes` with their digest and size.
fn blob_of(bytes: Vec<u8>) -> (Blob, Vec<u8>) {
    let blob = Blob {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
    };
    (blob, bytes)
}
