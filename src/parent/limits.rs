//! How much an import may unpack, hold in memory and write: the bounds that keep a hostile
//! parent archive (a small `.tar.gz` that expands to terabytes, a member declaring gigabytes
//! of JSON) from exhausting the disk or memory of the build, and the one override.
//!
//! Memory: extension headers and names are bounded by [`crate::tar::reader`] and
//! [`crate::tar::names`]; JSON members by [`MAX_JSON`]; the member table by
//! [`MAX_MEMBER_TABLE`]; layer entries cost a 16-byte hash each. Disk: everything the import
//! decompresses (the archive's tar stream and every layer's, which is what it writes) counts
//! against [`Limits::max_expanded`].

use super::{member_error, ParentError};
use std::cell::Cell;
use std::io::{self, Read};

/// The least an import may unpack, whatever the archive's size: real parents with highly
/// compressible content (zero-filled files) stay well within it.
pub const MIN_EXPANSION: u64 = 4 << 30;

/// How many times its own size an archive may unpack to: image layers compress 2–10 times,
/// and even text rarely 20, while a decompression bomb expands a thousandfold.
pub const EXPANSION_RATIO: u64 = 100;

/// Most bytes of a JSON member (`manifest.json`, `index.json`, a config or an OCI manifest)
/// read into memory: they are kilobytes in images (a config with hundreds of history
/// entries stays under one megabyte).
pub const MAX_JSON: u64 = 8 << 20;

/// Most bytes the table of the archive's members may take (their names and link targets,
/// with 64 bytes for each entry): an image archive has a few members per layer.
pub const MAX_MEMBER_TABLE: u64 = 16 << 20;

/// How much an import may unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes the import decompresses: the archive's tar stream and its layers' tar
    /// streams together (what it writes to scratch files and layer tars).
    pub max_expanded: u64,
}

impl Limits {
    /// The default for an archive of `archive_bytes`: the larger of [`MIN_EXPANSION`] and
    /// [`EXPANSION_RATIO`] times its size.
    pub fn for_archive(archive_bytes: u64) -> Limits {
        Limits {
            max_expanded: MIN_EXPANSION.max(archive_bytes.saturating_mul(EXPANSION_RATIO)),
        }
    }

    /// At most `max_expanded` bytes, whatever the archive's size (`fromImageMaxBytes`).
    pub fn at_most(max_expanded: u64) -> Limits {
        Limits { max_expanded }
    }
}

/// The bytes an import unpacked so far, against its [`Limits`].
#[derive(Debug)]
pub(super) struct Budget {
    limits: Limits,
    used: Cell<u64>,
}

impl Budget {
    pub(super) fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            used: Cell::new(0),
        }
    }

    /// `inner`, every byte read through it counted; reading fails once the limit is passed.
    pub(super) fn reader<R: Read>(&self, inner: R) -> Budgeted<'_, R> {
        Budgeted {
            inner,
            budget: self,
        }
    }
}

/// A reader whose bytes count against a [`Budget`].
#[derive(Debug)]
pub(super) struct Budgeted<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let used = self.budget.used.get() + n as u64;
        self.budget.used.set(used);
        let limit = self.budget.limits.max_expanded;
        if used > limit {
            return Err(io::Error::other(ExpansionLimit { limit }));
        }
        Ok(n)
    }
}

/// The import unpacked more than its limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "unpacking it passes {limit} bytes, the most this import may unpack (by default the larger of {} GiB and {} times the archive's size; `fromImageMaxBytes` sets it)",
    MIN_EXPANSION >> 30,
    EXPANSION_RATIO
)]
pub struct ExpansionLimit {
    /// The limit, in bytes.
    pub limit: u64,
}

/// The expansion limit, when that is why reading failed with `e`.
pub(super) fn expansion_limit(e: &io::Error) -> Option<&ExpansionLimit> {
    e.get_ref().and_then(|e| e.downcast_ref::<ExpansionLimit>())
}

/// The error for `member` when reading it failed with `e`: the expansion limit's own message
/// when that is why.
pub(super) fn read_failure(member: &str, e: &io::Error) -> ParentError {
    match expansion_limit(e) {
        Some(limit) => member_error(member, limit.to_string()),
        None => member_error(member, format!("cannot read it: {e}")),
    }
}

/// Refuses member `name` of `size` bytes, to be read into memory as JSON, when it is larger
/// than [`MAX_JSON`].
pub(super) fn check_json_size(name: &str, size: u64) -> Result<(), ParentError> {
    if size > MAX_JSON {
        return Err(member_error(
            name,
            format!(
                "{size} bytes of JSON, more than the {MAX_JSON} bytes strata reads into memory"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_grows_with_the_archive_from_a_floor() {
        assert_eq!(Limits::for_archive(0).max_expanded, MIN_EXPANSION);
        assert_eq!(Limits::for_archive(1 << 20).max_expanded, MIN_EXPANSION);
        assert_eq!(Limits::for_archive(1 << 30).max_expanded, 100 << 30);
        assert_eq!(Limits::for_archive(u64::MAX).max_expanded, u64::MAX);
    }

    #[test]
    fn a_budget_counts_every_reader_and_stops_past_its_limit() {
        let budget = Budget::new(Limits::at_most(10));
        let mut first = Vec::new();
        budget
            .reader(&[0u8; 6][..])
            .read_to_end(&mut first)
            .unwrap();
        let err = budget
            .reader(&[0u8; 6][..])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        let text = read_failure("m", &err).to_string();
        assert!(
            text.starts_with("member `m`: unpacking it passes 10 bytes"),
            "{text}"
        );
        let other = io::Error::new(io::ErrorKind::UnexpectedEof, "short");
        assert_eq!(
            read_failure("m", &other).to_string(),
            "member `m`: cannot read it: short"
        );
    }
}
