//! A small client for the OCI distribution API (registries): blob existence, cross-repository
//! mounts, monolithic uploads streamed from a reader, manifests, with anonymous, basic and
//! bearer-token authentication answering the registry's `WWW-Authenticate` challenge.
//!
//! Credentials come from the containers-auth file (`REGISTRY_AUTH_FILE`, else
//! `$XDG_RUNTIME_DIR/containers/auth.json`) or Docker's `~/.docker/config.json`; they are never
//! printed. Every request has connect and read timeouts, so a registry that is down or stalls
//! gives an error, not a hang.

use crate::digest::Digest;
use base64::Engine as _;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

/// Media types a manifest GET accepts.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The image reference cannot be parsed.
    #[error("`{0}` is not an image reference (expected HOST[:PORT]/NAME[:TAG|@sha256:DIGEST])")]
    Reference(String),
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

/// An image reference: registry host, repository, and tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub host: String,
    /// Repository path (`library/hello`).
    pub repository: String,
    /// Tag, or `sha256:...` digest.
    pub reference: String,
}

impl Reference {
    /// Parses `[docker://]HOST[:PORT]/NAME[:TAG|@DIGEST]` (Docker Hub when there is no host).
    pub fn parse(text: &str) -> Result<Reference, RegistryError> {
        let bad = || RegistryError::Reference(text.to_owned());
        let s = text.strip_prefix("docker://").unwrap_or(text);
        let (name, reference) = match s.split_once('@') {
            Some((name, digest)) => (name, digest.to_owned()),
            None => match s.rsplit_once(':') {
                Some((name, tag)) if !tag.contains('/') => (name, tag.to_owned()),
                _ => (s, "latest".to_owned()),
            },
        };
        let (host, repository) = match name.split_once('/') {
            Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_owned(), rest.to_owned())
            }
            _ => ("registry-1.docker.io".to_owned(), name.to_owned()),
        };
        let repository = if host == "registry-1.docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty()
            || reference.is_empty()
            || repository
                .bytes()
                .any(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)))
        {
            return Err(bad());
        }
        Ok(Reference {
            host,
            repository,
            reference,
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.host, self.repository, self.reference
        )
    }
}

/// A connection to one repository of a registry. A clone shares the connection pool and
/// the credentials (and token) obtained so far.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    host: String,
    repository: String,
    basic: Option<String>,
    token: Option<String>,
    /// The registry asked for basic credentials: send them with every request.
    send_basic: bool,
    auth_source: Option<PathBuf>,
    /// Why the proxy the environment names cannot be used.
    bad_proxy: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "Client({}/{})", self.host, self.repository)
    }
}

/// An answer to a request, read whole.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    /// A client for `reference`'s repository. Plain HTTP for loopback hosts (as Docker
    /// treats them) or when `tls_verify` is off; HTTPS otherwise.
    pub fn new(reference: &Reference, tls_verify: bool) -> Client {
        Client::with_timeouts(
            reference,
            tls_verify,
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
    }

    /// A client whose requests give up after `connect` to connect and `read` without data.
    pub fn with_timeouts(
        reference: &Reference,
        tls_verify: bool,
        connect: Duration,
        read: Duration,
    ) -> Client {
        let host = &reference.host;
        let loopback =
            host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]");
        let scheme = if loopback || !tls_verify {
            "http"
        } else {
            "https"
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(connect)
            .timeout_read(read)
            .timeout_write(read)
            .redirects(5);
        // A proxy that cannot be used fails every request, naming it, rather than being
        // bypassed.
        let (agent, bad_proxy) = match proxy_for(scheme, host, loopback) {
            Some(Ok(proxy)) => (agent.proxy(proxy), None),
            Some(Err(message)) => (agent, Some(message)),
            None => (agent, None),
        };
        let agent = agent.build();
        let (basic, auth_source) = match credentials(host) {
            Some((b, source)) => (Some(b), Some(source)),
            None => (None, None),
        };
        Client {
            agent,
            base: format!("{scheme}://{host}/v2/{}", reference.repository),
            host: host.clone(),
            repository: reference.repository.clone(),
            basic,
            token: None,
            send_basic: false,
            auth_source,
            bad_proxy,
        }
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

    /// Stores a manifest under `reference` (a tag or its digest); returns its digest.
    pub fn put_manifest(
        &mut self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = format!("{}/manifests/{reference}", self.base);
        let headers = [("Content-Type", media_type.to_owned())];
        let what = format!("manifest {reference}");
        let a = self.request("PUT", &url, &headers, Body::Bytes(bytes), &what)?;
        match a.status {
            201 | 200 | 204 => Ok(Digest::of(bytes)),
            _ => Err(self.status_error(&format!("PUT {what}"), a)),
        }
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

    /// Opens a blob for streaming (layers); the caller checks its digest.
    pub fn open_blob(&mut self, digest: &Digest) -> Result<Box<dyn Read + Send>, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.base);
        let what = format!("blob {digest}");
        let response = self.send("GET", &url, &[], Body::None, &what, true)?;
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
            what: what.to_owned(),
            status: a.status,
            body: body.replace('\n', " "),
        }
    }

    fn unauthorized(&self, what: &str) -> RegistryError {
        let hint = match &self.auth_source {
            Some(p) => format!("; credentials for it were taken from {}", p.display()),
            None => "; no credentials for it in REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json".to_owned(),
        };
        RegistryError::Unauthorized {
            host: self.host.clone(),
            what: what.to_owned(),
            hint,
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
        match self.send(method, url, headers, body, what, false)? {
            Sent::Whole(a) => Ok(a),
            Sent::Stream(_) => unreachable!("whole answers were asked for"),
        }
    }

    fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        mut body: Body,
        what: &str,
        stream: bool,
    ) -> Result<Sent, RegistryError> {
        if let Some(message) = &self.bad_proxy {
            return Err(RegistryError::Unreachable {
                host: self.host.clone(),
                message: format!("{what}: {message}"),
            });
        }
        for attempt in 0..2 {
            let mut req = self.agent.request(method, url);
            for (name, value) in headers {
                req = req.set(name, value);
            }
            if let Some(token) = &self.token {
                req = req.set("Authorization", &format!("Bearer {token}"));
            } else if let (Some(basic), true) = (&self.basic, self.send_basic) {
                req = req.set("Authorization", &format!("Basic {basic}"));
            }
            let result = match &mut body {
                Body::None => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                // A streamed body cannot be replayed: authenticate first with an empty
                // request when a challenge is possible.
                Body::Reader(r) => req.send(&mut **r),
            };
            let response = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(RegistryError::Unreachable {
                        host: self.host.clone(),
                        message: format!("{what}: {}", transport_message(&t)),
                    })
                }
            };
            let status = response.status();
            if status == 401 && attempt == 0 && !matches!(body, Body::Reader(_)) {
                let challenge = response
                    .header("WWW-Authenticate")
                    .unwrap_or_default()
                    .to_owned();
                self.authenticate(&challenge, what)?;
                continue;
            }
            if stream && status == 200 {
                return Ok(Sent::Stream(Box::new(response.into_reader())));
            }
            let headers = response
                .headers_names()
                .into_iter()
                .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_owned())))
                .collect();
            let mut body = Vec::new();
            if method != "HEAD" {
                response
                    .into_reader()
                    .take(64 << 20)
                    .read_to_end(&mut body)
                    .map_err(|e| RegistryError::Unreachable {
                        host: self.host.clone(),
                        message: format!("{what}: reading the answer: {e}"),
                    })?;
            }
            return Ok(Sent::Whole(Answer {
                status,
                headers,
                body,
            }));
        }
        Err(self.unauthorized(what))
    }

    /// Answers a `WWW-Authenticate` challenge: basic credentials, or a bearer token from
    /// the realm it names (with the basic credentials, when there are some).
    fn authenticate(&mut self, challenge: &str, what: &str) -> Result<(), RegistryError> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return match self.basic {
                Some(_) if !self.send_basic => {
                    self.send_basic = true;
                    Ok(())
                }
                _ => Err(self.unauthorized(what)),
            };
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(self.unauthorized(what));
        }
        let params = challenge_params(params);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let realm = get("realm").ok_or_else(|| self.unauthorized(what))?;
        let mut req = self.agent.get(realm);
        if let Some(service) = get("service") {
            req = req.query("service", service);
        }
        let scope = get("scope")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("repository:{}:pull,push", self.repository));
        req = req.query("scope", &scope);
        if let Some(basic) = &self.basic {
            req = req.set("Authorization", &format!("Basic {basic}"));
        }
        let answer = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, _)) => return Err(self.unauthorized(what)),
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryError::Unreachable {
                    host: self.host.clone(),
                    message: format!("token from {realm}: {}", transport_message(&t)),
                })
            }
        };
        let json: serde_json::Value = answer
            .into_string()
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let token = json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .ok_or_else(|| self.unauthorized(what))?;
        self.token = Some(token.to_owned());
        Ok(())
    }
}

enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    Reader(&'a mut dyn Read),
}

enum Sent {
    Whole(Answer),
    Stream(Box<dyn Read + Send>),
}

/// The proxy the environment names for `scheme` (`https_proxy`, `http_proxy`, `all_proxy`,
/// either case), unless `host` is loopback or listed in `no_proxy`. Empty variables count as
/// unset: Nix passes a fixed-output build every proxy variable it lists, set or not.
fn proxy_for(scheme: &str, host: &str, loopback: bool) -> Option<Result<ureq::Proxy, String>> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let var = |name: &str| set(name).or_else(|| set(&name.to_uppercase()));
    if loopback {
        return None;
    }
    let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let excluded = var("no_proxy").is_some_and(|list| {
        list.split(',').map(str::trim).any(|n| {
            n == "*"
                || (!n.is_empty()
                    && (bare == n.trim_start_matches('.')
                        || bare.ends_with(&format!(".{}", n.trim_start_matches('.')))))
        })
    });
    if excluded {
        return None;
    }
    let url = var(&format!("{scheme}_proxy")).or_else(|| var("all_proxy"))?;
    Some(ureq::Proxy::new(&url).map_err(|e| format!("proxy `{url}` from the environment: {e}")))
}

fn transport_message(t: &ureq::Transport) -> String {
    match t.kind() {
        ureq::ErrorKind::ConnectionFailed => "cannot connect (is it running?)".to_owned(),
        ureq::ErrorKind::Dns => format!("unknown host ({t})"),
        ureq::ErrorKind::Io => format!("{t} (timed out or cut off)"),
        _ => t.to_string(),
    }
}

/// `key="value", key=value` pairs of a challenge.
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_owned(), n),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_owned(), n),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.push((key, value));
        rest = next.trim_start_matches(',').trim();
    }
    out
}

/// Basic credentials (base64 `user:password`) for `host`, and the file they came from.
fn credentials(host: &str) -> Option<(String, PathBuf)> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(d).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        files.push(PathBuf::from(h).join(".docker/config.json"));
    }
    let names = [
        host.to_owned(),
        format!("https://{host}"),
        format!("http://{host}"),
        if host == "registry-1.docker.io" {
            "https://index.docker.io/v1/".to_owned()
        } else {
            host.to_owned()
        },
    ];
    for file in files {
        let Ok(text) = std::fs::read(&file) else {
            continue;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        for name in &names {
            if let Some(auth) = json["auths"][name]["auth"].as_str() {
                // Checked to be base64 of user:password, kept encoded.
                let ok = base64::engine::general_purpose::STANDARD
                    .decode(auth)
                    .is_ok_and(|d| d.contains(&b':'));
                if ok {
                    return Some((auth.to_owned(), file));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker() {
        let r = Reference::parse("localhost:5000/app/x:v1").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.reference.as_str()),
            ("localhost:5000", "app/x", "v1")
        );
        let r = Reference::parse("docker://127.0.0.1:5000/app@sha256:abc").unwrap();
        assert_eq!(r.reference, "sha256:abc");
        assert_eq!(r.to_string(), "127.0.0.1:5000/app@sha256:abc");
        let r = Reference::parse("hello").unwrap();
        assert_eq!(r.to_string(), "registry-1.docker.io/library/hello:latest");
        assert!(Reference::parse("Localhost:5000/App:v1").is_err());
    }

    #[test]
    fn challenges_are_split_into_parameters() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull,push".into()));
    }
}
