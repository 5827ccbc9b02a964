//! Registries (the OCI distribution API): references, the client (transport and
//! authentication apart), pulling an image into an archive and pushing an image from its
//! plan, with documents attached to it as referrers; and the read side served for one image on a loopback port, from which local
//! engines load it.

pub mod attach;
mod auth;
pub mod client;
pub mod load;
pub mod pull;
pub mod push;
pub mod reference;
pub mod serve;
pub mod signature;
mod tls;
mod transport;

pub use tls::TlsSetupError;
pub use transport::BadProxy;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The image reference cannot be parsed.
    #[error(
        "`{text}` is not an image reference ([HOST[:PORT]/]NAME[:TAG][@DIGEST]): {}",
        .why.to_string().escape_debug()
    )]
    Reference {
        /// The text given, escaped so that the message stays one line.
        text: String,
        /// What is wrong with it (escaped in the message, so not a `source`).
        why: reference::BadReference,
    },
    /// The registry could not be reached or stopped answering.
    #[error("registry {host}: {message}")]
    Unreachable {
        /// host[:port].
        host: String,
        /// What happened.
        message: String,
        /// Whether trying again may succeed (a reset, a timeout, a registry restarting).
        transient: bool,
    },
    /// The certificates to trust for the registry cannot be read.
    #[error("registry {host}: {source}")]
    Tls {
        /// host[:port].
        host: String,
        /// Which certificate, and why.
        source: tls::TlsSetupError,
    },
    /// The proxy the environment names cannot be used.
    #[error("registry {host}: {what}: {source}")]
    Proxy {
        /// host[:port].
        host: String,
        /// The request.
        what: String,
        /// The proxy, and why.
        source: std::sync::Arc<transport::BadProxy>,
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
    /// The registry sent something that is not what it should be.
    #[error("registry answer for {what}: {message}")]
    Malformed {
        /// What was asked for.
        what: String,
        /// What is wrong with it.
        message: String,
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

impl RegistryError {
    /// Whether the same request may succeed if made again: the connection failed or was
    /// cut off, or the registry answered 408, 429 or 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { transient, .. } => *transient,
            RegistryError::Status { status, .. } => transport::is_transient_status(*status),
            _ => false,
        }
    }
}
