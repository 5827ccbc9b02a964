//! Pushing an image from its plan straight to a registry, without an image tarball.
//!
//! First the registry's current manifest for the target tag (and its config) maps
//! `diff_id`s to blobs the registry already holds, however they were compressed: a layer
//! found there is neither uploaded nor looked at. For the others the helper needs the
//! compressed digest to ask the registry (HEAD): from the layer's record when the image
//! stores its layers so, else from the user's [`RecordCache`], else computed now (the layer
//! compressed once without sending, on all cores) and kept in the cache for the next push. A layer the registry lacks is tarred and compressed while
//! it is sent (the compression spread over all cores), and checked on the way against its
//! record. The compressed bytes depend only on the layer: strata's own block compressor at a
//! fixed level, no timestamps or names in the stream ([`crate::compress`]), so pushing the
//! same image from any machine gives the same blobs and manifest digest.

use crate::compress::chunked::ChunkedToc;
use crate::compress::{Compression, LayerBlob};
use crate::digest::{Blob, Digest, HashingWriter};
use crate::image::archive::image_config;
use crate::image::oci_layout::{self, IndexEntry, Platform};
use crate::plan::record::{compute_records, RecordParts};
use crate::plan::record_cache::RecordCache;
use crate::plan::{ImagePlan, PlannedLayer};
use crate::progress::Progress;
use crate::registry::client::{Client, RegistryError};
use crate::tar::layer::{write_layer_to, LayerError};
use oci_spec::image::MediaType;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A layer's bytes are not what its record says.
    #[error("layer {index} does not match its record ({found}); its content changed since the image was built: {what}")]
    Mismatch {
        /// Position from the bottom, from 1.
        index: usize,
        /// The layer's store paths or file.
        what: String,
        /// What was produced.
        found: String,
    },
    /// A layer's compressed bytes are not those of the compressed digest recorded or cached
    /// for it (another compressor's); a cached one is dropped.
    #[error("layer {index} compresses to {found}, not the {expected} recorded or cached for it (by another version of strata; the cached digest is dropped: push again): {what}")]
    CompressedMismatch {
        /// Position from the bottom, from 1.
        index: usize,
        /// The layer's store paths or file.
        what: String,
        /// The compressed digest and size expected.
        expected: String,
        /// What was produced.
        found: String,
    },
    /// A layer could not be read or compressed.
    #[error("layer {index} ({what}): {source}")]
    Layer {
        /// Position from the bottom, from 1.
        index: usize,
        /// The layer's store paths or file.
        what: String,
        /// The cause.
        source: LayerError,
    },
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Blobs sent (layers and config).
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub skipped: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
    /// Compressed bytes sent.
    pub bytes_sent: u64,
    /// Layers compressed once beforehand, to learn the digest the registry is asked for.
    pub compressed_first: usize,
    /// The manifest pushed under the tag (the image's, or the index's).
    pub manifest: Blob,
    /// The manifests of the images, in plan order (for an image, the one above).
    pub images: Vec<Blob>,
}

/// Pushes the image of `plan` to `client`'s repository under `tag`, its layers compressed
/// with `compressor` (gzip or zstd). A missing blob is mounted from one of the repositories
/// of `mount_from` (same registry) when one has it, uploaded otherwise.
pub fn push(
    plan: &ImagePlan,
    client: &mut Client,
    tag: &str,
    options: &PushOptions,
    progress: &Progress,
) -> Result<PushReport, PushError> {
    let present = blobs_in_current_manifest(client, tag)?;
    let mut report = PushReport::default();
    let manifest = push_blobs(plan, client, &present, options, &mut report, progress)?;
    client.put_manifest(tag, oci_layout::MANIFEST_MEDIA_TYPE, &manifest)?;
    report.manifest = Blob {
        digest: Digest::of(&manifest),
        size: manifest.len() as u64,
    };
    report.images = vec![report.manifest];
    Ok(report)
}

/// Pushes the images of a multi-platform index: each image's blobs and manifest (by
/// digest), then the index under `tag`.
pub fn push_index(
    plans: &[ImagePlan],
    client: &mut Client,
    tag: &str,
    options: &PushOptions,
    progress: &Progress,
) -> Result<PushReport, PushError> {
    let mut report = PushReport::default();
    let mut entries = Vec::with_capacity(plans.len());
    for plan in plans {
        let manifest = push_blobs(
            plan,
            client,
            &HashMap::new(),
            options,
            &mut report,
            progress,
        )?;
        let blob = Blob {
            digest: Digest::of(&manifest),
            size: manifest.len() as u64,
        };
        client.put_manifest(
            &blob.digest.to_string(),
            oci_layout::MANIFEST_MEDIA_TYPE,
            &manifest,
        )?;
        entries.push(IndexEntry {
            blob,
            media_type: MediaType::ImageManifest,
            platform: Some(Platform {
                architecture: plan.architecture.clone(),
                os: plan.os.clone(),
                variant: plan.variant.clone(),
            }),
            repo_tag: String::new(),
        });
        report.images.push(blob);
    }
    let index = oci_layout::index(&entries);
    client.put_manifest(tag, INDEX_MEDIA_TYPE, &index)?;
    report.manifest = Blob {
        digest: Digest::of(&index),
        size: index.len() as u64,
    };
    Ok(report)
}

/// Media type of the indexes [`push_index`] writes.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// gzip or zstd.
    pub compressor: Compression,
    /// Repositories of the same registry to mount missing blobs from.
    pub mount_from: Vec<String>,
    /// Layers uploaded at once.
    pub parallel: usize,
    /// Where compressed digests computed by earlier pushes are kept.
    pub cache: RecordCache,
}

/// Sends the layers and config of `plan` that the registry lacks; returns the manifest.
fn push_blobs(
    plan: &ImagePlan,
    client: &mut Client,
    present: &HashMap<Digest, LayerBlob>,
    options: &PushOptions,
    report: &mut PushReport,
    progress: &Progress,
) -> Result<Vec<u8>, PushError> {
    // Layers go compressed: a registry serves what it was sent.
    let compressor = match options.compressor {
        Compression::Zstd => Compression::Zstd,
        Compression::ZstdChunked => Compression::ZstdChunked,
        _ => Compression::Gzip,
    };
    // A repository with no tag has no blobs to skip (and without `--mount-from` none are
    // looked for elsewhere): every layer whose compressed digest is not known yet is then
    // uploaded in chunks, its digest computed on the way, rather than compressed once to
    // learn the digest and again to send it.
    // A registry that will not list tags (a push-only credential) is asked blob by blob.
    let fresh =
        present.is_empty() && options.mount_from.is_empty() && !client.has_tags().unwrap_or(true);
    let compressed = compressed_blobs(plan, compressor, present, &options.cache, !fresh)?;
    report.compressed_first += compressed.computed;
    let routing = Routing {
        present,
        options,
        progress,
    };
    let (routes, uploads) = route_layers(plan, &compressed.blobs, client, &routing, report)?;
    let sending = Sending {
        compressor,
        cache: &options.cache,
        progress,
    };
    let sent = upload_layers(client, &uploads, &sending, options.parallel)?;
    for ((_, _, known), layer) in uploads.iter().zip(&sent) {
        if known.is_none() {
            report.bytes_sent += layer.blob.size;
        }
    }
    let layers: Vec<LayerBlob> = routes
        .into_iter()
        .map(|route| match route {
            Route::Blob(layer) => layer,
            Route::Chunked(k) => sent[k],
        })
        .collect();
    let config_blob = push_config(plan, client, options, report)?;
    Ok(oci_layout::manifest_of(&config_blob, &layers))
}

/// How one layer of a push reaches the registry.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// As this blob: the registry has it, mounts it, or is sent it whole.
    Blob(LayerBlob),
    /// As the upload at this position of the queue, compressed on the way: its digest is
    /// known once it is sent.
    Chunked(usize),
}

/// A layer to upload: its position in the plan, the layer, and its blob when known.
type Upload<'p> = (usize, &'p PlannedLayer, Option<LayerBlob>);

/// What deciding the layers' routes needs besides the plan.
struct Routing<'a> {
    /// The layers the registry has, by diff_id.
    present: &'a HashMap<Digest, LayerBlob>,
    /// The push's options (`--mount-from`).
    options: &'a PushOptions,
    /// Counts the layers that need no upload.
    progress: &'a Progress,
}

/// Each layer's route, and the uploads they need: the registry's blobs skipped, others
/// mounted, the rest queued, a layer the plan holds twice queued once.
fn route_layers<'p>(
    plan: &'p ImagePlan,
    compressed: &[Option<LayerBlob>],
    client: &mut Client,
    routing: &Routing,
    report: &mut PushReport,
) -> Result<(Vec<Route>, Vec<Upload<'p>>), PushError> {
    let mut routes = Vec::with_capacity(plan.layers.len());
    let mut uploads: Vec<Upload> = Vec::new();
    // diff_id → the route an earlier layer of this plan took.
    let mut routed: HashMap<Digest, Route> = HashMap::new();
    for (i, layer) in plan.layers.iter().enumerate() {
        let diff_id = layer.record.diff_id;
        let route = if let Some(earlier) = routed.get(&diff_id) {
            routing.progress.layer_done();
            *earlier
        } else if let Some(&layer_blob) = routing.present.get(&diff_id) {
            report.skipped += 1;
            routing.progress.layer_done();
            Route::Blob(layer_blob)
        } else if let Some(layer_blob) = compressed[i] {
            let blob = layer_blob.blob;
            if client.has_blob(&blob.digest)? {
                report.skipped += 1;
                routing.progress.layer_done();
            } else if mount(client, &blob.digest, &routing.options.mount_from)? {
                report.mounted += 1;
                routing.progress.layer_done();
            } else {
                uploads.push((i, layer, Some(layer_blob)));
                report.uploaded += 1;
                report.bytes_sent += blob.size;
            }
            Route::Blob(layer_blob)
        } else {
            uploads.push((i, layer, None));
            report.uploaded += 1;
            Route::Chunked(uploads.len() - 1)
        };
        routed.insert(diff_id, route);
        routes.push(route);
    }
    Ok((routes, uploads))
}

/// Sends the config of `plan` unless the registry has it; returns its blob.
fn push_config(
    plan: &ImagePlan,
    client: &mut Client,
    options: &PushOptions,
    report: &mut PushReport,
) -> Result<Blob, PushError> {
    let created = plan.created_at(time::OffsetDateTime::now_utc());
    let diff_ids = plan.plain_blobs();
    let config = image_config(plan, &created, &diff_ids);
    let config_blob = Blob {
        digest: Digest::of(&config),
        size: config.len() as u64,
    };
    if client.has_blob(&config_blob.digest)? {
        report.skipped += 1;
    } else if mount(client, &config_blob.digest, &options.mount_from)? {
        report.mounted += 1;
    } else {
        retried(client, |client| {
            Ok(client.upload_blob(&config_blob.digest, config_blob.size, &mut &config[..])?)
        })?;
        report.uploaded += 1;
        report.bytes_sent += config_blob.size;
    }
    Ok(config_blob)
}

/// The compressed blobs of a plan's layers, and how many were computed.
struct CompressedBlobs {
    blobs: Vec<Option<LayerBlob>>,
    computed: usize,
}

/// The compressed blob of each layer of `plan` that `present` lacks: from its record, from
/// `cache`, or (when `compute`) computed now and kept in `cache`. `None` for the layers
/// `present` has, and without `compute` for those not known.
fn compressed_blobs(
    plan: &ImagePlan,
    compressor: Compression,
    present: &HashMap<Digest, LayerBlob>,
    cache: &RecordCache,
    compute: bool,
) -> Result<CompressedBlobs, PushError> {
    let mut blobs: Vec<Option<LayerBlob>> = plan
        .layers
        .iter()
        .map(|l| {
            let diff_id = &l.record.diff_id;
            if present.contains_key(diff_id) {
                return None;
            }
            l.record
                .layer_blob(compressor)
                .or_else(|| cache.get(diff_id, compressor))
        })
        .collect();
    let unknown: Vec<usize> = (0..plan.layers.len())
        .filter(|&i| blobs[i].is_none() && !present.contains_key(&plan.layers[i].record.diff_id))
        .collect();
    if unknown.is_empty() || !compute {
        return Ok(CompressedBlobs { blobs, computed: 0 });
    }
    let sources: Vec<_> = unknown
        .iter()
        .map(|&i| {
            let c = &plan.layers[i].content;
            (c.source(), c.stamp())
        })
        .collect();
    let progress = Progress::start("compressed digests", None, unknown.len());
    let parts = RecordParts {
        tarsum: false,
        compressed: compressor,
    };
    let records = compute_records(&sources, parts, &progress).map_err(|(k, source)| {
        let i = unknown[k];
        PushError::Layer {
            index: i + 1,
            what: plan.layers[i].content.describe_at_most(10),
            source,
        }
    })?;
    progress.finish();
    for (&i, found) in unknown.iter().zip(records) {
        let layer = &plan.layers[i];
        if found.diff_id != layer.record.diff_id || found.size != layer.record.size {
            return Err(PushError::Mismatch {
                index: i + 1,
                what: layer.content.describe_at_most(10),
                found: format!("{}, {} bytes", found.diff_id, found.size),
            });
        }
        let blob = found.layer_blob(compressor);
        if let Some(blob) = &blob {
            cache.put(&layer.record.diff_id, blob);
        }
        blobs[i] = blob;
    }
    Ok(CompressedBlobs {
        blobs,
        computed: unknown.len(),
    })
}

/// Mounts `digest` from the first repository of `from` that has it.
fn mount(client: &mut Client, digest: &Digest, from: &[String]) -> Result<bool, PushError> {
    for repository in from {
        if repository != client.repository() && client.mount_blob(digest, repository)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `diff_id` → blob of the layers of the manifest the registry holds under `tag`, when it
/// is an image manifest (OCI or Docker schema 2) with gzip, zstd or plain layers.
fn blobs_in_current_manifest(
    client: &mut Client,
    tag: &str,
) -> Result<HashMap<Digest, LayerBlob>, PushError> {
    let mut found = HashMap::new();
    let Some((_, bytes)) = client.get_manifest(tag)? else {
        return Ok(found);
    };
    let Ok(manifest) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(found);
    };
    let digest_of = |v: &Value| v.as_str().and_then(Digest::parse);
    let Some(config) = digest_of(&manifest["config"]["digest"]) else {
        return Ok(found);
    };
    let config: Value = match client.get_blob(&config) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => return Ok(found),
    };
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    for (diff_id, layer) in diff_ids.iter().zip(&layers) {
        let Some(media) =
            Compression::of_layer_media_type(layer["mediaType"].as_str().unwrap_or_default())
        else {
            continue;
        };
        if let (Some(d), Some(blob), Some(size)) = (
            digest_of(diff_id),
            digest_of(&layer["digest"]),
            layer["size"].as_u64(),
        ) {
            found.insert(d, layer_blob(Blob { digest: blob, size }, media, layer));
        }
    }
    Ok(found)
}

/// A registry's layer descriptor as a [`LayerBlob`]: a zstd layer whose annotations
/// locate a TOC is zstd:chunked, and keeps them in the manifest strata pushes.
fn layer_blob(blob: Blob, media: Compression, descriptor: &Value) -> LayerBlob {
    let annotations: HashMap<String, String> =
        serde_json::from_value(descriptor["annotations"].clone()).unwrap_or_default();
    match ChunkedToc::from_annotations(&annotations) {
        Some(toc) if media == Compression::Zstd => LayerBlob {
            blob,
            compression: Compression::ZstdChunked,
            toc: Some(toc),
        },
        _ => LayerBlob::plain(blob, media),
    }
}

/// Uploads `missing` layers, up to `parallel` at a time, each on a connection of its own
/// (latency hides behind other uploads; compression shares the cores). Stops at the first
/// failure, which it returns.
/// What every layer upload of a push shares.
struct Sending<'a> {
    compressor: Compression,
    /// Where a compressed digest the bytes disprove is dropped from.
    cache: &'a RecordCache,
    progress: &'a Progress,
}

fn upload_layers(
    client: &Client,
    missing: &[Upload],
    sending: &Sending,
    parallel: usize,
) -> Result<Vec<LayerBlob>, PushError> {
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None);
    let sent: Vec<Mutex<Option<LayerBlob>>> = missing.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, missing.len().max(1)) {
            let mut client = client.clone();
            let (next, failed, sent) = (&next, &failed, &sent);
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(i, layer, blob)) = missing.get(k) else {
                    return;
                };
                match upload_layer(&mut client, i, layer, blob, sending) {
                    Ok(blob) => {
                        *sent[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(blob);
                    }
                    Err(e) => {
                        // Later jobs are not started; those under way finish.
                        next.store(missing.len(), Ordering::Relaxed);
                        failed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                }
                sending.progress.layer_done();
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(sent
        .into_iter()
        .map(|b| {
            b.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every upload either failed or gave its blob")
        })
        .collect())
}

/// What sending a layer gave: the upload's blob, the plain and compressed blobs its
/// compressor saw (and a zstd:chunked blob's TOC), and whether it had more bytes than
/// declared.
type Sent = (
    Result<Blob, RegistryError>,
    Result<(Blob, Blob, Option<ChunkedToc>), LayerError>,
    bool,
);

/// Tars and compresses `layer` on a thread while an upload sends its bytes: a monolithic
/// one when its compressed `blob` is known, a chunked one otherwise.
fn send_layer(
    client: &mut Client,
    layer: &PlannedLayer,
    blob: Option<Blob>,
    sending: &Sending,
) -> Sent {
    let (compressor, progress) = (sending.compressor, sending.progress);
    let (tx, rx) = mpsc::sync_channel::<Option<Vec<u8>>>(4);
    let source = layer.content.source();
    let stamp = layer.content.stamp();
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<_, LayerError> {
            let encoder = compressor.encoder(HashingWriter::new(ChannelWriter { tx }));
            let plain = write_layer_to(&source, &stamp, HashingWriter::new(encoder))?;
            let (encoder, plain) = plain.finish();
            let (hashed, toc) = encoder.finish_with_toc().map_err(LayerError::Write)?;
            let (channel, compressed) = hashed.finish();
            channel.end().map_err(LayerError::Write)?;
            Ok((plain, compressed, toc))
        });
        let mut body = ChannelReader::new(rx, blob.map(|b| b.size), progress);
        let uploaded = match blob {
            Some(blob) => client
                .upload_blob(&blob.digest, blob.size, &mut body)
                .map(|()| blob),
            None => client.upload_blob_chunked(&mut body),
        };
        let overflowed = body.overflowed;
        drop(body);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(LayerError::Write(io::Error::other(
                "the layer compressor panicked",
            )))
        });
        (uploaded, produced, overflowed)
    })
}

/// `once` until it succeeds, fails for good, or has been tried as often as the client's
/// connection allows: a blob cut off or refused with 408, 429 or 5xx is sent again whole.
fn retried<T>(
    client: &mut Client,
    mut once: impl FnMut(&mut Client) -> Result<T, PushError>,
) -> Result<T, PushError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match once(client) {
            Err(PushError::Registry(e))
                if e.is_transient() && attempt < client.connection().attempts =>
            {
                std::thread::sleep(client.connection().wait_before(attempt, None));
            }
            done => return done,
        }
    }
}

/// Uploads a layer, again from its first byte after a transient failure.
fn upload_layer(
    client: &mut Client,
    index: usize,
    layer: &PlannedLayer,
    known: Option<LayerBlob>,
    sending: &Sending,
) -> Result<LayerBlob, PushError> {
    retried(client, |client| {
        upload_layer_once(client, index, layer, known, sending)
    })
}

/// Tars and compresses a layer on a thread while its bytes are uploaded, then checks both
/// the plain and the compressed digests against the record.
fn upload_layer_once(
    client: &mut Client,
    index: usize,
    layer: &PlannedLayer,
    known: Option<LayerBlob>,
    sending: &Sending,
) -> Result<LayerBlob, PushError> {
    let compressor = sending.compressor;
    let blob = known.map(|k| k.blob);
    let (uploaded, produced, overflowed) = send_layer(client, layer, blob, sending);
    let what = layer.content.describe_at_most(10);
    let disproved = || sending.cache.forget(&layer.record.diff_id, compressor);
    if let (true, Some(blob)) = (overflowed, blob) {
        disproved();
        return Err(PushError::CompressedMismatch {
            index: index + 1,
            what,
            expected: format!("{}, {} bytes", blob.digest, blob.size),
            found: format!("more than {} bytes", blob.size),
        });
    }
    let (plain, compressed, toc) = match produced {
        Ok(produced) => produced,
        // The upload failed and so stopped the compressor: the registry's reason counts.
        Err(LayerError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe && uploaded.is_err() => {
            return Err(uploaded.expect_err("checked").into())
        }
        Err(source) => {
            return Err(PushError::Layer {
                index: index + 1,
                what,
                source,
            })
        }
    };
    if plain.digest != layer.record.diff_id {
        return Err(PushError::Mismatch {
            index: index + 1,
            what,
            found: format!("{}, {} bytes", plain.digest, plain.size),
        });
    }
    match blob {
        Some(blob) if compressed != blob => {
            disproved();
            return Err(PushError::CompressedMismatch {
                index: index + 1,
                what,
                expected: format!("{}, {} bytes", blob.digest, blob.size),
                found: format!("{}, {} bytes", compressed.digest, compressed.size),
            });
        }
        Some(_) => {}
        None => {}
    }
    let sent = LayerBlob {
        blob: uploaded?,
        compression: compressor,
        toc,
    };
    if blob.is_none() {
        // What the registry was sent is what was compressed: the same bytes, hashed twice.
        debug_assert_eq!(sent.blob, compressed);
        // Learnt by sending it: kept for the next push.
        sending.cache.put(&layer.record.diff_id, &sent);
    }
    Ok(sent)
}

/// Sends written bytes, in chunks, to a [`ChannelReader`]; [`ChannelWriter::end`] says
/// they are all there (a writer dropped without it is a stream cut short).
struct ChannelWriter {
    tx: SyncSender<Option<Vec<u8>>>,
}

impl ChannelWriter {
    /// Marks the end of the bytes.
    fn end(self) -> io::Result<()> {
        self.tx
            .send(None)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .send(Some(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads what a [`ChannelWriter`] sends, reporting progress.
struct ChannelReader<'a> {
    rx: Receiver<Option<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    progress: &'a Progress,
    /// The bytes the upload declared (the recorded compressed size), if it did.
    declared: Option<u64>,
    /// The bytes read so far.
    sent: u64,
    /// Whether the writer marked the end.
    ended: bool,
    /// Whether the layer had more bytes than declared.
    overflowed: bool,
}

impl ChannelReader<'_> {
    /// A reader of `rx`'s bytes, `declared` of them if known.
    fn new(
        rx: Receiver<Option<Vec<u8>>>,
        declared: Option<u64>,
        progress: &Progress,
    ) -> ChannelReader<'_> {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
            progress,
            declared,
            sent: 0,
            ended: false,
            overflowed: false,
        }
    }
}

impl Read for ChannelReader<'_> {
    /// The layer's bytes, failing (which aborts the request, so no registry keeps a blob
    /// cut short or waits for the rest) when the writer stops before marking the end, or
    /// when they are fewer or more than declared.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Some(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(None) => match self.declared {
                    Some(declared) if self.sent != declared => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the compressed layer ended after {} of the {declared} bytes its record gives",
                                self.sent
                            ),
                        ))
                    }
                    _ => self.ended = true,
                },
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the layer's compression stopped after {} bytes", self.sent),
                    ))
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        if let Some(declared) = self.declared.filter(|&d| self.sent + n as u64 > d) {
            self.overflowed = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the compressed layer is longer than the {declared} bytes its record gives"
                ),
            ));
        }
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        self.sent += n as u64;
        self.progress.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads what a reader declaring `declared` bytes gives for `chunks`, the end marked
    /// when `end`.
    fn read_declared(
        chunks: &[&[u8]],
        end: bool,
        declared: Option<u64>,
    ) -> (io::Result<Vec<u8>>, bool) {
        let (tx, rx) = mpsc::sync_channel::<Option<Vec<u8>>>(chunks.len() + 1);
        for c in chunks {
            tx.send(Some(c.to_vec())).unwrap();
        }
        if end {
            tx.send(None).unwrap();
        }
        drop(tx);
        let progress = Progress::quiet();
        let mut reader = ChannelReader::new(rx, declared, &progress);
        let mut out = Vec::new();
        let read = reader.read_to_end(&mut out).map(|_| out);
        (read, reader.overflowed)
    }

    #[test]
    fn an_upload_body_is_exactly_the_declared_bytes() {
        let (read, over) = read_declared(&[b"abc", b"de"], true, Some(5));
        assert_eq!(read.unwrap(), b"abcde");
        assert!(!over);
        // Fewer bytes than declared: an error, not an end the registry would wait past.
        let (read, over) = read_declared(&[b"abc"], true, Some(5));
        let err = read.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("3 of the 5"), "{err}");
        assert!(!over);
        let (read, over) = read_declared(&[b"abc", b"def"], true, Some(5));
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(over);
    }

    #[test]
    fn an_undeclared_body_ends_only_where_its_writer_says() {
        let (read, _) = read_declared(&[b"abc", b"de"], true, None);
        assert_eq!(read.unwrap(), b"abcde");
        // The compressor stopped (failed) without marking the end: no complete blob.
        let (read, _) = read_declared(&[b"abc"], false, None);
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (read, _) = read_declared(&[b"abcde"], false, Some(5));
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
