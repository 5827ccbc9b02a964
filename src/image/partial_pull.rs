//! What a zstd:chunked partial pull of an image's new layers moves (podman 5 with
//! `enable_partial_images`; docs/research/zstd-chunked.md §2.3–2.5), predicted without a
//! registry: each new layer is written as strata's zstd:chunked writer writes it (into
//! nothing: only its TOC is kept), and its files are looked up by content digest in the
//! older image's layers.
//!
//! What podman does, and so what is counted, per new layer:
//! - one request for the compressed TOC and tar-split (`metadataBytes`);
//! - a file whose sha256 no older layer holds: its frames `[offset, endOffset)`; of a file
//!   of several 4 MiB chunks, the chunks whose digest no older file's chunk has;
//! - ranges closer than [`AUTO_MERGE`] bytes are fetched as one, the gap with them; over
//!   [`MAX_RANGES`] ranges, the closest are merged until that many remain.
//!
//! Each file with content counts once per entry: two files of the new layers with the same
//! content, neither in the older image, are both counted (podman looks files up in the
//! layers of its store, not in the layer it is pulling). The prediction assumes the older
//! image's layers are in the puller's store with a TOC (pulled as zstd:chunked): files of
//! layers pulled otherwise are not found, and then the whole of each new file moves.
//!
//! The older image's files are hashed only when their size is the size of some file of the
//! new layers (or, for chunks, when they are over one chunk and some new file has chunks):
//! a file of another size cannot have the same content.

use crate::compress::chunked::toc::TocEntry;
use crate::compress::chunked::{ChunkedWriter, CHUNK};
use crate::compress::decompressed;
use crate::digest::Digest;
use crate::file_error::FileError;
use crate::plan::LayerContent;
use crate::tar::header::EntryType;
use crate::tar::layer::{for_each_file, write_layer_to, LayerError, LayerSource};
use crate::tar::reader::TarReader;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Gaps between two ranges below this many bytes are fetched with them
/// (containers/storage's `autoMergePartsThreshold`).
pub const AUTO_MERGE: u64 = 1024;
/// The most ranges of a layer fetched (containers/storage's `maxNumberMissingChunks`).
pub const MAX_RANGES: usize = 1024;

/// Why a partial pull cannot be predicted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartialPullError {
    /// A layer's tar could not be made, or not written as zstd:chunked.
    #[error("layer {index}: {source}")]
    Layer {
        /// Its position from the bottom, from 1.
        index: usize,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// A file could not be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// An archive or a layer in it could not be read.
    #[error("`{path}`: {reason}")]
    Archive {
        /// The archive.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where an image's layer tars come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LayerTars {
    /// Unknown: nothing can be predicted.
    #[default]
    Unknown,
    /// A plan's layers, tarred as `strata stream` tars them.
    Plan(Vec<LayerContent>),
    /// An archive's layer members (plain, gzip or zstd), bottom to top.
    Archive {
        /// The archive.
        path: PathBuf,
        /// Each layer's member.
        members: Vec<String>,
    },
}

/// One layer's bytes as [`LayerTars::each`] hands them over.
enum Body<'a> {
    /// Its tar.
    Tar(&'a mut dyn Read),
    /// Its store paths (or tree): the tar is written from them.
    Source(LayerSource, crate::tar::header::Stamp),
}

/// What [`LayerTars::each`] calls for every layer asked for: its index (from 0) and bytes.
type Each<'e> = dyn FnMut(usize, Body<'_>) -> Result<(), PartialPullError> + 'e;

impl LayerTars {
    /// Calls `each` for the layers numbered `wanted` (from 0), an archive's in the order
    /// its members come, reading it once.
    fn each(&self, wanted: &[usize], each: &mut Each<'_>) -> Result<(), PartialPullError> {
        match self {
            LayerTars::Unknown => Ok(()),
            LayerTars::Plan(layers) => {
                for &i in wanted {
                    let content = &layers[i];
                    match content.source() {
                        LayerSource::Tarball(path) => {
                            let mut file =
                                std::fs::File::open(&path).map_err(FileError::on("read", &path))?;
                            each(i, Body::Tar(&mut file))?;
                        }
                        source => each(i, Body::Source(source, content.stamp()))?,
                    }
                }
                Ok(())
            }
            LayerTars::Archive { path, members } => {
                let by_member: HashMap<&str, usize> = wanted
                    .iter()
                    .rev()
                    .map(|&i| (members[i].as_str(), i))
                    .collect();
                each_member(path, &by_member, each)
            }
        }
    }
}

/// Reads the archive `path` once, calling `each` with the decompressed members `by_member`
/// names.
fn each_member(
    path: &Path,
    by_member: &HashMap<&str, usize>,
    each: &mut Each<'_>,
) -> Result<(), PartialPullError> {
    let bad = |reason: String| PartialPullError::Archive {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(FileError::on("open", path))?;
    let reader = decompressed(file).map_err(FileError::on("read", path))?;
    let mut tar = TarReader::new(reader);
    while let Some(entry) = tar.next_entry().map_err(|e| bad(e.to_string()))? {
        let name = String::from_utf8_lossy(&entry.name);
        let Some(&i) = by_member.get(name.trim_start_matches("./")) else {
            continue;
        };
        let mut data = tar.data();
        let mut layer =
            decompressed(&mut data).map_err(|e| bad(format!("layer {}: {e}", i + 1)))?;
        each(i, Body::Tar(&mut layer))?;
    }
    Ok(())
}

/// A file of a new layer as its TOC describes it.
#[derive(Debug, Clone, PartialEq)]
struct NewFile {
    /// sha256 of its content.
    digest: Digest,
    /// Its size.
    size: u64,
    /// Its frames in the blob.
    range: (u64, u64),
    /// Its chunks, digest and where each starts, when it has several.
    chunks: Vec<(Digest, u64)>,
}

/// A new layer as its zstd:chunked form describes it.
#[derive(Debug, Clone, PartialEq, Default)]
struct NewLayer {
    /// Its files with content.
    files: Vec<NewFile>,
    /// Bytes of the compressed TOC and tar-split.
    metadata: u64,
}

/// The files of the TOC whose compressed bytes are `toc`.
fn read_toc(toc: &[u8]) -> io::Result<Vec<NewFile>> {
    #[derive(serde::Deserialize)]
    struct Toc {
        entries: Vec<TocEntry>,
    }
    let plain = zstd::stream::decode_all(toc)?;
    let toc: Toc = serde_json::from_slice(&plain)?;
    let digest = |d: &Option<String>| d.as_deref().and_then(Digest::parse);
    let mut files: Vec<NewFile> = Vec::new();
    for e in toc.entries {
        match (e.kind.as_str(), digest(&e.digest), digest(&e.chunk_digest)) {
            ("reg", Some(d), chunk) => files.push(NewFile {
                digest: d,
                size: u64::try_from(e.size).unwrap_or(0),
                range: (e.offset, e.end_offset),
                chunks: chunk.map(|c| vec![(c, e.offset)]).unwrap_or_default(),
            }),
            ("chunk", _, Some(c)) => {
                if let Some(f) = files.last_mut() {
                    f.chunks.push((c, e.offset));
                }
            }
            _ => {}
        }
    }
    Ok(files)
}

/// Writes a layer's tar as zstd:chunked into nothing, keeping its TOC: what it holds.
fn chunked_layer(index: usize, body: Body<'_>) -> Result<NewLayer, PartialPullError> {
    let fail = |source: io::Error| PartialPullError::Layer {
        index: index + 1,
        source: LayerError::Write(source),
    };
    let mut writer = ChunkedWriter::new(io::sink(), None);
    match body {
        Body::Tar(tar) => {
            io::copy(tar, &mut writer).map_err(fail)?;
        }
        Body::Source(source, stamp) => {
            writer = write_layer_to(&source, &stamp, writer).map_err(|source| {
                PartialPullError::Layer {
                    index: index + 1,
                    source,
                }
            })?;
        }
    }
    let (_, chunked, toc) = writer.finish_with_toc().map_err(fail)?;
    Ok(NewLayer {
        files: read_toc(&toc).map_err(fail)?,
        metadata: chunked.toc.compressed + chunked.tar_split.compressed,
    })
}

/// The contents an older image holds, of the sizes asked for.
#[derive(Debug, Default)]
struct OldContent {
    /// Sizes of the files worth hashing.
    sizes: HashSet<u64>,
    /// Whether files over one chunk are worth hashing chunk by chunk.
    chunks_wanted: bool,
    /// sha256 of the files hashed.
    files: HashSet<Digest>,
    /// sha256 of the chunks of the files over one chunk.
    chunks: HashSet<Digest>,
}

impl OldContent {
    /// Whether a file of `size` bytes is worth reading.
    fn wants(&self, size: u64) -> bool {
        size > 0 && (self.sizes.contains(&size) || (self.chunks_wanted && size > CHUNK as u64))
    }

    /// Hashes the `size` bytes of `file`, whole and (when over one chunk) chunk by chunk.
    fn hash(&mut self, file: &mut dyn Read, size: u64) -> io::Result<()> {
        let chunked = self.chunks_wanted && size > CHUNK as u64;
        let (mut whole, mut chunk) = (Sha256::new(), Sha256::new());
        let mut buf = vec![0u8; 1 << 20];
        let (mut left, mut in_chunk) = (size, 0usize);
        while left > 0 {
            let mut want = left.min(buf.len() as u64) as usize;
            if chunked {
                want = want.min(CHUNK - in_chunk);
            }
            file.read_exact(&mut buf[..want])?;
            whole.update(&buf[..want]);
            left -= want as u64;
            if chunked {
                chunk.update(&buf[..want]);
                in_chunk += want;
                if in_chunk == CHUNK || left == 0 {
                    let done = std::mem::replace(&mut chunk, Sha256::new());
                    self.chunks.insert(Digest(done.finalize().into()));
                    in_chunk = 0;
                }
            }
        }
        self.files.insert(Digest(whole.finalize().into()));
        Ok(())
    }

    /// Hashes the files of one older layer.
    fn read_layer(&mut self, index: usize, body: Body<'_>) -> Result<(), PartialPullError> {
        let bad = |e: io::Error| PartialPullError::Layer {
            index: index + 1,
            source: LayerError::Write(e),
        };
        match body {
            Body::Tar(tar) => {
                let mut tar = TarReader::new(tar);
                while let Some(entry) = tar.next_entry().map_err(|e| bad(e.into()))? {
                    if entry.entry_type == EntryType::Regular && self.wants(entry.size) {
                        self.hash(&mut tar.data(), entry.size).map_err(bad)?;
                    }
                }
            }
            Body::Source(source, _) => {
                for_each_file(&source, &mut |path, size| {
                    if !self.wants(size) {
                        return Ok(());
                    }
                    let mut file =
                        std::fs::File::open(path).map_err(FileError::on("read", path))?;
                    self.hash(&mut file, size)
                        .map_err(|e| FileError::on("read", path)(e).into())
                })
                .map_err(|source| PartialPullError::Layer {
                    index: index + 1,
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// What a partial pull of one layer, or of several, moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialPull {
    /// Files with content in the layers.
    pub files: u64,
    /// ... of which the pull fetches some bytes (content the older image lacks).
    pub files_missing: u64,
    /// Bytes of the ranges fetched for them (compressed frames, gaps merged in).
    pub file_bytes: u64,
    /// Bytes of the compressed TOCs and tar-splits.
    pub metadata_bytes: u64,
    /// All the bytes the pull fetches of the layers.
    pub bytes: u64,
}

impl std::ops::AddAssign for PartialPull {
    fn add_assign(&mut self, o: PartialPull) {
        self.files += o.files;
        self.files_missing += o.files_missing;
        self.file_bytes += o.file_bytes;
        self.metadata_bytes += o.metadata_bytes;
        self.bytes += o.bytes;
    }
}

/// Bytes the ranges fetch once merged as podman merges them ([`AUTO_MERGE`],
/// [`MAX_RANGES`]).
fn fetched(mut ranges: Vec<(u64, u64)>) -> u64 {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start < last.1 + AUTO_MERGE => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut bytes: u64 = merged.iter().map(|(s, e)| e - s).sum();
    if merged.len() > MAX_RANGES {
        let mut gaps: Vec<u64> = merged.windows(2).map(|w| w[1].0 - w[0].1).collect();
        gaps.sort_unstable();
        bytes += gaps[..merged.len() - MAX_RANGES].iter().sum::<u64>();
    }
    bytes
}

/// What a partial pull of `layer` moves when the puller holds `old`.
fn pull_of(layer: &NewLayer, old: &OldContent) -> PartialPull {
    let mut ranges = Vec::new();
    let mut missing = 0;
    for f in layer
        .files
        .iter()
        .filter(|f| !old.files.contains(&f.digest))
    {
        missing += 1;
        if f.chunks.is_empty() {
            ranges.push(f.range);
            continue;
        }
        let ends = f.chunks.iter().skip(1).map(|c| c.1).chain([f.range.1]);
        for (&(digest, start), end) in f.chunks.iter().zip(ends) {
            if !old.chunks.contains(&digest) {
                ranges.push((start, end));
            }
        }
    }
    let file_bytes = fetched(ranges);
    PartialPull {
        files: layer.files.len() as u64,
        files_missing: missing,
        file_bytes,
        metadata_bytes: layer.metadata,
        bytes: file_bytes + layer.metadata,
    }
}

/// What a partial pull of the layers `new_layers` (numbered from 0) of the image whose
/// tars `new` gives moves, each, when the puller's store holds the layers `old_layers` of
/// `old` (with their TOCs).
pub fn predict(
    new: &LayerTars,
    new_layers: &[usize],
    old: &LayerTars,
    old_layers: &[usize],
) -> Result<Vec<PartialPull>, PartialPullError> {
    let mut layers: HashMap<usize, NewLayer> = HashMap::new();
    new.each(new_layers, &mut |i, body| {
        layers.insert(i, chunked_layer(i, body)?);
        Ok(())
    })?;
    let mut content = OldContent::default();
    for f in layers.values().flat_map(|l| &l.files) {
        content.sizes.insert(f.size);
        content.chunks_wanted |= !f.chunks.is_empty();
    }
    old.each(old_layers, &mut |i, body| content.read_layer(i, body))?;
    Ok(new_layers
        .iter()
        .map(|i| {
            layers
                .get(i)
                .map_or_else(PartialPull::default, |l| pull_of(l, &content))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_ranges_are_fetched_as_one() {
        assert_eq!(fetched(vec![(0, 10), (20, 30)]), 30);
        assert_eq!(fetched(vec![(5000, 6000), (0, 10)]), 1010);
        // Past the most ranges, the two smallest gaps (1900 bytes each) are fetched too.
        let mut many: Vec<(u64, u64)> = (0..MAX_RANGES as u64 + 2)
            .map(|i| (i * 4000, i * 4000 + 100))
            .collect();
        many[1] = (2000, 2100);
        many[3] = (10_000, 10_100);
        let own: u64 = many.iter().map(|(s, e)| e - s).sum();
        assert_eq!(fetched(many), own + 3800);
    }
}
