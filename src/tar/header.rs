//! Tar header encoding: ustar blocks, with PAX records only where ustar cannot hold a value.
//!
//! One function encodes every header strata writes (layer entries, the outer archive and
//! exportImage's root filesystem); [`EntryType`] names the typeflag bytes it and the readers
//! use.
//! Choices that fix the bytes (see docs/format-notes.md):
//! - names up to 100 bytes go in `name`; longer ones are split at a `/` into `prefix`
//!   (longest prefix that fits) and `name`; names that cannot be split get a PAX `path` record;
//! - link targets over 100 bytes get a PAX `linkpath` record;
//! - sizes and times over 11 octal digits, ids over 7 octal digits and user or group names
//!   over 32 bytes get PAX records;
//! - PAX headers are named `././@PaxHeader` with the entry's own mtime and no pid, so they are
//!   reproducible.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Where each field of a header block is (ustar; GNU puts the same fields at the same
/// places): the one table both the writer and the reader use.
mod field {
    use std::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const MODE: Range<usize> = 100..108;
    pub const UID: Range<usize> = 108..116;
    pub const GID: Range<usize> = 116..124;
    pub const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub const CHECKSUM: Range<usize> = 148..156;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    pub const MAGIC: Range<usize> = 257..263;
    pub const VERSION: Range<usize> = 263..265;
    pub const UNAME: Range<usize> = 265..297;
    pub const GNAME: Range<usize> = 297..329;
    pub const DEVMAJOR: Range<usize> = 329..337;
    pub const DEVMINOR: Range<usize> = 337..345;
    pub const PREFIX: Range<usize> = 345..500;
}

/// Largest value a 12-byte octal field holds (8 GiB - 1 for sizes).
const MAX_OCTAL_11: u64 = 0o77_777_777_777;
/// Largest value an 8-byte octal field holds (uid and gid).
const MAX_OCTAL_7: u64 = 0o7_777_777;

/// An entry's type: its header's typeflag byte, by name. [`EntryType::from_flag`] and
/// [`EntryType::flag`] are inverse for every byte, so a type read is written back as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// `0`: a regular file.
    Regular,
    /// `1`: a hard link to an earlier entry.
    HardLink,
    /// `2`: a symbolic link.
    Symlink,
    /// `3`: a character device.
    CharDevice,
    /// `4`: a block device.
    BlockDevice,
    /// `5`: a directory.
    Directory,
    /// `6`: a named pipe.
    Fifo,
    /// `7`: a contiguous file, which every reader reads as a regular file.
    Contiguous,
    /// `x`: PAX records for the next entry.
    PaxHeader,
    /// `g`: PAX records for the rest of the archive (Go hands it over as an entry).
    PaxGlobal,
    /// `L`: the GNU long name of the next entry.
    GnuLongName,
    /// `K`: the GNU long link target of the next entry.
    GnuLongLink,
    /// `S`: an old GNU sparse file.
    GnuSparse,
    /// Any other byte, `\0` included ([`EntryType::as_go_reads`] reads that one).
    Other(u8),
}

impl EntryType {
    /// The type a typeflag byte names.
    pub fn from_flag(flag: u8) -> EntryType {
        match flag {
            b'0' => EntryType::Regular,
            b'1' => EntryType::HardLink,
            b'2' => EntryType::Symlink,
            b'3' => EntryType::CharDevice,
            b'4' => EntryType::BlockDevice,
            b'5' => EntryType::Directory,
            b'6' => EntryType::Fifo,
            b'7' => EntryType::Contiguous,
            b'x' => EntryType::PaxHeader,
            b'g' => EntryType::PaxGlobal,
            b'L' => EntryType::GnuLongName,
            b'K' => EntryType::GnuLongLink,
            b'S' => EntryType::GnuSparse,
            other => EntryType::Other(other),
        }
    }

    /// The type of an entry whose header says `flag`, its name being `name`, as Go's
    /// archive/tar reads it: the old `\0` is a directory for a name ending in `/`, else a
    /// regular file.
    pub fn as_go_reads(flag: u8, name: &[u8]) -> EntryType {
        match flag {
            0 if name.ends_with(b"/") => EntryType::Directory,
            0 => EntryType::Regular,
            flag => EntryType::from_flag(flag),
        }
    }

    /// The typeflag byte.
    pub fn flag(self) -> u8 {
        match self {
            EntryType::Regular => b'0',
            EntryType::HardLink => b'1',
            EntryType::Symlink => b'2',
            EntryType::CharDevice => b'3',
            EntryType::BlockDevice => b'4',
            EntryType::Directory => b'5',
            EntryType::Fifo => b'6',
            EntryType::Contiguous => b'7',
            EntryType::PaxHeader => b'x',
            EntryType::PaxGlobal => b'g',
            EntryType::GnuLongName => b'L',
            EntryType::GnuLongLink => b'K',
            EntryType::GnuSparse => b'S',
            EntryType::Other(flag) => flag,
        }
    }

    /// Whether it is a file with data: regular or contiguous.
    pub fn is_file(self) -> bool {
        matches!(self, EntryType::Regular | EntryType::Contiguous)
    }

    /// Whether Go reads no data after a header of this type, whatever its size says: links,
    /// devices, directories and fifos.
    pub fn is_header_only(self) -> bool {
        matches!(
            self,
            EntryType::HardLink
                | EntryType::Symlink
                | EntryType::CharDevice
                | EntryType::BlockDevice
                | EntryType::Directory
                | EntryType::Fifo
        )
    }

    /// Whether it is an extension header, whose data applies to the next entry (or, `g`, to
    /// the rest of the archive) rather than being one.
    pub fn is_extension(self) -> bool {
        matches!(
            self,
            EntryType::PaxHeader
                | EntryType::PaxGlobal
                | EntryType::GnuLongName
                | EntryType::GnuLongLink
        )
    }
}

/// Type of a tar entry strata writes. Hard links are written as regular files (see
/// docs/format-notes.md), so there is no hard-link kind; devices are never written (layers
/// refuse them, exportImage leaves them out); fifos only in exportImage's root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of this many bytes.
    File(u64),
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
}

impl Kind {
    /// The entry type its header says.
    pub fn entry_type(self) -> EntryType {
        match self {
            Kind::File(_) => EntryType::Regular,
            Kind::Directory => EntryType::Directory,
            Kind::Symlink => EntryType::Symlink,
            Kind::Fifo => EntryType::Fifo,
        }
    }
}

/// Owner and time stamped on entries: the one ownership stamp of layers, plans and the
/// builders' settings (`mtime`, `uid`, `gid`, `uname`, `gname`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    /// Modification time, seconds since the epoch. Settings may give it as "now" or a date
    /// ([`crate::when::deserialize_mtime`]).
    #[serde(deserialize_with = "crate::when::deserialize_mtime")]
    pub mtime: u64,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Owner name.
    pub uname: String,
    /// Group name.
    pub gname: String,
}

impl Stamp {
    /// Owner root (uid and gid 0, names `root`) at `mtime`.
    pub fn root(mtime: u64) -> Stamp {
        Stamp {
            mtime,
            uid: 0,
            gid: 0,
            uname: "root".to_owned(),
            gname: "root".to_owned(),
        }
    }

    /// Owner `uid`:`gid` at `mtime`, named `root` where an id is 0 and unnamed otherwise
    /// (buildImage's `uid` and `gid`).
    pub fn numeric(mtime: u64, uid: u64, gid: u64) -> Stamp {
        let name = |id: u64| {
            if id == 0 {
                "root".to_owned()
            } else {
                String::new()
            }
        };
        Stamp {
            mtime,
            uid,
            gid,
            uname: name(uid),
            gname: name(gid),
        }
    }
}

/// Appends the header block(s) for one entry to `out`. `name` is the path inside the archive
/// (relative, no trailing slash); directories get a trailing `/` here.
pub fn encode_header(
    out: &mut Vec<u8>,
    name: &[u8],
    kind: Kind,
    mode: u32,
    link_target: &[u8],
    stamp: &Stamp,
) {
    let mut full_name;
    let name = if kind == Kind::Directory && !name.ends_with(b"/") {
        full_name = Vec::with_capacity(name.len() + 1);
        full_name.extend_from_slice(name);
        full_name.push(b'/');
        &full_name[..]
    } else {
        name
    };
    let size = match kind {
        Kind::File(size) => size,
        _ => 0,
    };
    let split = split_name(name);
    let pax = pax_records(split.is_none().then_some(name), link_target, size, stamp);
    if !pax.is_empty() {
        let pax_stamp = Stamp {
            mtime: stamp.mtime.min(MAX_OCTAL_11),
            uid: 0,
            gid: 0,
            uname: String::new(),
            gname: String::new(),
        };
        let header = ustar_block(
            (b"", b"././@PaxHeader"),
            EntryType::PaxHeader,
            0o644,
            pax.len() as u64,
            b"",
            &pax_stamp,
        );
        out.extend_from_slice(&header);
        out.extend_from_slice(&pax);
        out.resize(out.len() + padding(pax.len() as u64), 0);
    }
    let (prefix, short) = split.unwrap_or((b"", &name[..name.len().min(100)]));
    let link = &link_target[..link_target.len().min(100)];
    out.extend_from_slice(&ustar_block(
        (prefix, short),
        kind.entry_type(),
        mode,
        size,
        link,
        stamp,
    ));
}

/// The PAX records an entry needs: for what ustar fields cannot hold (`long_name`, a link
/// target over 100 bytes, sizes and times over 11 octal digits, ids over 7, names over 32
/// bytes). Empty when ustar holds it all.
fn pax_records(long_name: Option<&[u8]>, link: &[u8], size: u64, stamp: &Stamp) -> Vec<u8> {
    let mut pax: Vec<u8> = Vec::new();
    if let Some(name) = long_name {
        pax_record(&mut pax, "path", name);
    }
    if link.len() > 100 {
        pax_record(&mut pax, "linkpath", link);
    }
    let numbers = [
        ("size", size, MAX_OCTAL_11),
        ("mtime", stamp.mtime, MAX_OCTAL_11),
        ("uid", stamp.uid, MAX_OCTAL_7),
        ("gid", stamp.gid, MAX_OCTAL_7),
    ];
    for (key, value, max) in numbers {
        if value > max {
            pax_record(&mut pax, key, value.to_string().as_bytes());
        }
    }
    for (key, value) in [("uname", &stamp.uname), ("gname", &stamp.gname)] {
        if value.len() > 32 {
            pax_record(&mut pax, key, value.as_bytes());
        }
    }
    pax
}

/// Zero bytes that follow `size` bytes of data to reach a block boundary.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The end-of-archive marker: two zero blocks.
pub const END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// Splits `name` into ustar (prefix, name) fields, or `None` when it needs a PAX record.
fn split_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((b"", name));
    }
    // Longest prefix of at most 155 bytes ending before a '/', leaving a non-empty name of at
    // most 100 bytes.
    let limit = name.len().min(156);
    let slash = name[..limit].iter().rposition(|&b| b == b'/')?;
    let (prefix, rest) = (&name[..slash], &name[slash + 1..]);
    if prefix.is_empty() || rest.is_empty() || rest.len() > 100 {
        return None;
    }
    Some((prefix, rest))
}

fn ustar_block(
    (prefix, name): (&[u8], &[u8]),
    entry_type: EntryType,
    mode: u32,
    size: u64,
    link: &[u8],
    stamp: &Stamp,
) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let put = |b: &mut [u8; BLOCK], at: std::ops::Range<usize>, bytes: &[u8]| {
        b[at.start..at.start + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut b, field::NAME, name);
    octal(&mut b[field::MODE], u64::from(mode & 0o7777));
    octal(&mut b[field::UID], stamp.uid.min(MAX_OCTAL_7));
    octal(&mut b[field::GID], stamp.gid.min(MAX_OCTAL_7));
    octal(&mut b[field::SIZE], size.min(MAX_OCTAL_11));
    octal(&mut b[field::MTIME], stamp.mtime.min(MAX_OCTAL_11));
    b[field::TYPEFLAG] = entry_type.flag();
    put(&mut b, field::LINKNAME, link);
    put(&mut b, field::MAGIC, b"ustar\0");
    put(&mut b, field::VERSION, b"00");
    put(
        &mut b,
        field::UNAME,
        &stamp.uname.as_bytes()[..stamp.uname.len().min(32)],
    );
    put(
        &mut b,
        field::GNAME,
        &stamp.gname.as_bytes()[..stamp.gname.len().min(32)],
    );
    octal(&mut b[field::DEVMAJOR], 0);
    octal(&mut b[field::DEVMINOR], 0);
    put(&mut b, field::PREFIX, prefix);
    // Checksum: sum of all bytes with the checksum field read as spaces.
    b[field::CHECKSUM].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let digits = format!("{sum:06o}\0 ");
    b[field::CHECKSUM].copy_from_slice(digits.as_bytes());
    b
}

/// Writes `value` as zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(digits.as_bytes());
    field[width] = 0;
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A header field holds no number tar readers agree on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad numeric field {0:?}")]
pub struct BadNumber(pub String);

/// Most bytes of data a PAX header or GNU long name may have: Go's archive/tar, which docker
/// and podman read images with, refuses more (`maxSpecialFileSize`, 1 MiB), so no image they
/// load has a larger one, and a reader holds at most this much of one in memory.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// The header formats Go's archive/tar tells apart, which decide where a name's prefix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// No magic: name, link and numbers only.
    V7,
    /// `ustar\0` (POSIX ustar and PAX): a 155-byte prefix.
    Ustar,
    /// `ustar \0` (old GNU): no prefix, but access and change times there.
    Gnu,
    /// `ustar\0` with the `tar\0` trailer (star): a 131-byte prefix, then times.
    Star,
}

/// A header block as read: its fields by name, numbers decoded as Go's archive/tar decodes
/// them (octal, or base-256 when the top bit is set, as GNU writes large values).
#[derive(Debug, Clone, Copy)]
pub struct HeaderBlock<'a>(pub &'a [u8]);

impl HeaderBlock<'_> {
    /// Whether the block is all zeros (the end of the archive).
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// Whether the checksum field matches the block, as Go checks it: the unsigned or the
    /// signed sum of its bytes, the checksum field counted as spaces.
    pub fn checksum_ok(&self) -> bool {
        // Go reads the checksum as octal only.
        let Ok(claimed) = number(&self.0[field::CHECKSUM]) else {
            return false;
        };
        if self.0[field::CHECKSUM.start] & 0x80 != 0 {
            return false;
        }
        let (mut unsigned, mut signed) = (0i64, 0i64);
        for (i, &b) in self.0.iter().enumerate() {
            let b = if field::CHECKSUM.contains(&i) {
                b' '
            } else {
                b
            };
            unsigned += i64::from(b);
            signed += i64::from(b as i8);
        }
        let claimed = i64::try_from(claimed).unwrap_or(-1);
        claimed == unsigned || claimed == signed
    }

    /// The typeflag byte (read as a type by [`EntryType::as_go_reads`]).
    pub fn typeflag(&self) -> u8 {
        self.0[field::TYPEFLAG]
    }

    /// The format, from the magic, version and star trailer (Go's `getFormat`).
    pub fn format(&self) -> Format {
        let magic = &self.0[field::MAGIC];
        if magic == b"ustar\0" {
            if &self.0[STAR_TRAILER] == b"tar\0" {
                Format::Star
            } else {
                Format::Ustar
            }
        } else if magic == b"ustar " && &self.0[field::VERSION] == b" \0" {
            Format::Gnu
        } else {
            Format::V7
        }
    }

    /// Whether the magic says POSIX ustar (`ustar\0`).
    pub fn is_ustar(&self) -> bool {
        matches!(self.format(), Format::Ustar | Format::Star)
    }

    /// Whether the format carries owner names and device numbers (all but V7).
    pub fn has_device_numbers(&self) -> bool {
        self.format() != Format::V7
    }

    /// The name, joined to the prefix where Go reads one: ustar's 155 bytes, star's 131, and
    /// for GNU headers whose time fields do not parse (written by Go before 1.8), the ustar
    /// prefix when it is ASCII.
    pub fn name(&self) -> Vec<u8> {
        let name = text(&self.0[field::NAME]);
        let prefix = match self.format() {
            Format::V7 => &[][..],
            Format::Ustar => text(&self.0[field::PREFIX]),
            Format::Star => text(&self.0[STAR_PREFIX]),
            Format::Gnu => {
                let bad = |at: std::ops::Range<usize>| {
                    self.0[at.start] != 0 && numeric(&self.0[at]).is_err()
                };
                let prefix = text(&self.0[field::PREFIX]);
                if (bad(GNU_ATIME) || bad(GNU_CTIME)) && prefix.is_ascii() {
                    prefix
                } else {
                    &[]
                }
            }
        };
        if prefix.is_empty() {
            name.to_vec()
        } else {
            [prefix, b"/", name].concat()
        }
    }

    /// The link target field.
    pub fn link(&self) -> Vec<u8> {
        text(&self.0[field::LINKNAME]).to_vec()
    }

    /// The owner name field (none in V7 headers, which have no such field).
    pub fn uname(&self) -> Vec<u8> {
        self.owner_name(field::UNAME)
    }

    /// The group name field (none in V7 headers).
    pub fn gname(&self) -> Vec<u8> {
        self.owner_name(field::GNAME)
    }

    /// The owner or group name field at `at`.
    fn owner_name(&self, at: std::ops::Range<usize>) -> Vec<u8> {
        if self.format() == Format::V7 {
            return Vec::new();
        }
        text(&self.0[at]).to_vec()
    }

    /// The size field (never negative).
    pub fn size(&self) -> Result<u64, BadNumber> {
        number(&self.0[field::SIZE])
    }

    /// The mode field.
    pub fn mode(&self) -> Result<i64, BadNumber> {
        numeric(&self.0[field::MODE])
    }

    /// The uid field.
    pub fn uid(&self) -> Result<i64, BadNumber> {
        numeric(&self.0[field::UID])
    }

    /// The gid field.
    pub fn gid(&self) -> Result<i64, BadNumber> {
        numeric(&self.0[field::GID])
    }

    /// The mtime field.
    pub fn mtime(&self) -> Result<i64, BadNumber> {
        numeric(&self.0[field::MTIME])
    }

    /// The device numbers, (0, 0) for formats without them.
    pub fn device(&self) -> Result<(i64, i64), BadNumber> {
        if !self.has_device_numbers() {
            return Ok((0, 0));
        }
        Ok((
            numeric(&self.0[field::DEVMAJOR])?,
            numeric(&self.0[field::DEVMINOR])?,
        ))
    }

    /// The access and change times the header itself carries, as Go's archive/tar reads
    /// them: an old GNU header's when their field is set (neither when one does not parse:
    /// Go then takes the header for one of its own old, buggy ones), star's always, none
    /// elsewhere.
    pub fn times(&self) -> Result<(Option<i64>, Option<i64>), BadNumber> {
        let set = |at: std::ops::Range<usize>| -> Result<Option<i64>, BadNumber> {
            if self.0[at.start] == 0 {
                return Ok(None);
            }
            numeric(&self.0[at]).map(Some)
        };
        match self.format() {
            Format::Gnu => match (set(GNU_ATIME), set(GNU_CTIME)) {
                (Ok(a), Ok(c)) => Ok((a, c)),
                _ => Ok((None, None)),
            },
            Format::Star => Ok((
                Some(numeric(&self.0[STAR_ATIME])?),
                Some(numeric(&self.0[STAR_CTIME])?),
            )),
            Format::V7 | Format::Ustar => Ok((None, None)),
        }
    }

    /// Checks every numeric field Go's archive/tar parses before it hands an entry over
    /// (it refuses the header when one does not parse).
    pub fn check_numbers(&self) -> Result<(), BadNumber> {
        self.size()?;
        self.mode()?;
        self.uid()?;
        self.gid()?;
        self.mtime()?;
        self.device()?;
        if self.format() == Format::Star {
            numeric(&self.0[STAR_ATIME])?;
            numeric(&self.0[STAR_CTIME])?;
        }
        Ok(())
    }
}

/// Where star keeps its prefix, times and trailer (Go's `headerSTAR`).
const STAR_PREFIX: std::ops::Range<usize> = 345..476;
const STAR_ATIME: std::ops::Range<usize> = 476..488;
const STAR_CTIME: std::ops::Range<usize> = 488..500;
const STAR_TRAILER: std::ops::Range<usize> = 508..512;
/// Where old GNU headers keep access and change times (Go's `headerGNU`).
const GNU_ATIME: std::ops::Range<usize> = 345..357;
const GNU_CTIME: std::ops::Range<usize> = 357..369;

/// A field's text: up to its first NUL.
fn text(field: &[u8]) -> &[u8] {
    &field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())]
}

/// A numeric field that cannot be negative (a size, a checksum).
pub fn number(field: &[u8]) -> Result<u64, BadNumber> {
    let n = numeric(field)?;
    u64::try_from(n).map_err(|_| BadNumber(format!("negative value {n}")))
}

/// A numeric field as Go's archive/tar reads it (`parseNumeric`): base-256 two's complement
/// when the top bit is set; otherwise octal, NULs and spaces trimmed at both ends and the text
/// cut at its first NUL, every other byte an octal digit.
pub fn numeric(field: &[u8]) -> Result<i64, BadNumber> {
    let overflow = || BadNumber("a numeric field overflows".into());
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let invert = if field[0] & 0x40 != 0 { 0xff } else { 0 };
        let mut n: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 {
                (b ^ invert) & 0x7f
            } else {
                b ^ invert
            };
            if n >> 56 != 0 {
                return Err(overflow());
            }
            n = n << 8 | u64::from(b);
        }
        let n = i64::try_from(n).map_err(|_| overflow())?;
        return Ok(if invert == 0xff { !n } else { n });
    }
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let Some(start) = field.iter().position(|b| !pad(b)) else {
        return Ok(0);
    };
    let end = field.iter().rposition(|b| !pad(b)).map_or(start, |e| e + 1);
    let digits = text(&field[start..end]);
    let bad = || BadNumber(String::from_utf8_lossy(field).into_owned());
    if !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return Err(bad());
    }
    let n = digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(8)?.checked_add(u64::from(d - b'0'))
    });
    i64::try_from(n.ok_or_else(overflow)?).map_err(|_| overflow())
}

/// A PAX record: key and value.
pub type PaxRecord = (Vec<u8>, Vec<u8>);

/// A PAX header Go's archive/tar refuses: where the record at fault starts, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed PAX record at byte {at}: {fault}")]
pub struct BadPax {
    /// Where the record starts in the header's data.
    pub at: usize,
    /// What is wrong with it.
    pub fault: PaxFault,
}

/// What is wrong with a PAX record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaxFault {
    /// No space after a length.
    #[error("no length")]
    NoLength,
    /// The length is not a decimal number.
    #[error("its length is not a number")]
    LengthNotNumber,
    /// The length is too short for a record or longer than the data.
    #[error("its length is out of range")]
    LengthOutOfRange,
    /// The record does not end in `\n`.
    #[error("it does not end in a newline")]
    NoNewline,
    /// The record has no `=`.
    #[error("no `=`")]
    NoEquals,
    /// An empty key, or a NUL byte where Go refuses one.
    #[error("an empty key or a NUL byte")]
    EmptyKeyOrNul,
}

/// The records of a PAX header, in order, parsed as Go's archive/tar parses them
/// (`parsePAXRecord`): `"<len> <key>=<value>\n"` where `<len>` counts the whole record; a
/// malformed record, an empty key, or a NUL in a key (or in a `path`, `linkpath`, `uname` or
/// `gname` value) makes the whole header malformed.
pub fn parse_pax(all: &[u8]) -> Result<Vec<PaxRecord>, BadPax> {
    let mut out = Vec::new();
    let mut data = all;
    while !data.is_empty() {
        let at = all.len() - data.len();
        let bad = |fault| BadPax { at, fault };
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad(PaxFault::NoLength))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| bad(PaxFault::LengthNotNumber))?;
        if len < 5 || len > data.len() || len <= space + 1 {
            return Err(bad(PaxFault::LengthOutOfRange));
        }
        if data[len - 1] != b'\n' {
            return Err(bad(PaxFault::NoNewline));
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad(PaxFault::NoEquals))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let nul_in = match key {
            b"path" | b"linkpath" | b"uname" | b"gname" => value,
            _ => key,
        };
        if key.is_empty() || nul_in.contains(&0) {
            return Err(bad(PaxFault::EmptyKeyOrNul));
        }
        out.push((key.to_vec(), value.to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp::root(1)
    }

    fn read_back(bytes: &[u8]) -> Vec<(String, u64, Option<String>)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().size().unwrap(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn short_name_is_one_block_and_parses() {
        let mut out = Vec::new();
        encode_header(
            &mut out,
            b"nix/store",
            Kind::Directory,
            0o755,
            b"",
            &stamp(),
        );
        assert_eq!(out.len(), BLOCK);
        out.extend_from_slice(&END_OF_ARCHIVE);
        let entries = read_back(&out);
        assert_eq!(entries[0].0, "nix/store/");
        let header = tar::Header::from_byte_slice(&out[..BLOCK]);
        assert_eq!(header.mode().unwrap(), 0o755);
        assert_eq!(header.username().unwrap(), Some("root"));
        assert!(header.as_ustar().is_some());
    }

    #[test]
    fn long_names_use_prefix_then_pax() {
        let stamp = stamp();
        let dir = format!("nix/store/{}-{}", "a".repeat(32), "n".repeat(60));
        let splittable = format!("{dir}/bin/hello");
        let mut out = Vec::new();
        encode_header(
            &mut out,
            splittable.as_bytes(),
            Kind::File(0),
            0o444,
            b"",
            &stamp,
        );
        assert_eq!(out.len(), BLOCK, "prefix split needs no extra block");

        let unsplittable = format!("{dir}/{}", "f".repeat(120));
        let long_link = "/".to_owned() + &"l".repeat(150);
        let mut out2 = Vec::new();
        encode_header(
            &mut out2,
            unsplittable.as_bytes(),
            Kind::Symlink,
            0o777,
            long_link.as_bytes(),
            &stamp,
        );
        assert!(out2.len() > BLOCK);
        out.extend_from_slice(&out2);
        out.extend_from_slice(&END_OF_ARCHIVE);
        let entries = read_back(&out);
        assert_eq!(entries[0].0, splittable);
        assert_eq!(entries[1].0, unsplittable);
        assert_eq!(entries[1].2.as_deref(), Some(long_link.as_str()));
    }

    #[test]
    fn huge_size_and_ids_get_pax_records() {
        let stamp = Stamp {
            mtime: 1,
            uid: 1 << 30,
            gid: 1 << 30,
            uname: "u".repeat(40),
            gname: "g".into(),
        };
        let mut out = Vec::new();
        let size = 9 << 30; // 9 GiB: over the ustar limit
        encode_header(&mut out, b"big", Kind::File(size), 0o444, b"", &stamp);
        let pax = String::from_utf8_lossy(&out[BLOCK..2 * BLOCK]);
        assert!(pax.contains(&format!("size={size}\n")), "{pax}");
        assert!(pax.contains("uid=1073741824\n"), "{pax}");
        assert!(
            pax.contains(&format!("uname={}\n", "u".repeat(40))),
            "{pax}"
        );
        let mut archive = tar::Archive::new(&out[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        let exts: Vec<_> = entry
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|e| e.unwrap().key().unwrap().to_owned())
            .collect();
        assert_eq!(exts, ["size", "uid", "gid", "uname"]);
    }

    #[test]
    fn entry_types_name_every_flag_and_give_it_back() {
        for flag in 0..=255u8 {
            assert_eq!(EntryType::from_flag(flag).flag(), flag);
        }
        let named =
            (0..=255u8).filter(|&f| !matches!(EntryType::from_flag(f), EntryType::Other(_)));
        assert_eq!(named.map(char::from).collect::<String>(), "01234567KLSgx");
        assert_eq!(EntryType::as_go_reads(0, b"d/"), EntryType::Directory);
        assert_eq!(EntryType::as_go_reads(0, b"f"), EntryType::Regular);
        assert_eq!(EntryType::as_go_reads(b'2', b"l/"), EntryType::Symlink);
        let header_only: String = (0..=255u8)
            .filter(|&f| EntryType::from_flag(f).is_header_only())
            .map(char::from)
            .collect();
        assert_eq!(header_only, "123456");
        for kind in [Kind::File(3), Kind::Directory, Kind::Symlink, Kind::Fifo] {
            let mut out = Vec::new();
            encode_header(&mut out, b"n", kind, 0o644, b"", &stamp());
            assert_eq!(HeaderBlock(&out).typeflag(), kind.entry_type().flag());
        }
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        // 94 bytes of value make the record cross from 2 to 3 length digits.
        pax_record(&mut out, "path", &[b'a'; 94]);
        let text = String::from_utf8(out.clone()).unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), out.len());
    }
}
