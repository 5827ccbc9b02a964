//! Signing keys and signatures: ECDSA P-256 over SHA-256, as cosign signs and as
//! `cosign verify --key` and containers/image's `sigstoreSigned` policy check.
//!
//! A key is read from a PEM file: PKCS#8 (`PRIVATE KEY`, what `openssl genpkey` writes), SEC1
//! (`EC PRIVATE KEY`), or cosign's own encrypted form (`ENCRYPTED SIGSTORE PRIVATE KEY` or
//! `ENCRYPTED COSIGN PRIVATE KEY`: scrypt and NaCl secretbox over PKCS#8, the password from
//! `COSIGN_PASSWORD` as cosign reads it). Signatures are deterministic (RFC 6979), so the
//! same key and payload give the same bytes. A key never appears in a message or a debug
//! print: errors name the file and what is wrong with it, never its content.

use crate::file_error::FileError;
use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey as EcKey};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a signing key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// The file is not a key strata can use.
    #[error("the signing key `{path}` is not usable: {reason}")]
    Format {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the key's bytes).
        reason: String,
    },
    /// The key is encrypted and no password, or the wrong one, was given.
    #[error("the signing key `{path}` is encrypted and {reason}")]
    Password {
        /// The key file.
        path: PathBuf,
        /// `COSIGN_PASSWORD` is not set, or it does not open the key.
        reason: &'static str,
    },
}

/// An ECDSA P-256 private key.
pub struct SigningKey(EcKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(P-256, not shown)")
    }
}

/// cosign's encrypted key file, inside its PEM armour.
#[derive(Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct KdfParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

impl SigningKey {
    /// Reads the key at `path`; `password` opens cosign's encrypted keys.
    pub fn read(path: &Path, password: Option<&str>) -> Result<SigningKey, KeyError> {
        let text =
            std::fs::read_to_string(path).map_err(FileError::on("read the signing key", path))?;
        let format = |reason: &str| KeyError::Format {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let (label, der) = pem_block(&text).ok_or_else(|| format("no PEM block"))?;
        let key = match label.as_str() {
            "PRIVATE KEY" => {
                EcKey::from_pkcs8_der(&der).map_err(|_| format("not an ECDSA P-256 PKCS#8 key"))?
            }
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
                .map(EcKey::from)
                .map_err(|_| format("not an ECDSA P-256 SEC1 key"))?,
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                let password = password.ok_or_else(|| KeyError::Password {
                    path: path.to_owned(),
                    reason: "COSIGN_PASSWORD is not set",
                })?;
                let plain = decrypt(&der, password).map_err(|e| match e {
                    Decrypt::Format(reason) => format(reason),
                    Decrypt::Password => KeyError::Password {
                        path: path.to_owned(),
                        reason: "COSIGN_PASSWORD does not open it",
                    },
                })?;
                EcKey::from_pkcs8_der(&plain)
                    .map_err(|_| format("the decrypted key is not an ECDSA P-256 PKCS#8 key"))?
            }
            "PUBLIC KEY" => return Err(format("it is a public key; sign with the private key")),
            _ => {
                return Err(format(&format!(
                    "a PEM block of type `{label}`, not a private key"
                )))
            }
        };
        Ok(SigningKey(key))
    }

    /// The DER signature of `payload` (ECDSA P-256 with SHA-256), base64-encoded as cosign
    /// stores it.
    pub fn sign_base64(&self, payload: &[u8]) -> String {
        let signature: DerSignature = self.0.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(signature.as_bytes())
    }

    /// The public key, as a `PUBLIC KEY` PEM file (what `cosign verify --key` takes).
    pub fn public_pem(&self) -> String {
        self.0
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key encodes")
    }
}

enum Decrypt {
    Format(&'static str),
    Password,
}

/// Opens cosign's encrypted key: scrypt derives the secretbox key from the password.
fn decrypt(json: &[u8], password: &str) -> Result<Vec<u8>, Decrypt> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let e: Encrypted = serde_json::from_slice(json)
        .map_err(|_| Decrypt::Format("not cosign's encrypted key format"))?;
    if e.kdf.name != "scrypt" || e.cipher.name != "nacl/secretbox" {
        return Err(Decrypt::Format(
            "an encryption other than scrypt with nacl/secretbox",
        ));
    }
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| Decrypt::Format("a field that is not base64"))
    };
    let (salt, nonce, ciphertext) = (
        b64(&e.kdf.salt)?,
        b64(&e.cipher.nonce)?,
        b64(&e.ciphertext)?,
    );
    let log_n = match e.kdf.params.N {
        n if n.is_power_of_two() && n > 1 && n <= 1 << 22 => n.trailing_zeros() as u8,
        _ => return Err(Decrypt::Format("scrypt parameters out of range")),
    };
    let params = scrypt::Params::new(log_n, e.kdf.params.r, e.kdf.params.p, 32)
        .map_err(|_| Decrypt::Format("scrypt parameters out of range"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key)
        .map_err(|_| Decrypt::Format("scrypt parameters out of range"))?;
    if nonce.len() != 24 {
        return Err(Decrypt::Format("a nonce that is not 24 bytes"));
    }
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            ciphertext.as_slice(),
        )
        .map_err(|_| Decrypt::Password)
}

/// The label and bytes of the first PEM block of `text`.
fn pem_block(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let body: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::EncodePrivateKey;

    fn write_key(dir: &Path, key: &EcKey) -> PathBuf {
        let file = dir.join("key.pem");
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        std::fs::write(&file, pem.as_bytes()).unwrap();
        file
    }

    #[test]
    fn signatures_verify_and_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let ec = EcKey::from_slice(&[7u8; 32]).unwrap();
        let key = SigningKey::read(&write_key(dir.path(), &ec), None).unwrap();
        let sig = key.sign_base64(b"payload");
        assert_eq!(sig, key.sign_base64(b"payload"));
        let der = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        let sig = p256::ecdsa::DerSignature::try_from(der.as_slice()).unwrap();
        ec.verifying_key().verify(b"payload", &sig).unwrap();
        assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(format!("{key:?}"), "SigningKey(P-256, not shown)");
    }

    #[test]
    fn errors_name_the_file_never_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.pem");
        let secret = "-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----\n";
        std::fs::write(&file, secret).unwrap();
        let err = SigningKey::read(&file, None).unwrap_err().to_string();
        assert!(
            err.contains("bad.pem") && !err.contains("U0VDUkVU"),
            "{err}"
        );
        std::fs::write(&file, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\ne30=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n").unwrap();
        let err = SigningKey::read(&file, None).unwrap_err().to_string();
        assert!(err.contains("COSIGN_PASSWORD is not set"), "{err}");
        let err = SigningKey::read(&dir.path().join("missing.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
