//! Compression off the calling thread: [`CompressThread`] compresses batches into a writer
//! while the caller fills the next, and [`Encoder`] is a `Write` on top of it.

use super::blocks::{BlockStream, BATCH};
use super::chunked::{ChunkedToc, ChunkedWriter};
use super::Compression;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

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
    handle: Option<JoinHandle<Ended<W>>>,
}

/// What a compression thread ends with: the writer, and a zstd:chunked stream's TOC.
pub type Ended<W> = io::Result<(W, Option<ChunkedToc>)>;

/// Batches whose blocks may be compressing at once. With one, every batch's end was a
/// barrier: cores that finished their blocks waited for the slowest block (a deflated one
/// beside stored ones) before the next batch could start; 2 keeps them busy, and memory at a
/// few batches.
const IN_FLIGHT: usize = 2;

/// A batch whose blocks are compressing on the pool, their outputs coming back by position.
struct InFlight {
    batch: Arc<Vec<u8>>,
    blocks: usize,
    outputs: Receiver<(usize, Vec<u8>)>,
}

impl InFlight {
    /// Starts compressing `batch`'s blocks on `pool` (rayon's global pool when none).
    fn start(
        stream: &mut BlockStream,
        batch: Arc<Vec<u8>>,
        pool: Option<&rayon::ThreadPool>,
    ) -> InFlight {
        let jobs = stream.jobs(batch.len());
        let (tx, outputs) = mpsc::channel();
        for (k, job) in jobs.iter().copied().enumerate() {
            let (batch, tx) = (Arc::clone(&batch), tx.clone());
            let work = move || {
                let _ = tx.send((k, job.run(&batch)));
            };
            match pool {
                Some(pool) => pool.spawn(work),
                None => rayon::spawn(work),
            }
        }
        InFlight {
            batch,
            blocks: jobs.len(),
            outputs,
        }
    }

    /// Waits for every block, writes them in order, and gives the batch back.
    fn write_to(self, inner: &mut impl Write) -> io::Result<Arc<Vec<u8>>> {
        let mut parts: Vec<Option<Vec<u8>>> = vec![None; self.blocks];
        for _ in 0..self.blocks {
            let (k, out) = self
                .outputs
                .recv()
                .map_err(|_| io::Error::other("a block's compression failed"))?;
            parts[k] = Some(out);
        }
        for part in parts.into_iter().flatten() {
            inner.write_all(&part)?;
        }
        Ok(self.batch)
    }
}

/// What a [`CompressThread`] is sent.
#[derive(Debug)]
enum Work {
    Batch(Arc<Vec<u8>>),
    Finish,
}

impl<W: Write + Send + 'static> CompressThread<W> {
    /// Starts a thread compressing with `codec` into `inner` on rayon's global pool.
    pub fn spawn(codec: Compression, inner: W) -> CompressThread<W> {
        CompressThread::spawn_with(codec, inner, None, None)
    }

    /// Like [`CompressThread::spawn`], on `pool` when given, and sending every batch back
    /// through `returns` once compressed, for reuse.
    pub fn spawn_with(
        codec: Compression,
        inner: W,
        pool: Option<Arc<rayon::ThreadPool>>,
        returns: Option<Sender<Arc<Vec<u8>>>>,
    ) -> CompressThread<W> {
        let (tx, rx) = mpsc::sync_channel::<Work>(0);
        let handle = std::thread::spawn(move || match codec {
            Compression::ZstdChunked => run_chunked(rx, inner, pool, returns),
            _ => run_blocks(codec, rx, inner, pool, returns),
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
    pub fn finish(self) -> io::Result<W> {
        self.finish_with_toc().map(|(w, _)| w)
    }

    /// Like [`CompressThread::finish`], also returning a zstd:chunked stream's TOC.
    pub fn finish_with_toc(mut self) -> Ended<W> {
        self.send_work(Work::Finish)?;
        self.tx = None;
        self.join()
    }

    fn join(&mut self) -> Ended<W> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("compression thread panicked")),
            None => Err(io::Error::other("compression thread already finished")),
        }
    }
}

/// A compression thread's work for gzip and zstd: block-parallel batches, two in flight.
fn run_blocks<W: Write>(
    codec: Compression,
    rx: Receiver<Work>,
    mut inner: W,
    pool: Option<Arc<rayon::ThreadPool>>,
    returns: Option<Sender<Arc<Vec<u8>>>>,
) -> Ended<W> {
    let mut stream = BlockStream::new(codec);
    let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(IN_FLIGHT);
    let write_oldest = |in_flight: &mut VecDeque<InFlight>, inner: &mut W| {
        if let Some(oldest) = in_flight.pop_front() {
            let batch = oldest.write_to(inner)?;
            if let Some(returns) = &returns {
                let _ = returns.send(batch);
            }
        }
        io::Result::Ok(())
    };
    for work in rx {
        match work {
            Work::Batch(batch) => {
                if in_flight.len() == IN_FLIGHT {
                    write_oldest(&mut in_flight, &mut inner)?;
                }
                in_flight.push_back(InFlight::start(&mut stream, batch, pool.as_deref()));
            }
            Work::Finish => {
                while !in_flight.is_empty() {
                    write_oldest(&mut in_flight, &mut inner)?;
                }
                inner.write_all(&stream.finish())?;
                return Ok((inner, None));
            }
        }
    }
    Err(io::Error::other(
        "compression stopped before the end of its input",
    ))
}

/// A compression thread's work for zstd:chunked: the batches fed to a [`ChunkedWriter`],
/// which cuts frames where the tar says and compresses them on the pool.
fn run_chunked<W: Write>(
    rx: Receiver<Work>,
    inner: W,
    pool: Option<Arc<rayon::ThreadPool>>,
    returns: Option<Sender<Arc<Vec<u8>>>>,
) -> Ended<W> {
    let mut writer = ChunkedWriter::new(inner, pool);
    for work in rx {
        match work {
            Work::Batch(batch) => {
                writer.write_all(&batch)?;
                if let Some(returns) = &returns {
                    let _ = returns.send(batch);
                }
            }
            Work::Finish => {
                let (inner, toc) = writer.finish()?;
                return Ok((inner, Some(toc)));
            }
        }
    }
    Err(io::Error::other(
        "compression stopped before the end of its input",
    ))
}

/// A stream dropped unfinished (its producer failed) stops its thread and waits for it, so
/// the writer is dropped before the caller goes on: a `WholeFile` then removes its partial
/// file even when the process exits right after. The thread stops at once: it drops the
/// blocks still compressing.
impl<W: Write + Send + 'static> Drop for CompressThread<W> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Compression {
    /// Wraps `inner` in an encoder; call [`Encoder::finish`] when done.
    pub fn encoder<W: Write + Send + 'static>(self, inner: W) -> Encoder<W> {
        self.encoder_on(inner, None)
    }

    /// Like [`Compression::encoder`], compressing on `pool` when given.
    pub fn encoder_on<W: Write + Send + 'static>(
        self,
        inner: W,
        pool: Option<Arc<rayon::ThreadPool>>,
    ) -> Encoder<W> {
        let codec = match self {
            Compression::None => return Encoder::Plain(inner),
            Compression::Gzip => Compression::Gzip,
            Compression::Zstd => Compression::Zstd,
            Compression::ZstdChunked => Compression::ZstdChunked,
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
        self.finish_with_toc().map(|(w, _)| w)
    }

    /// Like [`Encoder::finish`], also returning a zstd:chunked stream's TOC.
    pub fn finish_with_toc(self) -> Ended<W> {
        match self {
            Encoder::Plain(w) => Ok((w, None)),
            Encoder::Compressed { mut thread, batch } => {
                if !batch.is_empty() {
                    thread.send(Arc::new(batch))?;
                }
                thread.finish_with_toc()
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
