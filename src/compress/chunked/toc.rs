//! The TOC (table of contents): one JSON entry per tar header, as containers/storage's
//! `minimal.NewFileMetadata` makes it from the header Go's archive/tar parsed, plus where
//! each file's frames are. Readers compare every header field with the tar-split's headers
//! (containers/storage 1.55 and later), so each is taken from the header exactly as Go
//! reads it; keys come in the order of Go's `FileMetadata` struct, empty ones left out as
//! its `omitempty` leaves them out.

use super::ChunkedError;
use crate::tar::header::{EntryType, HeaderBlock};
use crate::tar::reader::TarEntry;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One TOC entry (`minimal.FileMetadata`), field order as Go writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TocEntry {
    /// `reg`, `hardlink`, `symlink`, `char`, `block`, `dir`, `fifo`, or `chunk`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The entry's name as Go reads it (PAX `path`, ustar prefix joined, nothing cleaned).
    pub name: String,
    /// The link target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_name: String,
    /// The mode field, as written.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mode: i64,
    /// The declared size.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: i64,
    /// The owner.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: i64,
    /// The group.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: i64,
    /// The modification time, RFC 3339 in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modtime: Option<String>,
    /// The access time, when the header has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accesstime: Option<String>,
    /// The change time, when the header has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changetime: Option<String>,
    /// The device's major number.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dev_major: i64,
    /// The device's minor number.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dev_minor: i64,
    /// Extended attributes from `SCHILY.xattr.*` records, values in base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// `sha256:<hex>` of the file's content (files with content only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Blob offset of the first frame of the content (or of this chunk).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// Blob offset just past the content's last frame.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub end_offset: u64,
    /// Bytes of this chunk (files of several chunks only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chunk_size: u64,
    /// Where this chunk starts in the file.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chunk_offset: u64,
    /// `sha256:<hex>` of this chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_digest: Option<String>,
    /// `zeros` for a chunk of zeros; strata writes data chunks only, so never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_type: Option<String>,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// The PAX record prefix of extended attributes (Go's `paxSchilyXattr`).
const XATTR: &[u8] = b"SCHILY.xattr.";

impl TocEntry {
    /// The entry of `entry`, whose last header block (the one after any extension headers)
    /// is `block`.
    pub fn of_header(entry: &TarEntry, block: &[u8]) -> Result<TocEntry, ChunkedError> {
        let name = go_string(&entry.name);
        let unsupported = |what: String| ChunkedError::Unsupported {
            name: name.clone(),
            what,
        };
        let kind = match entry.entry_type {
            EntryType::Regular => "reg",
            EntryType::HardLink => "hardlink",
            EntryType::Symlink => "symlink",
            EntryType::CharDevice => "char",
            EntryType::BlockDevice => "block",
            EntryType::Directory => "dir",
            EntryType::Fifo => "fifo",
            other => return Err(unsupported(format!("type `{}`", other.flag() as char))),
        };
        if let Some(why) = crate::tar::reader::ambiguity(entry) {
            return Err(unsupported(why));
        }
        let h = HeaderBlock(block);
        let bad = |e: crate::tar::header::BadNumber| unsupported(e.to_string());
        let (dev_major, dev_minor) = h.device().map_err(bad)?;
        let (atime, ctime) = h.times().map_err(bad)?;
        let time = |key: &str, header: Option<i64>| -> Result<Option<String>, ChunkedError> {
            let nanos = match entry.pax.get(key.as_bytes()) {
                Some(text) => pax_time(text)
                    .ok_or_else(|| unsupported(format!("a PAX `{key}` record Go refuses")))?,
                None => match header {
                    Some(secs) => i128::from(secs) * 1_000_000_000,
                    None => return Ok(None),
                },
            };
            rfc3339(nanos)
                .map(Some)
                .ok_or_else(|| unsupported(format!("its {key} is outside the years Go writes")))
        };
        let xattrs = entry
            .pax
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(XATTR)?;
                let value = base64::engine::general_purpose::STANDARD.encode(v);
                Some((go_string(key), value))
            })
            .collect();
        Ok(TocEntry {
            kind: kind.to_owned(),
            link_name: go_string(&entry.link),
            mode: entry.mode,
            size: i64::try_from(entry.declared_size).map_err(|_| unsupported("its size".into()))?,
            uid: entry.uid,
            gid: entry.gid,
            modtime: time("mtime", Some(h.mtime().map_err(bad)?))?,
            accesstime: time("atime", atime)?,
            changetime: time("ctime", ctime)?,
            dev_major,
            dev_minor,
            xattrs,
            name,
            ..TocEntry::default()
        })
    }
}

/// `bytes` as Go's encoding/json writes a string holding them: each byte of an invalid UTF-8
/// sequence becomes U+FFFD.
pub fn go_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
        s.extend(chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER));
    }
    s
}

/// A PAX time (`seconds[.fraction]`) in nanoseconds, as Go's `parsePAXTime` reads it: at
/// most 9 fraction digits count, and the fraction takes the sign of the seconds.
fn pax_time(text: &[u8]) -> Option<i128> {
    let text = std::str::from_utf8(text).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let whole: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos = i128::from(digits.parse::<i64>().ok()?);
    let nanos = if secs.starts_with('-') { -nanos } else { nanos };
    Some(i128::from(whole) * 1_000_000_000 + nanos)
}

/// A time as Go's `time.Time` marshals to JSON in UTC (RFC 3339 with as many fraction
/// digits as needed, `Z`); `None` outside the years 0 to 9999, which Go refuses to write.
pub fn rfc3339(nanos: i128) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    let frac = match t.nanosecond() {
        0 => String::new(),
        n => format!(".{n:09}").trim_end_matches('0').to_owned(),
    };
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_go_writes_them() {
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_700_000_000 * 1_000_000_000 + 500_000_000).unwrap(),
            "2023-11-14T22:13:20.5Z"
        );
        assert_eq!(rfc3339(-1).unwrap(), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339(i128::from(i64::MAX) * 1_000_000_000), None);
        assert_eq!(pax_time(b"12.5"), Some(12_500_000_000));
        assert_eq!(pax_time(b"-0.5"), Some(-500_000_000));
        assert_eq!(pax_time(b"1.1234567891"), Some(1_123_456_789));
        assert_eq!(pax_time(b"1.x"), None);
        assert_eq!(pax_time(b"7"), Some(7_000_000_000));
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_byte() {
        assert_eq!(go_string(b"a\xe2\x82b\xff"), "a\u{fffd}\u{fffd}b\u{fffd}");
        assert_eq!(go_string("é/x".as_bytes()), "é/x");
    }

    #[test]
    fn keys_in_go_order_and_empty_ones_left_out() {
        let e = TocEntry {
            kind: "reg".into(),
            name: "a".into(),
            mode: 0o644,
            size: 5,
            modtime: Some("1970-01-01T00:00:01Z".into()),
            digest: Some("sha256:00".into()),
            offset: 10,
            end_offset: 20,
            xattrs: BTreeMap::from([("user.b".into(), "eA==".into())]),
            ..TocEntry::default()
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"reg","name":"a","mode":420,"size":5,"modtime":"1970-01-01T00:00:01Z","xattrs":{"user.b":"eA=="},"digest":"sha256:00","offset":10,"endOffset":20}"#
        );
    }
}
