//! How requests reach a registry: one `ureq` agent per client with connect and read
//! timeouts, the proxy the environment names (never for loopback), and answers read whole
//! (bounded) or streamed.

use std::io::Read;
use std::time::Duration;

/// An answer to a request, read whole.
pub(super) struct Answer {
    pub(super) status: u16,
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

/// Whether `host` (`name[:port]`) is this machine, which registries serve over plain HTTP.
pub(super) fn is_loopback(host: &str) -> bool {
    host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]")
}

/// The agent requests to `host` go through with `scheme`, and why the proxy the environment
/// names cannot be used (every request then fails naming it, rather than bypassing it).
pub(super) fn agent(
    scheme: &str,
    host: &str,
    connect: Duration,
    read: Duration,
) -> (ureq::Agent, Option<String>) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(read)
        .timeout_write(read)
        .redirects(5);
    let (agent, bad_proxy) = match proxy_for(scheme, host, is_loopback(host)) {
        Some(Ok(proxy)) => (agent.proxy(proxy), None),
        Some(Err(message)) => (agent, Some(message)),
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
        headers,
        body,
    })
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

pub(super) fn transport_message(t: &ureq::Transport) -> String {
    match t.kind() {
        ureq::ErrorKind::ConnectionFailed => "cannot connect (is it running?)".to_owned(),
        ureq::ErrorKind::Dns => format!("unknown host ({t})"),
        ureq::ErrorKind::Io => format!("{t} (timed out or cut off)"),
        _ => t.to_string(),
    }
}
