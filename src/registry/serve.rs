//! A registry of one image, served from its plan on a loopback port for as long as an engine
//! pulls it.
//!
//! `docker load` and `podman load` read and hash every layer of the archive they are given,
//! even layers they hold already. Pulling is different: an engine asks for the manifest,
//! then fetches only the blobs it lacks. So [`ImageServer`] answers the distribution API's
//! read side for one image: the manifest (OCI, layers uncompressed, each named by its
//! `diff_id`, which an engine that ever held the layer knows), the config, and each layer,
//! tarred from the store as it is sent and checked against its record. Nothing is
//! compressed and nothing is written to disk; only 127.0.0.1 is listened on.

use crate::compress::Compression;
use crate::digest::{Blob, Digest, HashingWriter};
use crate::image::archive::image_config;
use crate::image::oci_layout::{self, MANIFEST_MEDIA_TYPE};
use crate::plan::{ImagePlan, PlannedLayer};
use crate::progress::Progress;
use crate::tar::layer::{write_layer_to, LayerError};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The most bytes of a request's head: engines send a few hundred.
const MAX_HEAD: usize = 16 * 1024;

/// How long a connection may wait for its next request.
const IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a connection ended before its client closed it: the engine sees the connection cut
/// and retries or says why, so these are not reported beyond [`ServeReport::mismatch`].
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    /// Reading a request or writing an answer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A layer could not be tarred.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A layer's bytes are not those of its record.
    #[error("layer does not match its record")]
    Mismatch,
}

/// What the server holds: the manifest, the config, and the layers by `diff_id`.
#[derive(Debug)]
struct Served {
    manifest: Vec<u8>,
    config: (Digest, Vec<u8>),
    layers: HashMap<Digest, PlannedLayer>,
}

/// What a serving reports when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServeReport {
    /// Layers sent (an engine lacked them).
    pub layers_sent: usize,
    /// Their bytes.
    pub bytes_sent: u64,
    /// The first layer whose bytes did not match its record, if any.
    pub mismatch: Option<String>,
}

/// An image served on `127.0.0.1:<port>` until dropped or [`ImageServer::stop`]ped.
#[derive(Debug)]
pub struct ImageServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    report: Arc<Mutex<ServeReport>>,
    handle: Option<JoinHandle<()>>,
}

impl ImageServer {
    /// Starts serving `plan` (its creation time resolved to `created`) on a free loopback
    /// port; `progress` counts the layer bytes sent.
    pub fn start(
        plan: &ImagePlan,
        created: &str,
        progress: Arc<Progress>,
    ) -> io::Result<ImageServer> {
        let diff_ids = plan.plain_blobs();
        let config = image_config(plan, created, &diff_ids);
        let config_blob = Blob {
            digest: Digest::of(&config),
            size: config.len() as u64,
        };
        let manifest = oci_layout::manifest(&config_blob, &diff_ids, Compression::None);
        let served = Arc::new(Served {
            manifest,
            config: (config_blob.digest, config),
            layers: plan
                .layers
                .iter()
                .map(|l| (l.record.diff_id, l.clone()))
                .collect(),
        });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(ServeReport::default()));
        let (stop, rep) = (Arc::clone(&stopping), Arc::clone(&report));
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                // An engine that keeps an idle connection open does not keep its thread.
                let _ = stream.set_read_timeout(Some(IDLE));
                let (served, rep, progress) =
                    (Arc::clone(&served), Arc::clone(&rep), Arc::clone(&progress));
                std::thread::spawn(move || {
                    // A connection that fails only ends itself: the engine retries or says why.
                    let _ = serve_connection(stream, &served, &rep, &progress);
                });
            }
        });
        Ok(ImageServer {
            addr,
            stopping,
            report,
            handle: Some(handle),
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Stops listening and returns what was sent.
    pub fn stop(mut self) -> ServeReport {
        self.shut();
        let report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        report.clone()
    }

    fn shut(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        self.shut();
    }
}

/// Answers the requests of one connection until it closes.
fn serve_connection(
    stream: TcpStream,
    served: &Served,
    report: &Mutex<ServeReport>,
    progress: &Progress,
) -> Result<(), ConnectionError> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = io::BufWriter::with_capacity(256 * 1024, stream);
    loop {
        let Some((method, path)) = read_head(&mut reader)? else {
            return Ok(());
        };
        let head = method == "HEAD";
        if method != "GET" && !head {
            respond(
                &mut out,
                405,
                "text/plain",
                b"read-only registry",
                head,
                &[],
            )?;
            continue;
        }
        let route = route(&path);
        match route {
            Route::Base => respond(&mut out, 200, "application/json", b"{}", head, &[])?,
            Route::Manifest => {
                let digest = Digest::of(&served.manifest).to_string();
                respond(
                    &mut out,
                    200,
                    MANIFEST_MEDIA_TYPE,
                    &served.manifest,
                    head,
                    &[("Docker-Content-Digest", &digest)],
                )?
            }
            Route::Blob(d) if d == served.config.0 => {
                let digest = d.to_string();
                let headers = [("Docker-Content-Digest", digest.as_str())];
                let body = &served.config.1;
                respond(
                    &mut out,
                    200,
                    "application/octet-stream",
                    body,
                    head,
                    &headers,
                )?
            }
            Route::Blob(d) => match served.layers.get(&d) {
                Some(layer) => send_layer(&mut out, layer, head, report, progress)?,
                None => respond(&mut out, 404, "application/json", NOT_FOUND, head, &[])?,
            },
            Route::Other => respond(&mut out, 404, "application/json", NOT_FOUND, head, &[])?,
        }
        out.flush()?;
    }
}

/// The distribution API's error body for an unknown blob or manifest.
const NOT_FOUND: &[u8] = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"not in this image"}]}"#;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `/v2/`: the API check.
    Base,
    /// `/v2/<name>/manifests/<reference>`: there is one image, whatever the name.
    Manifest,
    /// `/v2/<name>/blobs/<digest>`.
    Blob(Digest),
    /// Anything else.
    Other,
}

fn route(path: &str) -> Route {
    let path = path.split('?').next().unwrap_or_default();
    if path == "/v2/" || path == "/v2" {
        return Route::Base;
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Route::Other;
    };
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        return Digest::parse(digest).map_or(Route::Other, Route::Blob);
    }
    if rest.rsplit_once("/manifests/").is_some() {
        return Route::Manifest;
    }
    Route::Other
}

/// The method and path of the next request on `reader`, its headers read past; `None` at
/// the end of the connection.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<(String, String)>> {
    let mut request_line = String::new();
    let mut read = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        read += n;
        if n == 0 {
            return Ok(None);
        }
        if read > MAX_HEAD {
            return Err(io::Error::other("request head too long"));
        }
        if request_line.is_empty() {
            if line.trim().is_empty() {
                continue;
            }
            request_line = line;
        } else if line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(method), Some(path)) => Ok(Some((method.to_owned(), path.to_owned()))),
        _ => Err(io::Error::other("malformed request line")),
    }
}

/// Writes a response of `body` (its headers alone for HEAD).
fn respond(
    out: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    head: bool,
    headers: &[(&str, &str)],
) -> io::Result<()> {
    write_status(out, status, content_type, body.len() as u64, headers)?;
    if !head {
        out.write_all(body)?;
    }
    Ok(())
}

fn write_status(
    out: &mut impl Write,
    status: u16,
    content_type: &str,
    length: u64,
    headers: &[(&str, &str)],
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nDocker-Distribution-API-Version: registry/2.0\r\n"
    )?;
    for (name, value) in headers {
        write!(out, "{name}: {value}\r\n")?;
    }
    out.write_all(b"\r\n")
}

/// Sends a layer: its tar, made from the store as it goes, checked against its record. A
/// mismatch cuts the connection (the engine then refuses the blob) and is reported.
fn send_layer(
    out: &mut impl Write,
    layer: &PlannedLayer,
    head: bool,
    report: &Mutex<ServeReport>,
    progress: &Progress,
) -> Result<(), ConnectionError> {
    let digest = layer.record.diff_id.to_string();
    let headers = [("Docker-Content-Digest", digest.as_str())];
    write_status(
        out,
        200,
        "application/octet-stream",
        layer.record.size,
        &headers,
    )?;
    if head {
        return Ok(());
    }
    let counted = Counted {
        inner: out,
        progress,
    };
    let written = write_layer_to(
        &layer.content.source(),
        &layer.content.stamp(),
        HashingWriter::new(counted),
    )?;
    let (_, blob) = written.finish();
    let mut report = report.lock().unwrap_or_else(|e| e.into_inner());
    report.layers_sent += 1;
    report.bytes_sent += blob.size;
    if blob.digest != layer.record.diff_id || blob.size != layer.record.size {
        let what = format!(
            "{} (now {}, {} bytes)",
            layer.content.describe_short(),
            blob.digest,
            blob.size
        );
        report.mismatch.get_or_insert(what);
        return Err(ConnectionError::Mismatch);
    }
    progress.layer_done();
    Ok(())
}

/// Counts what passes into the progress.
struct Counted<'a, W: Write> {
    inner: W,
    progress: &'a Progress,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let d = Digest([7; 32]);
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(route("/v2/a/b/manifests/latest"), Route::Manifest);
        assert_eq!(route(&format!("/v2/a/blobs/{d}")), Route::Blob(d));
        assert_eq!(route("/v2/a/blobs/sha256:1"), Route::Other);
        assert_eq!(route("/other"), Route::Other);
    }

    #[test]
    fn request_heads_are_read_and_bounded() {
        let mut two =
            &b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\nHEAD /v2/a/manifests/1 HTTP/1.1\r\n\r\n"[..];
        assert_eq!(
            read_head(&mut two).unwrap(),
            Some(("GET".into(), "/v2/".into()))
        );
        assert_eq!(
            read_head(&mut two).unwrap(),
            Some(("HEAD".into(), "/v2/a/manifests/1".into()))
        );
        assert_eq!(read_head(&mut two).unwrap(), None);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(read_head(&mut long.as_bytes()).is_err());
    }
}
