//! Registries (the OCI distribution API): the client, pulling an image into an archive and
//! pushing an image from its plan.

pub mod client;
pub mod pull;
pub mod push;
