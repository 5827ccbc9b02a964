//! strata builds Docker/OCI images out of Nix store closures.
//!
//! The library is cut into areas (docs/ARCHITECTURE.md has the map):
//!
//! ```text
//! store ──► plan (layering decided, records computed) ──► plan file in the Nix store
//!   │         ▲                ▲
//!   │       parent           rootfs (customisation layer, buildImage's layer)
//!   │         ▲
//!   │      registry (pull) ──────────────┐
//!   ▼                                    ▼
//! tar (layer bytes) ──► image (config, OCI layout, archive) ──► stdout / file / registry (push)
//! ```
//!
//! At build time the Nix library runs the helper to tar the customisation layer and to write
//! the image plan: which store paths go in which layer, and each layer's record (size and
//! `diff_id`; the tarsum for the legacy layout, the compressed digest when `layerCompressor`
//! stores layers compressed), computed in one pass over its bytes. Streaming the image
//! reads the plan and writes the docker-archive in one pass, checking each layer's bytes
//! against its record as they go.

#![warn(missing_docs)]
pub mod cli;
pub mod compress;
pub mod digest;
pub mod file_error;
pub mod image;
pub mod parent;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod rootfs;
pub mod sbom;
pub mod signing;
pub mod store;
pub mod tar;
pub mod when;
pub mod whole_file;
