//! Whole-archive compression for `buildLayeredImage`: none, gzip or zstd, with fixed
//! parameters so the same image always compresses to the same bytes.

use std::io::{self, Write};
use std::str::FromStr;

/// gzip level: zlib's default, the level nixpkgs' pigz uses.
const GZIP_LEVEL: u32 = 6;
/// zstd level: the zstd command's default.
const ZSTD_LEVEL: i32 = 3;

/// A compressor name as `buildLayeredImage`'s `compressor` argument takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    /// No compression.
    None,
    /// gzip, with no file name and mtime 0 in its header.
    Gz,
    /// zstd.
    Zstd,
}

/// An unknown compressor name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`compressor` must be one of none, gz, zstd; got {0:?}")]
pub struct UnknownCompressor(pub String);

impl FromStr for Compressor {
    type Err = UnknownCompressor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compressor::None),
            "gz" => Ok(Compressor::Gz),
            "zstd" => Ok(Compressor::Zstd),
            other => Err(UnknownCompressor(other.to_owned())),
        }
    }
}

impl Compressor {
    /// Wraps `inner` in an encoder; call [`Encoder::finish`] when done.
    pub fn encoder<W: Write>(self, inner: W) -> io::Result<Encoder<W>> {
        Ok(match self {
            Compressor::None => Encoder::Plain(inner),
            Compressor::Gz => Encoder::Gz(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(inner, flate2::Compression::new(GZIP_LEVEL)),
            ),
            Compressor::Zstd => Encoder::Zstd(zstd::Encoder::new(inner, ZSTD_LEVEL)?),
        })
    }
}

/// A writer that compresses into `W`.
#[allow(missing_debug_implementations)] // zstd's encoder has no Debug
pub enum Encoder<W: Write> {
    /// Passes bytes through.
    Plain(W),
    /// gzip.
    Gz(flate2::write::GzEncoder<W>),
    /// zstd.
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Writes the compressed stream's trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trips_and_is_deterministic() {
        let data = b"strata ".repeat(1000);
        for c in [Compressor::None, Compressor::Gz, Compressor::Zstd] {
            let mut e = c.encoder(Vec::new()).unwrap();
            e.write_all(&data).unwrap();
            let once = e.finish().unwrap();
            let mut e = c.encoder(Vec::new()).unwrap();
            e.write_all(&data).unwrap();
            assert_eq!(once, e.finish().unwrap(), "{c:?} is deterministic");
            let mut back = Vec::new();
            match c {
                Compressor::None => back = once.clone(),
                Compressor::Gz => {
                    flate2::read::GzDecoder::new(&once[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compressor::Zstd => back = zstd::decode_all(&once[..]).unwrap(),
            }
            assert_eq!(back, data);
        }
        assert!("xz"
            .parse::<Compressor>()
            .unwrap_err()
            .to_string()
            .contains("`compressor`"));
    }
}
