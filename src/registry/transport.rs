//! How requests reach a registry: one `ureq` agent per client with connect and read
//! timeouts, the proxy the environment names (never for loopback), and answers read whole
//! (bounded) or streamed.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// The proxy the environment names cannot be used: every request then fails naming it,
/// rather than bypassing it.
#[derive(Debug, thiserror::Error)]
#[error("proxy `{url}` from the environment: {source}")]
pub struct BadProxy {
    /// The proxy's URL, as the environment gives it.
    pub url: String,
    /// Why ureq refused it.
    pub source: ureq::Error,
}

/// How a client connects: TLS, timeouts, and how often a transient failure is retried.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Certificates and HTTPS.
    pub tls: super::tls::TlsOptions,
    /// Most time to connect.
    pub connect: Duration,
    /// Most time without a byte read or written.
    pub read: Duration,
    /// Tries of a request (or a blob's upload) that fails transiently: resets, 408, 429, 5xx.
    pub attempts: u32,
    /// Wait before the second try; doubled for each next one (a `Retry-After` counts when
    /// longer, up to [`MAX_RETRY_AFTER`]).
    pub backoff: Duration,
}

/// Longest `Retry-After` honoured: a registry cannot park a push for longer per try.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Slowest transfer a request is given time for, beyond [`BASE_DEADLINE`]: a registry that
/// trickles a byte per read timeout is cut off.
pub const MIN_RATE: u64 = 64 << 10;

/// Time every request gets, whatever its size.
pub const BASE_DEADLINE: Duration = Duration::from_secs(120);

impl Connection {
    /// The defaults (10 s to connect, 60 s per read, 5 tries from 1 s apart), with `tls`;
    /// `STRATA_REGISTRY_TIMEOUT` (seconds per read) and `STRATA_REGISTRY_ATTEMPTS` override.
    pub fn new(tls: super::tls::TlsOptions) -> Connection {
        let number = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Connection {
            tls,
            connect: Duration::from_secs(10),
            read: Duration::from_secs(number("STRATA_REGISTRY_TIMEOUT").unwrap_or(60).max(1)),
            attempts: number("STRATA_REGISTRY_ATTEMPTS").map_or(5, |n| n.clamp(1, 100) as u32),
            backoff: Duration::from_secs(1),
        }
    }

    /// Most time a large transfer of `bytes` may take in all.
    pub fn deadline(&self, bytes: u64) -> Duration {
        BASE_DEADLINE + Duration::from_secs(bytes / MIN_RATE)
    }

    /// The wait before try `attempt` (from 1 for the second), at least `asked` (a
    /// `Retry-After`, capped).
    pub fn wait_before(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(10));
        doubled.max(asked.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

/// A reader that fails once its deadline has passed: checked at every read, so a peer
/// trickling bytes slower than the transfer is given time for is cut off.
pub(super) struct Deadline<R> {
    inner: R,
    until: std::time::Instant,
    allowed: Duration,
}

impl<R> Deadline<R> {
    /// `inner`, read until `until` (`allowed` after the start, for the message).
    pub(super) fn new(inner: R, until: std::time::Instant, allowed: Duration) -> Self {
        Deadline {
            inner,
            until,
            allowed,
        }
    }
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if std::time::Instant::now() > self.until {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the transfer took longer than the {} s it is given (120 s + 1 s per 64 KiB)",
                    self.allowed.as_secs()
                ),
            ));
        }
        self.inner.read(buf)
    }
}

/// Whether an answer with `status` is worth asking again.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Whether a failure to get an answer may pass: a connection reset, refused (a registry
/// restarting) or cut off, a timeout. Not: unknown hosts, TLS refusals, bad URLs, proxies.
pub(super) fn is_transient(t: &ureq::Transport) -> bool {
    let tls = std::error::Error::source(t).and_then(super::tls::tls_failure);
    tls.is_none()
        && matches!(
            t.kind(),
            ureq::ErrorKind::Io | ureq::ErrorKind::ConnectionFailed
        )
}

/// The wait a `Retry-After` header asks for (seconds; a date counts as a minute).
pub(super) fn retry_after(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    Some(match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => MAX_RETRY_AFTER,
    })
}

/// An answer to a request, read whole.
pub(super) struct Answer {
    pub(super) status: u16,
    /// Tries it took.
    pub(super) attempts: u32,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Answer {
    /// The value of header `name`, whatever its case.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a request sends.
pub(super) enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    Reader(&'a mut dyn Read),
}

/// What came back: an answer read whole, or a blob being streamed.
pub(super) enum Sent {
    Whole(Answer),
    Stream(Box<dyn Read + Send>),
}

/// Most bytes of an answer read whole (errors, manifests, configs): a registry cannot make
/// the helper hold more.
pub(super) const MAX_ANSWER: u64 = 64 << 20;

/// Whether `host` (`name[:port]`) is this machine by its address: `localhost` exactly,
/// 127.0.0.0/8 or `[::1]`. Decided on the text of an address, never on a name that merely
/// starts like one (`127.example.net`, `localhost-reg.example`): loopback registries may
/// get plain HTTP and credentials in clear text.
pub fn is_loopback(host: &str) -> bool {
    let bare = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(ip, _)| ip),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The agent requests to `host` go through with `scheme`, and why the proxy the environment
/// names cannot be used (every request then fails naming it, rather than bypassing it).
pub(super) fn agent(
    scheme: &str,
    host: &str,
    connect: Duration,
    read: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> (ureq::Agent, Option<Arc<BadProxy>>) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(read)
        .timeout_write(read)
        .tls_config(tls)
        .redirects(5);
    let (agent, bad_proxy) = match proxy_for(scheme, host, is_loopback(host)) {
        Some(Ok(proxy)) => (agent.proxy(proxy), None),
        Some(Err(bad)) => (agent, Some(Arc::new(bad))),
        None => (agent, None),
    };
    (agent.build(), bad_proxy)
}

/// Reads an answer whole (nothing for `HEAD`), at most [`MAX_ANSWER`] bytes of body.
pub(super) fn read_whole(response: ureq::Response, method: &str) -> std::io::Result<Answer> {
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    let mut body = Vec::new();
    if method != "HEAD" {
        response
            .into_reader()
            .take(MAX_ANSWER)
            .read_to_end(&mut body)?;
    }
    Ok(Answer {
        status,
        attempts: 1,
        headers,
        body,
    })
}

/// The proxy the environment names for `scheme` (`https_proxy`, `http_proxy`, `all_proxy`,
/// either case), unless `host` is loopback or listed in `no_proxy`. Empty variables count as
/// unset: Nix passes a fixed-output build every proxy variable it lists, set or not.
fn proxy_for(scheme: &str, host: &str, loopback: bool) -> Option<Result<ureq::Proxy, BadProxy>> {
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
    Some(ureq::Proxy::new(&url).map_err(|source| BadProxy { url, source }))
}

/// What went wrong with a request to `host`, in words: the TLS reason when the handshake
/// failed, rather than "cannot connect".
pub(super) fn transport_message(t: &ureq::Transport, host: &str) -> String {
    if let Some(tls) = std::error::Error::source(t).and_then(super::tls::tls_failure) {
        return super::tls::explain(tls, host);
    }
    match t.kind() {
        ureq::ErrorKind::ConnectionFailed => "cannot connect (is it running?)".to_owned(),
        ureq::ErrorKind::Dns => format!("unknown host ({t})"),
        ureq::ErrorKind::Io => format!("{t} (timed out or cut off)"),
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_an_address_not_a_prefix() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.9.8.7",
            "[::1]:5000",
            "[::1]",
            "LOCALHOST:1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "localhost-reg.example.test:5603",
            "127.example.net",
            "127.0.0.1.nip.io:80",
            "10.0.0.1:5000",
            "[::2]:5000",
            "localhostx",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn waits_double_and_honour_retry_after_up_to_a_minute() {
        let mut c = Connection::new(super::super::tls::TlsOptions::default());
        c.backoff = Duration::from_secs(1);
        assert_eq!(c.wait_before(1, None), Duration::from_secs(1));
        assert_eq!(c.wait_before(3, None), Duration::from_secs(4));
        assert_eq!(
            c.wait_before(1, retry_after(Some("7"))),
            Duration::from_secs(7)
        );
        assert_eq!(
            c.wait_before(1, retry_after(Some("99999"))),
            MAX_RETRY_AFTER
        );
        assert_eq!(retry_after(None), None);
        assert!(is_transient_status(503) && is_transient_status(429) && !is_transient_status(404));
        // A 1 GB transfer is given 120 s + 1 s per 64 KiB.
        assert_eq!(c.deadline(1 << 30).as_secs(), 120 + (1 << 14));
    }

    #[test]
    fn a_transfer_past_its_deadline_fails() {
        let past = std::time::Instant::now() - Duration::from_secs(1);
        let mut r = Deadline::new(&b"abc"[..], past, Duration::from_secs(120));
        let err = r.read(&mut [0u8; 3]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("120 s"), "{err}");
        let future = std::time::Instant::now() + Duration::from_secs(60);
        let mut r = Deadline::new(&b"abc"[..], future, Duration::from_secs(60));
        assert_eq!(r.read(&mut [0u8; 3]).unwrap(), 3);
    }
}
