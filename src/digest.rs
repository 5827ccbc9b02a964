//! sha256 digests, and the one way strata hashes bytes as they go by: a [`Hasher`] (sha256
//! and a byte count), wrapped as a writer ([`HashingWriter`]) or a reader ([`HashingReader`]).

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A sha256 digest, shown as `sha256:<64 hex digits>` like every OCI and Docker field that holds one.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }
}

impl Digest {
    /// Parses `sha256:<64 hex digits>`.
    pub fn parse(s: &str) -> Option<Digest> {
        let hex = s.strip_prefix("sha256:")?;
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Digest(out))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a sha256 digest: {text:?}")))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A blob's digest and size: what a descriptor or a `diff_id` needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Blob {
    /// sha256 of the bytes.
    pub digest: Digest,
    /// Number of bytes.
    pub size: u64,
}

/// sha256 and a byte count of everything fed to it.
#[derive(Debug, Clone, Default)]
pub struct Hasher {
    sha256: Sha256,
    size: u64,
}

impl Hasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Takes the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The blob of everything seen.
    pub fn finish(self) -> Blob {
        Blob {
            digest: Digest(self.sha256.finalize().into()),
            size: self.size,
        }
    }
}

/// Feeds everything written through it to a [`Hasher`] before passing it on.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.hasher.size()
    }

    /// Ends hashing: returns the inner writer and the blob written through it.
    pub fn finish(self) -> (W, Blob) {
        (self.inner, self.hasher.finish())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.hasher.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Feeds everything read through it to a [`Hasher`].
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.hasher.size()
    }

    /// Ends hashing: the blob read through it.
    pub fn finish(self) -> Blob {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_is_the_well_known_one() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_junk() {
        let d = Digest::of(b"x");
        assert_eq!(Digest::parse(&d.to_string()), Some(d));
        assert_eq!(
            Digest::parse(&d.hex()),
            None,
            "the algorithm prefix is required"
        );
        assert_eq!(Digest::parse("sha256:zz"), None);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn hashing_writer_matches_one_shot_digest() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, blob) = w.finish();
        assert_eq!(bytes, b"hello world");
        assert_eq!(blob.size, 11);
        assert_eq!(blob.digest, Digest::of(b"hello world"));
        let mut r = HashingReader::new(&b"hello world"[..]);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(r.finish(), blob);
    }
}
