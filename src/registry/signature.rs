//! A pushed manifest's signature in sigstore's (cosign's) format, with a local key and no
//! transparency log: the "simple signing" payload naming the repository and the manifest's
//! digest, signed ([`crate::signing`]), stored as a one-layer image manifest under the tag
//! `sha256-<hex>.sig` beside the image. There `cosign verify --key` and containers/image
//! (podman, skopeo, buildah with `use-sigstore-attachments` and a `sigstoreSigned` policy)
//! look for it. Signatures already under that tag are kept (a manifest may have several);
//! signing again with the same key adds nothing.

use crate::digest::{Blob, Digest};
use crate::registry::client::{Client, RegistryError};
use crate::signing::SigningKey;
use serde_json::{json, Value};

/// Media type of the payload layer.
const PAYLOAD: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The payload cosign signs for the manifest `digest` pushed to `repository`
/// (`HOST[:PORT]/NAME`), in cosign's field order.
pub fn payload(repository: &str, digest: &Digest) -> Vec<u8> {
    let v = json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    serde_json::to_vec(&v).expect("JSON values serialise")
}

/// The tag a manifest's signatures are stored under.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// Signs the manifest `digest` of `client`'s repository (named `repository` in the payload)
/// with `key` and stores the signature; returns the signature manifest's digest.
pub fn sign(
    client: &mut Client,
    repository: &str,
    digest: &Digest,
    key: &SigningKey,
) -> Result<Digest, RegistryError> {
    let payload = payload(repository, digest);
    let signature = key.sign_base64(&payload);
    let payload_blob = client.ensure_blob(&payload)?;
    let tag = signature_tag(digest);
    let mut layers: Vec<Value> = match client.get_manifest(&tag)? {
        Some((_, bytes)) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["layers"].as_array().cloned())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let ours = json!({
        "mediaType": PAYLOAD,
        "size": payload_blob.size,
        "digest": payload_blob.digest.to_string(),
        "annotations": {SIGNATURE: signature},
    });
    if !layers.iter().any(|l| {
        l["digest"] == ours["digest"]
            && l["annotations"][SIGNATURE] == ours["annotations"][SIGNATURE]
    }) {
        layers.push(ours);
    }
    let config = config_of(&layers);
    let config_blob = client.ensure_blob(&config)?;
    let manifest = manifest_of(&config_blob, &layers);
    client.put_manifest(&tag, MANIFEST, &manifest)
}

/// The config cosign writes beside its signature layers: empty but for their digests.
fn config_of(layers: &[Value]) -> Vec<u8> {
    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let v = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    });
    serde_json::to_vec(&v).expect("JSON values serialise")
}

fn manifest_of(config: &Blob, layers: &[Value]) -> Vec<u8> {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "size": config.size, "digest": config.digest.to_string()},
        "layers": layers,
    });
    serde_json::to_vec(&v).expect("JSON values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_cosigns() {
        let d = Digest::of(b"m");
        let text = String::from_utf8(payload("127.0.0.1:5000/app", &d)).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", d.hex()));
    }
}
