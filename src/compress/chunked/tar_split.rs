//! tar-split's JSON lines (vbatts/tar-split `tar/storage`), as its disassembler
//! (`asm.NewInputTarStream`, v0.12) writes them for the same tar: for each entry a segment
//! of the raw bytes read to reach its header (the previous file's padding, then every header
//! block, extension headers and their data included), then a file entry naming it with its
//! size and content CRC; at the end a segment of the last padding and the two zero blocks,
//! then what follows them in 1 MiB segments. With the files' contents these lines give the
//! tar back byte for byte, which is how containers/storage checks a partial pull against the
//! layer's `diff_id`.

use super::toc::go_string;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// tar-split's `FileType`.
pub const FILE: u8 = 1;
/// tar-split's `SegmentType`.
pub const SEGMENT: u8 = 2;
/// Bytes per segment after the end-of-archive blocks (tar-split's `paddingChunkSize`).
pub const TRAILER_PIECE: usize = 1 << 20;

/// One line (tar-split's `storage.Entry`), fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitEntry {
    /// [`FILE`] or [`SEGMENT`].
    #[serde(rename = "type")]
    pub kind: u8,
    /// The file's name, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The file's name in base64, when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_raw: String,
    /// The file's declared size.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// A segment's raw bytes, or a file's CRC-64, in base64; `null` for an empty file.
    pub payload: Option<String>,
    /// The line's number, from 0.
    pub position: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Writes the lines, numbering them.
#[derive(Debug, Default)]
pub struct SplitWriter {
    position: u64,
}

impl SplitWriter {
    /// A segment of raw tar bytes.
    pub fn segment(&mut self, raw: &[u8]) -> Vec<u8> {
        self.line(SplitEntry {
            kind: SEGMENT,
            name: String::new(),
            name_raw: String::new(),
            size: 0,
            payload: Some(base64::engine::general_purpose::STANDARD.encode(raw)),
            position: 0,
        })
    }

    /// A file entry: its name as Go read it, declared size, and content CRC (`None` for a
    /// size of 0, whose CRC tar-split does not compute).
    pub fn file(&mut self, name: &[u8], size: u64, crc: Option<[u8; 8]>) -> Vec<u8> {
        // tar-split's `SetName`: the name as a string when it is UTF-8, else its bytes.
        let (name, name_raw) = match std::str::from_utf8(name) {
            Ok(s) => (s.to_owned(), String::new()),
            Err(_) => (
                go_string(name),
                base64::engine::general_purpose::STANDARD.encode(name),
            ),
        };
        let name = if name_raw.is_empty() {
            name
        } else {
            String::new()
        };
        self.line(SplitEntry {
            kind: FILE,
            name,
            name_raw,
            size,
            payload: crc.map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
            position: 0,
        })
    }

    /// The line of `entry`, numbered, with its newline (Go's `json.Encoder`).
    fn line(&mut self, mut entry: SplitEntry) -> Vec<u8> {
        entry.position = self.position;
        self.position += 1;
        let mut line = go_json(&entry);
        line.push(b'\n');
        line
    }
}

/// `value` as Go's encoding/json writes it: compact, and in strings `<`, `>`, `&`, U+2028
/// and U+2029 escaped as `\u003c` ... (its HTML-safe default), control characters as
/// serde_json escapes them, which Go 1.22 and later do alike.
pub fn go_json(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser).expect("JSON of plain data");
    out
}

/// serde_json's compact formatter with Go's HTML-safe string escapes.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_tar_split_writes_them() {
        let mut w = SplitWriter::default();
        assert_eq!(
            w.segment(b"ab"),
            b"{\"type\":2,\"payload\":\"YWI=\",\"position\":0}\n"
        );
        assert_eq!(
            w.file(b"hello", 5, Some([0x3c, 0x3e, 0xee, 0xe2, 0xd8, 0x10, 0, 0])),
            b"{\"type\":1,\"name\":\"hello\",\"size\":5,\"payload\":\"PD7u4tgQAAA=\",\"position\":1}\n"
        );
        assert_eq!(
            w.file(b"d/", 0, None),
            b"{\"type\":1,\"name\":\"d/\",\"payload\":null,\"position\":2}\n"
        );
        assert_eq!(
            w.file("a<b>&\u{2028}\n".as_bytes(), 0, None),
            b"{\"type\":1,\"name\":\"a\\u003cb\\u003e\\u0026\\u2028\\n\",\"payload\":null,\"position\":3}\n"
        );
        assert_eq!(
            w.file(b"\xff", 0, None),
            b"{\"type\":1,\"name_raw\":\"/w==\",\"payload\":null,\"position\":4}\n"
        );
    }
}
