//! Compression off the calling thread: [`CompressThread`] compresses batches into a writer
//! while the caller fills the next, and [`Encoder`] is a `Write` on top of it.

use super::blocks::{BlockStream, BATCH};
use super::Compression;
use std::io::{self, Write};
use std::sync::mpsc::{self, Sender, SyncSender};
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
    pub fn spawn(codec: Compression, inner: W) -> CompressThread<W> {
        CompressThread::spawn_with(codec, inner, None, None)
    }

    /// Like [`CompressThread::spawn`], on `pool` when given, and sending every batch back
    /// through `returns` once compressed, for reuse.
    pub fn spawn_with(
        codec: Compression,
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
