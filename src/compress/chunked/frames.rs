//! The frames of a zstd:chunked blob: regular frames, each compressed on its own at a fixed
//! level, so a reader can decompress any file's range alone; then three skippable frames
//! (RFC 8878 §3.1.2), which every zstd decoder skips: the TOC, the tar-split, the footer.

use super::{Position, LEVEL};
use std::io::{self, Write};

/// A skippable frame's magic number, 0x184D2A50 little-endian (containers/storage's
/// `skippableFrameMagic`).
pub const SKIPPABLE_MAGIC: [u8; 4] = [0x50, 0x2a, 0x4d, 0x18];
/// A skippable frame's header: the magic and the data's length.
pub const SKIPPABLE_HEADER: u64 = 8;
/// The footer's magic, `GNUlInUx` (`ZstdChunkedFrameMagic`, containers/storage 1.50 on).
pub const FOOTER_MAGIC: &[u8; 8] = b"GNUlInUx";
/// The footer's manifest type: 1, a CRFS-style TOC (`ManifestTypeCRFS`).
pub const MANIFEST_TYPE: u64 = 1;

/// One regular frame holding `plain`.
pub fn frame(plain: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(plain, LEVEL).expect("zstd of in-memory data cannot fail")
}

/// A zstd stream of `plain` written in one piece (the TOC, the tar-split).
pub fn stream_encoder() -> zstd::stream::write::Encoder<'static, Vec<u8>> {
    zstd::stream::write::Encoder::new(Vec::new(), LEVEL).expect("a zstd level strata chose")
}

/// Writes `data` as a skippable frame.
pub fn write_skippable(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| io::Error::other("a zstd:chunked TOC or tar-split over 4 GiB"))?;
    out.write_all(&SKIPPABLE_MAGIC)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(data)
}

/// The 64-byte footer (`footerDataToBlob`): the TOC's position, the manifest type, the
/// tar-split's position, each number little-endian, then the magic. containers/storage 1.54
/// and later read the annotations instead; older ones fell back to it.
pub fn footer(toc: &Position, tar_split: &Position) -> [u8; 64] {
    let mut f = [0u8; 64];
    let fields = [
        toc.offset,
        toc.compressed,
        toc.uncompressed,
        MANIFEST_TYPE,
        tar_split.offset,
        tar_split.compressed,
        tar_split.uncompressed,
    ];
    for (i, v) in fields.iter().enumerate() {
        f[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    f[56..].copy_from_slice(FOOTER_MAGIC);
    f
}
