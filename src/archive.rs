//! docker-archive (`docker save` format) assembly, streamed in one pass.
//!
//! Each layer's size comes from its record, so its outer tar header is written before its
//! bytes; layers are named by position (`layers/<i>.tar`), since `manifest.json` decides
//! which file is which; the config and `manifest.json` come last. One thread reads files into
//! a few fixed buffers while the calling thread hashes and writes them, so reading and
//! hashing overlap and memory stays bounded whatever the image size. Every layer's bytes are
//! checked against its record: a store path whose content changed since the image was built
//! stops the stream with an error instead of giving a different image.

use crate::digest::{Blob, Digest, HashingWriter};
use crate::image_config::{History, ImageConfig, RootFs};
use crate::layer_tar::{write_layer, BufferSink, LayerError, Shipper};
use crate::legacy_layout::{legacy_layers, repositories, LegacyLayer, VERSION};
use crate::plan::ImagePlan;
use crate::progress::Progress;
use crate::tar_header::{encode_header, padding, Kind, Stamp, END_OF_ARCHIVE};
use serde::Serialize;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};

/// Bytes per buffer handed from the reading thread to the hashing thread.
const CHUNK: usize = 1 << 20;
/// Buffers in flight between the two threads; with [`CHUNK`] this bounds the pipeline's
/// memory at 8 MiB.
const IN_FLIGHT: usize = 8;

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

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry<'a> {
    config: &'a str,
    repo_tags: Vec<&'a str>,
    layers: &'a [String],
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
    let (unique, positions) = layers_to_write(images);
    let now = time::OffsetDateTime::now_utc();
    let created: Vec<String> = images.iter().map(|(p, _)| p.created_at(now)).collect();
    let legacy: Vec<Option<Vec<LegacyLayer>>> = images
        .iter()
        .zip(&created)
        .map(|((plan, _), created)| plan.legacy_layout.then(|| legacy_layers(plan, created)))
        .collect();
    let layer_names = member_names(unique.len(), &positions, &legacy);
    let sources: Vec<_> = unique
        .iter()
        .map(|l| (l.content.source(), l.content.stamp()))
        .collect();
    let layer_error = |index: usize, source: LayerError| ArchiveError::Layer {
        index: index + 1,
        what: unique[index].content.describe_short(),
        source,
    };
    let mismatch = |index: usize, found: String| {
        let layer = unique[index];
        ArchiveError::RecordMismatch {
            index: index + 1,
            what: layer.content.describe_at_most(10),
            expected: format!("{}, {} bytes", layer.record.diff_id, layer.record.size),
            found,
        }
    };
    // Outer members carry the mtime of the bottom layer: fixed, like everything else.
    let outer = Stamp::root(unique.first().map_or(1, |l| l.content.stamp().mtime));
    let mut out = Counted {
        inner: out,
        bytes: 0,
    };
    let mut header = Vec::with_capacity(1024);
    let mut blobs = Vec::with_capacity(sources.len());

    let (tx, rx) = mpsc::sync_channel::<Message>(IN_FLIGHT);
    let (pool_tx, pool_rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT - 1 {
        pool_tx.send(vec![0; CHUNK]).expect("pool has room");
    }

    std::thread::scope(|scope| -> Result<(), ArchiveError> {
        // Owned here so that an early return drops them, which unblocks the reader thread
        // before the scope joins it.
        let (rx, pool_tx) = (rx, pool_tx);
        let sources = &sources;
        scope.spawn(move || {
            let mut sink = BufferSink::new(CHUNK, ChunkShipper { tx, pool: pool_rx });
            for (i, (source, stamp)) in sources.iter().enumerate() {
                let done = write_layer(source, stamp, &mut sink)
                    .and_then(|()| sink.flush().map_err(LayerError::Write));
                let message = match done {
                    Ok(()) => Message::LayerEnd,
                    Err(e) => Message::Failed(i, e),
                };
                let failed = matches!(message, Message::Failed(..));
                if sink.shipper.tx.send(message).is_err() || failed {
                    return;
                }
            }
        });

        for (i, layer) in unique.iter().enumerate() {
            let size = layer.record.size;
            let name = &layer_names[i];
            header.clear();
            encode_header(
                &mut header,
                name.as_bytes(),
                Kind::File(size),
                0o444,
                b"",
                &outer,
            );
            out.write_all(&header).map_err(ArchiveError::Write)?;
            let mut hashed = HashingWriter::new(&mut out);
            loop {
                match rx.recv() {
                    Ok(Message::Data(buf, n)) => {
                        if hashed.size() + n as u64 > size {
                            return Err(mismatch(i, format!("more than {size} bytes")));
                        }
                        hashed.write_all(&buf[..n]).map_err(ArchiveError::Write)?;
                        progress.add(n as u64);
                        let _ = pool_tx.send(buf);
                    }
                    Ok(Message::LayerEnd) => break,
                    Ok(Message::Failed(index, e)) => return Err(layer_error(index, e)),
                    Err(_) => {
                        return Err(ArchiveError::Write(io::Error::other(
                            "the layer reader stopped unexpectedly",
                        )))
                    }
                }
            }
            let (out, blob) = hashed.finish();
            if blob.size != size || blob.digest != layer.record.diff_id {
                return Err(mismatch(i, format!("{}, {} bytes", blob.digest, blob.size)));
            }
            out.write_all(&[0u8; 512][..padding(size)])
                .map_err(ArchiveError::Write)?;
            progress.layer_done();
            blobs.push(blob);
        }
        Ok(())
    })?;

    let mut summaries = Vec::with_capacity(images.len());
    let mut manifest = Vec::with_capacity(images.len());
    let mut configs = Vec::with_capacity(images.len());
    for (((plan, repo_tag), positions), created) in images.iter().zip(&positions).zip(&created) {
        let blobs: Vec<Blob> = positions.iter().map(|&p| blobs[p]).collect();
        let layers: Vec<String> = positions.iter().map(|&p| layer_names[p].clone()).collect();
        let config = image_config(plan, created, &blobs);
        let config_digest = Digest::of(&config);
        manifest.push((
            format!("{}.json", config_digest.hex()),
            repo_tag.unwrap_or(&plan.repo_tag).to_owned(),
            layers,
        ));
        configs.push(config);
        summaries.push(ArchiveSummary {
            layers: blobs,
            config: config_digest,
            bytes: 0,
        });
    }
    let entries: Vec<ManifestEntry> = manifest
        .iter()
        .map(|(config, tag, layers)| ManifestEntry {
            config,
            // An image that came without a name stays without one.
            repo_tags: if tag.is_empty() { vec![] } else { vec![tag] },
            layers,
        })
        .collect();
    let manifest_bytes = serde_json::to_vec(&entries).expect("manifest serialisation cannot fail");
    let mut members: Vec<(&str, &[u8])> = Vec::new();
    let mut legacy_tops = Vec::new();
    let mut links = Vec::new();
    for ((layers, positions), (plan, repo_tag)) in legacy.iter().zip(&positions).zip(images) {
        let Some(layers) = layers else { continue };
        if let Some(top) = layers.last() {
            legacy_tops.push((repo_tag.unwrap_or(&plan.repo_tag), top.id.as_str()));
        }
        for (layer, &p) in layers.iter().zip(positions) {
            // Layers an earlier image wrote under another id are linked to, as `docker save`
            // does for a layer two of its images share.
            let own = format!("{}/layer.tar", layer.id);
            if layer_names[p] != own && !links.iter().any(|(name, _)| *name == own) {
                links.push((own, format!("../{}", layer_names[p])));
            }
        }
    }
    for (name, target) in &links {
        header.clear();
        encode_header(
            &mut header,
            name.as_bytes(),
            Kind::Symlink,
            0o777,
            target.as_bytes(),
            &outer,
        );
        out.write_all(&header).map_err(ArchiveError::Write)?;
    }
    let legacy_files: Vec<(String, String)> = legacy
        .iter()
        .flatten()
        .flatten()
        .map(|l| (format!("{}/VERSION", l.id), format!("{}/json", l.id)))
        .collect();
    for (layer, (version, json)) in legacy.iter().flatten().flatten().zip(&legacy_files) {
        if !members.iter().any(|(n, _)| *n == json.as_str()) {
            members.push((version, VERSION));
            members.push((json, &layer.json));
        }
    }
    let repositories_bytes = repositories(legacy_tops);
    if legacy.iter().any(Option::is_some) {
        members.push(("repositories", &repositories_bytes));
    }
    for ((name, _, _), config) in manifest.iter().zip(&configs) {
        // Two images with the same config (the same image under two tags) share the member.
        if !members.iter().any(|(n, _)| *n == name.as_str()) {
            members.push((name, config));
        }
    }
    members.push(("manifest.json", &manifest_bytes));
    for (name, bytes) in members {
        header.clear();
        encode_header(
            &mut header,
            name.as_bytes(),
            Kind::File(bytes.len() as u64),
            0o444,
            b"",
            &outer,
        );
        out.write_all(&header).map_err(ArchiveError::Write)?;
        out.write_all(bytes).map_err(ArchiveError::Write)?;
        out.write_all(&[0u8; 512][..padding(bytes.len() as u64)])
            .map_err(ArchiveError::Write)?;
    }
    out.write_all(&END_OF_ARCHIVE)
        .map_err(ArchiveError::Write)?;
    out.flush().map_err(ArchiveError::Write)?;
    for s in &mut summaries {
        s.bytes = out.bytes;
    }
    Ok(summaries)
}

/// The layers an archive of `images` holds, in order (a layer an earlier image has is not
/// written again), and for each image the positions of its layers among them.
pub fn layers_to_write<'p>(
    images: &[(&'p ImagePlan, Option<&str>)],
) -> (Vec<&'p crate::plan::PlannedLayer>, Vec<Vec<usize>>) {
    let mut unique: Vec<&crate::plan::PlannedLayer> = Vec::new();
    let mut positions: Vec<Vec<usize>> = Vec::with_capacity(images.len());
    for (plan, _) in images {
        let earlier = unique.len();
        let mine = plan
            .layers
            .iter()
            .map(|layer| {
                unique[..earlier]
                    .iter()
                    .position(|u| u.record == layer.record)
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

/// The member name of each of the `count` layers an archive holds: its legacy directory's
/// `layer.tar` in the first image that has it, when that image has a legacy layout, else its
/// position.
fn member_names(
    count: usize,
    positions: &[Vec<usize>],
    legacy: &[Option<Vec<LegacyLayer>>],
) -> Vec<String> {
    let mut names: Vec<Option<String>> = vec![None; count];
    for (positions, legacy) in positions.iter().zip(legacy) {
        for (k, &p) in positions.iter().enumerate() {
            names[p].get_or_insert_with(|| match legacy {
                Some(layers) => format!("{}/layer.tar", layers[k].id),
                None => format!("layers/{p}.tar"),
            });
        }
    }
    names
        .into_iter()
        .map(|n| n.expect("every layer belongs to an image"))
        .collect()
}

/// The image config of `plan`, created at `created`, whose layers hash to `blobs`.
fn image_config(plan: &ImagePlan, created: &str, blobs: &[Blob]) -> Vec<u8> {
    let created = created.to_owned();
    let diff_ids: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
    // A parent's own history describes its layers; without one, every layer gets an entry.
    let own = if plan.parent_history.is_empty() {
        &plan.layers[..]
    } else {
        &plan.layers[plan.parent_layers.min(plan.layers.len())..]
    };
    let mut history = plan.parent_history.clone();
    history.extend(own.iter().map(|l| {
        serde_json::to_value(History {
            created: created.clone(),
            created_by: "strata".to_owned(),
            comment: l.content.describe(),
        })
        .expect("history serialisation cannot fail")
    }));
    ImageConfig {
        created: &created,
        architecture: &plan.architecture,
        variant: plan.variant.as_deref(),
        os: &plan.os,
        config: &plan.config,
        rootfs: RootFs::new(&diff_ids),
        history,
    }
    .to_bytes()
}

enum Message {
    Data(Vec<u8>, usize),
    LayerEnd,
    Failed(usize, LayerError),
}

/// Counts bytes written through it.
struct Counted<'a> {
    inner: &'a mut dyn Write,
    bytes: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hands full buffers to the hashing thread, taking an empty one from the pool in exchange.
struct ChunkShipper {
    tx: SyncSender<Message>,
    pool: Receiver<Vec<u8>>,
}

impl Shipper for ChunkShipper {
    fn ship(&mut self, buf: &mut Vec<u8>, filled: usize) -> io::Result<()> {
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "image writer stopped");
        let next = self.pool.recv().map_err(|_| closed())?;
        let full = std::mem::replace(buf, next);
        self.tx
            .send(Message::Data(full, filled))
            .map_err(|_| closed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_config::When;
    use crate::plan::{plan_store_layers, StoreStamp, PLAN_VERSION};
    use serde_json::json;
    use std::io::Read;

    fn plan(groups: Vec<Vec<String>>) -> ImagePlan {
        let stamp = StoreStamp {
            mtime: "1970-01-01T00:00:01Z".into(),
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
        };
        ImagePlan {
            strata_plan: PLAN_VERSION,
            repo_tag: "test:latest".into(),
            architecture: "amd64".into(),
            variant: None,
            os: "linux".into(),
            created: When::parse("created", "1970-01-01T00:00:01Z").unwrap(),
            config: json!({"Cmd": ["/bin/true"]}),
            layers: plan_store_layers(groups, &stamp, 0, true, &Progress::quiet()).unwrap(),
            parent_layers: 0,
            parent_history: vec![],
            legacy_layout: false,
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
        let config_name = format!("{}.json", summary.config.hex());
        assert_eq!(
            names,
            [
                "layers/0.tar",
                "layers/1.tar",
                config_name.as_str(),
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
        let manifest: serde_json::Value = serde_json::from_slice(&members[3].1).unwrap();
        assert_eq!(
            manifest,
            json!([{"Config": config_name, "RepoTags": ["test:latest"], "Layers": ["layers/0.tar", "layers/1.tar"]}])
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
        let mut parent: Option<String> = None;
        for (i, name) in layers.iter().enumerate() {
            let (id, rest) = name.split_once('/').unwrap();
            assert_eq!(rest, "layer.tar");
            assert_eq!(file(&format!("{id}/VERSION")), b"1.0");
            let json: serde_json::Value =
                serde_json::from_slice(&file(&format!("{id}/json"))).unwrap();
            assert_eq!(json["id"], id);
            assert_eq!(json["parent"].as_str(), parent.as_deref(), "layer {i}");
            assert_eq!(json["config"], legacy.config);
            assert_eq!(json["created"], "1970-01-01T00:00:01Z");
            let mut tarsum = crate::tarsum::TarsumHasher::new();
            tarsum.update(&file(name));
            assert_eq!(json["checksum"], tarsum.finish().unwrap().v1);
            assert_eq!(
                json["checksum"].as_str(),
                legacy.layers[i].record.tarsum.as_deref()
            );
            parent = Some(id.to_owned());
        }
        let repositories: serde_json::Value =
            serde_json::from_slice(&file("repositories")).unwrap();
        assert_eq!(repositories, json!({"test": {"latest": parent.unwrap()}}));
        assert_eq!(stream(&legacy).unwrap(), bytes, "reproducible");

        // Merged with an image whose bottom layer is the same bytes but has another id: the
        // layer is written once; the second image's directory links to it.
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
        let tars: Vec<_> = merged
            .iter()
            .filter(|m| m.0.ends_with("layer.tar"))
            .collect();
        assert_eq!(tars.len(), 3, "two files and a link");
        let link = tars.iter().find(|m| m.2.is_some()).unwrap();
        assert_eq!(
            link.2.as_deref(),
            Some(format!("../{}", layers[0]).as_str())
        );
        let repositories = &merged.iter().find(|m| m.0 == "repositories").unwrap().1;
        let repositories: serde_json::Value = serde_json::from_slice(repositories).unwrap();
        assert_eq!(repositories["other"]["1"].as_str().unwrap(), &link.0[..64]);
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
