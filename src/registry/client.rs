//! A small client for the OCI distribution API (registries): blob existence, cross-repository
//! mounts, monolithic uploads streamed from a reader, manifests. Requests go through
//! [`super::transport`] and answer the registry's authentication challenge through
//! [`super::auth`]; every request has connect and read timeouts, so a registry that is down or
//! stalls gives an error, not a hang.

use super::auth::{Auth, Refusal};
use super::reference::Reference;
pub use super::tls::TlsOptions;
pub use super::transport::Connection;
use super::transport::{self, transport_message, Answer, BadProxy, Body, Sent};
pub use super::RegistryError;
use crate::digest::{Blob, Digest, Hasher};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

/// Bytes per `PATCH` of a chunked upload: above the 5 MiB some registries require of every
/// chunk but the last, and the memory an upload holds.
pub const UPLOAD_CHUNK: usize = 8 << 20;

/// Reads into `buf` until it is full or the input ends; the bytes read.
fn read_full(body: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Media types a manifest GET accepts.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A connection to one repository of a registry. A clone shares the connection pool and
/// the credentials (and token) obtained so far.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// `https://HOST/v2/REPOSITORY` (`http://` once the registry is found to speak plain
    /// HTTP only).
    base: String,
    host: String,
    repository: String,
    auth: Auth,
    /// Why the proxy the environment names cannot be used.
    bad_proxy: Option<Arc<BadProxy>>,
    connection: Connection,
    /// HTTPS is tried first but plain HTTP is allowed (`--tls-verify=false`, loopback), and
    /// no request has told which the registry speaks yet.
    undecided: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "Client({}/{})", self.host, self.repository)
    }
}

impl Client {
    /// A client for `reference`'s repository over HTTPS, its certificate checked against the
    /// roots [`super::tls`] lists. With `tls.verify` off, or unset for a loopback host (as
    /// docker treats them), HTTPS without checks first and plain HTTP when the registry
    /// speaks nothing else. Fails when a CA file or `cert_dir` cannot be read.
    pub fn new(reference: &Reference, connection: &Connection) -> Result<Client, RegistryError> {
        let host = &reference.host;
        let tls = &connection.tls;
        let insecure = !tls.verify.unwrap_or(!transport::is_loopback(host));
        let scheme = if tls.plain_http { "http" } else { "https" };
        let config = super::tls::client_config(host, tls, !insecure).map_err(|source| {
            RegistryError::Tls {
                host: host.clone(),
                source,
            }
        })?;
        let (agent, bad_proxy) =
            transport::agent(scheme, host, connection.connect, connection.read, config);
        Ok(Client {
            agent,
            base: format!("{scheme}://{host}/v2/{}", reference.repository),
            host: host.clone(),
            repository: reference.repository.clone(),
            auth: Auth::for_host(host),
            bad_proxy,
            connection: connection.clone(),
            undecided: insecure && !tls.plain_http,
        })
    }

    /// Whether requests go in plain HTTP to a host that is not this machine (credentials
    /// are then never sent).
    fn plain_to_remote(&self) -> bool {
        self.base.starts_with("http://") && !transport::is_loopback(&self.host)
    }

    /// Asks `GET /v2/` over HTTPS once, when plain HTTP is allowed: any answer settles on
    /// HTTPS, a failure to speak TLS (or to answer at all) on plain HTTP, as docker does
    /// for insecure registries.
    fn decide_scheme(&mut self) {
        if !self.undecided {
            return;
        }
        self.undecided = false;
        let origin = format!("https://{}/v2/", self.host);
        let probe = self
            .agent
            .get(&origin)
            .timeout(Duration::from_secs(10).min(self.connection.read))
            .call();
        if let Err(ureq::Error::Transport(_)) = probe {
            self.base = self.base.replacen("https://", "http://", 1);
            let (agent, bad_proxy) = transport::agent(
                "http",
                &self.host,
                self.connection.connect,
                self.connection.read,
                super::tls::client_config(&self.host, &TlsOptions::default(), false)
                    .expect("a configuration that checks nothing needs no file"),
            );
            self.agent = agent;
            self.bad_proxy = bad_proxy;
        }
    }

    /// `url` as the scheme settled on has it.
    fn settled(&self, url: &str) -> String {
        let https = format!("https://{}/", self.host);
        if self.base.starts_with("http://") && url.starts_with(&https) {
            format!("http://{}/{}", self.host, &url[https.len()..])
        } else {
            url.to_owned()
        }
    }

    /// How this client connects (timeouts, tries).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The repository this client talks to.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The registry host and the repository, for messages.
    pub fn location(&self) -> (String, String) {
        (self.host.clone(), self.repository.clone())
    }

    /// Whether the repository has the blob (HEAD).
    pub fn has_blob(&mut self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.base);
        let a = self.request("HEAD", &url, &[], Body::None, &format!("blob {digest}"))?;
        match a.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(&format!("HEAD blob {digest}"), a)),
        }
    }

    /// Mounts the blob from another repository of the same registry; `false` when the
    /// registry did not (it then offers an ordinary upload, which is dropped).
    pub fn mount_blob(&mut self, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
        let url = format!("{}/blobs/uploads/?mount={digest}&from={from}", self.base);
        let a = self.request(
            "POST",
            &url,
            &[],
            Body::Bytes(&[]),
            &format!("mount {digest}"),
        )?;
        match a.status {
            201 => Ok(true),
            202 => {
                // The registry opened an ordinary upload instead: close it, unused.
                if let Some(location) = a.header("Location") {
                    let url = self.absolute(location);
                    let _ = self.request(
                        "DELETE",
                        &url,
                        &[],
                        Body::None,
                        &format!("cancel of upload {digest}"),
                    );
                }
                Ok(false)
            }
            _ => Err(self.status_error(&format!("mount blob {digest} from {from}"), a)),
        }
    }

    /// Uploads a blob of `size` bytes with `digest`, streaming it from `body` (one PUT).
    pub fn upload_blob(
        &mut self,
        digest: &Digest,
        size: u64,
        body: &mut dyn Read,
    ) -> Result<(), RegistryError> {
        let what = format!("upload of blob {digest}");
        let start = format!("{}/blobs/uploads/", self.base);
        let a = self.request("POST", &start, &[], Body::Bytes(&[]), &what)?;
        if a.status != 202 {
            return Err(self.status_error(&what, a));
        }
        let Some(location) = a.header("Location").map(str::to_owned) else {
            return Err(self.status_error(&format!("{what}: no Location header"), a));
        };
        let location = self.absolute(&location);
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        let headers = [
            ("Content-Type", "application/octet-stream".to_owned()),
            ("Content-Length", size.to_string()),
        ];
        let a = self.request("PUT", &url, &headers, Body::Reader(body), &what)?;
        match a.status {
            201 | 204 => Ok(()),
            _ => Err(self.status_error(&what, a)),
        }
    }

    /// Uploads a blob whose digest is not known beforehand: its bytes from `body` in chunks
    /// of [`UPLOAD_CHUNK`] (`PATCH` with `Content-Range`, as the distribution spec has it),
    /// hashed on the way, then closed with the digest. Returns the blob.
    pub fn upload_blob_chunked(&mut self, body: &mut dyn Read) -> Result<Blob, RegistryError> {
        let what = "chunked upload of a blob".to_owned();
        let start = format!("{}/blobs/uploads/", self.base);
        let a = self.request("POST", &start, &[], Body::Bytes(&[]), &what)?;
        if a.status != 202 {
            return Err(self.status_error(&what, a));
        }
        let mut location = self.next_location(&what, a)?;
        let mut hasher = Hasher::new();
        let mut size = 0u64;
        let mut chunk = vec![0u8; UPLOAD_CHUNK];
        loop {
            let n = read_full(body, &mut chunk)
                .map_err(|e| self.unreachable(format!("{what}: reading the blob: {e}"), false))?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk[..n]);
            let headers = [
                ("Content-Type", "application/octet-stream".to_owned()),
                ("Content-Range", format!("{size}-{}", size + n as u64 - 1)),
                ("Content-Length", n.to_string()),
            ];
            // Sent once: after a cut-off chunk the registry may hold part of it, so the
            // blob is started again from its first byte (by the caller), not this chunk.
            let a = self.request(
                "PATCH",
                &location,
                &headers,
                Body::Reader(&mut &chunk[..n]),
                &what,
            )?;
            if a.status != 202 {
                return Err(self.status_error(&what, a));
            }
            location = self.next_location(&what, a)?;
            size += n as u64;
        }
        let blob = hasher.finish();
        debug_assert_eq!(blob.size, size);
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", blob.digest);
        let a = self.request("PUT", &url, &[], Body::Bytes(&[]), &what)?;
        match a.status {
            201 | 204 => Ok(blob),
            _ => Err(self.status_error(&what, a)),
        }
    }

    /// The upload URL an answer's `Location` names, made absolute.
    fn next_location(&self, what: &str, a: Answer) -> Result<String, RegistryError> {
        match a.header("Location").map(str::to_owned) {
            Some(location) => Ok(self.absolute(&location)),
            None => Err(self.status_error(&format!("{what}: no Location header"), a)),
        }
    }

    /// Whether the repository holds any tag (a repository the registry does not know holds
    /// none). An answer it cannot read counts as yes: the caller then asks blob by blob.
    pub fn has_tags(&mut self) -> Result<bool, RegistryError> {
        let url = format!("{}/tags/list?n=1", self.base);
        let what = "tag list".to_owned();
        let a = self.request("GET", &url, &[], Body::None, &what)?;
        match a.status {
            404 => Ok(false),
            200 => {
                let listed: serde_json::Value =
                    serde_json::from_slice(&a.body).unwrap_or(serde_json::Value::Null);
                Ok(match listed.get("tags") {
                    Some(serde_json::Value::Array(tags)) => !tags.is_empty(),
                    Some(serde_json::Value::Null) => false,
                    _ => true,
                })
            }
            _ => Ok(true),
        }
    }

    /// Stores a manifest under `reference` (a tag or its digest); returns its digest.
    pub fn put_manifest(
        &mut self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        self.put_manifest_noting_subject(reference, media_type, bytes)
            .map(|(digest, _)| digest)
    }

    /// Stores a manifest as [`Client::put_manifest`] does; also says whether the registry
    /// answered with `OCI-Subject`, which a registry with the referrers API sends for a
    /// manifest with a `subject` (it then lists the manifest among the subject's referrers).
    pub fn put_manifest_noting_subject(
        &mut self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(Digest, bool), RegistryError> {
        let url = format!("{}/manifests/{reference}", self.base);
        let headers = [("Content-Type", media_type.to_owned())];
        let what = format!("manifest {reference}");
        let a = self.request("PUT", &url, &headers, Body::Bytes(bytes), &what)?;
        match a.status {
            201 | 200 | 204 => Ok((Digest::of(bytes), a.header("OCI-Subject").is_some())),
            _ => Err(self.status_error(&format!("PUT {what}"), a)),
        }
    }

    /// The referrers of the manifest `digest` (an image index of their descriptors), through
    /// the OCI 1.1 referrers API; `None` when the registry has no such API (it answers 404,
    /// which a registry with the API never does there).
    pub fn get_referrers(&mut self, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = format!("{}/referrers/{digest}", self.base);
        let headers = [(
            "Accept",
            "application/vnd.oci.image.index.v1+json".to_owned(),
        )];
        let what = format!("referrers of {digest}");
        let a = self.request("GET", &url, &headers, Body::None, &what)?;
        match a.status {
            200 => Ok(Some(a.body)),
            404 | 405 => Ok(None),
            _ => Err(self.status_error(&format!("GET {what}"), a)),
        }
    }

    /// Makes sure the repository has the blob `bytes` (uploads it when it has not); returns it.
    pub fn ensure_blob(&mut self, bytes: &[u8]) -> Result<Blob, RegistryError> {
        let blob = Blob {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
        };
        if !self.has_blob(&blob.digest)? {
            self.upload_blob(&blob.digest, blob.size, &mut &bytes[..])?;
        }
        Ok(blob)
    }

    /// The manifest stored under `reference` (media type and bytes), `None` when there is
    /// none.
    pub fn get_manifest(
        &mut self,
        reference: &str,
    ) -> Result<Option<(String, Vec<u8>)>, RegistryError> {
        let url = format!("{}/manifests/{reference}", self.base);
        let headers = [("Accept", MANIFEST_TYPES.to_owned())];
        let what = format!("manifest {reference}");
        let a = self.request("GET", &url, &headers, Body::None, &what)?;
        match a.status {
            200 => {
                let media = a
                    .header("Content-Type")
                    .unwrap_or_default()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                Ok(Some((media, a.body)))
            }
            404 => Ok(None),
            _ => Err(self.status_error(&format!("GET {what}"), a)),
        }
    }

    /// Reads a whole blob (configs, small manifests).
    pub fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.base);
        let what = format!("blob {digest}");
        let a = self.request("GET", &url, &[], Body::None, &what)?;
        match a.status {
            200 => Ok(a.body),
            _ => Err(self.status_error(&format!("GET {what}"), a)),
        }
    }

    /// Opens a blob of `size` bytes for streaming (layers); the caller checks its digest.
    pub fn open_blob(
        &mut self,
        digest: &Digest,
        size: u64,
    ) -> Result<Box<dyn Read + Send>, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.base);
        let what = format!("blob {digest}");
        let response = self.send("GET", &url, &[], Body::None, &what, Some(size))?;
        match response {
            Sent::Stream(r) => Ok(r),
            Sent::Whole(a) => Err(self.status_error(&format!("GET {what}"), a)),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            let origin = self.base.split("/v2/").next().unwrap_or_default();
            format!("{origin}{location}")
        }
    }

    fn status_error(&self, what: &str, a: Answer) -> RegistryError {
        if a.status == 401 || a.status == 403 {
            return self.unauthorized(what);
        }
        let body = String::from_utf8_lossy(&a.body);
        let body: String = body.chars().take(300).collect();
        RegistryError::Status {
            host: self.host.clone(),
            what: format!("{what}{}", tries(a.attempts)),
            status: a.status,
            body: body.replace('\n', " "),
        }
    }

    fn unauthorized(&self, what: &str) -> RegistryError {
        RegistryError::Unauthorized {
            host: self.host.clone(),
            what: what.to_owned(),
            hint: self.auth.hint(),
        }
    }

    fn unreachable(&self, message: String, transient: bool) -> RegistryError {
        RegistryError::Unreachable {
            host: self.host.clone(),
            message,
            transient,
        }
    }

    /// Sends a request, answering one authentication challenge; reads the answer whole.
    fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Body,
        what: &str,
    ) -> Result<Answer, RegistryError> {
        match self.send(method, url, headers, body, what, None)? {
            Sent::Whole(a) => Ok(a),
            Sent::Stream(_) => unreachable!("whole answers were asked for"),
        }
    }

    /// Sends a request, answering one authentication challenge; a 200 answer is streamed
    /// when `stream` (that many bytes of it, for the deadline). A transient failure (reset,
    /// 408, 429, 5xx) is tried again, up to the connection's attempts, when the body can be
    /// sent again; the last answer is returned, for its status and the registry's reason.
    fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        mut body: Body,
        what: &str,
        stream: Option<u64>,
    ) -> Result<Sent, RegistryError> {
        if let Some(bad) = &self.bad_proxy {
            return Err(RegistryError::Proxy {
                host: self.host.clone(),
                what: what.to_owned(),
                source: Arc::clone(bad),
            });
        }
        self.decide_scheme();
        let url = self.settled(url);
        let replayable = !matches!(body, Body::Reader(_));
        let timing = self.timing(&body, headers, stream);
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let until = std::time::Instant::now() + timing.overall;
            let result = self.call_once(method, &url, headers, &mut body, &timing, until);
            let retry = replayable && attempt < self.connection.attempts;
            let response = match result {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    let message = transport_message(&t, &self.host);
                    let transient = transport::is_transient(&t);
                    if transient && retry {
                        std::thread::sleep(self.connection.wait_before(attempt, None));
                        continue;
                    }
                    let tries = tries(attempt);
                    return Err(self.unreachable(format!("{what}: {message}{tries}"), transient));
                }
            };
            let status = response.status();
            if status == 401 && !challenged && replayable {
                challenged = true;
                attempt -= 1;
                self.answer_challenge(&response, what)?;
                continue;
            }
            if transport::is_transient_status(status) && retry {
                let asked = transport::retry_after(response.header("Retry-After"));
                // Read off so the connection can be used again.
                let _ = transport::read_whole(response, method);
                std::thread::sleep(self.connection.wait_before(attempt, asked));
                continue;
            }
            if stream.is_some() && status == 200 {
                let reader =
                    transport::Deadline::new(response.into_reader(), until, timing.overall);
                return Ok(Sent::Stream(Box::new(reader)));
            }
            let mut answer = transport::read_whole(response, method)
                .map_err(|e| self.unreachable(format!("{what}: reading the answer: {e}"), true))?;
            answer.attempts = attempt;
            return Ok(Sent::Whole(answer));
        }
    }

    /// How long a request may take. Small ones get the read timeout in all, plus a second
    /// per 64 KiB sent (ureq's deadline replaces its per-read timeout); large transfers keep
    /// the per-read timeout and an overall deadline checked between reads.
    fn timing(&self, body: &Body, headers: &[(&str, String)], stream: Option<u64>) -> Timing {
        let moved = match body {
            Body::Bytes(b) => b.len() as u64,
            Body::Reader(_) => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(u64::MAX / 2),
            // What answers read whole are: manifests, configs, errors (a MiB, generously).
            Body::None => stream.unwrap_or(1 << 20),
        };
        let large = stream.is_some() || matches!(body, Body::Reader(_));
        Timing {
            small: (!large)
                .then(|| self.connection.read + Duration::from_secs(moved / transport::MIN_RATE)),
            overall: self.connection.deadline(moved),
        }
    }

    /// One try of a request, its credentials attached (unless they would travel in clear
    /// text), a streamed body read until `until`.
    // ureq's own result, handed straight to its caller.
    #[allow(clippy::result_large_err)]
    fn call_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: &mut Body,
        timing: &Timing,
        until: std::time::Instant,
    ) -> Result<ureq::Response, ureq::Error> {
        let mut req = self.agent.request(method, url);
        if let Some(small) = timing.small {
            req = req.timeout(small);
        }
        for (name, value) in headers {
            req = req.set(name, value);
        }
        if let Some(authorization) = self.auth.header() {
            if !self.plain_to_remote() {
                req = req.set("Authorization", &authorization);
            }
        }
        match body {
            Body::None => req.call(),
            Body::Bytes(b) => req.send_bytes(b),
            // A streamed body cannot be replayed: authenticate first with an empty request
            // when a challenge is possible.
            Body::Reader(r) => req.send(transport::Deadline::new(&mut **r, until, timing.overall)),
        }
    }

    /// Answers the `WWW-Authenticate` challenge of a 401 to `what`.
    fn answer_challenge(
        &mut self,
        response: &ureq::Response,
        what: &str,
    ) -> Result<(), RegistryError> {
        let challenge = response.header("WWW-Authenticate").unwrap_or_default();
        let plain_remote = self.plain_to_remote();
        match self
            .auth
            .answer(&self.agent, challenge, &self.repository, plain_remote)
        {
            Ok(()) => Ok(()),
            Err(Refusal::Unauthorized) => Err(self.unauthorized(what)),
            Err(Refusal::Unreachable(message)) => Err(self.unreachable(message, true)),
            Err(Refusal::Credentials(message)) => {
                Err(self.unreachable(format!("{what}: {message}"), false))
            }
        }
    }
}

/// How long one request may take: `small`, ureq's deadline for the whole of a small
/// request; `overall`, the deadline of a large transfer, checked between reads.
struct Timing {
    small: Option<Duration>,
    overall: Duration,
}

/// " (after N tries)" when a request was tried more than once.
pub fn tries(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} tries)")
    } else {
        String::new()
    }
}
