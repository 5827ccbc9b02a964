//! Documents attached to a pushed image as OCI 1.1 referrers (its SBOMs and provenance): each
//! an artifact manifest whose `subject` is the image's manifest, whose one layer is the
//! document and whose config is the empty descriptor.
//!
//! A registry with the referrers API lists them itself: it answers the manifest's PUT with
//! `OCI-Subject`. For one without (the distribution registry 2.8) they are listed in the
//! referrers tag schema's index, the tag `sha256-<hex of the subject's digest>`, merged with
//! what that index already lists. The order is blobs, artifact manifests, then the index: a
//! push cut short anywhere is completed by pushing again, which sends the same bytes.

use crate::digest::{Blob, Digest};
use crate::registry::client::{Client, RegistryError};
use serde_json::{json, Value};

/// Media type of the artifact manifests (OCI image manifests with an `artifactType`).
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an image index (the referrers list).
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The empty descriptor's media type: an artifact's config when it has none.
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A document to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its media type, which is also the artifact's type (`application/spdx+json`).
    pub media_type: String,
    /// Its file name (the layer's `org.opencontainers.image.title`).
    pub title: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// How the registry lists referrers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The OCI 1.1 referrers API.
    Api,
    /// The referrers tag schema (`sha256-<hex>` holds an index of them).
    TagSchema,
}

/// The manifest a document is attached with, its bytes and digest.
pub fn artifact_manifest(subject: &Blob, subject_media: &str, doc: &Document) -> (Vec<u8>, Blob) {
    let layer = Blob {
        digest: Digest::of(&doc.bytes),
        size: doc.bytes.len() as u64,
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": doc.media_type,
        "config": {"mediaType": EMPTY, "digest": Digest::of(b"{}").to_string(), "size": 2, "data": "e30="},
        "layers": [{
            "mediaType": doc.media_type,
            "digest": layer.digest.to_string(),
            "size": layer.size,
            "annotations": {"org.opencontainers.image.title": doc.title},
        }],
        "subject": {"mediaType": subject_media, "digest": subject.digest.to_string(), "size": subject.size},
    });
    let bytes = serde_json::to_vec(&manifest).expect("JSON values serialise");
    let blob = Blob {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
    };
    (bytes, blob)
}

/// Attaches `docs` to the manifest `subject` (of media type `subject_media`) in `client`'s
/// repository; returns how the registry lists them.
pub fn attach(
    client: &mut Client,
    subject: &Blob,
    subject_media: &str,
    docs: &[Document],
) -> Result<Listing, RegistryError> {
    client.ensure_blob(b"{}")?;
    let mut listed_by_api = true;
    let mut descriptors = Vec::with_capacity(docs.len());
    for doc in docs {
        client.ensure_blob(&doc.bytes)?;
        let (bytes, blob) = artifact_manifest(subject, subject_media, doc);
        let (_, noted) =
            client.put_manifest_noting_subject(&blob.digest.to_string(), MANIFEST, &bytes)?;
        listed_by_api &= noted;
        descriptors.push(json!({
            "mediaType": MANIFEST,
            "digest": blob.digest.to_string(),
            "size": blob.size,
            "artifactType": doc.media_type,
        }));
    }
    if listed_by_api {
        return Ok(Listing::Api);
    }
    let tag = fallback_tag(&subject.digest);
    let mut listed: Vec<Value> = match client.get_manifest(&tag)? {
        Some((_, bytes)) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["manifests"].as_array().cloned())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let before = listed.clone();
    for d in descriptors {
        if !listed.iter().any(|l| l["digest"] == d["digest"]) {
            listed.push(d);
        }
    }
    if listed != before || before.is_empty() {
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": listed});
        let bytes = serde_json::to_vec(&index).expect("JSON values serialise");
        client.put_manifest(&tag, INDEX, &bytes)?;
    }
    Ok(Listing::TagSchema)
}

/// The descriptors of the referrers of `subject`: from the referrers API, else from the tag
/// schema's index (none when neither lists any). `artifact_type` keeps only those of that
/// type.
pub fn referrers(
    client: &mut Client,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<Value>, RegistryError> {
    let index = match client.get_referrers(subject)? {
        Some(bytes) => Some(bytes),
        None => client.get_manifest(&fallback_tag(subject))?.map(|(_, b)| b),
    };
    let listed = index
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["manifests"].as_array().cloned())
        .unwrap_or_default();
    Ok(listed
        .into_iter()
        .filter(|d| artifact_type.map_or(true, |t| d["artifactType"] == t))
        .collect())
}

/// The document an artifact manifest (by digest) carries: its first layer's bytes, checked
/// against the layer's digest.
pub fn document_of(client: &mut Client, manifest: &Digest) -> Result<Vec<u8>, RegistryError> {
    let bytes = client
        .get_manifest(&manifest.to_string())?
        .map(|(_, b)| b)
        .unwrap_or_default();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let layer = value["layers"][0]["digest"]
        .as_str()
        .and_then(Digest::parse)
        .ok_or_else(|| RegistryError::Malformed {
            what: format!("artifact manifest {manifest}"),
            message: "no layer".into(),
        })?;
    let data = client.get_blob(&layer)?;
    if Digest::of(&data) != layer {
        return Err(RegistryError::Malformed {
            what: format!("blob {layer}"),
            message: format!("its bytes hash to {}", Digest::of(&data)),
        });
    }
    Ok(data)
}

/// The referrers tag schema's tag for `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_manifests_name_their_subject_and_type() {
        let subject = Blob {
            digest: Digest::of(b"manifest"),
            size: 8,
        };
        let doc = Document {
            media_type: "application/spdx+json".into(),
            title: "spdx.json".into(),
            bytes: b"{}".to_vec(),
        };
        let (bytes, blob) = artifact_manifest(&subject, MANIFEST, &doc);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["artifactType"], "application/spdx+json");
        assert_eq!(v["subject"]["digest"], subject.digest.to_string());
        assert_eq!(
            v["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(blob.digest, Digest::of(&bytes));
        assert_eq!(artifact_manifest(&subject, MANIFEST, &doc).0, bytes);
        assert_eq!(
            fallback_tag(&subject.digest),
            format!("sha256-{}", subject.digest.hex())
        );
    }
}
