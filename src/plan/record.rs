//! Layer records: what a layer is, known without keeping its bytes.
//!
//! A record holds a layer's size and `diff_id`, and the parts an image needs beyond them
//! ([`RecordParts`]): the digest and size of the compressed form the image stores its layers
//! in ([`crate::compress`]), and Docker's legacy tarsum; all computed in one pass over the
//! layer's bytes. Records are made at build time and stored in the plan (or in a
//! `buildLayer` output). Streaming takes layer sizes and digests from them and checks the
//! bytes it produces against the size and `diff_id`. A push computes the compressed digests
//! a record lacks when it needs them, not the build.

use crate::compress::chunked::ChunkedToc;
use crate::compress::{CompressThread, Compression, LayerBlob, BATCH};
use crate::digest::{Blob, Digest, HashingWriter};
use crate::progress::Progress;
use crate::tar::header::Stamp;
use crate::tar::layer::{
    write_layer, BufferSink, CopyError, LayerError, LayerSink, LayerSource, Shipper,
};
use crate::tar::tarsum::{TarsumError, TarsumHasher, Tarsums};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Version of the record format and of the compression parameters behind its digests.
/// Records of another version are refused: their compressed digests would not match what
/// this helper produces.
pub const RECORD_VERSION: u32 = 3;

/// Layers whose records are computed at once. Two keep both cores of a small builder busy
/// (one layer reads while the other's batches compress) and bound memory to about 45 MiB;
/// more cores speed up the compression inside each layer instead.
pub const RECORD_WORKERS: usize = 2;

/// Most layers whose records are computed at once when none is compressed: reading and
/// hashing are then the whole work, one layer per core, each worker holding a few batches.
pub const MAX_HASH_WORKERS: usize = 8;

/// The facts about one layer that images and registries need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    /// Bytes of the uncompressed layer tar.
    pub size: u64,
    /// sha256 of the uncompressed layer tar.
    pub diff_id: Digest,
    /// The layer compressed with strata's gzip, when the image stores it so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<Blob>,
    /// The layer compressed with strata's zstd, when the image stores it so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd: Option<Blob>,
    /// The layer written as strata's zstd:chunked, when the image stores it so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd_chunked: Option<ChunkedBlob>,
    /// Docker's legacy checksum of the layer, `tarsum.v1+sha256:<hex>` ([`crate::tar::tarsum`]),
    /// for the `json` files of the v1.0 archive layout. Computed for the layers of images
    /// that write that layout (it costs one more sha256 of every file), for customisation
    /// layers and for imported parent layers; absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarsum: Option<String>,
}

impl LayerRecord {
    /// The blob the layer is stored as with `compression`: the plain tar, or its compressed
    /// form when the record holds it.
    pub fn blob(&self, compression: Compression) -> Option<Blob> {
        match compression {
            Compression::None => Some(Blob {
                digest: self.diff_id,
                size: self.size,
            }),
            Compression::Gzip => self.gzip,
            Compression::Zstd => self.zstd,
            Compression::ZstdChunked => self.zstd_chunked.map(|c| c.blob),
        }
    }

    /// The layer as a manifest describes it when stored with `compression`, when the record
    /// holds that form.
    pub fn layer_blob(&self, compression: Compression) -> Option<LayerBlob> {
        Some(LayerBlob {
            blob: self.blob(compression)?,
            compression,
            toc: self
                .zstd_chunked
                .filter(|_| compression == Compression::ZstdChunked)
                .map(|c| c.toc),
        })
    }

    /// Adds the parts `other` (a record of the same layer) holds and this one lacks.
    pub fn absorb(&mut self, other: LayerRecord) {
        self.gzip = self.gzip.or(other.gzip);
        self.zstd = self.zstd.or(other.zstd);
        self.zstd_chunked = self.zstd_chunked.or(other.zstd_chunked);
        self.tarsum = self.tarsum.take().or(other.tarsum);
    }
}

/// A layer written as zstd:chunked: its blob, and where its TOC and tar-split are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkedBlob {
    /// The blob's digest and size.
    pub blob: Blob,
    /// What its descriptor's annotations say.
    pub toc: ChunkedToc,
}

/// The parts of a record beyond the size and `diff_id`, each computed only where an image
/// needs it (each costs about as much as the `diff_id` again, or more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordParts {
    /// The tarsum, for Docker's legacy layout.
    pub tarsum: bool,
    /// The compressed form's digest and size, for layers stored compressed (`None`: no
    /// compressed form).
    pub compressed: Compression,
}

impl RecordParts {
    /// The size and `diff_id` alone.
    pub const BARE: RecordParts = RecordParts {
        tarsum: false,
        compressed: Compression::None,
    };

    /// The tarsum alone: for layers recorded for no image in particular while they are read
    /// whole anyway (a parent's, the customisation layer), where the tarsum costs little and
    /// a compressed form much.
    pub const TARSUM: RecordParts = RecordParts {
        tarsum: true,
        compressed: Compression::None,
    };

    /// What an image's layer records hold: the tarsum beside Docker's v1.0 layout, else the
    /// compressed form the archive stores layers in.
    pub fn for_image(legacy_layout: bool, layer_compressor: Compression) -> RecordParts {
        RecordParts {
            tarsum: legacy_layout,
            compressed: if legacy_layout {
                Compression::None
            } else {
                layer_compressor
            },
        }
    }

    /// The parts of `self` that `record` lacks.
    pub fn lacking_in(self, record: &LayerRecord) -> RecordParts {
        RecordParts {
            tarsum: self.tarsum && record.tarsum.is_none(),
            compressed: if record.blob(self.compressed).is_some() {
                Compression::None
            } else {
                self.compressed
            },
        }
    }

    /// Whether no part is asked for.
    pub fn is_bare(self) -> bool {
        self == RecordParts::BARE
    }
}

/// Computes the record of the layer `source` describes, with `parts`, reading every file
/// once. When `copy` is given the tar is also written there (for layers stored as tars).
pub fn compute_record<'a>(
    source: &LayerSource,
    stamp: &Stamp,
    parts: RecordParts,
    copy: Option<&'a mut dyn Write>,
    progress: &'a Progress,
) -> Result<LayerRecord, LayerError> {
    let mut sink = RecordSink::new(parts, copy, progress);
    write_layer(source, stamp, &mut sink)?;
    sink.finish().map_err(LayerError::Write)
}

/// A [`LayerSink`] that computes the record of the layer bytes put into it (and copies them
/// to `copy` when given): for layers that come from elsewhere than [`write_layer`], such
/// as a parent image's.
pub struct RecordSink<'a>(BufferSink<RecordShipper<'a>>);

impl std::fmt::Debug for RecordSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordSink")
    }
}

impl<'a> RecordSink<'a> {
    /// A sink whose record (with `parts`) [`RecordSink::finish`] returns.
    pub fn new(
        parts: RecordParts,
        copy: Option<&'a mut dyn Write>,
        progress: &'a Progress,
    ) -> RecordSink<'a> {
        let (returns, reusable) = mpsc::channel();
        let compressed = (parts.compressed != Compression::None).then(|| {
            let thread = CompressThread::spawn_with(
                parts.compressed,
                HashingWriter::new(io::sink()),
                None,
                Some(returns.clone()),
            );
            (parts.compressed, thread)
        });
        let shipper = RecordShipper {
            diff: Sha256::new(),
            size: 0,
            compressed,
            tarsum: parts.tarsum.then(|| TarsumThread::spawn(returns.clone())),
            reusable,
            copy,
            progress,
        };
        RecordSink(BufferSink::new(BATCH, shipper))
    }

    /// The record of everything put so far.
    pub fn finish(mut self) -> io::Result<LayerRecord> {
        self.0.flush()?;
        self.0.shipper.finish()
    }
}

impl LayerSink for RecordSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.put(bytes)
    }

    fn put_from(&mut self, file: &mut std::fs::File, len: u64) -> Result<u64, CopyError> {
        self.0.put_from(file, len)
    }
}

/// Computes the records of `sources` (each with its stamp; with `parts`), [`RECORD_WORKERS`]
/// layers at a time when compressing, one more than the cores (up to [`MAX_HASH_WORKERS`])
/// otherwise, and reports progress. Each worker holds a few batches, so memory is bounded
/// whatever the number of layers or cores; the compression inside each layer runs on the
/// whole rayon pool. On failure returns the index of the first failed layer.
pub fn compute_records(
    sources: &[(LayerSource, Stamp)],
    parts: RecordParts,
    progress: &Progress,
) -> Result<Vec<LayerRecord>, (usize, LayerError)> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<LayerRecord, LayerError>>>> =
        sources.iter().map(|_| Mutex::new(None)).collect();
    let workers = if parts.compressed.is_none() {
        (rayon::current_num_threads() + 1).clamp(RECORD_WORKERS, MAX_HASH_WORKERS)
    } else {
        RECORD_WORKERS
    };
    let workers = workers.min(sources.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sources.len() || failed.load(Ordering::Relaxed) {
                    return;
                }
                let (source, stamp) = &sources[i];
                let result = compute_record(source, stamp, parts, None, progress);
                failed.fetch_or(result.is_err(), Ordering::Relaxed);
                progress.layer_done();
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            });
        }
    });
    let mut records = Vec::with_capacity(sources.len());
    for (i, slot) in results.into_iter().enumerate() {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(record)) => records.push(record),
            Some(Err(e)) => return Err((i, e)),
            None => {}
        }
    }
    // A failure stops the workers, leaving later slots empty; the error was returned above.
    Ok(records)
}

/// Takes a layer's bytes in full batches: hashes each for the `diff_id` and hands it to the
/// [`CompressThread`] of the compressed form asked for, whose output is hashed in turn, and
/// to the tarsum's thread; reading the next batch overlaps with their work. Batches come
/// back from the threads for reuse.
struct RecordShipper<'a> {
    diff: Sha256,
    size: u64,
    compressed: Option<(Compression, CompressThread<HashingWriter<io::Sink>>)>,
    tarsum: Option<TarsumThread>,
    reusable: Receiver<Arc<Vec<u8>>>,
    copy: Option<&'a mut dyn Write>,
    progress: &'a Progress,
}

impl Shipper for RecordShipper<'_> {
    fn ship(&mut self, buf: &mut Vec<u8>, filled: usize) -> io::Result<()> {
        // A batch is free again once every thread sent it back; the earlier returns find
        // another still holding it.
        let next = loop {
            match self.reusable.try_recv() {
                Ok(batch) => {
                    if let Ok(mut free) = Arc::try_unwrap(batch) {
                        free.resize(BATCH, 0);
                        break free;
                    }
                }
                Err(_) => break vec![0; BATCH],
            }
        };
        let mut batch = std::mem::replace(buf, next);
        batch.truncate(filled);
        self.diff.update(&batch);
        if let Some(copy) = self.copy.as_mut() {
            copy.write_all(&batch)?;
        }
        let batch = Arc::new(batch);
        if let Some((_, thread)) = &mut self.compressed {
            thread.send(Arc::clone(&batch))?;
        }
        if let Some(tarsum) = &mut self.tarsum {
            tarsum.send(batch)?;
        }
        self.size += filled as u64;
        self.progress.add(filled as u64);
        Ok(())
    }
}

impl RecordShipper<'_> {
    fn finish(self) -> io::Result<LayerRecord> {
        let mut record = LayerRecord {
            size: self.size,
            diff_id: Digest(self.diff.finalize().into()),
            gzip: None,
            zstd: None,
            zstd_chunked: None,
            tarsum: self.tarsum.map(TarsumThread::finish).transpose()?,
        };
        if let Some((codec, thread)) = self.compressed {
            let (hashed, toc) = thread.finish_with_toc()?;
            let blob = Some(hashed.finish().1);
            match codec {
                Compression::Gzip => record.gzip = blob,
                Compression::Zstd => record.zstd = blob,
                Compression::ZstdChunked => {
                    let toc = toc
                        .ok_or_else(|| io::Error::other("a zstd:chunked stream without its TOC"))?;
                    record.zstd_chunked = blob.map(|blob| ChunkedBlob { blob, toc });
                }
                Compression::None => {}
            }
        }
        Ok(record)
    }
}

/// Adds `parts` to `record` where it lacks them (a layer planned for another image: a
/// parent's, a `buildLayer`'s), tarring the layer once. Checks the bytes against `record` on
/// the way, so the parts are those of the recorded layer.
pub fn complete_record(
    source: &LayerSource,
    stamp: &Stamp,
    record: &mut LayerRecord,
    parts: RecordParts,
    progress: &Progress,
) -> Result<(), LayerError> {
    let lacking = parts.lacking_in(record);
    if lacking.is_bare() {
        return Ok(());
    }
    let found = compute_record(source, stamp, lacking, None, progress)?;
    if found.diff_id != record.diff_id || found.size != record.size {
        return Err(LayerError::Write(io::Error::other(format!(
            "its content changed since it was recorded (now {}, {} bytes; recorded {}, {} bytes)",
            found.diff_id, found.size, record.diff_id, record.size
        ))));
    }
    record.absorb(found);
    Ok(())
}

/// Computes a layer's Version1 tarsum on a thread of its own, off the reading thread: the
/// per-file sha256 costs about as much as the `diff_id`'s.
struct TarsumThread {
    tx: Option<SyncSender<Arc<Vec<u8>>>>,
    handle: Option<JoinHandle<Result<Tarsums, TarsumError>>>,
}

impl TarsumThread {
    fn spawn(returns: Sender<Arc<Vec<u8>>>) -> TarsumThread {
        let (tx, rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(0);
        let handle = std::thread::spawn(move || {
            let mut hasher = TarsumHasher::new();
            for batch in rx {
                hasher.update(&batch);
                let _ = returns.send(batch);
            }
            hasher.finish()
        });
        TarsumThread {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn send(&mut self, batch: Arc<Vec<u8>>) -> io::Result<()> {
        let tx = self.tx.as_ref().expect("sending after finish");
        tx.send(batch)
            .map_err(|_| io::Error::other("the tarsum thread stopped"))
    }

    fn finish(mut self) -> io::Result<String> {
        drop(self.tx.take());
        let handle = self.handle.take().expect("finished once");
        match handle.join() {
            Ok(Ok(sums)) => Ok(sums.v1),
            // The writer wrote a tar; anything else is a bug worth reporting as an error.
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(_) => Err(io::Error::other("the tarsum thread panicked")),
        }
    }
}

impl Drop for TarsumThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;
    use crate::tar::layer::write_layer_to;

    #[test]
    fn record_matches_the_layer_and_its_compressed_forms() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("aaa-x");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(
            p.join("big"),
            (0..6_000_000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        std::fs::write(p.join("small"), b"hello").unwrap();
        let source = LayerSource::StorePaths(vec![p]);
        let stamp = Stamp::root(1);
        let mut copy = Vec::new();
        let all = |compressed| RecordParts {
            tarsum: true,
            compressed,
        };
        let record = compute_record(
            &source,
            &stamp,
            all(Compression::Gzip),
            Some(&mut copy),
            &Progress::quiet(),
        )
        .unwrap();

        let plain = write_layer_to(&source, &stamp, Vec::new()).unwrap();
        assert_eq!(copy, plain, "the copy is the layer");
        assert_eq!(record.size, plain.len() as u64);
        assert_eq!(record.diff_id, Digest::of(&plain));
        let mut tarsum = crate::tar::tarsum::TarsumHasher::new();
        tarsum.update(&plain);
        assert_eq!(record.tarsum, Some(tarsum.finish().unwrap().v1));
        assert_eq!(record.zstd, None, "only the compression asked for");
        let mut both = record.clone();
        complete_record(
            &source,
            &stamp,
            &mut both,
            all(Compression::Zstd),
            &Progress::quiet(),
        )
        .unwrap();
        complete_record(
            &source,
            &stamp,
            &mut both,
            all(Compression::ZstdChunked),
            &Progress::quiet(),
        )
        .unwrap();
        let mut w = crate::compress::chunked::ChunkedWriter::new(Vec::new(), None);
        w.write_all(&plain).unwrap();
        let (bytes, toc) = w.finish().unwrap();
        let chunked = both.layer_blob(Compression::ZstdChunked).unwrap();
        assert_eq!(
            chunked.blob,
            Blob {
                digest: Digest::of(&bytes),
                size: bytes.len() as u64
            }
        );
        assert_eq!(chunked.toc, Some(toc));
        assert_eq!(both.layer_blob(Compression::Zstd).unwrap().toc, None);
        let bare =
            compute_record(&source, &stamp, RecordParts::BARE, None, &Progress::quiet()).unwrap();
        assert_eq!((bare.gzip, bare.zstd, bare.tarsum), (None, None, None));
        assert_eq!((bare.size, bare.diff_id), (record.size, record.diff_id));
        for (c, blob) in [
            (Compression::Gzip, both.gzip),
            (Compression::Zstd, both.zstd),
        ] {
            let blob = blob.unwrap();
            let mut e = c.encoder(Vec::new());
            e.write_all(&plain).unwrap();
            let bytes = e.finish().unwrap();
            assert_eq!(
                blob,
                Blob {
                    digest: Digest::of(&bytes),
                    size: bytes.len() as u64
                },
                "{c:?}"
            );
        }
    }
}
