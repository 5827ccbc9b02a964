//! Layer records: what a layer is, known without keeping its bytes.
//!
//! A record holds a layer's size and `diff_id` and the digest and size of its gzip and zstd
//! forms ([`crate::compress`]), all computed in one pass over the layer's bytes. Records are
//! made at build time and stored in the plan (or in a `buildLayer` output). Streaming takes
//! layer sizes and digests from them and checks the bytes it produces against the size and
//! `diff_id`; the compressed digests are what a registry push needs without compressing
//! again.

use crate::compress::{CompressThread, Compression, BATCH};
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
pub const RECORD_VERSION: u32 = 2;

/// Layers whose records are computed at once. Two keep both cores of a small builder busy
/// (one layer reads while the other's batches compress) and bound memory to about 45 MiB;
/// more cores speed up the compression inside each layer instead.
pub const RECORD_WORKERS: usize = 2;

/// The facts about one layer that images and registries need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    /// Bytes of the uncompressed layer tar.
    pub size: u64,
    /// sha256 of the uncompressed layer tar.
    pub diff_id: Digest,
    /// The layer compressed with strata's gzip.
    pub gzip: Blob,
    /// The layer compressed with strata's zstd.
    pub zstd: Blob,
    /// Docker's legacy checksum of the layer, `tarsum.v1+sha256:<hex>` ([`crate::tar::tarsum`]),
    /// for the `json` files of the v1.0 archive layout. Computed for the layers of images
    /// that write that layout (it costs one more sha256 of every file), for customisation
    /// layers and for imported parent layers; absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarsum: Option<String>,
}

impl LayerRecord {
    /// The blob the layer is stored as with `compression`: the plain tar, or its compressed
    /// form.
    pub fn blob(&self, compression: Compression) -> Blob {
        match compression {
            Compression::None => Blob {
                digest: self.diff_id,
                size: self.size,
            },
            Compression::Gzip => self.gzip,
            Compression::Zstd => self.zstd,
        }
    }
}

/// Computes the record of the layer `source` describes, with its tarsum when `tarsum`,
/// reading every file once. When `copy` is given the tar is also written there (for layers
/// stored as tars).
pub fn compute_record<'a>(
    source: &LayerSource,
    stamp: &Stamp,
    tarsum: bool,
    copy: Option<&'a mut dyn Write>,
    progress: &'a Progress,
) -> Result<LayerRecord, LayerError> {
    let mut sink = RecordSink::new(tarsum, copy, progress);
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
    /// A sink whose record (with its tarsum when `tarsum`) [`RecordSink::finish`] returns.
    pub fn new(
        tarsum: bool,
        copy: Option<&'a mut dyn Write>,
        progress: &'a Progress,
    ) -> RecordSink<'a> {
        let (returns, reusable) = mpsc::channel();
        let spawn = |codec| {
            CompressThread::spawn_with(
                codec,
                HashingWriter::new(io::sink()),
                None,
                Some(returns.clone()),
            )
        };
        let shipper = RecordShipper {
            diff: Sha256::new(),
            size: 0,
            gzip: spawn(Compression::Gzip),
            zstd: spawn(Compression::Zstd),
            tarsum: tarsum.then(|| TarsumThread::spawn(returns.clone())),
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

/// Computes the records of `sources` (each with its stamp; with tarsums when `tarsum`),
/// [`RECORD_WORKERS`] layers at a time, and reports progress. Each worker holds a few batches, so memory is bounded
/// whatever the number of layers or cores; the compression inside each layer runs on the
/// whole rayon pool. On failure returns the index of the first failed layer.
pub fn compute_records(
    sources: &[(LayerSource, Stamp)],
    tarsum: bool,
    progress: &Progress,
) -> Result<Vec<LayerRecord>, (usize, LayerError)> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<LayerRecord, LayerError>>>> =
        sources.iter().map(|_| Mutex::new(None)).collect();
    let workers = RECORD_WORKERS.min(sources.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sources.len() || failed.load(Ordering::Relaxed) {
                    return;
                }
                let (source, stamp) = &sources[i];
                let result = compute_record(source, stamp, tarsum, None, progress);
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

/// Takes a layer's bytes in full batches: hashes each for the `diff_id` and hands it to a
/// gzip and a zstd [`CompressThread`], whose outputs are hashed in turn; reading the next
/// batch overlaps with compressing this one. Batches come back from the threads for reuse.
struct RecordShipper<'a> {
    diff: Sha256,
    size: u64,
    gzip: CompressThread<HashingWriter<io::Sink>>,
    zstd: CompressThread<HashingWriter<io::Sink>>,
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
        self.gzip.send(Arc::clone(&batch))?;
        if let Some(tarsum) = &mut self.tarsum {
            tarsum.send(Arc::clone(&batch))?;
        }
        self.zstd.send(batch)?;
        self.size += filled as u64;
        self.progress.add(filled as u64);
        Ok(())
    }
}

impl RecordShipper<'_> {
    fn finish(self) -> io::Result<LayerRecord> {
        Ok(LayerRecord {
            size: self.size,
            diff_id: Digest(self.diff.finalize().into()),
            gzip: self.gzip.finish()?.finish().1,
            zstd: self.zstd.finish()?.finish().1,
            tarsum: self.tarsum.map(TarsumThread::finish).transpose()?,
        })
    }
}

/// Tars the layer `source` describes to compute its tarsum alone, for a layer whose record
/// has none (a parent image's store layer, planned without one). Checks the bytes against
/// `record` on the way, so the tarsum is that of the recorded layer.
pub fn compute_tarsum(
    source: &LayerSource,
    stamp: &Stamp,
    record: &LayerRecord,
    progress: &Progress,
) -> Result<String, LayerError> {
    struct TarsumShipper<'a> {
        diff: Sha256,
        size: u64,
        tarsum: TarsumHasher,
        progress: &'a Progress,
    }
    impl Shipper for TarsumShipper<'_> {
        fn ship(&mut self, buf: &mut Vec<u8>, filled: usize) -> io::Result<()> {
            self.diff.update(&buf[..filled]);
            self.tarsum.update(&buf[..filled]);
            self.size += filled as u64;
            self.progress.add(filled as u64);
            Ok(())
        }
    }
    let mut sink = BufferSink::new(
        1 << 20,
        TarsumShipper {
            diff: Sha256::new(),
            size: 0,
            tarsum: TarsumHasher::new(),
            progress,
        },
    );
    write_layer(source, stamp, &mut sink)?;
    sink.flush().map_err(LayerError::Write)?;
    let TarsumShipper {
        diff, size, tarsum, ..
    } = sink.shipper;
    let diff_id = Digest(diff.finalize().into());
    if diff_id != record.diff_id || size != record.size {
        return Err(LayerError::Write(io::Error::other(format!(
            "its content changed since it was recorded (now {diff_id}, {size} bytes; recorded {}, {} bytes)",
            record.diff_id, record.size
        ))));
    }
    tarsum
        .finish()
        .map(|sums| sums.v1)
        .map_err(|e| LayerError::Write(io::Error::other(e)))
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
        let record =
            compute_record(&source, &stamp, true, Some(&mut copy), &Progress::quiet()).unwrap();

        let plain = write_layer_to(&source, &stamp, Vec::new()).unwrap();
        assert_eq!(copy, plain, "the copy is the layer");
        assert_eq!(record.size, plain.len() as u64);
        assert_eq!(record.diff_id, Digest::of(&plain));
        let mut tarsum = crate::tar::tarsum::TarsumHasher::new();
        tarsum.update(&plain);
        assert_eq!(record.tarsum, Some(tarsum.finish().unwrap().v1));
        for (c, blob) in [
            (Compression::Gzip, record.gzip),
            (Compression::Zstd, record.zstd),
        ] {
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
