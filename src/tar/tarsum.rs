//! Docker's legacy layer checksum, tarsum (Version0, Version1 and Dev), computed from a tar
//! stream as it goes by, so a layer's writer can feed it the bytes it writes instead of
//! reading the layer again. docs/tarsum-notes.md describes the algorithm this follows: per
//! entry, a sha256 of selected header fields (decimal numbers, names blanked, mtime only in
//! Version0, xattrs only in Version1) and the file's content; the archive's sum is the sha256
//! of the sorted per-entry hex digests. Dev is Version1 under another label.

use crate::tar::header::{parse_pax, BadNumber, BadPax, EntryType, HeaderBlock, MAX_EXTENSION};
use sha2::{Digest as _, Sha256};

/// The tarsums of one tar stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tarsums {
    /// `tarsum+sha256:<hex>`.
    pub v0: String,
    /// `tarsum.v1+sha256:<hex>`.
    pub v1: String,
    /// `tarsum.dev+sha256:<hex>`.
    pub dev: String,
}

/// Why a stream is not a tar tarsum can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarsumError {
    /// The stream ends inside an entry or an extension header.
    #[error("not a tar archive tarsum can read: the archive ends inside an entry")]
    EndsInsideEntry,
    /// A header's checksum does not match.
    #[error("not a tar archive tarsum can read: a header's checksum does not match")]
    Checksum,
    /// An extension header larger than Go's archive/tar reads (its size).
    #[error("not a tar archive tarsum can read: an extension header of {0} bytes, more than the {MAX_EXTENSION} Go's archive/tar reads")]
    TooLarge(u64),
    /// A numeric field Go's archive/tar refuses.
    #[error("not a tar archive tarsum can read: {0}")]
    Number(#[from] BadNumber),
    /// A PAX header Go's archive/tar refuses.
    #[error("not a tar archive tarsum can read: {0}")]
    Pax(#[from] BadPax),
}

/// Where the parser is in the stream.
#[derive(Debug)]
enum State {
    /// Collecting a 512-byte header.
    Header,
    /// Collecting an extension record's data (PAX `x`, GNU `L`/`K`), then its padding.
    Extension {
        kind: EntryType,
        left: u64,
        pad: u64,
    },
    /// An entry's content (hashed when `hashed`), then its padding.
    Content { left: u64, pad: u64, hashed: bool },
    /// After the end-of-archive block: nothing more counts.
    Done,
}

/// The fields of one entry that tarsum hashes.
#[derive(Debug)]
struct Entry {
    name: Vec<u8>,
    mode: i64,
    uid: i64,
    gid: i64,
    size: u64,
    mtime: i64,
    kind: EntryType,
    link: Vec<u8>,
    major: i64,
    minor: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// A global PAX header, as Go's reader hands it over: its name, and the zero time.
    fn global(name: Vec<u8>) -> Entry {
        Entry {
            name,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: GO_ZERO_TIME,
            kind: EntryType::PaxGlobal,
            link: Vec::new(),
            major: 0,
            minor: 0,
            xattrs: Vec::new(),
        }
    }
}

/// Go's zero `time.Time` in Unix seconds (year 1), what a global header's mtime reads as.
const GO_ZERO_TIME: i64 = -62135596800;

/// Computes tarsums from tar bytes given in any chunks.
#[derive(Debug)]
pub struct TarsumHasher {
    state: State,
    block: Vec<u8>,
    extension: Vec<u8>,
    pax: Vec<(Vec<u8>, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    entry: Option<(Sha256, Sha256)>,
    sums_v0: Vec<String>,
    sums_v1: Vec<String>,
    error: Option<TarsumError>,
}

impl Default for TarsumHasher {
    fn default() -> Self {
        TarsumHasher {
            state: State::Header,
            block: Vec::with_capacity(512),
            extension: Vec::new(),
            pax: Vec::new(),
            long_name: None,
            long_link: None,
            entry: None,
            sums_v0: Vec::new(),
            sums_v1: Vec::new(),
            error: None,
        }
    }
}

impl TarsumHasher {
    /// A hasher at the start of a tar stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the stream.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.error.is_none() {
            match &mut self.state {
                State::Done => return,
                State::Header => {
                    let take = (512 - self.block.len()).min(bytes.len());
                    self.block.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.block.len() == 512 {
                        let block = std::mem::take(&mut self.block);
                        if let Err(e) = self.header(&block) {
                            self.error = Some(e);
                        }
                        self.block = block;
                        self.block.clear();
                    }
                }
                State::Extension { kind, left, pad } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    self.extension.extend_from_slice(&bytes[..take]);
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        let skip = (*pad).min(bytes.len() as u64) as usize;
                        *pad -= skip as u64;
                        bytes = &bytes[skip..];
                        if *pad == 0 {
                            let kind = *kind;
                            self.state = State::Header;
                            if let Err(e) = self.extension_done(kind) {
                                self.error = Some(e);
                            }
                        }
                    }
                }
                State::Content { left, pad, hashed } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    if *hashed {
                        if let Some((a, b)) = &mut self.entry {
                            a.update(&bytes[..take]);
                            b.update(&bytes[..take]);
                        }
                    }
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        let skip = (*pad).min(bytes.len() as u64) as usize;
                        *pad -= skip as u64;
                        bytes = &bytes[skip..];
                        if *pad == 0 {
                            self.entry_done();
                            self.state = State::Header;
                        }
                    }
                }
            }
        }
    }

    /// Whether the stream is already known not to be a tar tarsum reads (more bytes change
    /// nothing: a reader can stop).
    pub fn has_failed(&self) -> bool {
        self.error.is_some()
    }

    /// The sums of everything given so far (a stream that ended early counts what it had).
    pub fn finish(mut self) -> Result<Tarsums, TarsumError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let State::Content { .. } | State::Extension { .. } = self.state {
            return Err(TarsumError::EndsInsideEntry);
        }
        self.entry_done();
        let combine = |sums: &mut Vec<String>| {
            sums.sort();
            let mut h = Sha256::new();
            for s in sums.iter() {
                h.update(s.as_bytes());
            }
            hex(&h.finalize())
        };
        let v0 = combine(&mut self.sums_v0);
        let v1 = combine(&mut self.sums_v1);
        Ok(Tarsums {
            v0: format!("tarsum+sha256:{v0}"),
            dev: format!("tarsum.dev+sha256:{v1}"),
            v1: format!("tarsum.v1+sha256:{v1}"),
        })
    }

    fn header(&mut self, block: &[u8]) -> Result<(), TarsumError> {
        let block = HeaderBlock(block);
        if block.is_zero() {
            self.state = State::Done;
            return Ok(());
        }
        if !block.checksum_ok() {
            return Err(TarsumError::Checksum);
        }
        let size = block.size()?;
        let pad = (512 - size % 512) % 512;
        let kind = EntryType::from_flag(block.typeflag());
        // Global headers are hashed as entries (Go hands them over as entries).
        let extension = matches!(
            kind,
            EntryType::PaxHeader | EntryType::GnuLongName | EntryType::GnuLongLink
        );
        if extension && size > MAX_EXTENSION {
            // Refused from the header, as Docker's Go reader refuses it, before any of the
            // data is held.
            return Err(TarsumError::TooLarge(size));
        }
        if extension {
            self.extension.clear();
            self.state = State::Extension {
                kind,
                left: size,
                pad,
            };
            if size == 0 {
                self.state = State::Header;
                self.extension_done(kind)?;
            }
            return Ok(());
        }
        if kind == EntryType::PaxGlobal {
            // Go hands a global header over as an entry with only its name; PAX records
            // before it apply to nothing.
            self.pax.clear();
            self.start_entry(&Entry::global(block.name()));
            self.state = State::Content {
                left: size,
                pad,
                hashed: false,
            };
            return Ok(());
        }
        let entry = self.entry_of(block, size)?;
        self.start_entry(&entry);
        let hashed = entry.kind.is_file();
        let stored = if entry.kind.is_header_only() {
            0
        } else {
            entry.size
        };
        self.state = State::Content {
            left: stored,
            pad: (512 - stored % 512) % 512,
            hashed,
        };
        if stored == 0 {
            self.entry_done();
            self.state = State::Header;
        }
        Ok(())
    }

    /// The entry `block` describes, with the PAX records and GNU long names before it.
    fn entry_of(&mut self, block: HeaderBlock<'_>, size: u64) -> Result<Entry, TarsumError> {
        let pax = std::mem::take(&mut self.pax);
        let record = |key: &[u8]| {
            pax.iter()
                .rev()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let pax_number = |key: &[u8]| record(key).and_then(|v| pax_integer(&v));
        let mut name = self.long_name.take().unwrap_or_else(|| block.name());
        if let Some(path) = record(b"path") {
            name = path;
        }
        let mut link = self.long_link.take().unwrap_or_else(|| block.link());
        if let Some(path) = record(b"linkpath") {
            link = path;
        }
        let (major, minor) = block.device()?;
        let kind = EntryType::as_go_reads(block.typeflag(), &name);
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = pax
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(b"SCHILY.xattr.")?.to_vec(), v.clone())))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        xattrs.sort();
        xattrs.dedup_by(|a, b| a.0 == b.0);
        Ok(Entry {
            name,
            mode: block.mode()?,
            uid: pax_number(b"uid").map_or_else(|| block.uid(), Ok)?,
            gid: pax_number(b"gid").map_or_else(|| block.gid(), Ok)?,
            size: pax_number(b"size").map_or(size, |s| s as u64),
            mtime: pax_number(b"mtime").map_or_else(|| block.mtime(), Ok)?,
            kind,
            link,
            major,
            minor,
            xattrs,
        })
    }

    fn start_entry(&mut self, e: &Entry) {
        self.entry_done();
        let (mut v0, mut v1) = (Sha256::new(), Sha256::new());
        let both = |v0: &mut Sha256, v1: &mut Sha256, key: &[u8], value: &[u8]| {
            for h in [v0, v1] {
                h.update(key);
                h.update(value);
            }
        };
        both(&mut v0, &mut v1, b"name", &e.name);
        both(&mut v0, &mut v1, b"mode", e.mode.to_string().as_bytes());
        both(&mut v0, &mut v1, b"uid", e.uid.to_string().as_bytes());
        both(&mut v0, &mut v1, b"gid", e.gid.to_string().as_bytes());
        both(&mut v0, &mut v1, b"size", e.size.to_string().as_bytes());
        v0.update(b"mtime");
        v0.update(e.mtime.to_string().as_bytes());
        both(&mut v0, &mut v1, b"typeflag", &[e.kind.flag()]);
        both(&mut v0, &mut v1, b"linkname", &e.link);
        both(&mut v0, &mut v1, b"uname", b"");
        both(&mut v0, &mut v1, b"gname", b"");
        both(
            &mut v0,
            &mut v1,
            b"devmajor",
            e.major.to_string().as_bytes(),
        );
        both(
            &mut v0,
            &mut v1,
            b"devminor",
            e.minor.to_string().as_bytes(),
        );
        for (k, v) in &e.xattrs {
            v1.update(k);
            v1.update(v);
        }
        self.entry = Some((v0, v1));
    }

    fn entry_done(&mut self) {
        if let Some((v0, v1)) = self.entry.take() {
            self.sums_v0.push(hex(&v0.finalize()));
            self.sums_v1.push(hex(&v1.finalize()));
        }
    }

    fn extension_done(&mut self, kind: EntryType) -> Result<(), TarsumError> {
        let data = std::mem::take(&mut self.extension);
        let cut = |d: &[u8]| d[..d.iter().position(|&b| b == 0).unwrap_or(d.len())].to_vec();
        match kind {
            EntryType::GnuLongName => self.long_name = Some(cut(&data)),
            EntryType::GnuLongLink => self.long_link = Some(cut(&data)),
            _ => self.pax.extend(parse_pax(&data)?),
        }
        Ok(())
    }
}

/// A PAX numeric record as Go reads it: an integer, or a decimal whose fraction is dropped
/// (rounding down, so `-1.5` is -2).
fn pax_integer(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    match text.split_once('.') {
        Some((secs, frac)) => {
            let s: i64 = secs.parse().ok()?;
            let below = text.starts_with('-') && frac.bytes().any(|b| b != b'0');
            Some(if below { s - 1 } else { s })
        }
        None => text.parse().ok(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(tar: &[u8], chunk: usize) -> Tarsums {
        let mut h = TarsumHasher::new();
        for c in tar.chunks(chunk.max(1)) {
            h.update(c);
        }
        h.finish().unwrap()
    }

    fn single_file() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(4);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "file.txt", &b"test"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn matches_dockers_sums_for_a_single_file() {
        // Docker's Go tarsum on this archive (docs/tarsum-notes.md, vector single-file).
        for chunk in [1, 7, 512, 1 << 20] {
            let s = sums(&single_file(), chunk);
            assert_eq!(
                s.v0,
                "tarsum+sha256:33f00575e3a71639d9cdeb6e26683d2ba9a35bcd762ce342a5583b13bf066265"
            );
            assert_eq!(
                s.v1,
                "tarsum.v1+sha256:272085101fc101db2af04f997d170ebdcbcd9ef1f750a12fa896b4ec6192b856"
            );
            assert_eq!(
                s.dev,
                "tarsum.dev+sha256:272085101fc101db2af04f997d170ebdcbcd9ef1f750a12fa896b4ec6192b856"
            );
        }
    }

    #[test]
    fn empty_archive_has_the_fixed_sum() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for tar in [vec![], vec![0u8; 1024], vec![0u8; 10240]] {
            let s = sums(&tar, 512);
            assert_eq!(s.v0, format!("tarsum+sha256:{empty}"));
            assert_eq!(s.v1, format!("tarsum.v1+sha256:{empty}"));
        }
    }

    #[test]
    fn huge_extension_headers_are_refused_before_their_data() {
        // A 1 GiB PAX header (or GNU long name): refused from its header block, as Go's
        // reader refuses it, instead of buffering the gigabyte that follows.
        for flag in [b'x', b'L', b'K'] {
            let mut header = tar::Header::new_ustar();
            header.set_size(1 << 30);
            header.set_entry_type(tar::EntryType::new(flag));
            header.set_cksum();
            let mut h = TarsumHasher::new();
            h.update(header.as_bytes());
            assert!(h.has_failed());
            h.update(&[b'a'; 4096]);
            assert!(h.extension.is_empty());
            let err = h.finish().unwrap_err().to_string();
            assert!(
                err.contains("1073741824 bytes") && err.contains("1048576"),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_pax_records_and_checksums_are_errors() {
        let mut tar = single_file();
        tar[0] ^= 1;
        let mut h = TarsumHasher::new();
        h.update(&tar);
        assert!(h.finish().unwrap_err().to_string().contains("checksum"));

        let mut header = tar::Header::new_ustar();
        header.set_size(8);
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_cksum();
        let mut h = TarsumHasher::new();
        h.update(header.as_bytes());
        let mut data = b"9 path=p".to_vec();
        data.resize(512, 0);
        h.update(&data);
        assert!(h.finish().unwrap_err().to_string().contains("PAX"));
    }

    #[test]
    fn truncated_archive_is_an_error() {
        let tar = single_file();
        let mut h = TarsumHasher::new();
        h.update(&tar[..600]);
        assert!(h.finish().is_err());
    }
}
