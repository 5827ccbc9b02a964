//! strata builds Docker/OCI images out of Nix store closures.
//!
//! Pipeline, in module order:
//!
//! ```text
//! nix_attrs ─► closure ─► layering ─► plan ──────────────► (plan file in the store)
//!                                       │
//! customisation (build time) ─► layer_tar ◄── tar_header
//!                                       │
//!                              archive (+ digest) ─► compress ─► docker-archive
//! ```
//!
//! At build time the Nix library runs the helper to tar the customisation layer and to write
//! the image plan (which store paths go in which layer). Streaming the image reads the plan,
//! sizes every layer from metadata, then writes the docker-archive in one pass, hashing each
//! layer as it goes.

pub mod archive;
pub mod cli;
pub mod closure;
pub mod compress;
pub mod customisation;
pub mod digest;
pub mod image_config;
pub mod layer_tar;
pub mod layering;
pub mod nix_attrs;
pub mod plan;
pub mod store_path;
pub mod tar_header;
