//! Pulls against an in-process fake registry, for the faults a real one does not make:
//! wrong bytes, server errors, stalls.

use super::*;
use crate::registry::client::{Connection, TlsOptions};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One canned answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    media: String,
    body: Vec<u8>,
    delay: Duration,
}

impl Reply {
    fn ok(media: &str, body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            media: media.to_owned(),
            body,
            delay: Duration::ZERO,
        }
    }
}

/// A registry answering GETs of `/v2/app/...` from a table; anything else is a 404. With
/// a token set, `/v2/` requests without it get a bearer challenge naming `/token`, which
/// hands the token out anonymously (as Docker Hub does for public images).
struct FakeRegistry {
    host: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    token: Arc<Mutex<Option<String>>>,
}

impl FakeRegistry {
    fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let token: Arc<Mutex<Option<String>>> = Arc::default();
        let table = Arc::clone(&routes);
        let wanted = Arc::clone(&token);
        let realm = format!("http://{host}/token");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let table = Arc::clone(&table);
                let wanted = Arc::clone(&wanted);
                let realm = realm.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let mut header = String::new();
                    let mut authorization = String::new();
                    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("authorization") {
                                authorization = value.trim().to_owned();
                            }
                        }
                        header.clear();
                    }
                    let token = wanted.lock().unwrap().clone();
                    let mut extra = String::new();
                    let reply = match &token {
                        Some(t) if path.starts_with("/token?") => Some(Reply::ok(
                            "application/json",
                            format!(r#"{{"token":"{t}"}}"#).into_bytes(),
                        )),
                        Some(t) if authorization != format!("Bearer {t}") => {
                            extra = format!(
                                "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:app:pull\"\r\n"
                            );
                            Some(Reply {
                                status: 401,
                                media: "application/json".into(),
                                body: b"{}".to_vec(),
                                delay: Duration::ZERO,
                            })
                        }
                        _ => table.lock().unwrap().get(path).cloned(),
                    };
                    let reply = reply.unwrap_or(Reply {
                        status: 404,
                        media: "text/plain".into(),
                        body: b"not here".to_vec(),
                        delay: Duration::ZERO,
                    });
                    std::thread::sleep(reply.delay);
                    let head = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                        reply.status,
                        reply.media,
                        reply.body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    if method != "HEAD" {
                        let _ = stream.write_all(&reply.body);
                    }
                });
            }
        });
        FakeRegistry {
            host,
            routes,
            token,
        }
    }

    fn put(&self, path: &str, reply: Reply) {
        self.routes
            .lock()
            .unwrap()
            .insert(format!("/v2/app/{path}"), reply);
    }

    fn blob(&self, bytes: &[u8]) -> Blob {
        let blob = Blob {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
        };
        self.put(
            &format!("blobs/{}", blob.digest),
            Reply::ok("application/octet-stream", bytes.to_vec()),
        );
        blob
    }

    fn client(&self, read_timeout: Duration) -> Client {
        let reference =
            crate::registry::reference::Reference::parse(&format!("{}/app", self.host)).unwrap();
        let mut connection = Connection::new(TlsOptions {
            plain_http: true,
            ..TlsOptions::default()
        });
        connection.connect = Duration::from_secs(2);
        connection.read = read_timeout;
        connection.attempts = 2;
        connection.backoff = Duration::from_millis(50);
        Client::new(&reference, &connection).unwrap()
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Serves an image for `arch` (two layers) and returns its manifest's digest and its
/// layers' bytes.
fn serve_image(reg: &FakeRegistry, arch: &str) -> (Blob, Vec<Vec<u8>>) {
    let layers: Vec<Vec<u8>> = vec![
        format!("layer one of {arch}").repeat(1000).into_bytes(),
        format!("layer two of {arch}").into_bytes(),
    ];
    let blobs: Vec<Blob> = layers.iter().map(|l| reg.blob(l)).collect();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:00", "sha256:01"]},
    });
    let config = reg.blob(&serde_json::to_vec(&config).unwrap());
    let manifest = oci_layout::manifest(&config, &blobs, crate::compress::Compression::Gzip);
    let blob = Blob {
        digest: Digest::of(&manifest),
        size: manifest.len() as u64,
    };
    reg.put(
        &format!("manifests/{}", blob.digest),
        Reply::ok(OCI_MANIFEST, manifest),
    );
    (blob, layers)
}

/// Serves an index of an amd64 and an arm64 image under tag `multi`.
fn serve_index(reg: &FakeRegistry) -> (Digest, Vec<Vec<u8>>) {
    let (amd, _) = serve_image(reg, "amd64");
    let (arm, arm_layers) = serve_image(reg, "arm64");
    let entry = |blob, arch: &str| IndexEntry {
        blob,
        media_type: MediaType::ImageManifest,
        platform: Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        }),
        repo_tag: String::new(),
    };
    let index = oci_layout::index(&[entry(amd, "amd64"), entry(arm, "arm64")]);
    let digest = Digest::of(&index);
    reg.put("manifests/multi", Reply::ok(OCI_INDEX, index.clone()));
    reg.put(&format!("manifests/{digest}"), Reply::ok(OCI_INDEX, index));
    (digest, arm_layers)
}

fn linux(arch: &str) -> Wanted {
    Wanted {
        os: "linux".into(),
        architecture: arch.into(),
        variant: None,
    }
}

fn pull_to_vec(reg: &FakeRegistry, reference: &str, arch: &str) -> Result<Vec<u8>, PullError> {
    let mut out = Vec::new();
    let mut client = reg.client(Duration::from_secs(5));
    pull(
        &mut client,
        reference,
        &linux(arch),
        "example/app:v1",
        &mut out,
        &|_, _| Progress::quiet(),
    )?;
    Ok(out)
}

fn members(archive: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    for entry in tar::Archive::new(archive).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

#[test]
fn an_index_resolves_to_the_platform_and_the_archive_holds_its_blobs() {
    let reg = FakeRegistry::start();
    let (index, arm_layers) = serve_index(&reg);
    let by_tag = pull_to_vec(&reg, "multi", "arm64").unwrap();
    let by_digest = pull_to_vec(&reg, &index.to_string(), "arm64").unwrap();
    assert_eq!(by_tag, by_digest, "the archive depends on the image only");
    let m = members(&by_tag);
    let manifest: Value = serde_json::from_slice(&m["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "example/app:v1");
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (name, bytes) in layers.iter().zip(&arm_layers) {
        assert_eq!(&m[name.as_str().unwrap()], bytes);
    }
    let index: Value = serde_json::from_slice(&m["index.json"]).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["platform"]["architecture"], "arm64");
    assert_eq!(entry["mediaType"], OCI_MANIFEST);
    let digest = entry["digest"].as_str().unwrap();
    assert!(m.contains_key(&format!("blobs/sha256/{}", &digest[7..])));
    assert!(m.contains_key("oci-layout"));
}

#[test]
fn a_bearer_challenge_is_answered_with_an_anonymous_token() {
    let reg = FakeRegistry::start();
    let (index, arm_layers) = serve_index(&reg);
    *reg.token.lock().unwrap() = Some("t0ken".into());
    let archive = pull_to_vec(&reg, &index.to_string(), "arm64").unwrap();
    let m = members(&archive);
    assert!(m.values().any(|b| *b == arm_layers[0]));
}

#[test]
fn a_missing_platform_lists_those_there_are() {
    let reg = FakeRegistry::start();
    serve_index(&reg);
    let err = pull_to_vec(&reg, "multi", "s390x").unwrap_err().to_string();
    assert!(err.contains("no image for linux/s390x"), "{err}");
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
}

#[test]
fn a_blob_with_other_bytes_is_refused_naming_it() {
    let reg = FakeRegistry::start();
    let (manifest, layers) = serve_image(&reg, "amd64");
    let layer = Digest::of(&layers[0]);
    let mut wrong = layers[0].clone();
    wrong[5] ^= 1;
    reg.put(
        &format!("blobs/{layer}"),
        Reply::ok("application/octet-stream", wrong),
    );
    let err = pull_to_vec(&reg, &manifest.digest.to_string(), "amd64")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("layer 1 {layer}: the registry sent")),
        "{err}"
    );
}

#[test]
fn a_manifest_that_is_not_the_digest_asked_for_is_refused() {
    let reg = FakeRegistry::start();
    let (manifest, _) = serve_image(&reg, "amd64");
    let (other, _) = serve_image(&reg, "arm64");
    let other_bytes = reg.routes.lock().unwrap()[&format!("/v2/app/manifests/{}", other.digest)]
        .body
        .clone();
    reg.put(
        &format!("manifests/{}", manifest.digest),
        Reply::ok(OCI_MANIFEST, other_bytes),
    );
    let err = pull_to_vec(&reg, &manifest.digest.to_string(), "amd64")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "the registry sent bytes whose digest is {}",
            other.digest
        )),
        "{err}"
    );
}

#[test]
fn server_errors_and_stalls_end_with_an_error() {
    let reg = FakeRegistry::start();
    let (manifest, layers) = serve_image(&reg, "amd64");
    let layer = Digest::of(&layers[1]);
    reg.put(
        &format!("blobs/{layer}"),
        Reply {
            status: 500,
            media: "text/plain".into(),
            body: b"disk on fire\n".to_vec(),
            delay: Duration::ZERO,
        },
    );
    let err = pull_to_vec(&reg, &manifest.digest.to_string(), "amd64")
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 500: disk on fire"), "{err}");

    reg.put(
        &format!("blobs/{layer}"),
        Reply {
            delay: Duration::from_secs(4),
            ..Reply::ok("application/octet-stream", layers[1].clone())
        },
    );
    let mut client = reg.client(Duration::from_millis(700));
    let started = Instant::now();
    let err = pull(
        &mut client,
        &manifest.digest.to_string(),
        &linux("amd64"),
        "",
        &mut Vec::new(),
        &|_, _| Progress::quiet(),
    )
    .unwrap_err()
    .to_string();
    // Not a speed target: the blob answers after 4 s, so failing before then is what shows
    // the 700 ms read timeout cut the wait short.
    assert!(started.elapsed() < Duration::from_secs(4), "{err}");
    assert!(err.contains("timed out or cut off"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
