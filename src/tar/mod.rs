//! Tar, as strata writes and reads it: header encoding, deterministic layer tars from store
//! paths or trees, reading tars strata does not trust, entry-name rules, Docker's tarsum, and
//! flattening layers into one tree.

pub mod flatten;
pub mod header;
pub mod layer;
pub mod members;
pub mod names;
pub mod reader;
pub mod sink;
pub mod source;
pub mod tarsum;
mod walk;
