//! Registries (the OCI distribution API): references, the client (transport and
//! authentication apart), pulling an image into an archive and pushing an image from its
//! plan; and the read side served for one image on a loopback port, from which local
//! engines load it.

mod auth;
pub mod client;
pub mod load;
pub mod pull;
pub mod push;
pub mod reference;
pub mod serve;
mod transport;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The image reference cannot be parsed.
    #[error("`{text}` is not an image reference ([HOST[:PORT]/]NAME[:TAG][@DIGEST]): {why}")]
    Reference {
        /// The text given.
        text: String,
        /// What is wrong with it.
        why: String,
    },
    /// The registry could not be reached or stopped answering.
    #[error("registry {host}: {message}")]
    Unreachable {
        /// host[:port].
        host: String,
        /// What happened.
        message: String,
    },
    /// The registry refused the credentials, or there were none.
    #[error("registry {host} refused access to {what} (HTTP 401/403){hint}")]
    Unauthorized {
        /// host[:port].
        host: String,
        /// The request.
        what: String,
        /// Where credentials were looked for.
        hint: String,
    },
    /// Any other unexpected answer.
    #[error("registry {host}: {what}: HTTP {status}: {body}")]
    Status {
        /// host[:port].
        host: String,
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
}
