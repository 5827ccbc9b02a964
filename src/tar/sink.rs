//! Where layer bytes go: a [`LayerSink`] takes them in order, file data as a reader so that a
//! sink can read it straight into its own buffers; a [`BufferSink`] fills fixed-size buffers
//! and hands them to a [`Shipper`] (a hashing thread, a compressor, a writer).

use std::fs::File;
use std::io::{self, Read};

/// Receives a layer's bytes in order. File data is handed over as a reader so a sink can read
/// it straight into its own buffers.
pub trait LayerSink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Appends up to `len` bytes read from `file`; returns how many were read (fewer at EOF).
    fn put_from(&mut self, file: &mut File, len: u64) -> Result<u64, CopyError>;
}

/// A failed copy from a file into a sink: which side failed.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the file failed.
    Read(io::Error),
    /// Writing to the sink failed.
    Write(io::Error),
}

/// Takes the full buffers of a [`BufferSink`].
pub trait Shipper {
    /// Takes the first `filled` bytes of `buf`, which it may swap for another buffer of the
    /// same length.
    fn ship(&mut self, buf: &mut Vec<u8>, filled: usize) -> io::Result<()>;
}

/// A [`LayerSink`] that fills a fixed-size buffer, reading file data straight into it, and
/// hands it to a [`Shipper`] whenever it is full (and on [`BufferSink::flush`]).
#[derive(Debug)]
pub struct BufferSink<S> {
    buf: Vec<u8>,
    filled: usize,
    /// Where full buffers go.
    pub shipper: S,
}

impl<S: Shipper> BufferSink<S> {
    /// A sink with a buffer of `size` bytes.
    pub fn new(size: usize, shipper: S) -> BufferSink<S> {
        BufferSink {
            buf: vec![0; size],
            filled: 0,
            shipper,
        }
    }

    /// Ships the filled part of the buffer, if any.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.filled > 0 {
            self.shipper.ship(&mut self.buf, self.filled)?;
            self.filled = 0;
        }
        Ok(())
    }
}

impl<S: Shipper> LayerSink for BufferSink<S> {
    fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.filled == self.buf.len() {
                self.flush()?;
            }
            let n = bytes.len().min(self.buf.len() - self.filled);
            self.buf[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn put_from(&mut self, file: &mut File, len: u64) -> Result<u64, CopyError> {
        let mut done = 0u64;
        while done < len {
            if self.filled == self.buf.len() {
                self.flush().map_err(CopyError::Write)?;
            }
            let want = ((len - done) as usize).min(self.buf.len() - self.filled);
            let n = read_retrying(file, &mut self.buf[self.filled..self.filled + want])
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

/// A [`Shipper`] that writes full buffers to a writer.
#[derive(Debug)]
pub struct WriteShipper<W>(pub W);

impl<W: io::Write> Shipper for WriteShipper<W> {
    fn ship(&mut self, buf: &mut Vec<u8>, filled: usize) -> io::Result<()> {
        self.0.write_all(&buf[..filled])
    }
}

/// Reads into `buf`, retrying on EINTR.
pub fn read_retrying(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}
