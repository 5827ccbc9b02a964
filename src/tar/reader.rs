//! Reading a tar strata does not trust (a parent image and its layers) entry by entry, as
//! Go's archive/tar reads it: docker and podman unpack with that reader, so the names, types
//! and sizes strata checks are the ones they unpack. Headers are checked (checksum, numeric
//! fields); PAX records and GNU long names apply as Go applies them; data follows only the
//! types Go reads data for. An extension header larger than Go reads ([`MAX_EXTENSION`]) is
//! refused from its header, before its data is read, so a header declaring gigabytes costs
//! nothing.

use crate::tar::header::{
    padding, parse_pax, BadNumber, BadPax, EntryType, HeaderBlock, BLOCK, MAX_EXTENSION,
};
use std::collections::BTreeMap;
use std::io::{self, Read, Seek};

/// Why a tar could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarReadError {
    /// The stream failed, or ended inside a header or an entry.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// A header Go's archive/tar refuses, or one readers disagree on.
    #[error("the header at byte {offset}: {reason}")]
    Header {
        /// Where the header starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A header whose numeric field Go's archive/tar refuses.
    #[error("the header at byte {offset}: {source}")]
    Number {
        /// Where the header starts.
        offset: u64,
        /// The field's fault.
        source: BadNumber,
    },
    /// A PAX header Go's archive/tar refuses.
    #[error("the header at byte {offset}: {source}")]
    Pax {
        /// Where the header starts.
        offset: u64,
        /// The record at fault.
        source: BadPax,
    },
    /// An extension header whose data is larger than readers hold.
    #[error("a {what} of {size} bytes at byte {offset}, more than the {MAX_EXTENSION} bytes Go's archive/tar (docker's and podman's reader) takes")]
    TooLarge {
        /// The extension header's own name (`././@LongLink`, `././@PaxHeader`, ...).
        header_name: String,
        /// What it is (`GNU long name`, `PAX header`, ...).
        what: &'static str,
        /// The size its header declares.
        size: u64,
        /// Where the header starts.
        offset: u64,
    },
}

impl From<TarReadError> for io::Error {
    /// The error as an I/O error, for readers that report one: the stream's own, else
    /// invalid data.
    fn from(e: TarReadError) -> io::Error {
        match e {
            TarReadError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// One entry, as Go's archive/tar hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Where its first header starts (the first extension header's, when it has some).
    pub offset: u64,
    /// The name it is unpacked at: the GNU long name, else the PAX `path`, else the header's
    /// (with its prefix).
    pub name: Vec<u8>,
    /// The link target: the GNU long link, else the PAX `linkpath`, else the header's.
    pub link: Vec<u8>,
    /// Its type; a typeflag `\0` is read as Go reads it ([`EntryType::as_go_reads`]).
    pub entry_type: EntryType,
    /// The mode field, as written (permission bits, and whatever else the writer put there).
    pub mode: i64,
    /// The owner: the PAX `uid`, else the header's.
    pub uid: i64,
    /// The group: the PAX `gid`, else the header's.
    pub gid: i64,
    /// The owner's name: the PAX `uname`, else the header's.
    pub uname: Vec<u8>,
    /// The group's name: the PAX `gname`, else the header's.
    pub gname: Vec<u8>,
    /// Bytes of data that follow: the declared size, or 0 for the types Go reads no data for
    /// ([`EntryType::is_header_only`]).
    pub size: u64,
    /// The size the headers declare (the PAX `size` when given), data or not.
    pub declared_size: u64,
    /// The PAX records that apply to it, the last of a key winning (for a global header
    /// `g`, its own records).
    pub pax: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The size header `h` (at `offset`) declares, once every numeric field it has is one Go
/// reads.
fn checked_size(h: &HeaderBlock<'_>, offset: u64) -> Result<u64, TarReadError> {
    let number_err = |source| TarReadError::Number { offset, source };
    h.check_numbers().map_err(number_err)?;
    h.size().map_err(number_err)
}

/// The records of the PAX header at `offset` whose data is `data`, the last of a key winning.
fn read_pax(data: &[u8], offset: u64) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, TarReadError> {
    let records = parse_pax(data).map_err(|source| TarReadError::Pax { offset, source })?;
    Ok(records.into_iter().collect())
}

/// Why readers could unpack `entry` differently, when they could: strata refuses these
/// rather than check one reading while docker unpacks another.
/// - Sparse files: Go unpacks a PAX sparse file under `GNU.sparse.name`, not the name its
///   headers give (`GNUSparseFile.0/...`), and old GNU sparse entries (`S`) carry a map.
/// - A header-only type (link, directory, device, fifo) whose size is not 0: Go reads the
///   next header right after it, other readers skip that many bytes as its data.
pub fn ambiguity(entry: &TarEntry) -> Option<String> {
    if entry.entry_type == EntryType::PaxGlobal {
        return None;
    }
    if entry.entry_type == EntryType::GnuSparse {
        return Some("an old GNU sparse file (type `S`), which strata does not read".into());
    }
    if let Some(key) = entry.pax.keys().find(|k| k.starts_with(b"GNU.sparse.")) {
        return Some(format!(
            "a GNU sparse file (PAX record `{}`), which strata does not read: docker would unpack it under another name than its header's",
            ascii(key)
        ));
    }
    if entry.entry_type.is_header_only() && entry.declared_size != 0 {
        return Some(format!(
            "a `{}` entry whose header declares {} bytes of data: tar readers disagree on whether data follows it",
            ascii(&[entry.entry_type.flag()]),
            entry.declared_size
        ));
    }
    None
}

/// What the extension headers before an entry said.
#[derive(Debug, Default)]
struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// What an extension header is, in errors.
fn extension_name(entry_type: EntryType) -> &'static str {
    match entry_type {
        EntryType::GnuLongName => "GNU long name",
        EntryType::GnuLongLink => "GNU long link name",
        EntryType::PaxHeader => "PAX header",
        _ => "PAX global header",
    }
}

/// Reads the entries of a tar stream; [`TarReader::data`] reads the current entry's data.
#[derive(Debug)]
pub struct TarReader<R> {
    inner: R,
    offset: u64,
    left: u64,
    pad: u64,
    ended: bool,
    skip_with: fn(&mut R, u64) -> io::Result<u64>,
}

/// Skips `n` bytes of `inner` by reading them; how many there were.
fn skip_reading<R: Read>(inner: &mut R, n: u64) -> io::Result<u64> {
    io::copy(&mut inner.take(n), &mut io::sink())
}

/// Skips `n` bytes of `inner` by seeking, as Go's `discard` does: to the last byte, which is
/// read, so a stream that ends early is noticed (a seek past the end does not fail).
fn skip_seeking<R: Read + Seek>(inner: &mut R, n: u64) -> io::Result<u64> {
    let Some(by) = n.checked_sub(1).and_then(|by| i64::try_from(by).ok()) else {
        return skip_reading(inner, n);
    };
    inner.seek_relative(by)?;
    Ok(n - 1 + skip_reading(inner, 1)?)
}

impl<R: Read> TarReader<R> {
    /// A reader at the start of a tar stream.
    pub fn new(inner: R) -> TarReader<R> {
        TarReader {
            inner,
            offset: 0,
            left: 0,
            pad: 0,
            ended: false,
            skip_with: skip_reading,
        }
    }

    /// The next entry, after skipping what is left of the current one's data; `None` after
    /// the end-of-archive blocks (or at the end of the stream between entries, as Go allows).
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>, TarReadError> {
        if self.ended {
            return Ok(None);
        }
        self.skip(self.left + self.pad)?;
        (self.left, self.pad) = (0, 0);
        let mut extensions = Extensions::default();
        let mut first = None;
        loop {
            let at = self.offset;
            let Some(block) = self.read_header()? else {
                self.ended = true;
                return match first {
                    None => Ok(None),
                    Some(offset) => Err(TarReadError::Header {
                        offset,
                        reason: "extension headers with no entry after them".into(),
                    }),
                };
            };
            let start = *first.get_or_insert(at);
            let h = HeaderBlock(&block);
            if !h.checksum_ok() {
                return Err(TarReadError::Header {
                    offset: at,
                    reason: "its checksum does not match".into(),
                });
            }
            let size = checked_size(&h, at)?;
            let entry_type = EntryType::from_flag(h.typeflag());
            if !entry_type.is_extension() {
                let entry = entry(h, start, size, extensions)?;
                (self.left, self.pad) = (entry.size, padding(entry.size) as u64);
                return Ok(Some(entry));
            }
            if size > MAX_EXTENSION {
                return Err(TarReadError::TooLarge {
                    header_name: String::from_utf8_lossy(&h.name()).into_owned(),
                    what: extension_name(entry_type),
                    size,
                    offset: at,
                });
            }
            let data = self.read_extension(size)?;
            let cut = || data[..data.iter().position(|&b| b == 0).unwrap_or(data.len())].to_vec();
            match entry_type {
                EntryType::GnuLongName => extensions.long_name = Some(cut()),
                EntryType::GnuLongLink => extensions.long_link = Some(cut()),
                // A later header replaces an earlier one, as in Go.
                EntryType::PaxHeader => extensions.pax = read_pax(&data, at)?,
                // Go hands a global header over as an entry of its own; what came before it
                // applies to nothing.
                _ => return Ok(Some(global(h, at, size, read_pax(&data, at)?))),
            }
        }
    }

    /// The current entry's data (what [`TarEntry::size`] says; nothing after a header-only
    /// entry).
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { tar: self }
    }

    /// Where the reader is in the stream: after [`TarReader::next_entry`], where the entry's
    /// data starts.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// The stream, after the end of the archive (what follows the end-of-archive blocks).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// One header block; `None` at the end of the archive (two zero blocks, or the end of
    /// the stream where a header would start, as Go reads it).
    fn read_header(&mut self) -> Result<Option<[u8; BLOCK]>, TarReadError> {
        let mut block = [0u8; BLOCK];
        if !self.read_block(&mut block)? {
            return Ok(None);
        }
        if HeaderBlock(&block).is_zero() {
            let at = self.offset;
            if !self.read_block(&mut block)? || HeaderBlock(&block).is_zero() {
                return Ok(None);
            }
            // Go refuses this; other readers stop at the first zero block and never see the
            // rest.
            return Err(TarReadError::Header {
                offset: at,
                reason: "a header after a zero block (readers disagree on where the archive ends)"
                    .into(),
            });
        }
        Ok(Some(block))
    }

    /// Fills `block`: false when the stream ends before its first byte.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, TarReadError> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut block[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(ended("a header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarReadError::Io(e)),
            }
        }
        self.offset += BLOCK as u64;
        Ok(true)
    }

    /// The data of an extension header of `size` bytes (at most [`MAX_EXTENSION`]), and
    /// its padding.
    fn read_extension(&mut self, size: u64) -> Result<Vec<u8>, TarReadError> {
        let mut data = Vec::with_capacity(size as usize);
        let got = (&mut self.inner)
            .take(size)
            .read_to_end(&mut data)
            .map_err(TarReadError::Io)?;
        self.offset += got as u64;
        if (got as u64) < size {
            return Err(ended("an extension header"));
        }
        self.skip(padding(size) as u64)?;
        Ok(data)
    }

    /// Reads (or seeks) past `n` bytes.
    fn skip(&mut self, n: u64) -> Result<(), TarReadError> {
        let got = (self.skip_with)(&mut self.inner, n).map_err(TarReadError::Io)?;
        self.offset += got;
        if got < n {
            return Err(ended("an entry"));
        }
        Ok(())
    }
}

/// The data of the current entry of a [`TarReader`]; ends with an error when the stream
/// ends first.
#[derive(Debug)]
pub struct EntryData<'t, R> {
    tar: &'t mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tar = &mut *self.tar;
        if tar.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(tar.left).unwrap_or(usize::MAX));
        let n = tar.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        tar.left -= n as u64;
        tar.offset += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> TarReader<R> {
    /// A reader at the start of a tar stream that seeks past data it skips, as Go's reader
    /// does with a file: for reading a file's headers without reading its data.
    pub fn seeking(inner: R) -> TarReader<R> {
        TarReader {
            skip_with: skip_seeking,
            ..TarReader::new(inner)
        }
    }
}

/// The entry header `h` describes, `offset` the start of its first header, `size` its size
/// field, with the extensions read before it (Go's `mergePAX`, then the GNU long names, which
/// win).
fn entry(
    h: HeaderBlock<'_>,
    offset: u64,
    size: u64,
    ext: Extensions,
) -> Result<TarEntry, TarReadError> {
    let bad = |reason: String| TarReadError::Header { offset, reason };
    let pax = ext.pax;
    let name = ext.long_name.filter(|n| !n.is_empty());
    let name = name
        .or_else(|| non_empty(&pax, b"path"))
        .unwrap_or_else(|| h.name());
    let link = ext.long_link.filter(|n| !n.is_empty());
    let link = link
        .or_else(|| non_empty(&pax, b"linkpath"))
        .unwrap_or_else(|| h.link());
    // Go refuses the header when one of these does not parse.
    let mut ids = [h.uid(), h.gid()].map(|id| id.unwrap_or_default());
    for (key, id) in [&b"uid"[..], b"gid"].into_iter().zip(&mut ids) {
        if let Some(v) = non_empty(&pax, key) {
            *id = pax_integer(&v)
                .ok_or_else(|| bad(format!("bad PAX `{}` {:?}", ascii(key), ascii(&v))))?;
        }
    }
    for key in [&b"mtime"[..], b"atime", b"ctime"] {
        if let Some(v) = non_empty(&pax, key).filter(|v| !pax_time_ok(v)) {
            return Err(bad(format!("bad PAX `{}` {:?}", ascii(key), ascii(&v))));
        }
    }
    let declared_size = match non_empty(&pax, b"size") {
        None => size,
        Some(v) => pax_integer(&v)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad(format!("bad PAX `size` {:?}", ascii(&v))))?,
    };
    let entry_type = EntryType::as_go_reads(h.typeflag(), &name);
    Ok(TarEntry {
        offset,
        name,
        link,
        entry_type,
        mode: h.mode().unwrap_or_default(),
        uid: ids[0],
        gid: ids[1],
        uname: non_empty(&pax, b"uname").unwrap_or_else(|| h.uname()),
        gname: non_empty(&pax, b"gname").unwrap_or_else(|| h.gname()),
        size: if entry_type.is_header_only() {
            0
        } else {
            declared_size
        },
        declared_size,
        pax,
    })
}

/// The global PAX header `h` at `offset`, of `size` bytes of `records`, as Go hands it over:
/// its name (the records' `path` when they have one) and type, nothing else.
fn global(h: HeaderBlock<'_>, offset: u64, size: u64, pax: BTreeMap<Vec<u8>, Vec<u8>>) -> TarEntry {
    TarEntry {
        offset,
        name: non_empty(&pax, b"path").unwrap_or_else(|| h.name()),
        link: Vec::new(),
        entry_type: EntryType::PaxGlobal,
        mode: 0,
        uid: 0,
        gid: 0,
        uname: Vec::new(),
        gname: Vec::new(),
        size: 0,
        declared_size: size,
        pax,
    }
}

/// The stream ended inside `what`.
fn ended(what: &str) -> TarReadError {
    TarReadError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the archive ends inside {what}"),
    ))
}

/// A PAX record's value when it is there and not empty (an empty one keeps the header's
/// value, as in Go).
fn non_empty(pax: &BTreeMap<Vec<u8>, Vec<u8>>, key: &[u8]) -> Option<Vec<u8>> {
    pax.get(key).filter(|v| !v.is_empty()).cloned()
}

/// A PAX integer record as Go's `strconv.ParseInt(v, 10, 64)` reads it.
fn pax_integer(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether a PAX time record parses as Go's `parsePAXTime` parses it: an integer, then
/// optionally `.` and digits.
fn pax_time_ok(value: &[u8]) -> bool {
    let (secs, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    pax_integer(secs).is_some() && fraction.iter().all(u8::is_ascii_digit)
}

fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

/// A raw header block with `name`, `typeflag`, a size field of `size` and `link`, ustar or
/// GNU (`gnu`), for the tests that write names and links the `tar` crate's builder refuses.
#[cfg(test)]
pub(crate) fn raw_header(name: &[u8], typeflag: u8, size: u64, link: &[u8], gnu: bool) -> Vec<u8> {
    let mut h = vec![0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000001\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..265].copy_from_slice(if gnu { b"ustar  \0" } else { b"ustar\x0000" });
    sign_header(&mut h);
    h
}

/// Writes the checksum of header block `h`.
#[cfg(test)]
pub(crate) fn sign_header(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// PAX records `"<len> <key>=<value>\n"`, for the tests that write extension headers.
#[cfg(test)]
pub(crate) fn pax_records(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend(format!("{len} {k}={v}\n").into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::{raw_header as block, sign_header as sign};

    /// `data` padded to a block boundary.
    fn padded(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
        v
    }

    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        pax_records(records)
    }

    /// An entry as the tests compare it: name, typeflag, size, data.
    type Seen = (String, u8, u64, Vec<u8>);

    /// Every entry of `tar`.
    fn entries(tar: &[u8]) -> Result<Vec<Seen>, TarReadError> {
        let mut r = TarReader::new(tar);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut data = Vec::new();
            r.data().read_to_end(&mut data).map_err(TarReadError::Io)?;
            out.push((
                String::from_utf8_lossy(&e.name).into_owned(),
                e.entry_type.flag(),
                e.size,
                data,
            ));
        }
        Ok(out)
    }

    /// Counts the bytes read through it.
    struct Counting<R>(R, u64);
    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn huge_extension_headers_are_refused_from_their_header() {
        // A 2 GiB GNU long name or PAX header, its data really there (an endless stream):
        // refused after the header block, nothing of the data read or held.
        for (flag, what) in [
            (b'L', "GNU long name"),
            (b'x', "PAX header"),
            (b'g', "PAX global header"),
            (b'K', "GNU long link name"),
        ] {
            let head = block(b"././@LongLink", flag, 2 << 30, b"", true);
            let mut source = Counting(io::Cursor::new(head).chain(io::repeat(b'a')), 0);
            let mut r = TarReader::new(&mut source);
            let err = r.next_entry().unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(what)
                    && text.contains("2147483648 bytes")
                    && text.contains("1048576"),
                "{text}"
            );
            assert!(
                matches!(err, TarReadError::TooLarge { ref header_name, .. } if header_name == "././@LongLink")
            );
            assert!(source.1 <= BLOCK as u64, "read {} bytes", source.1);
        }
        // Exactly the limit is read.
        let name = vec![b'n'; MAX_EXTENSION as usize];
        let mut tar = block(b"././@LongLink", b'L', MAX_EXTENSION, b"", true);
        tar.extend(padded(&name));
        tar.extend(block(b"short", b'0', 0, b"", true));
        assert_eq!(entries(&tar).unwrap()[0].0.len(), name.len());
    }

    #[test]
    fn header_only_types_have_no_data_whatever_their_size_says() {
        // Go reads the block after a symlink's header as the next header even when its size
        // says 1024: so does this reader (the tar crate would skip it as data).
        let mut tar = block(b"link", b'2', 1024, b"target", false);
        tar.extend(block(b"hidden", b'0', 2, b"", false));
        tar.extend(padded(b"hi"));
        tar.extend([0u8; 1024]);
        let got = entries(&tar).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].1, got[0].2), (b'2', 0));
        assert_eq!((got[1].0.as_str(), &got[1].3[..]), ("hidden", &b"hi"[..]));
        let mut r = TarReader::new(&tar[..]);
        assert_eq!(r.next_entry().unwrap().unwrap().declared_size, 1024);
    }

    #[test]
    fn extensions_apply_as_go_applies_them() {
        let records = pax(&[("path", "from-pax"), ("size", "3"), ("linkpath", "")]);
        let mut tar = block(b"././@PaxHeader", b'x', records.len() as u64, b"", false);
        tar.extend(padded(&records));
        tar.extend(block(b"ustar-name", b'0', 0, b"ustar-link", false));
        tar.extend(padded(b"abc"));
        // A GNU long name wins over PAX `path` and is cut at its first NUL.
        let records = pax(&[("path", "pax-loses")]);
        tar.extend(block(
            b"././@PaxHeader",
            b'x',
            records.len() as u64,
            b"",
            false,
        ));
        tar.extend(padded(&records));
        tar.extend(block(b"././@LongLink", b'L', 12, b"", true));
        tar.extend(padded(b"long\0ignored"));
        tar.extend(block(b"dir/", 0, 0, b"", true));
        tar.extend([0u8; 1024]);
        let mut r = TarReader::new(&tar[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (&e.name[..], &e.link[..], e.size),
            (&b"from-pax"[..], &b"ustar-link"[..], 3)
        );
        assert_eq!(e.offset, 0);
        let mut data = Vec::new();
        r.data().read_to_end(&mut data).unwrap();
        assert_eq!(data, b"abc");
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(&e.name[..], b"long");
        // `\0` is a file here: the name that counts (`long`) has no trailing `/`.
        assert_eq!(e.entry_type, EntryType::Regular);
        assert!(r.next_entry().unwrap().is_none());

        // `\0` with a name ending in `/` is a directory (Go's legacy rule), without data.
        let mut tar = block(b"d/", 0, 512, b"", false);
        tar.extend(block(b"after", b'0', 0, b"", false));
        tar.extend([0u8; 1024]);
        let got = entries(&tar).unwrap();
        assert_eq!((got[0].1, got[0].2, got.len()), (b'5', 0, 2));
    }

    #[test]
    fn owners_are_the_pax_records_else_the_header() {
        let mut h = block(b"f", b'0', 0, b"", false);
        h[108..116].copy_from_slice(b"0000012\0");
        h[265..269].copy_from_slice(b"user");
        h[297..302].copy_from_slice(b"group");
        sign(&mut h);
        let records = pax(&[("uid", "3000000"), ("gname", "staff"), ("gid", "")]);
        let mut tar = block(b"././@PaxHeader", b'x', records.len() as u64, b"", false);
        tar.extend(padded(&records));
        tar.extend(h.clone());
        tar.extend(h);
        tar.extend([0u8; 1024]);
        let mut r = TarReader::new(&tar[..]);
        let e = r.next_entry().unwrap().unwrap();
        let owner = |e: &TarEntry| (e.uid, e.gid, e.uname.clone(), e.gname.clone(), e.mode);
        assert_eq!(
            owner(&e),
            (3_000_000, 0, b"user".to_vec(), b"staff".to_vec(), 0o644)
        );
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            owner(&e),
            (10, 0, b"user".to_vec(), b"group".to_vec(), 0o644)
        );
    }

    #[test]
    fn a_seeking_reader_reads_what_a_reading_one_reads() {
        let mut tar = Vec::new();
        for (name, data) in [("a", &b"x"[..]), ("b", &[7u8; 1500][..]), ("c", &b""[..])] {
            tar.extend(block(name.as_bytes(), b'0', data.len() as u64, b"", false));
            tar.extend(padded(data));
        }
        tar.extend([0u8; 1024]);
        let mut seeking = TarReader::seeking(io::Cursor::new(&tar));
        let mut reading = TarReader::new(&tar[..]);
        while let Some(e) = reading.next_entry().unwrap() {
            assert_eq!(seeking.next_entry().unwrap(), Some(e));
            assert_eq!(seeking.position(), reading.position());
        }
        assert_eq!(seeking.next_entry().unwrap(), None);
        // Data that ends early is noticed although the seek past it succeeds.
        let mut seeking = TarReader::seeking(io::Cursor::new(&tar[..1536]));
        seeking.next_entry().unwrap();
        seeking.next_entry().unwrap();
        let err = seeking.next_entry().unwrap_err().to_string();
        assert!(err.contains("ends inside"), "{err}");
    }

    #[test]
    fn gnu_headers_from_old_go_writers_get_their_prefix() {
        // Go before 1.8 wrote a ustar prefix into GNU headers; Go reads it back when the time
        // fields there do not parse. So must strata, or a name could hide behind it.
        let mut h = block(b"passwd", b'0', 0, b"", true);
        h[345..351].copy_from_slice(b"etc/x!");
        sign(&mut h);
        let mut tar = h;
        tar.extend([0u8; 1024]);
        assert_eq!(entries(&tar).unwrap()[0].0, "etc/x!/passwd");
    }

    #[test]
    fn malformed_archives_are_refused() {
        let file = || {
            let mut t = block(b"f", b'0', 1, b"", false);
            t.extend(padded(b"x"));
            t
        };
        // A zero block followed by a header: Go refuses it, other readers stop early.
        let mut tar = file();
        tar.extend([0u8; 512]);
        tar.extend(file());
        let err = entries(&tar).unwrap_err().to_string();
        assert!(err.contains("after a zero block"), "{err}");
        // A bad checksum.
        let mut tar = file();
        tar[0] = b'g';
        assert!(entries(&tar).unwrap_err().to_string().contains("checksum"));
        // A size field that is not octal, as Go reads it ("1 2" is not a number).
        let mut tar = block(b"f", b'0', 0, b"", false);
        tar[124..136].copy_from_slice(b"0000001 2\0\0\0");
        sign(&mut tar);
        assert!(entries(&tar).unwrap_err().to_string().contains("numeric"));
        // An extension header with nothing after it.
        let records = pax(&[("path", "p")]);
        let mut tar = block(b"././@PaxHeader", b'x', records.len() as u64, b"", false);
        tar.extend(padded(&records));
        assert!(entries(&tar)
            .unwrap_err()
            .to_string()
            .contains("no entry after"));
        // A malformed PAX record.
        let mut tar = block(b"././@PaxHeader", b'x', 9, b"", false);
        tar.extend(padded(b"9 path=px"));
        tar.extend(file());
        assert!(entries(&tar).unwrap_err().to_string().contains("PAX"));
        // PAX numbers Go refuses (it refuses the header): uid, times.
        for (key, value) in [("uid", "1.5"), ("mtime", "pp"), ("atime", "1.x")] {
            let records = pax(&[(key, value)]);
            let mut tar = block(b"././@PaxHeader", b'x', records.len() as u64, b"", false);
            tar.extend(padded(&records));
            tar.extend(file());
            let err = entries(&tar).unwrap_err().to_string();
            assert!(err.contains(&format!("bad PAX `{key}`")), "{err}");
        }
        let records = pax(&[("mtime", "-1.25")]);
        let mut tar = block(b"././@PaxHeader", b'x', records.len() as u64, b"", false);
        tar.extend(padded(&records));
        tar.extend(file());
        assert_eq!(entries(&tar).unwrap().len(), 1);
        // Truncated data.
        let tar = &file()[..600];
        assert!(entries(tar)
            .unwrap_err()
            .to_string()
            .contains("ends inside"));
        // The end of the stream between entries, or after one zero block, is the end.
        assert_eq!(entries(&file()).unwrap().len(), 1);
        let mut tar = file();
        tar.extend([0u8; 512]);
        assert_eq!(entries(&tar).unwrap().len(), 1);
    }
}
