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
    use crate::registry::client::{Connection, TlsOptions};
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// What a fake registry stores: blobs and manifests by digest or tag.
    #[derive(Default)]
    struct Store {
        blobs: HashMap<String, Vec<u8>>,
        manifests: HashMap<String, Vec<u8>>,
    }

    /// An in-process registry of one repository, `app`, with (or without) the OCI 1.1
    /// referrers API: it answers a manifest PUT with a `subject` with `OCI-Subject` and lists
    /// referrers at `/v2/app/referrers/DIGEST`.
    fn fake_registry(with_api: bool) -> (String, Arc<Mutex<Store>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let store: Arc<Mutex<Store>> = Arc::default();
        let shared = Arc::clone(&store);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let store = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &store, with_api));
            }
        });
        (host, store)
    }

    fn serve(mut stream: std::net::TcpStream, store: &Mutex<Store>, with_api: bool) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let (method, target) = (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            );
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let digest_param = query
                .split('&')
                .find_map(|q| q.strip_prefix("digest="))
                .unwrap_or("")
                .replace("%3A", ":");
            let mut s = store.lock().unwrap();
            let (status, headers, answer): (u16, String, Vec<u8>) = match (method.as_str(), path) {
                ("GET", "/v2/") => (200, String::new(), b"{}".to_vec()),
                ("HEAD", p) if p.starts_with("/v2/app/blobs/") => {
                    let d = &p["/v2/app/blobs/".len()..];
                    (
                        if s.blobs.contains_key(d) { 200 } else { 404 },
                        String::new(),
                        vec![],
                    )
                }
                ("GET", p) if p.starts_with("/v2/app/blobs/") => {
                    let d = &p["/v2/app/blobs/".len()..];
                    match s.blobs.get(d) {
                        Some(b) => (200, String::new(), b.clone()),
                        None => (404, String::new(), vec![]),
                    }
                }
                ("POST", "/v2/app/blobs/uploads/") => {
                    (202, "Location: /v2/app/blobs/uploads/1\r\n".into(), vec![])
                }
                ("PUT", "/v2/app/blobs/uploads/1") => {
                    s.blobs.insert(digest_param.clone(), body);
                    (201, String::new(), vec![])
                }
                ("PUT", p) if p.starts_with("/v2/app/manifests/") => {
                    let reference = p["/v2/app/manifests/".len()..].to_owned();
                    let has_subject = serde_json::from_slice::<Value>(&body)
                        .is_ok_and(|v| v["subject"].is_object());
                    s.manifests.insert(reference, body.clone());
                    s.manifests.insert(Digest::of(&body).to_string(), body);
                    let extra = if with_api && has_subject {
                        "OCI-Subject: yes\r\n"
                    } else {
                        ""
                    };
                    (201, extra.into(), vec![])
                }
                ("GET", p) if p.starts_with("/v2/app/manifests/") => {
                    match s.manifests.get(&p["/v2/app/manifests/".len()..]) {
                        Some(m) => (
                            200,
                            "Content-Type: application/vnd.oci.image.index.v1+json\r\n".into(),
                            m.clone(),
                        ),
                        None => (404, String::new(), vec![]),
                    }
                }
                ("GET", p) if with_api && p.starts_with("/v2/app/referrers/") => {
                    let subject = &p["/v2/app/referrers/".len()..];
                    let mut listed: Vec<Value> = s
                        .manifests
                        .iter()
                        .filter(|(k, _)| k.starts_with("sha256:"))
                        .filter_map(|(k, m)| {
                            let v: Value = serde_json::from_slice(m).ok()?;
                            (v["subject"]["digest"] == subject).then(|| {
                                json!({
                                    "mediaType": MANIFEST, "digest": k, "size": m.len(),
                                    "artifactType": v["artifactType"],
                                })
                            })
                        })
                        .collect();
                    listed.sort_by_key(|d| d["digest"].as_str().unwrap_or("").to_owned());
                    (
                        200,
                        String::new(),
                        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": listed}))
                            .unwrap(),
                    )
                }
                _ => (404, String::new(), vec![]),
            };
            drop(s);
            let head = format!(
                "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\n\r\n",
                answer.len()
            );
            if stream.write_all(head.as_bytes()).is_err()
                || (method != "HEAD" && stream.write_all(&answer).is_err())
            {
                return;
            }
        }
    }

    fn client(host: &str) -> Client {
        let reference =
            crate::registry::reference::Reference::parse(&format!("{host}/app")).unwrap();
        let connection = Connection::new(TlsOptions {
            plain_http: true,
            ..TlsOptions::default()
        });
        Client::new(&reference, &connection).unwrap()
    }

    fn documents() -> Vec<Document> {
        ["application/spdx+json", "application/vnd.cyclonedx+json"]
            .iter()
            .map(|t| Document {
                media_type: (*t).into(),
                title: format!("{t}.json"),
                bytes: format!("{{\"{t}\":1}}").into_bytes(),
            })
            .collect()
    }

    #[test]
    fn a_registry_with_the_referrers_api_lists_them_itself() {
        let (host, store) = fake_registry(true);
        let mut c = client(&host);
        let subject = Blob {
            digest: Digest::of(b"image manifest"),
            size: 14,
        };
        assert_eq!(
            attach(&mut c, &subject, MANIFEST, &documents()).unwrap(),
            Listing::Api
        );
        assert!(
            !store
                .lock()
                .unwrap()
                .manifests
                .contains_key(&fallback_tag(&subject.digest)),
            "no tag schema index"
        );
        let listed = referrers(&mut c, &subject.digest, Some("application/spdx+json")).unwrap();
        assert_eq!(listed.len(), 1);
        let digest = Digest::parse(listed[0]["digest"].as_str().unwrap()).unwrap();
        assert_eq!(document_of(&mut c, &digest).unwrap(), documents()[0].bytes);
    }

    #[test]
    fn without_the_api_the_tag_schema_index_is_merged_and_kept() {
        let (host, store) = fake_registry(false);
        let mut c = client(&host);
        let subject = Blob {
            digest: Digest::of(b"image manifest"),
            size: 14,
        };
        let docs = documents();
        assert_eq!(
            attach(&mut c, &subject, MANIFEST, &docs[..1]).unwrap(),
            Listing::TagSchema
        );
        assert_eq!(
            attach(&mut c, &subject, MANIFEST, &docs).unwrap(),
            Listing::TagSchema
        );
        assert_eq!(
            attach(&mut c, &subject, MANIFEST, &docs).unwrap(),
            Listing::TagSchema
        );
        let index: Value = serde_json::from_slice(
            &store.lock().unwrap().manifests[&fallback_tag(&subject.digest)],
        )
        .unwrap();
        assert_eq!(
            index["manifests"].as_array().unwrap().len(),
            2,
            "each document once: {index}"
        );
        assert_eq!(referrers(&mut c, &subject.digest, None).unwrap().len(), 2);
    }

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
