//! docker-archive (`docker save` format) assembly, streamed in one pass.
//!
//! Each layer's size comes from its record, so its outer tar header is written before its
//! bytes; layers are blobs named by their digest (`blobs/sha256/<diff_id>`), known from the
//! record too ([`layers`]); the config, the OCI manifest, `index.json`, `oci-layout` and
//! `manifest.json` come last ([`metadata`]), so the archive is a docker-archive and an OCI
//! layout at once; buildImage's also carry Docker's v1.0 layout
//! ([`crate::image::legacy_layout`]). Every layer's bytes are checked against its record: a
//! store path whose content changed since the image was built stops the stream with an error
//! instead of giving a different image.

mod layers;
pub(crate) mod metadata;

pub(crate) use metadata::image_config;

use crate::compress::{Compression, LayerBlob};
use crate::digest::{Blob, Digest};
use crate::image::legacy_layout::{legacy_layers, LegacyLayer};
use crate::image::oci_layout::blob_path;
use crate::plan::{ImagePlan, PlannedLayer};
use crate::progress::Progress;
use crate::tar::header::Stamp;
use crate::tar::layer::LayerError;
use crate::tar::members::MemberWriter;
use metadata::{Metadata, WrittenImage};
use std::io::{self, Write};

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// A layer could not be read.
    #[error("layer {index} ({what}): {source}")]
    Layer {
        /// Position from the bottom, starting at 1.
        index: usize,
        /// The layer's store paths or file.
        what: String,
        /// The cause.
        source: LayerError,
    },
    /// A layer's bytes differ from its record: its store paths changed since the image was
    /// built.
    #[error("layer {index} does not match its record (got {found}; recorded {expected}): its content changed since the image was built; {what}")]
    RecordMismatch {
        /// Position from the bottom, starting at 1.
        index: usize,
        /// The layer's store paths or file.
        what: String,
        /// Recorded digest and size.
        expected: String,
        /// What streaming produced.
        found: String,
    },
    /// The output could not be written.
    #[error("cannot write the image: {0}")]
    Write(#[source] io::Error),
}

/// What was written: the layers' blobs and the config digest.
#[derive(Debug, Clone)]
pub struct ArchiveSummary {
    /// Each layer's `diff_id` and size, bottom to top.
    pub layers: Vec<Blob>,
    /// Digest of the image config (the image ID).
    pub config: Digest,
    /// Bytes of archive written.
    pub bytes: u64,
}

/// Writes the image described by `plan` to `out` as a docker-archive, checking every layer
/// against its record.
pub fn write_docker_archive(
    plan: &ImagePlan,
    repo_tag: Option<&str>,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<ArchiveSummary, ArchiveError> {
    let mut summaries = write_docker_archive_of(&[(plan, repo_tag)], out, progress)?;
    Ok(summaries.remove(0))
}

/// Writes several images to `out` as one docker-archive (`mergeImages`), each with its
/// `name:tag` (the plan's when `None`). A layer an earlier image already wrote is not
/// written again: its manifest entry names the earlier member.
pub fn write_docker_archive_of(
    images: &[(&ImagePlan, Option<&str>)],
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<Vec<ArchiveSummary>, ArchiveError> {
    write_archive(images, None, out, progress)
}

/// Writes the images of a multi-platform index (`imageIndex`) to `out`: `index.json` names
/// one OCI image index, `repo_tag`, whose entries are the images with their platforms;
/// `manifest.json` names the first image only (`docker load` takes one image per name).
pub fn write_index_archive(
    images: &[ImagePlan],
    repo_tag: &str,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<Vec<ArchiveSummary>, ArchiveError> {
    // Docker's legacy layout names one image per tag: not in an index (buildImage results).
    let images: Vec<ImagePlan> = images
        .iter()
        .map(|p| ImagePlan {
            legacy_layout: false,
            ..p.clone()
        })
        .collect();
    let tagged: Vec<(&ImagePlan, Option<&str>)> =
        images.iter().map(|p| (p, Some(repo_tag))).collect();
    write_archive(&tagged, Some(repo_tag), out, progress)
}

fn write_archive(
    images: &[(&ImagePlan, Option<&str>)],
    index_tag: Option<&str>,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<Vec<ArchiveSummary>, ArchiveError> {
    let (unique, positions) = layers_to_write(images);
    let now = time::OffsetDateTime::now_utc();
    let created: Vec<String> = images.iter().map(|(p, _)| p.created_at(now)).collect();
    let legacy: Vec<Option<Vec<LegacyLayer>>> = images
        .iter()
        .zip(&created)
        .map(|((plan, _), created)| plan.legacy_layout.then(|| legacy_layers(plan, created)))
        .collect();
    let compression = stored_compression(images, legacy.iter().any(Option::is_some), &unique);
    let stored_layers: Vec<LayerBlob> = unique
        .iter()
        .map(|l| {
            l.record
                .layer_blob(compression)
                .expect("stored_compression checked that every record holds the blob")
        })
        .collect();
    let stored: Vec<Blob> = stored_layers.iter().map(|l| l.blob).collect();
    let names: Vec<String> = stored.iter().map(|b| blob_path(&b.digest)).collect();
    // Outer members carry the mtime of the bottom layer: fixed, like everything else.
    let stamp = Stamp::root(unique.first().map_or(1, |l| l.content.stamp().mtime));
    let mut members = MemberWriter::new(out, stamp);
    let blobs = layers::write_layers(
        &unique,
        &names,
        &stored,
        compression,
        &mut members,
        progress,
    )?;

    let mut metadata = Metadata::default();
    let mut summaries = Vec::with_capacity(images.len());
    for (k, (plan, repo_tag)) in images.iter().enumerate() {
        let pick = |all: &[Blob]| positions[k].iter().map(|&p| all[p]).collect::<Vec<Blob>>();
        let image = WrittenImage {
            plan,
            repo_tag: repo_tag.unwrap_or(&plan.repo_tag),
            created: &created[k],
            blobs: pick(&blobs),
            stored: positions[k].iter().map(|&p| stored_layers[p]).collect(),
            layer_names: positions[k].iter().map(|&p| names[p].clone()).collect(),
            legacy: legacy[k].as_deref(),
        };
        summaries.push(metadata.add_image(image));
    }
    if let Some(tag) = index_tag {
        metadata.nest_index(tag);
    }
    metadata.write(&mut members).map_err(ArchiveError::Write)?;
    let (_, bytes) = members.finish().map_err(ArchiveError::Write)?;
    for s in &mut summaries {
        s.bytes = bytes;
    }
    Ok(summaries)
}

/// How the archive stores its layers: compressed when the (first) image asks for it, never
/// beside Docker's legacy layout, whose `layer.tar` must be a plain tar, and plain when a
/// layer's record lacks that compressed form (images merged from plans of different
/// `layerCompressor`s): an archive member's name and size come before its bytes.
fn stored_compression(
    images: &[(&ImagePlan, Option<&str>)],
    legacy: bool,
    layers: &[&PlannedLayer],
) -> Compression {
    match images.first() {
        Some((plan, _))
            if !legacy
                && layers
                    .iter()
                    .all(|l| l.record.blob(plan.layer_compressor).is_some()) =>
        {
            plan.layer_compressor
        }
        _ => Compression::None,
    }
}

/// The layers an archive of `images` holds, in order (a layer with the same `diff_id` as
/// one before it, in this image or an earlier one, is not written again: layers are
/// content-addressed blobs), and for each image the positions of its layers among them.
pub fn layers_to_write<'p>(
    images: &[(&'p ImagePlan, Option<&str>)],
) -> (Vec<&'p PlannedLayer>, Vec<Vec<usize>>) {
    let mut unique: Vec<&PlannedLayer> = Vec::new();
    let mut positions: Vec<Vec<usize>> = Vec::with_capacity(images.len());
    for (plan, _) in images {
        let mine = plan
            .layers
            .iter()
            .map(|layer| {
                unique
                    .iter()
                    .position(|u| u.record.diff_id == layer.record.diff_id)
                    .unwrap_or_else(|| {
                        unique.push(layer);
                        unique.len() - 1
                    })
            })
            .collect();
        positions.push(mine);
    }
    (unique, positions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::oci_layout::OCI_LAYOUT;
    use crate::plan::planner::plan_store_layers;
    use crate::plan::record::{complete_record, RecordParts};
    use crate::plan::PLAN_VERSION;
    use crate::when::When;
    use layers::CHUNK;
    use serde_json::json;
    use std::io::Read;

    fn plan(groups: Vec<Vec<String>>) -> ImagePlan {
        let stamp = Stamp::root(1);
        ImagePlan {
            strata_plan: PLAN_VERSION,
            repo_tag: "test:latest".into(),
            architecture: "amd64".into(),
            variant: None,
            os: "linux".into(),
            created: When::parse("created", "1970-01-01T00:00:01Z").unwrap(),
            config: json!({"Cmd": ["/bin/true"]}),
            layers: plan_store_layers(
                groups.into_iter().map(|g| (g, String::new())).collect(),
                &stamp,
                0,
                RecordParts {
                    tarsum: true,
                    compressed: Compression::Gzip,
                },
                &Progress::quiet(),
            )
            .unwrap()
            .into_iter()
            .map(|mut l| {
                for compressed in [Compression::Zstd, Compression::ZstdChunked] {
                    let parts = RecordParts {
                        tarsum: false,
                        compressed,
                    };
                    let (source, stamp) = (l.content.source(), l.content.stamp());
                    complete_record(&source, &stamp, &mut l.record, parts, &Progress::quiet())
                        .unwrap();
                }
                l
            })
            .collect(),
            parent_layers: 0,
            parent_history: vec![],
            legacy_layout: false,
            layer_compressor: crate::compress::Compression::None,
        }
    }

    fn fake_path(dir: &std::path::Path, name: &str, bytes: usize) -> String {
        let p = dir.join(name);
        std::fs::create_dir(&p).unwrap();
        // Not a multiple of the chunk size, so chunk boundaries fall inside files.
        std::fs::write(p.join("data"), vec![7u8; bytes]).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn stream(plan: &ImagePlan) -> Result<Vec<u8>, ArchiveError> {
        let mut bytes = Vec::new();
        write_docker_archive(plan, None, &mut bytes, &Progress::quiet()).map(|_| bytes)
    }

    #[test]
    fn compressed_layers_are_the_records_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let a = fake_path(dir.path(), "aaa-a", 3 * CHUNK + 17);
        let b = fake_path(dir.path(), "bbb-b", 5);
        for (compressor, media) in [
            (
                Compression::Gzip,
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
            (
                Compression::Zstd,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
            (
                Compression::ZstdChunked,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        ] {
            let mut plan = plan(vec![vec![a.clone()], vec![b.clone()]]);
            plan.layer_compressor = compressor;
            let mut bytes = Vec::new();
            let summary =
                write_docker_archive(&plan, None, &mut bytes, &Progress::quiet()).unwrap();
            let members = members(&bytes);
            let find = |name: &str| members.iter().find(|m| m.0 == name).map(|m| m.1.clone());
            let manifest: serde_json::Value =
                serde_json::from_slice(&find("manifest.json").unwrap()).unwrap();
            for (i, layer) in plan.layers.iter().enumerate() {
                let stored = layer.record.blob(compressor).unwrap();
                let name = format!("blobs/sha256/{}", stored.digest.hex());
                assert_eq!(manifest[0]["Layers"][i], name.as_str());
                let blob = find(&name).unwrap();
                assert_eq!(Digest::of(&blob), stored.digest);
                let plain = match compressor {
                    Compression::Gzip => {
                        let mut out = Vec::new();
                        flate2::read::MultiGzDecoder::new(&blob[..])
                            .read_to_end(&mut out)
                            .unwrap();
                        out
                    }
                    _ => zstd::decode_all(&blob[..]).unwrap(),
                };
                assert_eq!(Digest::of(&plain), summary.layers[i].digest);
            }
            let config = find(&format!("blobs/sha256/{}", summary.config.hex())).unwrap();
            let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
            assert_eq!(
                config["rootfs"]["diff_ids"][0],
                plan.layers[0].record.diff_id.to_string()
            );
            let index: serde_json::Value =
                serde_json::from_slice(&find("index.json").unwrap()).unwrap();
            let oci = index["manifests"][0]["digest"].as_str().unwrap();
            let oci: serde_json::Value =
                serde_json::from_slice(&find(&format!("blobs/sha256/{}", &oci[7..])).unwrap())
                    .unwrap();
            assert_eq!(oci["layers"][1]["mediaType"], media);
            let annotations = &oci["layers"][0]["annotations"];
            match plan.layers[0].record.zstd_chunked {
                Some(c) if compressor == Compression::ZstdChunked => {
                    let want: serde_json::Map<String, serde_json::Value> = c
                        .toc
                        .annotations()
                        .into_iter()
                        .map(|(k, v)| (k, v.into()))
                        .collect();
                    assert_eq!(annotations, &serde_json::Value::Object(want));
                }
                _ => assert!(annotations.is_null(), "{compressor:?}"),
            }
        }
    }

    #[test]
    fn archive_members_digests_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let a = fake_path(dir.path(), "aaa-a", 3 * CHUNK + 17);
        let b = fake_path(dir.path(), "bbb-b", 5);
        let plan = plan(vec![vec![a], vec![b]]);
        let mut bytes = Vec::new();
        let summary = write_docker_archive(&plan, None, &mut bytes, &Progress::quiet()).unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);

        let members = members(&bytes);
        let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let (l0, l1) = (
            blob(&summary.layers[0].digest),
            blob(&summary.layers[1].digest),
        );
        let config_name = blob(&summary.config);
        let manifest_blob = &members[3];
        assert_eq!(
            names,
            [
                l0.as_str(),
                l1.as_str(),
                config_name.as_str(),
                manifest_blob.0.as_str(),
                "index.json",
                "oci-layout",
                "manifest.json"
            ]
        );
        for (i, blob) in summary.layers.iter().enumerate() {
            assert_eq!(
                Digest::of(&members[i].1),
                blob.digest,
                "diff_id is the layer's sha256"
            );
            assert_eq!(
                blob.digest, plan.layers[i].record.diff_id,
                "and its record's"
            );
        }
        let config: serde_json::Value = serde_json::from_slice(&members[2].1).unwrap();
        assert_eq!(Digest::of(&members[2].1), summary.config);
        assert_eq!(
            config["rootfs"]["diff_ids"][1],
            summary.layers[1].digest.to_string()
        );
        assert_eq!(config["history"].as_array().unwrap().len(), 2);
        // The OCI side: index -> manifest blob -> config and layer blobs.
        assert_eq!(manifest_blob.0, blob(&Digest::of(&manifest_blob.1)));
        let oci: serde_json::Value = serde_json::from_slice(&manifest_blob.1).unwrap();
        assert_eq!(oci["config"]["digest"], summary.config.to_string());
        assert_eq!(
            oci["layers"][0]["digest"],
            summary.layers[0].digest.to_string()
        );
        assert_eq!(oci["layers"][1]["size"], summary.layers[1].size);
        let index: serde_json::Value = serde_json::from_slice(&members[4].1).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            Digest::of(&manifest_blob.1).to_string()
        );
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "latest"
        );
        assert_eq!(members[5].1, OCI_LAYOUT);
        let manifest: serde_json::Value = serde_json::from_slice(&members[6].1).unwrap();
        assert_eq!(
            manifest,
            json!([{"Config": config_name, "RepoTags": ["test:latest"], "Layers": [l0, l1]}])
        );
        assert_eq!(stream(&plan).unwrap(), bytes, "reproducible");
    }

    fn members(bytes: &[u8]) -> Vec<(String, Vec<u8>, Option<String>)> {
        let mut archive = tar::Archive::new(bytes);
        let mut members = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            members.push((e.path().unwrap().to_string_lossy().into_owned(), data, link));
        }
        members
    }

    #[test]
    fn legacy_layout_beside_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let a = fake_path(dir.path(), "aaa-a", 3 * CHUNK + 17);
        let b = fake_path(dir.path(), "bbb-b", 5);
        let mut legacy = plan(vec![vec![a.clone()], vec![b]]);
        legacy.legacy_layout = true;
        let bytes = stream(&legacy).unwrap();
        let members = members(&bytes);
        let file = |name: &str| {
            let m = members.iter().find(|m| m.0 == name);
            m.unwrap_or_else(|| panic!("no {name}")).1.clone()
        };
        let manifest: serde_json::Value = serde_json::from_slice(&file("manifest.json")).unwrap();
        let layers: Vec<String> = manifest[0]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect();
        let repositories: serde_json::Value =
            serde_json::from_slice(&file("repositories")).unwrap();
        // From the top layer down the parent chain, then bottom to top.
        let mut ids = vec![repositories["test"]["latest"].as_str().unwrap().to_owned()];
        loop {
            let json: serde_json::Value =
                serde_json::from_slice(&file(&format!("{}/json", ids.last().unwrap()))).unwrap();
            match json["parent"].as_str() {
                Some(p) => ids.push(p.to_owned()),
                None => break,
            }
        }
        ids.reverse();
        assert_eq!(ids.len(), layers.len());
        for (i, (id, blob)) in ids.iter().zip(&layers).enumerate() {
            let link = members
                .iter()
                .find(|m| m.0 == format!("{id}/layer.tar"))
                .unwrap();
            assert_eq!(
                link.2.as_deref(),
                Some(format!("../{blob}").as_str()),
                "a link to the blob"
            );
            assert_eq!(file(&format!("{id}/VERSION")), b"1.0");
            let json: serde_json::Value =
                serde_json::from_slice(&file(&format!("{id}/json"))).unwrap();
            assert_eq!(json["id"], id.as_str());
            assert_eq!(json["config"], legacy.config);
            assert_eq!(json["created"], "1970-01-01T00:00:01Z");
            let mut tarsum = crate::tar::tarsum::TarsumHasher::new();
            tarsum.update(&file(blob));
            assert_eq!(json["checksum"], tarsum.finish().unwrap().v1);
            assert_eq!(
                json["checksum"].as_str(),
                legacy.layers[i].record.tarsum.as_deref()
            );
        }
        assert_eq!(stream(&legacy).unwrap(), bytes, "reproducible");

        // Merged with an image whose bottom layer is the same bytes but has another id: the
        // blob is written once; both images' directories link to it.
        let mut other = plan(vec![vec![a]]);
        other.legacy_layout = true;
        other.repo_tag = "other:1".into();
        other.config = json!({"Cmd": ["/bin/other"]});
        let mut merged = Vec::new();
        write_docker_archive_of(
            &[(&legacy, None), (&other, None)],
            &mut merged,
            &Progress::quiet(),
        )
        .unwrap();
        let merged = super::tests::members(&merged);
        let links: Vec<_> = merged
            .iter()
            .filter(|m| m.0.ends_with("/layer.tar"))
            .collect();
        assert_eq!(links.len(), 3);
        let blobs = merged
            .iter()
            .filter(|m| m.0.starts_with("blobs/") && m.1.len() > 1024);
        assert_eq!(blobs.count(), 2, "each layer once");
        let repositories = &merged.iter().find(|m| m.0 == "repositories").unwrap().1;
        let repositories: serde_json::Value = serde_json::from_slice(repositories).unwrap();
        let other_top = repositories["other"]["1"].as_str().unwrap();
        assert_ne!(other_top, ids[0]);
        let link = links.iter().find(|m| m.0.starts_with(other_top)).unwrap();
        assert_eq!(
            link.2.as_deref(),
            Some(format!("../{}", layers[0]).as_str())
        );
    }

    #[test]
    fn changed_store_content_is_refused_naming_layer_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let a = fake_path(dir.path(), "aaa-a", 1000);
        let b = fake_path(dir.path(), "bbb-b", 1000);
        let plan = plan(vec![vec![a.clone()], vec![b.clone()]]);
        // Same size, other bytes: only the digest can tell.
        std::fs::write(format!("{b}/data"), vec![8u8; 1000]).unwrap();
        let err = stream(&plan).unwrap_err().to_string();
        assert!(
            err.starts_with("layer 2 does not match its record") && err.contains(&b),
            "{err}"
        );
        // Another size.
        std::fs::write(format!("{a}/data"), vec![7u8; 5000]).unwrap();
        let err = stream(&plan).unwrap_err().to_string();
        assert!(err.contains("layer 1") && err.contains(&a), "{err}");
        // Gone.
        std::fs::remove_dir_all(&a).unwrap();
        let err = stream(&plan).unwrap_err().to_string();
        assert!(
            err.contains("layer 1") && err.contains(&a) && !err.contains('\n'),
            "{err}"
        );
    }

    /// A writer that fails like a closed pipe after some bytes.
    struct ClosesAfter(usize);
    impl Write for ClosesAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn closed_output_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let a = fake_path(dir.path(), "aaa-a", 20 * CHUNK);
        let plan = plan(vec![vec![a]]);
        let err = write_docker_archive(&plan, None, &mut ClosesAfter(10), &Progress::quiet())
            .unwrap_err();
        assert!(
            matches!(err, ArchiveError::Write(ref e) if e.kind() == io::ErrorKind::BrokenPipe),
            "{err}"
        );
    }
}
