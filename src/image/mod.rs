//! The image as consumers read it: the config, the OCI layout and Docker's legacy layout, and
//! the archive writer that streams them with the layers in one pass.

pub mod archive;
pub mod config;
pub mod explain;
pub mod legacy_layout;
pub mod oci_layout;
pub mod partial_pull;
