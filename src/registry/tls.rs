//! Which certificates a client trusts, and why a TLS connection failed, in words.
//!
//! Trusted: the compiled-in web roots, the system's store (or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` / `NIX_SSL_CERT_FILE` when set, as OpenSSL reads them), and the `*.crt` of
//! the registry's `certs.d` directory: `--cert-dir DIR` when given (skopeo's meaning: the
//! directory itself holds them), else `/etc/containers/certs.d/HOST`,
//! `/etc/docker/certs.d/HOST` and `~/.config/containers/certs.d/HOST`, the layout docker and
//! podman users already have.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the TLS configuration for a registry could not be made: a certificate named for it
/// cannot be trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// rustls refused the protocol versions.
    #[error("TLS set-up: {0}")]
    Setup(#[source] TlsError),
    /// `--cert-dir` cannot be listed.
    #[error("`--cert-dir {dir}`: {source}")]
    CertDir {
        /// The directory given.
        dir: PathBuf,
        /// Why it cannot be listed.
        source: std::io::Error,
    },
    /// A certificate file cannot be read as PEM.
    #[error("`{file}`: not readable as PEM certificates: {source}")]
    Pem {
        /// The file.
        file: PathBuf,
        /// What the PEM reader found.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("`{file}`: no PEM certificate in it")]
    Empty {
        /// The file.
        file: PathBuf,
    },
    /// rustls refused a certificate of the file.
    #[error("`{file}`: {source}")]
    Certificate {
        /// The file.
        file: PathBuf,
        /// Why rustls refused it.
        source: TlsError,
    },
}

/// How a client secures its connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Check the registry's certificate: `Some(false)` is HTTPS without checks, and plain
    /// HTTP when the registry speaks nothing else; `None` checks it except for loopback
    /// registries, which are treated as `Some(false)` (as docker treats them).
    pub verify: Option<bool>,
    /// A directory whose `*.crt` files are trusted CAs for this registry.
    pub cert_dir: Option<PathBuf>,
    /// Speak plain HTTP without trying HTTPS first (a registry known to be plain).
    pub plain_http: bool,
}

/// The rustls configuration for `host`: trusting the roots above, or nothing checked when
/// `verify` is off. Fails naming a `cert_dir` that cannot be read or a certificate file
/// that does not parse.
pub(super) fn client_config(
    host: &str,
    options: &TlsOptions,
    verify: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Setup)?;
    let config = if verify {
        builder
            .with_root_certificates(roots(host, options.cert_dir.as_deref())?)
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The CAs trusted for `host`.
fn roots(host: &str, cert_dir: Option<&Path>) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut store = rustls::RootCertStore::empty();
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if std::env::var_os("SSL_CERT_FILE").is_none() {
        if let Some(file) = std::env::var_os("NIX_SSL_CERT_FILE") {
            add_file(&mut store, Path::new(&file))?;
        }
    }
    // Unreadable system stores are not an error: the web roots and certs.d remain.
    let native = rustls_native_certs::load_native_certs();
    store.add_parsable_certificates(native.certs);
    match cert_dir {
        Some(dir) => {
            let files = crt_files(dir).map_err(|source| TlsSetupError::CertDir {
                dir: dir.to_owned(),
                source,
            })?;
            for file in files {
                add_file(&mut store, &file)?;
            }
        }
        None => {
            for dir in default_cert_dirs(host) {
                for file in crt_files(&dir).unwrap_or_default() {
                    add_file(&mut store, &file)?;
                }
            }
        }
    }
    Ok(store)
}

/// The `certs.d` directories looked in for `host`'s CAs when no `--cert-dir` is given.
fn default_cert_dirs(host: &str) -> Vec<PathBuf> {
    let mut dirs = vec![
        Path::new("/etc/containers/certs.d").join(host),
        Path::new("/etc/docker/certs.d").join(host),
    ];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(
            PathBuf::from(home)
                .join(".config/containers/certs.d")
                .join(host),
        );
    }
    dirs
}

/// The `*.crt` files of `dir`, sorted.
fn crt_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .collect();
    files.sort();
    Ok(files)
}

/// Adds the PEM certificates of `file`; fails naming it when it holds none or cannot be read.
fn add_file(store: &mut rustls::RootCertStore, file: &Path) -> Result<(), TlsSetupError> {
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(file)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|source| TlsSetupError::Pem {
            file: file.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Empty {
            file: file.to_owned(),
        });
    }
    for cert in certs {
        store
            .add(cert)
            .map_err(|source| TlsSetupError::Certificate {
                file: file.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Accepts any certificate (`--tls-verify=false`), still checking the handshake's
/// signatures so the connection is at least encrypted to whoever answered.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS failure somewhere in `error`'s chain of causes, if it is one.
pub(super) fn tls_failure<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e TlsError> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<TlsError>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<TlsError>()) {
                return Some(tls);
            }
        }
        next = e.source();
    }
    None
}

/// What a TLS failure means for the user, and what to do.
pub(super) fn explain(error: &TlsError, host: &str) -> String {
    match error {
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "certificate signed by unknown authority (trust its CA: `--cert-dir DIR` holding it as ca.crt, /etc/containers/certs.d/{host}/ca.crt, SSL_CERT_FILE, or the system store; or `--tls-verify=false`)"
        ),
        TlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("the certificate is not valid for {host}"),
        TlsError::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the certificate has expired".to_owned(),
        TlsError::InvalidMessage(_) => {
            "the server speaks plain HTTP, not HTTPS (`--tls-verify=false` allows plain HTTP)"
                .to_owned()
        }
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cert_dir_that_cannot_be_read_is_named() {
        let options = TlsOptions {
            cert_dir: Some("/nonexistent/certs".into()),
            ..TlsOptions::default()
        };
        let err = client_config("r.example", &options, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`--cert-dir /nonexistent/certs`"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
        let options = TlsOptions {
            cert_dir: Some(dir.path().into()),
            ..TlsOptions::default()
        };
        let err = client_config("r.example", &options, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ca.crt`: no PEM certificate"), "{err}");
    }

    #[test]
    fn unknown_issuers_and_plain_http_are_told_apart() {
        let unknown = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(explain(&unknown, "r:5000").starts_with("certificate signed by unknown authority"));
        assert!(explain(&unknown, "r:5000").contains("certs.d/r:5000/ca.crt"));
        let plain = TlsError::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(explain(&plain, "r").contains("plain HTTP"));
    }
}
