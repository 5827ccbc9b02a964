//! strata builds Docker/OCI images out of Nix store closures.
//!
//! Pipeline, in module order:
//!
//! ```text
//! nix_attrs ─► closure ─► layering ─► plan ──────────► (plan file, with records, in the store)
//!                                       │    ▲
//!                                       │  record ◄── compress (block-parallel gzip, zstd)
//!                                       ▼    │
//! customisation (build time) ──────► layer_tar ◄── tar_header
//!                                       │
//!  archive (+ digest, progress, oci_layout, legacy_layout) ─► compress ─► docker-archive
//!                                                                     and OCI layout
//! ```
//!
//! At build time the Nix library runs the helper to tar the customisation layer and to write
//! the image plan: which store paths go in which layer, and each layer's record (size,
//! `diff_id`, gzip and zstd digests), computed in one pass over its bytes. Streaming the image
//! reads the plan and writes the docker-archive in one pass, checking each layer's bytes
//! against its record as they go.

pub mod archive;
pub mod cli;
pub mod closure;
pub mod compress;
pub mod customisation;
pub mod digest;
pub mod flatten;
pub mod image_config;
pub mod image_index;
pub mod layer_tar;
pub mod layering;
pub mod legacy_layout;
pub mod nix_attrs;
pub mod nix_db;
pub mod oci_layout;
pub mod parent_image;
pub mod plan;
pub mod progress;
pub mod pull;
pub mod push;
pub mod record;
pub mod registry;
pub mod root_shell;
pub mod rootfs;
pub mod store_path;
pub mod tar_header;
pub mod tarsum;
