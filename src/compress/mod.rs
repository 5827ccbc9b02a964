//! Deterministic, block-parallel gzip and zstd.
//!
//! Input is cut into fixed-size blocks at fixed offsets, and the blocks of a batch are
//! compressed in parallel on rayon's pool. The output depends only on the input, never on
//! the number of threads or on how writes were split:
//! - gzip writes every block as a gzip member of its own (a valid gzip stream is any
//!   sequence of members): raw deflate by libdeflate at a fixed level, which compresses
//!   better than zlib's pigz-style primed blocks, then the block's CRC-32 and length. The
//!   header has no name and mtime 0. A block whose bytes look random (byte frequencies
//!   within [`STORED_CHI_SQUARE`] of uniform, about 7.999 bits of entropy per byte) is
//!   written as stored blocks instead: deflate cannot shrink it and would spend most of its
//!   time failing to (compressed files in the store: archives, images, jars). The test is
//!   integer arithmetic, so every platform decides alike.
//! - zstd writes every block as an independent frame (a valid zstd stream is any sequence of
//!   frames). Single-threaded frames keep memory per block bounded, where libzstd's own
//!   multithreading buffers several megabytes per worker.
//!
//! A stream cut short between blocks is thus a valid, shorter stream in both formats: what
//! catches it is the layer's digest, which every consumer checks.
//!
//! zstd:chunked ([`chunked`]) is zstd cut where the layer tar's files start, with a table of
//! contents after it, for containers/storage's partial pulls; it compresses layers only.
//!
//! Changing any constant here changes every compressed digest strata has recorded, so they
//! are part of the record format ([`crate::plan::record::RECORD_VERSION`]).

pub mod blocks;
pub mod chunked;
pub mod encoder;

pub use blocks::BATCH;
pub use encoder::{CompressThread, Encoder};

use crate::digest::Blob;
use chunked::ChunkedToc;
use oci_spec::image::MediaType;
use std::io::{self, BufRead, BufReader, Read};
use std::str::FromStr;

/// How a layer or an archive is compressed: the one compression choice strata has, named as
/// `buildLayeredImage`'s `compressor` names it (`none`, `gz`, `zstd`; `zstd:chunked` for
/// layers only), `gzip` also taken for `gz` wherever a name is read (Nix attributes,
/// `--compressor`, `--compression`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Compression {
    /// No compression: plain tar.
    #[default]
    #[serde(rename = "none")]
    None,
    /// gzip (RFC 1952).
    #[serde(rename = "gz", alias = "gzip")]
    Gzip,
    /// zstd (RFC 8878).
    #[serde(rename = "zstd")]
    Zstd,
    /// zstd:chunked: zstd with a frame per file and a table of contents, which
    /// containers/storage pulls partially ([`chunked`]); layers only.
    #[serde(rename = "zstd:chunked")]
    ZstdChunked,
}

/// An unknown compression name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`compressor` must be one of none, gz (or gzip), zstd, zstd:chunked; got {0:?}")]
pub struct UnknownCompression(pub String);

/// A layer as a manifest describes it: its blob, its compression, and for zstd:chunked
/// where its table of contents is (the descriptor's annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerBlob {
    /// The stored bytes' digest and size.
    pub blob: Blob,
    /// How they are compressed.
    pub compression: Compression,
    /// For zstd:chunked, its TOC's digest and position.
    pub toc: Option<ChunkedToc>,
}

impl LayerBlob {
    /// A layer blob with no TOC.
    pub fn plain(blob: Blob, compression: Compression) -> LayerBlob {
        LayerBlob {
            blob,
            compression,
            toc: None,
        }
    }
}

impl Compression {
    /// Whether this is [`Compression::None`].
    pub fn is_none(&self) -> bool {
        *self == Compression::None
    }

    /// Whether only layers may be compressed so (zstd:chunked describes a layer's files:
    /// an archive compressed so would be a layer to no one).
    pub fn layers_only(self) -> bool {
        self == Compression::ZstdChunked
    }

    /// The OCI media type of a layer stored this way (zstd:chunked is plain zstd to the
    /// media type; its annotations tell it apart).
    pub fn layer_media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd | Compression::ZstdChunked => MediaType::ImageLayerZstd,
        }
    }

    /// The compression of a layer of media type `media` (OCI or Docker schema 2), if strata
    /// knows it.
    pub fn of_layer_media_type(media: &str) -> Option<Compression> {
        match media {
            m if m.ends_with("gzip") => Some(Compression::Gzip),
            m if m.ends_with("zstd") => Some(Compression::Zstd),
            m if m.ends_with(".tar") || m.ends_with("diff.tar") => Some(Compression::None),
            _ => None,
        }
    }
}

impl Compression {
    /// The compression a stream starting with `head` has (gzip and zstd magic numbers).
    pub fn of_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Reads `reader`, gunzipping or unzstding it when its first bytes say so.
pub fn decompressed<'r, R: Read + 'r>(reader: R) -> io::Result<Box<dyn Read + 'r>> {
    let mut buf = BufReader::with_capacity(1 << 20, reader);
    let head = buf.fill_buf()?;
    Ok(match Compression::of_magic(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        // zstd:chunked's skippable frames are skipped by every zstd decoder.
        Compression::Zstd | Compression::ZstdChunked => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
        }
        Compression::None => Box::new(buf),
    })
}

impl FromStr for Compression {
    type Err = UnknownCompression;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compression::None),
            "gz" | "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "zstd:chunked" => Ok(Compression::ZstdChunked),
            other => Err(UnknownCompression(other.to_owned())),
        }
    }
}

/// The command line takes the same names (`--compressor`, `--compression`).
impl clap::ValueEnum for Compression {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::ZstdChunked,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        use clap::builder::PossibleValue;
        Some(match self {
            Compression::None => PossibleValue::new("none"),
            Compression::Gzip => PossibleValue::new("gz").alias("gzip"),
            Compression::Zstd => PossibleValue::new("zstd"),
            Compression::ZstdChunked => PossibleValue::new("zstd:chunked"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::blocks::*;
    use super::*;
    use std::io::Read;
    use std::io::{self, Write};
    use std::sync::mpsc::{self, Sender};

    /// Input that crosses batch and block boundaries, half noise and half text.
    fn sample() -> Vec<u8> {
        let mut data = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while data.len() < BATCH + 3 * GZIP_BLOCK + 123 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        for i in 0..300_000 {
            data.extend_from_slice(format!("{i}\n").as_bytes());
        }
        data
    }

    fn compress_with_threads(
        c: Compression,
        data: &[u8],
        threads: usize,
        write_size: usize,
    ) -> Vec<u8> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut e = c.encoder(Vec::new());
            for chunk in data.chunks(write_size) {
                e.write_all(chunk).unwrap();
            }
            e.finish().unwrap()
        })
    }

    #[test]
    fn output_is_independent_of_threads_and_write_sizes_and_decodes() {
        let data = sample();
        for c in [Compression::Gzip, Compression::Zstd] {
            let one = compress_with_threads(c, &data, 1, 1 << 20);
            let two = compress_with_threads(c, &data, 2, 1000);
            let four = compress_with_threads(c, &data, 4, 7777);
            assert_eq!(one, two, "{c:?}: 1 vs 2 threads");
            assert_eq!(one, four, "{c:?}: 1 vs 4 threads");
            let mut back = Vec::new();
            match c {
                Compression::Gzip => {
                    flate2::read::MultiGzDecoder::new(&one[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                _ => back = zstd::decode_all(&one[..]).unwrap(),
            }
            assert!(back == data, "{c:?} round trip");
            assert!(
                one.len() < data.len() * 9 / 10,
                "{c:?} compresses the text half: {} of {}",
                one.len(),
                data.len()
            );
        }
    }

    #[test]
    fn random_blocks_are_stored_and_text_is_not() {
        let data = sample();
        assert!(looks_random(&data[..GZIP_BLOCK]), "the noise half");
        assert!(
            !looks_random(&data[data.len() - GZIP_BLOCK..]),
            "the text half"
        );
        assert!(!looks_random(&[7u8; 1 << 20]));
        assert!(
            !looks_random(&data[..1000]),
            "short blocks are always deflated"
        );
    }

    #[test]
    fn a_dropped_encoder_leaves_a_visibly_short_stream() {
        let (tx, rx) = mpsc::channel();
        struct Tell(Sender<Vec<u8>>, Vec<u8>);
        impl Write for Tell {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.1.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Drop for Tell {
            fn drop(&mut self) {
                let _ = self.0.send(std::mem::take(&mut self.1));
            }
        }
        for c in [Compression::Gzip, Compression::Zstd] {
            let data = sample();
            let mut e = c.encoder(Tell(tx.clone(), Vec::new()));
            e.write_all(&data).unwrap();
            drop(e);
            let written = rx.recv().unwrap();
            let mut back = Vec::new();
            let _ = match c {
                Compression::Gzip => {
                    flate2::read::MultiGzDecoder::new(&written[..]).read_to_end(&mut back)
                }
                _ => zstd::stream::read::Decoder::new(&written[..])
                    .unwrap()
                    .read_to_end(&mut back),
            };
            // The unfinished batch is lost: the layer's digest and size show it.
            assert!(back.len() < data.len() && data.starts_with(&back), "{c:?}");
        }
    }

    #[test]
    fn gzip_is_readable_by_the_gzip_tool_shape_and_empty_input_works() {
        for c in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::None,
            Compression::ZstdChunked,
        ] {
            let empty = c.encoder(Vec::new()).finish().unwrap();
            let mut back = Vec::new();
            match c {
                Compression::Gzip => {
                    assert_eq!(&empty[..3], &[0x1f, 0x8b, 8]);
                    flate2::read::MultiGzDecoder::new(&empty[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::Zstd | Compression::ZstdChunked => {
                    back = zstd::decode_all(&empty[..]).unwrap()
                }
                Compression::None => assert!(empty.is_empty()),
            }
            assert!(back.is_empty());
        }
        assert_eq!("zstd:chunked".parse(), Ok(Compression::ZstdChunked));
        assert_eq!(
            serde_json::to_string(&Compression::ZstdChunked).unwrap(),
            r#""zstd:chunked""#
        );
        assert!("xz"
            .parse::<Compression>()
            .unwrap_err()
            .to_string()
            .contains("`compressor`"));
    }
}
