//! Deterministic, block-parallel gzip and zstd.
//!
//! Input is cut into fixed-size blocks at fixed offsets, and the blocks of a batch are
//! compressed in parallel on rayon's pool. The output depends only on the input, never on
//! the number of threads or on how writes were split:
//! - gzip works like pigz: every block is raw deflate at a fixed level, primed with the
//!   32 KiB of input before it as dictionary and ended with a sync flush; an empty final
//!   block, the CRC-32 and the length close the stream. The header has no name and mtime 0.
//!   A block whose bytes look random (byte frequencies within [`STORED_CHI_SQUARE`] of
//!   uniform, about 7.99 bits of entropy per byte) is written as stored blocks instead:
//!   deflate cannot shrink it and would spend most of its time failing to (compressed files
//!   in the store: archives, images, jars). The test is integer arithmetic, so every platform
//!   decides alike.
//! - zstd writes every block as an independent frame (a valid zstd stream is any sequence of
//!   frames). Single-threaded frames keep memory per block bounded, where libzstd's own
//!   multithreading buffers several megabytes per worker.
//!
//! Changing any constant here changes every compressed digest strata has recorded, so they
//! are part of the record format ([`crate::plan::record::RECORD_VERSION`]).

use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// gzip level. zlib-rs' level 1 is zlib-ng's "quick" strategy (static Huffman codes only):
/// twice as fast as level 2 but 1.7 times larger on text. Level 2 matches `pigz -1` in size
/// and beats it in speed per core (measured: 142 against 114 MB/s on text, 85 against 60 on
/// machine code); level 6 saves another 2 to 5 % at half the speed.
pub const GZIP_LEVEL: u32 = 2;
/// Input bytes per gzip block (pigz's default).
pub const GZIP_BLOCK: usize = 128 * 1024;
/// Bytes of preceding input that prime each gzip block (deflate's window).
const GZIP_DICTIONARY: usize = 32 * 1024;
/// zstd level: the zstd command's default.
pub const ZSTD_LEVEL: i32 = 3;
/// Input bytes per zstd frame.
pub const ZSTD_BLOCK: usize = 1024 * 1024;
/// Input bytes gathered before a batch is compressed: a multiple of both block sizes, so
/// batches never split a block.
pub const BATCH: usize = 2 * 1024 * 1024;
/// Chi-square statistic of a gzip block's byte frequencies against uniform below which the
/// block is stored, not deflated. Random bytes give about 255 (± 23); the entropy shortfall
/// from 8 bits is about chi-square / (2 n ln 2), so 1800 on a 128 KiB block is 7.99 bits per
/// byte. Compressible data, even machine code, is far above.
pub const STORED_CHI_SQUARE: u64 = 1800;

/// Which compression a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// gzip (RFC 1952).
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

/// The state of one compressed stream, fed a batch at a time.
#[derive(Debug)]
pub struct BlockStream {
    codec: Codec,
    crc: crc32fast::Hasher,
    total_in: u64,
    /// gzip: the last [`GZIP_DICTIONARY`] bytes of input so far.
    tail: Vec<u8>,
    started: bool,
}

impl BlockStream {
    /// A new stream.
    pub fn new(codec: Codec) -> BlockStream {
        BlockStream {
            codec,
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            tail: Vec::new(),
            started: false,
        }
    }

    /// Compresses `batch`, whose length must be a multiple of [`BATCH`] unless it is the last
    /// one, and returns the output bytes in order (the gzip header first, on the first call).
    pub fn compress(&mut self, batch: &[u8]) -> Vec<Vec<u8>> {
        let block = match self.codec {
            Codec::Gzip => GZIP_BLOCK,
            Codec::Zstd => ZSTD_BLOCK,
        };
        let starts: Vec<usize> = (0..batch.len()).step_by(block).collect();
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(starts.len() + 1);
        if !self.started {
            self.started = true;
            if self.codec == Codec::Gzip {
                // Magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
                out.push(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
            }
        }
        let tail = &self.tail;
        let blocks: Vec<Vec<u8>> = match self.codec {
            Codec::Gzip => starts
                .par_iter()
                .map(|&s| {
                    let input = &batch[s..(s + block).min(batch.len())];
                    let dictionary: &[u8] = if s == 0 {
                        tail
                    } else {
                        &batch[s.saturating_sub(GZIP_DICTIONARY)..s]
                    };
                    deflate_block(input, dictionary)
                })
                .collect(),
            Codec::Zstd => starts
                .par_iter()
                .map(|&s| zstd_frame(&batch[s..(s + block).min(batch.len())]))
                .collect(),
        };
        out.extend(blocks);
        if self.codec == Codec::Gzip {
            self.crc.update(batch);
            let keep = GZIP_DICTIONARY.min(batch.len());
            if keep == GZIP_DICTIONARY {
                self.tail.clear();
            } else {
                let drop = (self.tail.len() + keep).saturating_sub(GZIP_DICTIONARY);
                self.tail.drain(..drop);
            }
            self.tail.extend_from_slice(&batch[batch.len() - keep..]);
        }
        self.total_in += batch.len() as u64;
        out
    }

    /// Ends the stream: returns what follows the last block.
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.codec {
            Codec::Gzip => {
                if !self.started {
                    out.extend(self.compress(&[]).concat());
                }
                // An empty final block with fixed codes, then CRC-32 and length mod 2^32.
                out.extend_from_slice(&[0x03, 0x00]);
                out.extend_from_slice(&self.crc.clone().finalize().to_le_bytes());
                out.extend_from_slice(&(self.total_in as u32).to_le_bytes());
            }
            Codec::Zstd => {
                if self.total_in == 0 {
                    // One empty frame, so that empty input is still a valid stream.
                    out.extend(zstd_frame(&[]));
                }
            }
        }
        out
    }
}

/// Raw deflate of `input` primed with `dictionary`, ended with a sync flush; stored blocks
/// when `input` looks incompressible.
fn deflate_block(input: &[u8], dictionary: &[u8]) -> Vec<u8> {
    if looks_random(input) {
        return stored_blocks(input);
    }
    let mut c = Compress::new(Compression::new(GZIP_LEVEL), false);
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary)
            .expect("setting a dictionary on a fresh deflate stream cannot fail");
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 64);
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflate of in-memory data cannot fail");
        let done = c.total_in() as usize == input.len() && out.len() < out.capacity();
        if done || status == Status::StreamEnd {
            return out;
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// Whether the byte frequencies of `data` are close enough to uniform that deflate cannot
/// gain (never for short data). Chi-square is 256 Σ c² / n - n; the comparison is kept in
/// integers: 256 Σ c² < n (n + T).
fn looks_random(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as u64;
    let sum_squares: u64 = counts.iter().map(|c| c * c).sum();
    256 * sum_squares < n * (n + STORED_CHI_SQUARE)
}

/// `input` as non-final stored deflate blocks (at most 65535 bytes each), starting and
/// ending on a byte boundary like a sync-flushed block.
fn stored_blocks(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 65535 * 5 + 5);
    for part in input.chunks(65535) {
        let len = part.len() as u16;
        out.push(0); // BFINAL 0, BTYPE 00 (stored), padded to the byte
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// One zstd frame holding `input`.
fn zstd_frame(input: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(input, ZSTD_LEVEL).expect("zstd of in-memory data cannot fail")
}

/// A compressor name as `buildLayeredImage`'s `compressor` argument takes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compressor {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gz,
    /// zstd.
    Zstd,
}

/// An unknown compressor name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`compressor` must be one of none, gz, zstd; got {0:?}")]
pub struct UnknownCompressor(pub String);

impl Compressor {
    /// Whether this is [`Compressor::None`].
    pub fn is_none(&self) -> bool {
        *self == Compressor::None
    }
}

impl FromStr for Compressor {
    type Err = UnknownCompressor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compressor::None),
            "gz" => Ok(Compressor::Gz),
            "zstd" => Ok(Compressor::Zstd),
            other => Err(UnknownCompressor(other.to_owned())),
        }
    }
}

/// Compresses batches on a thread of its own (with the blocks of each batch spread over a
/// rayon pool) and writes the result to `W`, so that the caller fills the next batch while
/// this one is compressed. The hand-off is a rendezvous: no batch waits in a queue, so a
/// stream holds the batch in work and the one being filled, and no more. The stream's end is
/// written only by [`CompressThread::finish`]: a thread dropped or failed on the way ends
/// without it, so a cut-short output never looks complete. Feed it from a thread outside the
/// pool it compresses on, which the compression needs free.
#[derive(Debug)]
pub struct CompressThread<W: Write + Send + 'static> {
    tx: Option<SyncSender<Work>>,
    handle: Option<JoinHandle<io::Result<W>>>,
}

/// What a [`CompressThread`] is sent.
#[derive(Debug)]
enum Work {
    Batch(Arc<Vec<u8>>),
    Finish,
}

impl<W: Write + Send + 'static> CompressThread<W> {
    /// Starts a thread compressing with `codec` into `inner` on rayon's global pool.
    pub fn spawn(codec: Codec, inner: W) -> CompressThread<W> {
        CompressThread::spawn_with(codec, inner, None, None)
    }

    /// Like [`CompressThread::spawn`], on `pool` when given, and sending every batch back
    /// through `returns` once compressed, for reuse.
    pub fn spawn_with(
        codec: Codec,
        mut inner: W,
        pool: Option<Arc<rayon::ThreadPool>>,
        returns: Option<Sender<Arc<Vec<u8>>>>,
    ) -> CompressThread<W> {
        let (tx, rx) = mpsc::sync_channel::<Work>(0);
        let handle = std::thread::spawn(move || {
            let mut stream = BlockStream::new(codec);
            for work in rx {
                match work {
                    Work::Batch(batch) => {
                        let parts = match &pool {
                            Some(pool) => pool.install(|| stream.compress(&batch)),
                            None => stream.compress(&batch),
                        };
                        for part in parts {
                            inner.write_all(&part)?;
                        }
                        if let Some(returns) = &returns {
                            let _ = returns.send(batch);
                        }
                    }
                    Work::Finish => {
                        inner.write_all(&stream.finish())?;
                        return Ok(inner);
                    }
                }
            }
            Err(io::Error::other(
                "compression stopped before the end of its input",
            ))
        });
        CompressThread {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Hands over a batch (see [`BlockStream::compress`] for the length rule).
    pub fn send(&mut self, batch: Arc<Vec<u8>>) -> io::Result<()> {
        self.send_work(Work::Batch(batch))
    }

    fn send_work(&mut self, work: Work) -> io::Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send(work).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped: its result says why.
        self.tx = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("compression thread stopped")),
        }
    }

    /// Compresses what it was given, ends the stream and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.send_work(Work::Finish)?;
        self.tx = None;
        self.join()
    }

    fn join(&mut self) -> io::Result<W> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("compression thread panicked")),
            None => Err(io::Error::other("compression thread already finished")),
        }
    }
}

impl Compressor {
    /// Wraps `inner` in an encoder; call [`Encoder::finish`] when done.
    pub fn encoder<W: Write + Send + 'static>(self, inner: W) -> Encoder<W> {
        self.encoder_on(inner, None)
    }

    /// Like [`Compressor::encoder`], compressing on `pool` when given.
    pub fn encoder_on<W: Write + Send + 'static>(
        self,
        inner: W,
        pool: Option<Arc<rayon::ThreadPool>>,
    ) -> Encoder<W> {
        let codec = match self {
            Compressor::None => return Encoder::Plain(inner),
            Compressor::Gz => Codec::Gzip,
            Compressor::Zstd => Codec::Zstd,
        };
        Encoder::Compressed {
            thread: CompressThread::spawn_with(codec, inner, pool, None),
            batch: Vec::with_capacity(BATCH),
        }
    }
}

/// A writer that compresses into `W` in parallel batches, or passes bytes through.
#[derive(Debug)]
pub enum Encoder<W: Write + Send + 'static> {
    /// No compression.
    Plain(W),
    /// Compression on a [`CompressThread`].
    Compressed {
        /// The thread.
        thread: CompressThread<W>,
        /// The batch being filled.
        batch: Vec<u8>,
    },
}

impl<W: Write + Send + 'static> Encoder<W> {
    /// Compresses what is left, writes the stream's end and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Compressed { mut thread, batch } => {
                if !batch.is_empty() {
                    thread.send(Arc::new(batch))?;
                }
                thread.finish()
            }
        }
    }
}

impl<W: Write + Send + 'static> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Compressed { thread, batch } => {
                let n = buf.len().min(BATCH - batch.len());
                batch.extend_from_slice(&buf[..n]);
                if batch.len() == BATCH {
                    let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
                    thread.send(Arc::new(full))?;
                }
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            // Blocks are fixed-size, so a partial batch stays buffered until finish().
            Encoder::Compressed { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Input that crosses batch and block boundaries, half noise and half text.
    fn sample() -> Vec<u8> {
        let mut data = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while data.len() < BATCH + 3 * GZIP_BLOCK + 123 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        for i in 0..300_000 {
            data.extend_from_slice(format!("{i}\n").as_bytes());
        }
        data
    }

    fn compress_with_threads(
        c: Compressor,
        data: &[u8],
        threads: usize,
        write_size: usize,
    ) -> Vec<u8> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut e = c.encoder(Vec::new());
            for chunk in data.chunks(write_size) {
                e.write_all(chunk).unwrap();
            }
            e.finish().unwrap()
        })
    }

    #[test]
    fn output_is_independent_of_threads_and_write_sizes_and_decodes() {
        let data = sample();
        for c in [Compressor::Gz, Compressor::Zstd] {
            let one = compress_with_threads(c, &data, 1, 1 << 20);
            let two = compress_with_threads(c, &data, 2, 1000);
            let four = compress_with_threads(c, &data, 4, 7777);
            assert_eq!(one, two, "{c:?}: 1 vs 2 threads");
            assert_eq!(one, four, "{c:?}: 1 vs 4 threads");
            let mut back = Vec::new();
            match c {
                Compressor::Gz => {
                    flate2::read::GzDecoder::new(&one[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                _ => back = zstd::decode_all(&one[..]).unwrap(),
            }
            assert!(back == data, "{c:?} round trip");
            assert!(
                one.len() < data.len() * 9 / 10,
                "{c:?} compresses the text half: {} of {}",
                one.len(),
                data.len()
            );
        }
    }

    #[test]
    fn random_blocks_are_stored_and_text_is_not() {
        let data = sample();
        assert!(looks_random(&data[..GZIP_BLOCK]), "the noise half");
        assert!(
            !looks_random(&data[data.len() - GZIP_BLOCK..]),
            "the text half"
        );
        assert!(!looks_random(&[7u8; 1 << 20]));
        assert!(
            !looks_random(&data[..1000]),
            "short blocks are always deflated"
        );
    }

    #[test]
    fn a_dropped_encoder_does_not_end_its_stream() {
        let (tx, rx) = mpsc::channel();
        struct Tell(Sender<Vec<u8>>, Vec<u8>);
        impl Write for Tell {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.1.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Drop for Tell {
            fn drop(&mut self) {
                let _ = self.0.send(std::mem::take(&mut self.1));
            }
        }
        let mut e = Compressor::Gz.encoder(Tell(tx, Vec::new()));
        e.write_all(&sample()).unwrap();
        drop(e);
        let written = rx.recv().unwrap();
        let mut back = Vec::new();
        assert!(
            flate2::read::GzDecoder::new(&written[..])
                .read_to_end(&mut back)
                .is_err(),
            "a cut-short stream must not decode as complete"
        );
    }

    #[test]
    fn gzip_is_readable_by_the_gzip_tool_shape_and_empty_input_works() {
        for c in [Compressor::Gz, Compressor::Zstd, Compressor::None] {
            let empty = c.encoder(Vec::new()).finish().unwrap();
            let mut back = Vec::new();
            match c {
                Compressor::Gz => {
                    assert_eq!(&empty[..3], &[0x1f, 0x8b, 8]);
                    flate2::read::GzDecoder::new(&empty[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compressor::Zstd => back = zstd::decode_all(&empty[..]).unwrap(),
                Compressor::None => assert!(empty.is_empty()),
            }
            assert!(back.is_empty());
        }
        assert!("xz"
            .parse::<Compressor>()
            .unwrap_err()
            .to_string()
            .contains("`compressor`"));
    }
}
