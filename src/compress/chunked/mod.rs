//! zstd:chunked, the layer format containers/storage pulls partially: a zstd stream whose
//! frames start where files start, followed by a table of contents and tar-split metadata
//! in skippable frames (docs/research/zstd-chunked.md; docs/format-notes.md lists every
//! choice fixed here).
//!
//! [`ChunkedWriter`] reads the layer tar as it is written and cuts it into frames:
//! - the raw bytes before each file's content (the previous file's padding, then every
//!   header block of the following entries up to that file, extension headers included) in
//!   frames of their own, a new one started after [`CHUNK`] bytes, between entries only;
//! - each non-empty file's content from a new frame, in frames of [`CHUNK`] bytes counted
//!   from the file's start (the last one shorter), nothing else in them; a file of several
//!   frames lists each as a `chunk` in the TOC;
//! - the last padding, the end-of-archive blocks and anything after them in a last frame;
//! - the TOC, the tar-split and the footer as skippable frames ([`frames`]).
//!
//! Frames are compressed a batch at a time ([`BATCH`] bytes of input) on rayon's pool, each
//! at [`LEVEL`] on one thread, so the bytes depend on the tar alone. Memory holds a batch,
//! a chunk and the compressed TOC and tar-split, whatever the layer's size.

pub mod crc64;
pub mod frames;
pub mod tar_split;
pub mod toc;

use crate::digest::Digest;
use crate::tar::header::{padding, EntryType, HeaderBlock, BLOCK, MAX_EXTENSION};
use crate::tar::reader::{TarReadError, TarReader};
use crc64::Crc64;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;
use tar_split::SplitWriter;
use toc::{go_string, TocEntry};

/// zstd level of every frame: 3, the zstd command's default and strata's zstd level
/// (containers/storage's writer defaults to 10; readers take any level).
pub const LEVEL: i32 = 3;
/// Most bytes of file content in one frame, and of headers between two files: 4 MiB, as
/// strata's zstd frames, so a large file compresses as in a plain zstd layer and a partial
/// pull fetches a changed 4 MiB chunk rather than the whole file.
pub const CHUNK: usize = 4 << 20;
/// Input bytes whose frames are compressed at once.
pub const BATCH: usize = super::BATCH;

/// The layer annotation with the sha256 of the compressed TOC.
pub const MANIFEST_CHECKSUM: &str = "io.github.containers.zstd-chunked.manifest-checksum";
/// The layer annotation with the TOC's position, `offset:compressed:uncompressed:1`.
pub const MANIFEST_POSITION: &str = "io.github.containers.zstd-chunked.manifest-position";
/// The layer annotation with the tar-split's position, `offset:compressed:uncompressed`.
pub const TARSPLIT_POSITION: &str = "io.github.containers.zstd-chunked.tarsplit-position";

/// Why a layer cannot be written as zstd:chunked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkedError {
    /// The input is not a tar Go's archive/tar reads.
    #[error("the layer is not a tar docker reads: {0}")]
    Tar(#[from] TarReadError),
    /// An entry the TOC cannot describe.
    #[error("entry `{name}`: {what}, which zstd:chunked cannot describe")]
    Unsupported {
        /// The entry's name.
        name: String,
        /// What it has.
        what: String,
    },
    /// The input ended inside an entry.
    #[error("the layer ends inside an entry")]
    Truncated,
    /// Extension headers followed by the end of the archive.
    #[error("extension headers with no entry after them")]
    Dangling,
}

impl From<ChunkedError> for io::Error {
    fn from(e: ChunkedError) -> io::Error {
        match e {
            ChunkedError::Tar(TarReadError::Io(e)) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Where a blob keeps its TOC or tar-split: the offset of the compressed bytes (past the
/// skippable frame's header), their length, and the length decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Blob offset of the compressed bytes.
    pub offset: u64,
    /// Compressed length.
    pub compressed: u64,
    /// Decompressed length.
    pub uncompressed: u64,
}

/// What a zstd:chunked layer's descriptor carries beside its digest and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkedToc {
    /// sha256 of the compressed TOC.
    pub toc_digest: Digest,
    /// The TOC's position.
    pub toc: Position,
    /// The tar-split's position.
    pub tar_split: Position,
}

impl ChunkedToc {
    /// The descriptor's annotations, in key order.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let (t, s) = (&self.toc, &self.tar_split);
        BTreeMap::from([
            (MANIFEST_CHECKSUM.to_owned(), self.toc_digest.to_string()),
            (
                MANIFEST_POSITION.to_owned(),
                format!("{}:{}:{}:{}", t.offset, t.compressed, t.uncompressed, 1),
            ),
            (
                TARSPLIT_POSITION.to_owned(),
                format!("{}:{}:{}", s.offset, s.compressed, s.uncompressed),
            ),
        ])
    }

    /// The TOC a descriptor's annotations describe, when they describe one strata reads.
    pub fn from_annotations(annotations: &HashMap<String, String>) -> Option<ChunkedToc> {
        let numbers = |key: &str, n: usize| -> Option<Vec<u64>> {
            let v: Vec<u64> = annotations
                .get(key)?
                .split(':')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            (v.len() == n).then_some(v)
        };
        let t = numbers(MANIFEST_POSITION, 4).filter(|t| t[3] == 1)?;
        let s = numbers(TARSPLIT_POSITION, 3)?;
        let position = |v: &[u64]| Position {
            offset: v[0],
            compressed: v[1],
            uncompressed: v[2],
        };
        Some(ChunkedToc {
            toc_digest: Digest::parse(annotations.get(MANIFEST_CHECKSUM)?)?,
            toc: position(&t),
            tar_split: position(&s),
        })
    }
}

/// Where the writer is in the tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading header blocks.
    Header,
    /// Reading an extension header's data and padding: this many bytes left.
    Extension(u64),
    /// Reading a file's content: this many bytes left.
    Data(u64),
    /// Reading the padding after a file's content: this many bytes left.
    Padding(u64),
    /// After the first end-of-archive block.
    End,
}

/// Bytes waiting for a frame of their own.
#[derive(Debug)]
enum Piece {
    /// Header bytes.
    Headers(Vec<u8>),
    /// A chunk of a file's content.
    Chunk {
        /// The content.
        plain: Vec<u8>,
        /// The TOC entry (by number) that gets the frame's offset: the file's for its first
        /// chunk, a `chunk` entry for the others.
        entry: u64,
        /// The file's TOC entry, which gets the end offset after its last chunk.
        file: u64,
        /// Whether this is the file's last chunk.
        last: bool,
        /// Whether the file has several chunks, whose digests the TOC lists.
        several: bool,
    },
}

/// The file whose content is being read.
#[derive(Debug)]
struct OpenFile {
    /// Its TOC entry's number.
    entry: u64,
    /// Its name, as read.
    name: Vec<u8>,
    /// Its size.
    size: u64,
    /// Where in the file the current chunk starts.
    chunk_at: u64,
    /// The current chunk.
    chunk: Vec<u8>,
    sha: Sha256,
    crc: Crc64,
}

/// Writes a layer tar given to it as a zstd:chunked blob into `W`; [`ChunkedWriter::finish`]
/// ends the blob and says what its descriptor carries.
pub struct ChunkedWriter<W: Write> {
    out: W,
    /// Blob bytes written.
    written: u64,
    pool: Option<Arc<rayon::ThreadPool>>,
    state: State,
    /// The raw bytes read since the last entry: padding, then header blocks.
    run: Vec<u8>,
    /// How many bytes at the start of `run` are padding.
    run_pad: usize,
    /// Header bytes for the next header frame.
    frame: Vec<u8>,
    pieces: Vec<Piece>,
    /// Plain bytes in `pieces`.
    batched: usize,
    file: Option<OpenFile>,
    /// TOC entries not written yet, waiting for their offsets; the first one's number.
    entries: VecDeque<TocEntry>,
    first_entry: u64,
    /// The compressed TOC so far, and its plain length.
    toc: zstd::stream::write::Encoder<'static, Vec<u8>>,
    toc_len: u64,
    /// The compressed tar-split so far, and its plain length.
    split: zstd::stream::write::Encoder<'static, Vec<u8>>,
    split_len: u64,
    split_lines: SplitWriter,
    /// Bytes from the last padding on, once the end-of-archive blocks began, and how many
    /// of them make tar-split's end segment.
    tail: Vec<u8>,
    end_segment: usize,
}

impl<W: Write> std::fmt::Debug for ChunkedWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedWriter")
            .field("written", &self.written)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ChunkedWriter<W> {
    /// A writer into `out`, compressing on `pool` (rayon's global pool when `None`).
    pub fn new(out: W, pool: Option<Arc<rayon::ThreadPool>>) -> ChunkedWriter<W> {
        let mut toc = frames::stream_encoder();
        let head = br#"{"version":1,"entries":["#;
        toc.write_all(head).expect("writing to memory");
        ChunkedWriter {
            out,
            written: 0,
            pool,
            state: State::Header,
            run: Vec::new(),
            run_pad: 0,
            frame: Vec::new(),
            pieces: Vec::new(),
            batched: 0,
            file: None,
            entries: VecDeque::new(),
            first_entry: 0,
            toc,
            toc_len: head.len() as u64,
            split: frames::stream_encoder(),
            split_len: 0,
            split_lines: SplitWriter::default(),
            tail: Vec::new(),
            end_segment: 0,
        }
    }

    /// Takes what it can of `bytes` in the current state; how much it took.
    fn take(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self.state {
            State::Header => {
                let n = (BLOCK - (self.run.len() - self.run_pad) % BLOCK).min(bytes.len());
                self.run.extend_from_slice(&bytes[..n]);
                if (self.run.len() - self.run_pad) % BLOCK == 0 {
                    self.header_block()?;
                }
                Ok(n)
            }
            State::Extension(left) => {
                let n = left.min(bytes.len() as u64);
                self.run.extend_from_slice(&bytes[..n as usize]);
                self.state = if n == left {
                    State::Header
                } else {
                    State::Extension(left - n)
                };
                Ok(n as usize)
            }
            State::Data(left) => self.content(bytes, left),
            State::Padding(left) => {
                let n = left.min(bytes.len() as u64);
                self.run.extend_from_slice(&bytes[..n as usize]);
                self.run_pad += n as usize;
                self.state = if n == left {
                    State::Header
                } else {
                    State::Padding(left - n)
                };
                Ok(n as usize)
            }
            State::End => {
                self.tail.extend_from_slice(bytes);
                Ok(bytes.len())
            }
        }
    }

    /// A header block is complete at the end of `run`: the end of the archive, an extension
    /// header, or an entry's last header.
    fn header_block(&mut self) -> io::Result<()> {
        let block = HeaderBlock(&self.run[self.run.len() - BLOCK..]);
        if block.is_zero() {
            if self.run.len() - self.run_pad > BLOCK {
                return Err(ChunkedError::Dangling.into());
            }
            self.end_segment = self.run_pad + 2 * BLOCK;
            self.tail = std::mem::take(&mut self.run);
            self.state = State::End;
            return Ok(());
        }
        let entry_type = EntryType::from_flag(block.typeflag());
        if entry_type == EntryType::PaxGlobal {
            return Err(ChunkedError::Unsupported {
                name: go_string(&block.name()),
                what: "a PAX global header".into(),
            }
            .into());
        }
        if !entry_type.is_extension() {
            return self.entry();
        }
        let size = block.size().unwrap_or(u64::MAX);
        if size > MAX_EXTENSION {
            // The reader says why, as it says it for any tar.
            TarReader::new(&self.run[self.run_pad..])
                .next_entry()
                .map_err(ChunkedError::Tar)?;
            return Err(ChunkedError::Truncated.into());
        }
        let left = size + padding(size) as u64;
        if left > 0 {
            self.state = State::Extension(left);
        }
        Ok(())
    }

    /// An entry's headers are complete in `run`: its TOC entry and tar-split segment; its
    /// content follows when it has some.
    fn entry(&mut self) -> io::Result<()> {
        let raw = std::mem::take(&mut self.run);
        let pad = std::mem::replace(&mut self.run_pad, 0);
        let entry = TarReader::new(&raw[pad..])
            .next_entry()
            .map_err(ChunkedError::Tar)?
            .ok_or(ChunkedError::Truncated)?;
        let toc = TocEntry::of_header(&entry, &raw[raw.len() - BLOCK..])?;
        let line = self.split_lines.segment(&raw);
        self.add_split(&line);
        self.frame.extend_from_slice(&raw);
        let number = self.first_entry + self.entries.len() as u64;
        self.entries.push_back(toc);
        if entry.size == 0 {
            let line = self
                .split_lines
                .file(&entry.name, entry.declared_size, None);
            self.add_split(&line);
            if self.frame.len() >= CHUNK {
                self.close_frame()?;
            }
            self.state = State::Header;
            return Ok(());
        }
        // Open first: closing the frame may fill a batch, whose flush must hold this file's
        // entry back until its offsets are known.
        self.file = Some(OpenFile {
            entry: number,
            name: entry.name,
            size: entry.size,
            chunk_at: 0,
            chunk: Vec::with_capacity(entry.size.min(CHUNK as u64) as usize),
            sha: Sha256::new(),
            crc: Crc64::new(),
        });
        self.state = State::Data(entry.size);
        self.close_frame()
    }

    /// Takes content bytes of the open file, `left` of them still to come.
    fn content(&mut self, bytes: &[u8], left: u64) -> io::Result<usize> {
        let file = self.file.as_mut().expect("content belongs to an open file");
        let room = CHUNK - file.chunk.len();
        let n = (bytes.len().min(room) as u64).min(left) as usize;
        let bytes = &bytes[..n];
        file.sha.update(bytes);
        file.crc.update(bytes);
        file.chunk.extend_from_slice(bytes);
        let left = left - n as u64;
        if left == 0 {
            self.end_file()?;
        } else {
            if file.chunk.len() == CHUNK {
                self.push_chunk(false)?;
            }
            self.state = State::Data(left);
        }
        Ok(n)
    }

    /// The open file's content is complete.
    fn end_file(&mut self) -> io::Result<()> {
        self.push_chunk(true)?;
        let file = self.file.take().expect("an open file ends");
        let digest = Digest(file.sha.finalize().into());
        self.entry_mut(file.entry).digest = Some(digest.to_string());
        let line = self
            .split_lines
            .file(&file.name, file.size, Some(file.crc.sum()));
        self.add_split(&line);
        let pad = padding(file.size) as u64;
        self.state = if pad == 0 {
            State::Header
        } else {
            State::Padding(pad)
        };
        Ok(())
    }

    /// Queues the open file's current chunk for a frame of its own.
    fn push_chunk(&mut self, last: bool) -> io::Result<()> {
        let file = self.file.as_mut().expect("a chunk belongs to an open file");
        let plain = std::mem::take(&mut file.chunk);
        let several = file.size > CHUNK as u64;
        let (at, len, name) = (file.chunk_at, plain.len() as u64, go_string(&file.name));
        file.chunk_at += len;
        let file_entry = file.entry;
        let entry = if at == 0 {
            if several {
                self.entry_mut(file_entry).chunk_size = len;
            }
            file_entry
        } else {
            self.entries.push_back(TocEntry {
                kind: "chunk".into(),
                name,
                chunk_offset: at,
                chunk_size: len,
                ..TocEntry::default()
            });
            self.first_entry + self.entries.len() as u64 - 1
        };
        self.batched += plain.len();
        self.pieces.push(Piece::Chunk {
            plain,
            entry,
            file: file_entry,
            last,
            several,
        });
        self.flush_full()
    }

    /// Queues the header bytes gathered so far for a frame of their own.
    fn close_frame(&mut self) -> io::Result<()> {
        if self.frame.is_empty() {
            return Ok(());
        }
        let frame = std::mem::take(&mut self.frame);
        self.batched += frame.len();
        self.pieces.push(Piece::Headers(frame));
        self.flush_full()
    }

    /// Compresses the queued pieces once they fill a batch.
    fn flush_full(&mut self) -> io::Result<()> {
        if self.batched >= BATCH {
            self.compress_pieces()?;
        }
        Ok(())
    }

    /// Compresses the queued pieces in parallel (with the digests of the chunks of files of
    /// several), writes them in order, fills in their TOC entries' offsets and writes the
    /// entries that are complete.
    fn compress_pieces(&mut self) -> io::Result<()> {
        let pieces = std::mem::take(&mut self.pieces);
        self.batched = 0;
        let work = || -> Vec<(Vec<u8>, Option<Digest>)> {
            pieces
                .par_iter()
                .map(|piece| match piece {
                    Piece::Headers(plain) => (frames::frame(plain), None),
                    Piece::Chunk { plain, several, .. } => {
                        (frames::frame(plain), several.then(|| Digest::of(plain)))
                    }
                })
                .collect()
        };
        let compressed = match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        };
        for (piece, (bytes, digest)) in pieces.iter().zip(compressed) {
            let at = self.written;
            self.out.write_all(&bytes)?;
            self.written += bytes.len() as u64;
            if let Piece::Chunk {
                entry, file, last, ..
            } = piece
            {
                let e = self.entry_mut(*entry);
                e.offset = at;
                e.chunk_digest = digest.map(|d| d.to_string());
                if *last {
                    self.entry_mut(*file).end_offset = self.written;
                }
            }
        }
        self.write_entries()
    }

    /// Writes the TOC entries before the open file's (all of them when none is open).
    fn write_entries(&mut self) -> io::Result<()> {
        let held = self.file.as_ref().map_or(u64::MAX, |f| f.entry);
        while self.first_entry < held {
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            let mut json = Vec::with_capacity(256);
            if self.first_entry > 0 {
                json.push(b',');
            }
            json.extend(tar_split::go_json(&entry));
            self.toc.write_all(&json)?;
            self.toc_len += json.len() as u64;
            self.first_entry += 1;
        }
        Ok(())
    }

    /// The TOC entry numbered `number`, not written yet.
    fn entry_mut(&mut self, number: u64) -> &mut TocEntry {
        let at = (number - self.first_entry) as usize;
        &mut self.entries[at]
    }

    /// Adds a tar-split line.
    fn add_split(&mut self, line: &[u8]) {
        self.split.write_all(line).expect("writing to memory");
        self.split_len += line.len() as u64;
    }

    /// Ends the blob: the last frame, the TOC, the tar-split and the footer. Returns the
    /// writer and what the layer's descriptor carries.
    pub fn finish(self) -> io::Result<(W, ChunkedToc)> {
        self.finish_with_toc()
            .map(|(out, chunked, _)| (out, chunked))
    }

    /// [`ChunkedWriter::finish`], also returning the compressed TOC, for those who read the
    /// entries without keeping the blob (`strata explain`'s partial-pull prediction).
    pub fn finish_with_toc(mut self) -> io::Result<(W, ChunkedToc, Vec<u8>)> {
        match self.state {
            State::End => {}
            // A tar may end without its end-of-archive blocks, where a header would start.
            State::Header if self.run.len() == self.run_pad => {
                self.end_segment = self.run.len();
                self.tail = std::mem::take(&mut self.run);
            }
            _ => return Err(ChunkedError::Truncated.into()),
        }
        let tail = std::mem::take(&mut self.tail);
        let (end, rest) = tail.split_at(self.end_segment.min(tail.len()));
        for piece in std::iter::once(end).chain(rest.chunks(tar_split::TRAILER_PIECE)) {
            if !piece.is_empty() {
                let line = self.split_lines.segment(piece);
                self.add_split(&line);
            }
        }
        self.frame.extend_from_slice(&tail);
        if self.frame.is_empty() && self.written == 0 && self.pieces.is_empty() {
            // An empty input still makes a valid zstd stream, starting with a regular frame.
            self.pieces.push(Piece::Headers(Vec::new()));
        }
        self.close_frame()?;
        self.compress_pieces()?;
        self.write_metadata()
    }

    /// Writes the TOC, tar-split and footer frames; returns the compressed TOC too.
    fn write_metadata(mut self) -> io::Result<(W, ChunkedToc, Vec<u8>)> {
        let split = self.split.finish()?;
        let split_digest = Digest::of(&split);
        let end = format!(r#"],"tarSplitDigest":"{split_digest}"}}"#);
        self.toc.write_all(end.as_bytes())?;
        self.toc_len += end.len() as u64;
        let toc = self.toc.finish()?;
        let mut at = self.written;
        let mut place = |data: &[u8], uncompressed: u64| {
            let p = Position {
                offset: at + frames::SKIPPABLE_HEADER,
                compressed: data.len() as u64,
                uncompressed,
            };
            at = p.offset + p.compressed;
            p
        };
        let chunked = ChunkedToc {
            toc_digest: Digest::of(&toc),
            toc: place(&toc, self.toc_len),
            tar_split: place(&split, self.split_len),
        };
        frames::write_skippable(&mut self.out, &toc)?;
        frames::write_skippable(&mut self.out, &split)?;
        let footer = frames::footer(&chunked.toc, &chunked.tar_split);
        frames::write_skippable(&mut self.out, &footer)?;
        Ok((self.out, chunked, toc))
    }
}

impl<W: Write> Write for ChunkedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let n = self.take(rest)?;
            rest = &rest[n..];
        }
        Ok(buf.len())
    }

    /// Frames are cut where the tar says, never where a caller flushes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
