//! The layers of an archive, streamed: one thread tars them into a few fixed buffers while
//! the calling thread checks, compresses (when the archive stores them compressed) and writes
//! them, so reading and hashing overlap and memory stays bounded whatever the image size.
//! Every layer's bytes are checked against its record as they go.

use super::ArchiveError;
use crate::compress::{Compression, Encoder};
use crate::digest::{Blob, Hasher, HashingWriter};
use crate::plan::PlannedLayer;
use crate::progress::Progress;
use crate::tar::header::Stamp;
use crate::tar::layer::{write_layer, BufferSink, LayerError, LayerSource, Shipper};
use crate::tar::members::MemberWriter;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};

/// Bytes per buffer handed from the reading thread to the writing thread.
pub(super) const CHUNK: usize = 1 << 20;
/// Buffers in flight between the two threads; with [`CHUNK`] this bounds the pipeline's
/// memory at 8 MiB.
const IN_FLIGHT: usize = 8;

/// What the reading thread sends.
enum Message {
    /// A buffer and how much of it is filled.
    Data(Vec<u8>, usize),
    /// The current layer is complete.
    LayerEnd,
    /// Layer `i` could not be read.
    Failed(usize, LayerError),
}

/// Writes `layers` to `out` as members named `names`, each stored as the blob `stored` says
/// (the plain tar, or its `compression` form), checking each against its record. Returns each
/// layer's plain blob (its `diff_id` and size).
pub(super) fn write_layers<W: Write>(
    layers: &[&PlannedLayer],
    names: &[String],
    stored: &[Blob],
    compression: Compression,
    out: &mut MemberWriter<W>,
    progress: &Progress,
) -> Result<Vec<Blob>, ArchiveError> {
    let sources: Vec<(LayerSource, Stamp)> = layers
        .iter()
        .map(|l| (l.content.source(), l.content.stamp()))
        .collect();
    let (tx, rx) = mpsc::sync_channel::<Message>(IN_FLIGHT);
    let (pool_tx, pool_rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT - 1 {
        pool_tx.send(vec![0; CHUNK]).expect("pool has room");
    }
    std::thread::scope(|scope| {
        // Owned here so that an early return drops them, which unblocks the reader thread
        // before the scope joins it.
        let (rx, pool_tx) = (rx, pool_tx);
        let sources = &sources;
        scope.spawn(move || read_layers(sources, tx, pool_rx));
        let mut blobs = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            let check = LayerCheck {
                index: i,
                layer,
                stored: stored[i],
            };
            out.begin_file(&names[i], stored[i].size)
                .map_err(ArchiveError::Write)?;
            blobs.push(check.write(compression, &rx, &pool_tx, out, progress)?);
            out.end_file(stored[i].size).map_err(ArchiveError::Write)?;
            progress.layer_done();
        }
        Ok(blobs)
    })
}

/// The reading thread: tars every layer into buffers from `pool`, sending them on `tx`.
fn read_layers(sources: &[(LayerSource, Stamp)], tx: SyncSender<Message>, pool: Receiver<Vec<u8>>) {
    let mut sink = BufferSink::new(CHUNK, ChunkShipper { tx, pool });
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
}

/// One layer being written, and what it must match.
struct LayerCheck<'a> {
    /// Position among the archive's layers, from 0.
    index: usize,
    layer: &'a PlannedLayer,
    /// The blob it is stored as.
    stored: Blob,
}

impl LayerCheck<'_> {
    /// Writes the layer's bytes as they arrive on `rx` (compressed with `compression`),
    /// returning its buffers to `pool`; checks the plain and the stored bytes against the
    /// record and returns the plain blob.
    fn write<W: Write>(
        &self,
        compression: Compression,
        rx: &Receiver<Message>,
        pool: &SyncSender<Vec<u8>>,
        out: &mut MemberWriter<W>,
        progress: &Progress,
    ) -> Result<Blob, ArchiveError> {
        let size = self.layer.record.size;
        let mut written = HashingWriter::new(out);
        // Compressed, the plain bytes are hashed on their own; plain, what is written is the
        // plain layer, hashed once.
        let mut compressing = (compression != Compression::None)
            .then(|| (Compressing::new(compression), Hasher::new()));
        let mut plain_size = 0u64;
        loop {
            let (buf, n) = match rx.recv() {
                Ok(Message::Data(buf, n)) => (buf, n),
                Ok(Message::LayerEnd) => break,
                Ok(Message::Failed(index, source)) => {
                    return Err(ArchiveError::Layer {
                        index: index + 1,
                        what: self.layer.content.describe_short(),
                        source,
                    })
                }
                Err(_) => {
                    return Err(ArchiveError::Write(io::Error::other(
                        "the layer reader stopped unexpectedly",
                    )))
                }
            };
            if plain_size + n as u64 > size {
                return Err(self.mismatch(format!("more than {size} bytes")));
            }
            plain_size += n as u64;
            match &mut compressing {
                None => written.write_all(&buf[..n]).map_err(ArchiveError::Write)?,
                Some((c, plain)) => {
                    plain.update(&buf[..n]);
                    c.feed(&buf[..n], &mut written)?;
                    if written.size() > self.stored.size {
                        return Err(self.compressed_mismatch(written.size()));
                    }
                }
            }
            progress.add(n as u64);
            let _ = pool.send(buf);
        }
        let plain = match compressing {
            Some((c, plain)) => {
                c.finish(&mut written)?;
                Some(plain.finish())
            }
            None => None,
        };
        let (_, written) = written.finish();
        let plain = plain.unwrap_or(written);
        if plain.size != size || plain.digest != self.layer.record.diff_id {
            return Err(self.mismatch(format!("{}, {} bytes", plain.digest, plain.size)));
        }
        if written != self.stored {
            return Err(self.compressed_mismatch(written.size));
        }
        Ok(plain)
    }

    /// The layer's plain bytes differ from its record: its store paths changed since the
    /// image was built.
    fn mismatch(&self, found: String) -> ArchiveError {
        let record = &self.layer.record;
        ArchiveError::RecordMismatch {
            index: self.index + 1,
            what: self.layer.content.describe_at_most(10),
            expected: format!("{}, {} bytes", record.diff_id, record.size),
            found,
        }
    }

    /// The plain bytes matched the record but their compression did not: a helper whose
    /// compressor differs from the one that made the record.
    fn compressed_mismatch(&self, written: u64) -> ArchiveError {
        ArchiveError::RecordMismatch {
            index: self.index + 1,
            what: self.layer.content.describe_at_most(10),
            expected: format!(
                "compressed to {}, {} bytes",
                self.stored.digest, self.stored.size
            ),
            found: format!(
                "{written} compressed bytes of another digest; rebuild the image's records with this helper"
            ),
        }
    }
}

/// Hands full buffers to the writing thread, taking an empty one from the pool in exchange.
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

/// A layer being compressed into the archive: the encoder compresses on its own threads and
/// hands the compressed bytes back through a channel, drained into the archive as they come.
struct Compressing {
    encoder: Encoder<ChannelWriter>,
    rx: Receiver<Vec<u8>>,
}

impl Compressing {
    fn new(compression: Compression) -> Compressing {
        // Unbounded, but drained after every chunk fed: it holds what the encoder finished
        // since, at most a batch or two.
        let (tx, rx) = mpsc::channel();
        Compressing {
            encoder: compression.encoder(ChannelWriter(tx)),
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
