//! docker-archive (`docker save` format) assembly, streamed in one pass.
//!
//! Each layer's size comes from its record, so its outer tar header is written before its
//! bytes; layers are blobs named by their digest (`blobs/sha256/<diff_id>`), known from the
//! record too; the config, the OCI manifest, `index.json`, `oci-layout` and `manifest.json`
//! come last ([`crate::image::oci_layout`]), so the archive is a docker-archive and an OCI layout
//! at once; buildImage's also carry Docker's v1.0 layout ([`crate::image::legacy_layout`]). One thread reads files into
//! a few fixed buffers while the calling thread hashes and writes them, so reading and
//! hashing overlap and memory stays bounded whatever the image size. Every layer's bytes are
//! checked against its record: a store path whose content changed since the image was built
//! stops the stream with an error instead of giving a different image.

use crate::compress::{Compressor, Encoder};
use crate::digest::{Blob, Digest, HashingWriter};
use crate::image::config::{History, ImageConfig, RootFs};
use crate::image::legacy_layout::{legacy_layers, repositories, LegacyLayer, VERSION};
use crate::image::oci_layout::{self, blob_path, IndexEntry, LayerMedia, Platform, OCI_LAYOUT};
use crate::plan::ImagePlan;
use crate::progress::Progress;
use crate::tar::header::{encode_header, padding, Kind, Stamp, END_OF_ARCHIVE};
use crate::tar::layer::{write_layer, BufferSink, LayerError, Shipper};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
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

/// One image of a docker-archive's `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManifestEntry<'a> {
    pub(crate) config: &'a str,
    pub(crate) repo_tags: Vec<&'a str>,
    pub(crate) layers: &'a [String],
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
    // Layers are stored compressed when the (first) image asks for it, never beside
    // Docker's legacy layout, whose `layer.tar` must be a plain tar.
    let compression = match images.first() {
        Some((plan, _)) if !legacy.iter().any(Option::is_some) => plan.layer_compressor,
        _ => Compressor::None,
    };
    let media = match compression {
        Compressor::None => LayerMedia::Tar,
        Compressor::Gz => LayerMedia::Gzip,
        Compressor::Zstd => LayerMedia::Zstd,
    };
    // The blob each layer is stored as: the plain tar, or its compressed form (whose digest
    // and size the record holds, so the header is written before the bytes).
    let stored: Vec<Blob> = unique
        .iter()
        .map(|l| match compression {
            Compressor::None => Blob {
                digest: l.record.diff_id,
                size: l.record.size,
            },
            Compressor::Gz => l.record.gzip,
            Compressor::Zstd => l.record.zstd,
        })
        .collect();
    let layer_names: Vec<String> = stored.iter().map(|b| blob_path(&b.digest)).collect();
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
    // The plain bytes matched the record but their compression did not: a helper whose
    // compressor differs from the one that made the record.
    let compressed_mismatch = |index: usize, written: u64| {
        let layer = unique[index];
        ArchiveError::RecordMismatch {
            index: index + 1,
            what: layer.content.describe_at_most(10),
            expected: format!("compressed to {}, {} bytes", stored[index].digest, stored[index].size),
            found: format!("{written} compressed bytes of another digest; rebuild the image's records with this helper"),
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
            put_header(
                &mut out,
                &mut header,
                &layer_names[i],
                Kind::File(stored[i].size),
                "",
                &outer,
            )?;
            let mut hashed = HashingWriter::new(&mut out);
            let mut compressing =
                (compression != Compressor::None).then(|| Compressing::new(compression));
            let mut plain = Sha256::new();
            let mut plain_size = 0u64;
            loop {
                match rx.recv() {
                    Ok(Message::Data(buf, n)) => {
                        if plain_size + n as u64 > size {
                            return Err(mismatch(i, format!("more than {size} bytes")));
                        }
                        plain_size += n as u64;
                        match &mut compressing {
                            None => hashed.write_all(&buf[..n]).map_err(ArchiveError::Write)?,
                            Some(c) => {
                                plain.update(&buf[..n]);
                                c.feed(&buf[..n], &mut hashed)?;
                                if hashed.size() > stored[i].size {
                                    return Err(compressed_mismatch(i, hashed.size()));
                                }
                            }
                        }
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
            if let Some(c) = compressing {
                c.finish(&mut hashed)?;
            }
            let (out, written) = hashed.finish();
            let blob = match compression {
                Compressor::None => written,
                _ => Blob {
                    digest: Digest(plain.finalize().into()),
                    size: plain_size,
                },
            };
            if blob.size != size || blob.digest != layer.record.diff_id {
                return Err(mismatch(i, format!("{}, {} bytes", blob.digest, blob.size)));
            }
            if written != stored[i] {
                return Err(compressed_mismatch(i, written.size));
            }
            out.write_all(&[0u8; 512][..padding(stored[i].size)])
                .map_err(ArchiveError::Write)?;
            progress.layer_done();
            blobs.push(blob);
        }
        Ok(())
    })?;

    let mut summaries = Vec::with_capacity(images.len());
    let mut manifest = Vec::with_capacity(images.len());
    // Members after the layers, in order: name, bytes (or a link target).
    let mut members: Vec<(String, Member)> = Vec::new();
    let mut index = Vec::with_capacity(images.len());
    let mut legacy_tops = Vec::new();
    for (((plan, repo_tag), positions), (created, legacy)) in images
        .iter()
        .zip(&positions)
        .zip(created.iter().zip(&legacy))
    {
        let repo_tag = repo_tag.unwrap_or(&plan.repo_tag);
        let blobs: Vec<Blob> = positions.iter().map(|&p| blobs[p]).collect();
        let layers: Vec<String> = positions.iter().map(|&p| layer_names[p].clone()).collect();
        if let Some(legacy) = legacy {
            for (layer, name) in legacy.iter().zip(&layers) {
                let dir = &layer.id;
                add(
                    &mut members,
                    format!("{dir}/layer.tar"),
                    Member::Link(format!("../{name}")),
                );
                add(
                    &mut members,
                    format!("{dir}/VERSION"),
                    Member::Bytes(VERSION.to_vec()),
                );
                add(
                    &mut members,
                    format!("{dir}/json"),
                    Member::Bytes(layer.json.clone()),
                );
            }
            if let Some(top) = legacy.last() {
                legacy_tops.push((repo_tag, top.id.as_str()));
            }
        }
        let config = image_config(plan, created, &blobs);
        let config = blob_of(config);
        let stored_blobs: Vec<Blob> = positions.iter().map(|&p| stored[p]).collect();
        let oci_manifest = oci_layout::manifest(&config.0, &stored_blobs, media);
        let oci_manifest = blob_of(oci_manifest);
        index.push(IndexEntry {
            blob: oci_manifest.0,
            media_type: oci_spec::image::MediaType::ImageManifest,
            platform: Some(Platform {
                architecture: plan.architecture.clone(),
                os: plan.os.clone(),
                variant: plan.variant.clone(),
            }),
            repo_tag: repo_tag.to_owned(),
        });
        let config_name = blob_path(&config.0.digest);
        manifest.push((config_name.clone(), repo_tag.to_owned(), layers));
        summaries.push(ArchiveSummary {
            layers: blobs,
            config: config.0.digest,
            bytes: 0,
        });
        add(&mut members, config_name, Member::Bytes(config.1));
        add(
            &mut members,
            blob_path(&oci_manifest.0.digest),
            Member::Bytes(oci_manifest.1),
        );
    }
    if let Some(tag) = index_tag {
        // One index of every image, named by the top-level index.json.
        for entry in &mut index {
            entry.repo_tag.clear();
        }
        let nested = blob_of(oci_layout::index(&index));
        index = vec![IndexEntry {
            blob: nested.0,
            media_type: oci_spec::image::MediaType::ImageIndex,
            platform: None,
            repo_tag: tag.to_owned(),
        }];
        add(
            &mut members,
            blob_path(&nested.0.digest),
            Member::Bytes(nested.1),
        );
        manifest.truncate(1);
    }
    add(
        &mut members,
        "index.json".to_owned(),
        Member::Bytes(oci_layout::index(&index)),
    );
    add(
        &mut members,
        "oci-layout".to_owned(),
        Member::Bytes(OCI_LAYOUT.to_vec()),
    );
    if legacy.iter().any(Option::is_some) {
        add(
            &mut members,
            "repositories".to_owned(),
            Member::Bytes(repositories(legacy_tops)),
        );
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
    add(
        &mut members,
        "manifest.json".to_owned(),
        Member::Bytes(manifest_bytes),
    );
    for (name, member) in &members {
        match member {
            Member::Bytes(bytes) => {
                let size = bytes.len() as u64;
                put_header(&mut out, &mut header, name, Kind::File(size), "", &outer)?;
                out.write_all(bytes).map_err(ArchiveError::Write)?;
                out.write_all(&[0u8; 512][..padding(size)])
                    .map_err(ArchiveError::Write)?;
            }
            Member::Link(target) => {
                put_header(&mut out, &mut header, name, Kind::Symlink, target, &outer)?;
            }
        }
    }
    out.write_all(&END_OF_ARCHIVE)
        .map_err(ArchiveError::Write)?;
    out.flush().map_err(ArchiveError::Write)?;
    for s in &mut summaries {
        s.bytes = out.bytes;
    }
    Ok(summaries)
}

/// The layers an archive of `images` holds, in order (a layer with the same `diff_id` as
/// one before it, in this image or an earlier one, is not written again: layers are
/// content-addressed blobs), and for each image the positions of its layers among them.
pub fn layers_to_write<'p>(
    images: &[(&'p ImagePlan, Option<&str>)],
) -> (Vec<&'p crate::plan::PlannedLayer>, Vec<Vec<usize>>) {
    let mut unique: Vec<&crate::plan::PlannedLayer> = Vec::new();
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

/// The image config of `plan`, created at `created`, whose layers hash to `blobs`.
pub(crate) fn image_config(plan: &ImagePlan, created: &str, blobs: &[Blob]) -> Vec<u8> {
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

/// A layer being compressed into the archive: the encoder compresses on its own threads and
/// hands the compressed bytes back through a channel, drained into the archive as they come.
struct Compressing {
    encoder: Encoder<ChannelWriter>,
    rx: Receiver<Vec<u8>>,
}

impl Compressing {
    fn new(compressor: Compressor) -> Compressing {
        // Unbounded, but drained after every chunk fed: it holds what the encoder finished
        // since, at most a batch or two.
        let (tx, rx) = mpsc::channel();
        Compressing {
            encoder: compressor.encoder(ChannelWriter(tx)),
            rx,
        }
    }

    fn feed(&mut self, plain: &[u8], out: &mut dyn Write) -> Result<(), ArchiveError> {
        self.encoder.write_all(plain).map_err(ArchiveError::Write)?;
        while let Ok(chunk) = self.rx.try_recv() {
            out.write_all(&chunk).map_err(ArchiveError::Write)?;
        }
        Ok(())
    }

    fn finish(self, out: &mut dyn Write) -> Result<(), ArchiveError> {
        // The encoder returns its writer, the channel's last sender, when it is done.
        drop(self.encoder.finish().map_err(ArchiveError::Write)?);
        for chunk in self.rx {
            out.write_all(&chunk).map_err(ArchiveError::Write)?;
        }
        Ok(())
    }
}

/// Sends compressed chunks to the archive writer.
struct ChannelWriter(mpsc::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the archive writer stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A member written after the layers.
enum Member {
    /// A file.
    Bytes(Vec<u8>),
    /// A symbolic link to this target.
    Link(String),
}

/// Writes the header of an outer member: root-owned, the archive's mtime, read-only files
/// (`header` is scratch space reused between members).
pub(crate) fn put_header(
    out: &mut dyn Write,
    header: &mut Vec<u8>,
    name: &str,
    kind: Kind,
    link: &str,
    stamp: &Stamp,
) -> Result<(), ArchiveError> {
    let mode = if matches!(kind, Kind::Symlink) {
        0o777
    } else {
        0o444
    };
    header.clear();
    encode_header(header, name.as_bytes(), kind, mode, link.as_bytes(), stamp);
    out.write_all(header).map_err(ArchiveError::Write)
}

/// `bytes` with their digest and size.
fn blob_of(bytes: Vec<u8>) -> (Blob, Vec<u8>) {
    let blob = Blob {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
    };
    (blob, bytes)
}

/// Adds a member unless one of that name is there already (a blob two images share).
fn add(members: &mut Vec<(String, Member)>, name: String, member: Member) {
    if !members.iter().any(|(n, _)| *n == name) {
        members.push((name, member));
    }
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
    use crate::image::config::When;
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
            layer_compressor: crate::compress::Compressor::None,
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
                Compressor::Gz,
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
            (
                Compressor::Zstd,
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
                let stored = match compressor {
                    Compressor::Gz => layer.record.gzip,
                    _ => layer.record.zstd,
                };
                let name = format!("blobs/sha256/{}", stored.digest.hex());
                assert_eq!(manifest[0]["Layers"][i], name.as_str());
                let blob = find(&name).unwrap();
                assert_eq!(Digest::of(&blob), stored.digest);
                let plain = match compressor {
                    Compressor::Gz => {
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
