//! The outer tar of an archive (docker-archive, OCI layout, pulled image): members written one
//! after the other, each with a header from one stamp, read-only files and symlinks; the
//! writer counts what it wrote.

use crate::tar::header::{encode_header, padding, Kind, Stamp, END_OF_ARCHIVE};
use std::io::{self, Write};

/// Writes an archive's members to `W`. A member's bytes can be written in one call
/// ([`MemberWriter::file`]) or streamed through the writer between
/// [`MemberWriter::begin_file`] and [`MemberWriter::end_file`].
#[derive(Debug)]
pub struct MemberWriter<W: Write> {
    out: W,
    stamp: Stamp,
    header: Vec<u8>,
    bytes: u64,
}

impl<W: Write> MemberWriter<W> {
    /// An archive whose members are stamped with `stamp` (owner root and a fixed mtime keep
    /// it reproducible).
    pub fn new(out: W, stamp: Stamp) -> MemberWriter<W> {
        MemberWriter {
            out,
            stamp,
            header: Vec::with_capacity(1536),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes the header of a file of `size` bytes; its bytes follow through this writer,
    /// then [`MemberWriter::end_file`].
    pub fn begin_file(&mut self, name: &str, size: u64) -> io::Result<()> {
        self.put_header(name, Kind::File(size), "")
    }

    /// Pads the file of `size` bytes just written to a block boundary.
    pub fn end_file(&mut self, size: u64) -> io::Result<()> {
        self.write_all(&[0u8; 512][..padding(size)])
    }

    /// Writes a file member holding `bytes`.
    pub fn file(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let size = bytes.len() as u64;
        self.begin_file(name, size)?;
        self.write_all(bytes)?;
        self.end_file(size)
    }

    /// Writes a symlink member pointing at `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.put_header(name, Kind::Symlink, target)
    }

    /// Writes the end-of-archive marker, flushes, and returns the writer and the archive's
    /// size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.write_all(&END_OF_ARCHIVE)?;
        self.flush()?;
        Ok((self.out, self.bytes))
    }

    fn put_header(&mut self, name: &str, kind: Kind, link: &str) -> io::Result<()> {
        let mode = if kind == Kind::Symlink { 0o777 } else { 0o444 };
        let mut header = std::mem::take(&mut self.header);
        header.clear();
        encode_header(
            &mut header,
            name.as_bytes(),
            kind,
            mode,
            link.as_bytes(),
            &self.stamp,
        );
        let written = self.write_all(&header);
        self.header = header;
        written
    }
}

impl<W: Write> Write for MemberWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_read_back_and_are_counted() {
        let mut w = MemberWriter::new(Vec::new(), Stamp::root(1));
        w.file("a.json", b"{}").unwrap();
        w.begin_file("blobs/sha256/x", 3).unwrap();
        w.write_all(b"abc").unwrap();
        w.end_file(3).unwrap();
        w.symlink("l", "../a.json").unwrap();
        let (bytes, size) = w.finish().unwrap();
        assert_eq!(size, bytes.len() as u64);
        let mut archive = ::tar::Archive::new(&bytes[..]);
        let got: Vec<(String, String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = String::new();
                e.read_to_string(&mut data).unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                (name, data, e.header().mode().unwrap())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a.json".to_owned(), "{}".to_owned(), 0o444),
                ("blobs/sha256/x".to_owned(), "abc".to_owned(), 0o444),
                ("l".to_owned(), String::new(), 0o777),
            ]
        );
    }
}
