//! Compressed forms computed outside a build, kept by `diff_id` in the user's cache.
//!
//! A build records only what its image needs ([`super::record::RecordParts`]); a push needs
//! the compressed digest of every layer to ask the registry whether it has it. The push
//! computes the missing ones once and keeps them here, outside the store, so a later push
//! of any image holding the same layer (another tag, another registry) asks at once. An
//! entry is a hint: a push checks the bytes it sends against it, and a bad or missing entry
//! only means computing again. Nothing here is ever needed for correctness.

use crate::compress::{blocks, Compression, LayerBlob};
use crate::digest::{Blob, Digest};
use crate::plan::record::RECORD_VERSION;
use crate::whole_file::WholeFile;
use std::io::Write;
use std::path::PathBuf;

/// The cache: `$STRATA_CACHE_DIR`, else `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`;
/// none when there is no home (a Nix builder).
#[derive(Debug, Clone)]
pub struct RecordCache {
    dir: Option<PathBuf>,
}

impl RecordCache {
    /// The user's cache.
    pub fn user() -> RecordCache {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = var("STRATA_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("strata")))
            .or_else(|| var("HOME").map(|h| h.join(".cache/strata")))
            .filter(|d| d.is_absolute() && !d.starts_with("/homeless-shelter"));
        RecordCache { dir }
    }

    /// A cache that keeps nothing.
    pub fn none() -> RecordCache {
        RecordCache { dir: None }
    }

    /// The file of `diff_id`'s form compressed with `compression`: named by record version,
    /// the compressor's parameters (a change of level or block size files anew) and hex
    /// digest only.
    fn file(&self, diff_id: &Digest, compression: Compression) -> Option<PathBuf> {
        let codec = blocks::parameters(compression)?;
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!(
            "records-v{RECORD_VERSION}/{codec}/{}",
            diff_id.hex()
        )))
    }

    /// Drops what is kept for `diff_id`, an entry the bytes proved wrong.
    pub fn forget(&self, diff_id: &Digest, compression: Compression) {
        if let Some(file) = self.file(diff_id, compression) {
            let _ = std::fs::remove_file(file);
        }
    }

    /// The compressed blob of the layer `diff_id`, when a push computed it before.
    pub fn get(&self, diff_id: &Digest, compression: Compression) -> Option<LayerBlob> {
        let text = std::fs::read_to_string(self.file(diff_id, compression)?).ok()?;
        let mut lines = text.lines();
        let (digest, size) = lines.next()?.split_once(' ')?;
        let blob = Blob {
            digest: Digest::parse(digest)?,
            size: size.parse().ok()?,
        };
        // A zstd:chunked entry has its TOC's place on a second line, as JSON.
        let toc = match compression {
            Compression::ZstdChunked => Some(serde_json::from_str(lines.next()?).ok()?),
            _ => None,
        };
        Some(LayerBlob {
            blob,
            compression,
            toc,
        })
    }

    /// Keeps `layer` as the compressed form of the layer `diff_id`. Failures are ignored:
    /// the cache is a hint.
    pub fn put(&self, diff_id: &Digest, layer: &LayerBlob) {
        let (compression, blob) = (layer.compression, layer.blob);
        let Some(file) = self.file(diff_id, compression) else {
            return;
        };
        let Some(dir) = file.parent() else {
            return;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        // Written aside and renamed: a reader never sees half an entry.
        let mut entry = format!("{} {}\n", blob.digest, blob.size);
        if let Some(toc) = &layer.toc {
            entry += &serde_json::to_string(toc).expect("a TOC's place serialises");
            entry.push('\n');
        }
        if let Ok(mut f) = WholeFile::create_beside(&file) {
            if f.write_all(entry.as_bytes()).is_ok() {
                let _ = f.finish();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_and_bad_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RecordCache {
            dir: Some(dir.path().to_owned()),
        };
        let (diff, blob) = (
            Digest([1; 32]),
            Blob {
                digest: Digest([2; 32]),
                size: 42,
            },
        );
        let blob = LayerBlob::plain(blob, Compression::Gzip);
        assert_eq!(cache.get(&diff, Compression::Gzip), None);
        cache.put(&diff, &blob);
        assert_eq!(cache.get(&diff, Compression::Gzip), Some(blob));
        assert_eq!(cache.get(&diff, Compression::Zstd), None, "per codec");
        let file = cache.file(&diff, Compression::Gzip).unwrap();
        std::fs::write(&file, "garbage").unwrap();
        assert_eq!(cache.get(&diff, Compression::Gzip), None);
        assert_eq!(RecordCache::none().get(&diff, Compression::Gzip), None);
        let left: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary files left");
        cache.put(&diff, &blob);
        cache.forget(&diff, Compression::Gzip);
        assert_eq!(cache.get(&diff, Compression::Gzip), None, "forgotten");
        assert!(
            file.to_string_lossy()
                .contains(&format!("libdeflate{}", blocks::GZIP_LEVEL)),
            "filed under the compressor's parameters: {file:?}"
        );
        let position = |offset| crate::compress::chunked::Position {
            offset,
            compressed: 2,
            uncompressed: 3,
        };
        let chunked = LayerBlob {
            toc: Some(crate::compress::chunked::ChunkedToc {
                toc_digest: Digest([3; 32]),
                toc: position(10),
                tar_split: position(20),
            }),
            ..LayerBlob::plain(blob.blob, Compression::ZstdChunked)
        };
        cache.put(&diff, &chunked);
        assert_eq!(cache.get(&diff, Compression::ZstdChunked), Some(chunked));
        assert_eq!(cache.get(&diff, Compression::Gzip), None, "per codec");
    }
}
