//! Layer records: what a layer is, known without keeping its bytes.
//!
//! A record holds a layer's size and `diff_id` and the digest and size of its gzip and zstd
//! forms ([`crate::compress`]), all computed in one pass over the layer's bytes. Records are
//! made at build time and stored in the plan (or in a `buildLayer` output); streaming and
//! pushing use them instead of re-deriving them, and check the bytes they produce against
//! them.

use crate::compress::{Codec, CompressThread, BATCH};
use crate::digest::{Blob, Digest, HashingWriter};
use crate::layer_tar::{read_retrying, write_layer, CopyError, LayerError, LayerSink, LayerSource};
use crate::progress::Progress;
use crate::tar_header::Stamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

/// Version of the record format and of the compression parameters behind its digests.
/// Records of another version are refused: their compressed digests would not match what
/// this helper produces.
pub const RECORD_VERSION: u32 = 1;

/// The facts about one layer that images and registries need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Computes the record of the layer `source` describes, reading every file once. When
/// `copy` is given the tar is also written there (for layers stored as tars).
pub fn compute_record<'a>(
    source: &LayerSource,
    stamp: &Stamp,
    copy: Option<&'a mut dyn Write>,
    progress: &'a Progress,
) -> Result<LayerRecord, LayerError> {
    let mut sink = RecordSink {
        batch: vec![0; BATCH],
        filled: 0,
        diff: Sha256::new(),
        size: 0,
        gzip: CompressThread::spawn(Codec::Gzip, HashingWriter::new(io::sink())),
        zstd: CompressThread::spawn(Codec::Zstd, HashingWriter::new(io::sink())),
        copy,
        progress,
    };
    write_layer(source, stamp, &mut sink)?;
    sink.finish().map_err(LayerError::Write)
}

/// Computes the records of `sources` (each with its stamp), several layers at a time, and
/// reports progress. A fixed pool of layer workers (one per rayon thread) bounds memory:
/// each worker holds a few batches, whatever the number of layers; the compression inside
/// each layer still runs on the whole rayon pool. On failure returns the index of the layer.
pub fn compute_records(
    sources: &[(LayerSource, Stamp)],
    progress: &Progress,
) -> Result<Vec<LayerRecord>, (usize, LayerError)> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<LayerRecord, LayerError>>>> =
        sources.iter().map(|_| Mutex::new(None)).collect();
    let workers = rayon::current_num_threads().clamp(1, sources.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sources.len() || failed.load(Ordering::Relaxed) {
                    return;
                }
                let (source, stamp) = &sources[i];
                let result = compute_record(source, stamp, None, progress);
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

/// Receives a layer's bytes in fixed batches: hashes each batch for the `diff_id` and hands
/// it to a gzip and a zstd [`CompressThread`], whose outputs are hashed in turn; reading the
/// next batch overlaps with compressing this one.
struct RecordSink<'a> {
    batch: Vec<u8>,
    filled: usize,
    diff: Sha256,
    size: u64,
    gzip: CompressThread<HashingWriter<io::Sink>>,
    zstd: CompressThread<HashingWriter<io::Sink>>,
    copy: Option<&'a mut dyn Write>,
    progress: &'a Progress,
}

impl RecordSink<'_> {
    fn process_batch(&mut self) -> io::Result<()> {
        let mut batch = std::mem::replace(&mut self.batch, vec![0; BATCH]);
        batch.truncate(self.filled);
        self.diff.update(&batch);
        if let Some(copy) = self.copy.as_mut() {
            copy.write_all(&batch)?;
        }
        let batch = Arc::new(batch);
        self.gzip.send(Arc::clone(&batch))?;
        self.zstd.send(batch)?;
        self.size += self.filled as u64;
        self.progress.add(self.filled as u64);
        self.filled = 0;
        Ok(())
    }

    fn finish(mut self) -> io::Result<LayerRecord> {
        if self.filled > 0 {
            self.process_batch()?;
        }
        Ok(LayerRecord {
            size: self.size,
            diff_id: Digest(self.diff.finalize().into()),
            gzip: self.gzip.finish()?.finish().1,
            zstd: self.zstd.finish()?.finish().1,
        })
    }
}

impl LayerSink for RecordSink<'_> {
    fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.filled == BATCH {
                self.process_batch()?;
            }
            let n = bytes.len().min(BATCH - self.filled);
            self.batch[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn put_from(&mut self, file: &mut File, len: u64) -> Result<u64, CopyError> {
        let mut done = 0u64;
        while done < len {
            if self.filled == BATCH {
                self.process_batch().map_err(CopyError::Write)?;
            }
            let want = ((len - done) as usize).min(BATCH - self.filled);
            let n = read_retrying(file, &mut self.batch[self.filled..self.filled + want])
                .map_err(CopyError::Read)?;
            if n == 0 {
                break;
            }
            self.filled += n;
            done += n as u64;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compressor;
    use crate::layer_tar::WriteSink;

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
        let record = compute_record(&source, &stamp, Some(&mut copy), &Progress::quiet()).unwrap();

        let mut plain = WriteSink::new(Vec::new());
        write_layer(&source, &stamp, &mut plain).unwrap();
        assert_eq!(copy, plain.inner, "the copy is the layer");
        assert_eq!(record.size, plain.inner.len() as u64);
        assert_eq!(record.diff_id, Digest::of(&plain.inner));
        for (c, blob) in [
            (Compressor::Gz, record.gzip),
            (Compressor::Zstd, record.zstd),
        ] {
            let mut e = c.encoder(Vec::new());
            e.write_all(&plain.inner).unwrap();
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
