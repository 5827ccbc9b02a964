//! A loopback proxy in front of a registry that misbehaves on cue: answers 503 with a
//! `Retry-After`, resets a connection in the middle of a request's body or of an answer,
//! stalls, or answers requests for several byte ranges the ways some registries do (501,
//! the whole blob, the first range only). Requests are told apart by their first line (ureq
//! and Go's client send one at a time per connection, so an injected answer never lands in
//! the middle of another).
//!
//! It also counts: every answer is parsed just enough to find where it ends, and each
//! request is recorded with its `Range` header, the answer's status and the bytes of its
//! body ([`Exchange`]), so a check can say how many bytes a pull moved.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer 503 with `Retry-After: 1` and this body, instead of forwarding.
    Unavailable(&'static str),
    /// Answer 400 with this body (an OCI error, not worth retrying), instead of forwarding.
    Refuse(&'static str),
    /// Forward the head and this many bytes of the body, then reset both connections.
    ResetInBody(u64),
    /// Forward the request, then reset after this many bytes of the answer.
    ResetInAnswer(u64),
    /// Never answer (the connection stays open for a minute).
    Stall,
    /// Only for a request with several ranges (`Range: bytes=a-b,c-d`): answer it badly.
    MultiRange(RangeAnswer),
}

/// How a registry that cannot serve several ranges in one answer (`multipart/byteranges`)
/// answers a request for them; podman's partial pulls send such requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 501 Not Implemented, as GHCR does ("Unsupported client range").
    NotImplemented,
    /// 501 only for more ranges than this: a registry with a cap on ranges per request.
    NotImplementedOver(usize),
    /// 200 with the whole blob: the `Range` header is dropped, as a server ignoring it does.
    WholeBlob,
    /// 206 with the first range only, not multipart: a server that honours one range.
    FirstRangeOnly,
}

impl RangeAnswer {
    /// True when a request for `ranges` ranges gets this answer.
    fn applies(self, ranges: usize) -> bool {
        match self {
            RangeAnswer::NotImplementedOver(n) => ranges > n,
            _ => ranges > 1,
        }
    }
}

/// A rule: requests whose first line contains `pattern` get `fault`, `times` times.
#[derive(Clone, Debug)]
pub struct Rule {
    pub pattern: &'static str,
    pub fault: Fault,
    pub times: usize,
}

/// A request the proxy relayed (or answered itself), and its answer.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The request line, e.g. `GET /v2/app/blobs/sha256:... HTTP/1.1`.
    pub request: String,
    /// The `Range` header the client sent, if any.
    pub range: Option<String>,
    /// The answer's status.
    pub status: u16,
    /// Bytes of the answer's body (of a chunked one: its payload).
    pub body: u64,
}

impl Exchange {
    /// True for a `GET` of a blob whose digest contains `digest`.
    pub fn gets_blob(&self, digest: &str) -> bool {
        self.request.starts_with("GET ")
            && self.request.contains("/blobs/")
            && self.request.contains(digest)
    }

    /// The number of ranges asked for (0 without a `Range` header).
    pub fn ranges(&self) -> usize {
        self.range.as_ref().map_or(0, |r| r.split(',').count())
    }
}

/// What the proxy's threads share.
#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    injected: Mutex<Vec<String>>,
    exchanges: Mutex<Vec<Exchange>>,
}

/// The proxy; stops accepting when dropped (connections under way finish).
pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Result<FaultProxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let host = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let shared: Arc<Shared> = Arc::default();
        let (s, up) = (Arc::clone(&shared), upstream.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (s, up) = (Arc::clone(&s), up.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &up, &s);
                });
            }
        });
        Ok(FaultProxy { host, shared })
    }

    /// Replaces the rules.
    pub fn set(&self, rules: Vec<Rule>) {
        *self.shared.rules.lock().unwrap() = rules;
        self.shared.injected.lock().unwrap().clear();
    }

    /// The faults injected since the rules were set.
    pub fn injected(&self) -> Vec<String> {
        self.shared.injected.lock().unwrap().clone()
    }

    /// The exchanges since the last call, in the order their answers ended.
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.shared.exchanges.lock().unwrap())
    }
}

/// The fault the first matching rule with tries left gives `request`, counting it. A
/// [`Fault::MultiRange`] rule matches only the requests for ranges its answer is for.
fn fault_for(request: &Request, shared: &Shared) -> Option<Fault> {
    let mut rules = shared.rules.lock().unwrap();
    let ranges = request.ranges();
    let rule = rules.iter_mut().find(|r| {
        r.times > 0
            && request.first.contains(r.pattern)
            && match r.fault {
                Fault::MultiRange(answer) => answer.applies(ranges),
                _ => true,
            }
    })?;
    rule.times -= 1;
    shared
        .injected
        .lock()
        .unwrap()
        .push(format!("{} {:?}", request.first.trim(), rule.fault));
    Some(rule.fault.clone())
}

/// Cuts a connection: shut both ways; once every handle is dropped with bytes unread, the
/// kernel answers the peer's next bytes with a reset.
fn reset(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Both);
}

/// A request's head as the client sent it.
struct Request {
    /// The request line, with its CRLF.
    first: String,
    /// The header lines, each with its CRLF.
    headers: Vec<String>,
    /// `Content-Length` (0 when absent).
    length: u64,
}

impl Request {
    /// Reads a head; `None` at the end of the connection.
    fn read(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
        let mut first = String::new();
        if reader.read_line(&mut first)? == 0 {
            return Ok(None);
        }
        let mut request = Request {
            first,
            headers: Vec::new(),
            length: 0,
        };
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            if line == "\r\n" {
                break;
            }
            request.headers.push(line);
        }
        request.length = request
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Some(request))
    }

    /// A header's value, by case-insensitive name.
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The number of ranges of its `Range` header.
    fn ranges(&self) -> usize {
        self.header("range").map_or(0, |r| r.split(',').count())
    }

    /// Replaces its `Range` header by `range`, or drops it.
    fn set_range(&mut self, range: Option<&str>) {
        self.headers.retain(|l| {
            !l.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case("range"))
        });
        if let Some(r) = range {
            self.headers.push(format!("Range: {r}\r\n"));
        }
    }

    /// The head as bytes to send on.
    fn head(&self) -> Vec<u8> {
        let mut head = self.first.clone().into_bytes();
        for h in &self.headers {
            head.extend_from_slice(h.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    }
}

/// A request forwarded whose answer has not ended yet.
struct Pending {
    request: String,
    range: Option<String>,
    /// A `HEAD`: its answer has no body, whatever its `Content-Length` says.
    head_only: bool,
}

/// Relays one client connection, request by request.
fn serve(client: TcpStream, upstream: &str, shared: &Arc<Shared>) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    // Bytes of answer still allowed through before a reset (u64::MAX: no limit).
    let answer_budget = Arc::new(AtomicU64::new(u64::MAX));
    let pending: Arc<Mutex<VecDeque<Pending>>> = Arc::default();
    {
        let mut out = Budgeted {
            to: client.try_clone()?,
            from: server.try_clone()?,
            budget: Arc::clone(&answer_budget),
        };
        let from = BufReader::with_capacity(64 << 10, server.try_clone()?);
        let (pending, shared) = (Arc::clone(&pending), Arc::clone(shared));
        std::thread::spawn(move || {
            let _ = relay_answers(from, &mut out, &pending, &shared);
            let _ = out.to.shutdown(Shutdown::Write);
        });
    }
    let mut reader = BufReader::new(client.try_clone()?);
    let mut to_server = server.try_clone()?;
    // A TLS handshake (a client trying HTTPS first) is relayed as it is: it has no request
    // line to wait for, and the registry's answer tells the client to speak plain HTTP.
    if reader.fill_buf()?.first() == Some(&0x16) {
        std::io::copy(&mut reader, &mut to_server)?;
        let _ = to_server.shutdown(Shutdown::Write);
        return Ok(());
    }
    while let Some(mut request) = Request::read(&mut reader)? {
        // Recorded as the client sent it, whatever a fault makes of it.
        let range = request.header("range");
        let mut body = (&mut reader).take(request.length);
        let fault = fault_for(&request, shared);
        if let Some((status, extra, text)) = local_answer(&fault) {
            std::io::copy(&mut body, &mut std::io::sink())?;
            answer_locally(&client, &request, status, extra, text, shared)?;
            reset(&server);
            return Ok(());
        }
        match fault {
            Some(Fault::ResetInBody(after)) => {
                to_server.write_all(&request.head())?;
                std::io::copy(&mut (&mut body).take(after), &mut to_server)?;
                reset(&client);
                reset(&server);
                return Ok(());
            }
            Some(Fault::ResetInAnswer(after)) => answer_budget.store(after, Ordering::SeqCst),
            Some(Fault::Stall) => {
                std::thread::sleep(Duration::from_secs(60));
                return Ok(());
            }
            Some(Fault::MultiRange(RangeAnswer::WholeBlob)) => request.set_range(None),
            Some(Fault::MultiRange(RangeAnswer::FirstRangeOnly)) => {
                let range = request.header("range").unwrap_or_default();
                request.set_range(range.split(',').next());
            }
            _ => {}
        }
        pending.lock().unwrap().push_back(Pending {
            request: request.first.trim().to_owned(),
            range,
            head_only: request.first.starts_with("HEAD "),
        });
        to_server.write_all(&request.head())?;
        std::io::copy(&mut body, &mut to_server)?;
    }
    let _ = to_server.shutdown(Shutdown::Write);
    Ok(())
}

/// The answer a fault gives instead of forwarding: status, extra headers, body.
fn local_answer(fault: &Option<Fault>) -> Option<(&'static str, &'static str, &'static str)> {
    match fault {
        Some(Fault::Unavailable(text)) => {
            Some(("503 Service Unavailable", "Retry-After: 1\r\n", text))
        }
        Some(Fault::Refuse(text)) => Some(("400 Bad Request", "", text)),
        Some(Fault::MultiRange(
            RangeAnswer::NotImplemented | RangeAnswer::NotImplementedOver(_),
        )) => Some((
            "501 Not Implemented",
            "",
            r#"{"errors":[{"code":"UNSUPPORTED","message":"Unsupported client range"}]}"#,
        )),
        _ => None,
    }
}

/// Answers `request` with `status` and closes the connection, recording the exchange.
fn answer_locally(
    client: &TcpStream,
    request: &Request,
    status: &str,
    extra: &str,
    text: &str,
    shared: &Shared,
) -> std::io::Result<()> {
    let answer = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    shared.exchanges.lock().unwrap().push(Exchange {
        request: request.first.trim().to_owned(),
        range: request.header("range"),
        status: status[..3].parse().unwrap_or(0),
        body: text.len() as u64,
    });
    let mut c = client.try_clone()?;
    c.write_all(answer.as_bytes())?;
    let _ = c.shutdown(Shutdown::Both);
    Ok(())
}

/// The client's side of a connection, cut (both connections reset) once the answers have
/// used up `budget` bytes.
struct Budgeted {
    to: TcpStream,
    from: TcpStream,
    budget: Arc<AtomicU64>,
}

impl Budgeted {
    /// Sends `buf` to the client, or as much as the budget allows and then resets.
    fn send(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let left = self.budget.load(Ordering::SeqCst);
        if (buf.len() as u64) > left {
            let _ = self.to.write_all(&buf[..left as usize]);
            reset(&self.to);
            reset(&self.from);
            return Err(std::io::ErrorKind::ConnectionAborted.into());
        }
        if left != u64::MAX {
            self.budget.fetch_sub(buf.len() as u64, Ordering::SeqCst);
        }
        self.to.write_all(buf)
    }
}

/// An answer's head: its bytes, status, and how its body ends.
struct Answer {
    bytes: Vec<u8>,
    status: u16,
    chunked: bool,
    /// `Content-Length`; `None`: the body runs to the end of the connection.
    length: Option<u64>,
}

/// Reads an answer's head; `None` at the end of the connection.
fn read_answer(from: &mut impl BufRead) -> std::io::Result<Option<Answer>> {
    let mut line = String::new();
    if from.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let mut answer = Answer {
        bytes: line.clone().into_bytes(),
        status: status.unwrap_or(0),
        chunked: false,
        length: None,
    };
    loop {
        line.clear();
        if from.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        answer.bytes.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            return Ok(Some(answer));
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            answer.length = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            answer.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
}

/// Relays the registry's answers to the client, one per request forwarded, and records an
/// exchange for each.
fn relay_answers(
    mut from: impl BufRead,
    out: &mut Budgeted,
    pending: &Mutex<VecDeque<Pending>>,
    shared: &Shared,
) -> std::io::Result<()> {
    while let Some(answer) = read_answer(&mut from)? {
        out.send(&answer.bytes)?;
        // 1xx answers (100 Continue) come before the real one, with no body.
        if (100..200).contains(&answer.status) {
            continue;
        }
        let request = pending.lock().unwrap().pop_front();
        let bodiless = request.as_ref().is_some_and(|r| r.head_only)
            || answer.status == 204
            || answer.status == 304;
        let body = if bodiless {
            0
        } else if answer.chunked {
            relay_chunked(&mut from, out)?
        } else {
            relay_bytes(&mut from, out, answer.length.unwrap_or(u64::MAX))?
        };
        if let Some(r) = request {
            shared.exchanges.lock().unwrap().push(Exchange {
                request: r.request,
                range: r.range,
                status: answer.status,
                body,
            });
        }
    }
    Ok(())
}

/// Relays up to `limit` bytes (fewer at the end of the connection); returns how many.
fn relay_bytes(from: &mut impl BufRead, out: &mut Budgeted, limit: u64) -> std::io::Result<u64> {
    let mut done = 0u64;
    while done < limit {
        let buf = from.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf
            .len()
            .min((limit - done).min(usize::MAX as u64) as usize);
        out.send(&buf[..n])?;
        from.consume(n);
        done += n as u64;
    }
    Ok(done)
}

/// Relays a chunked body and its trailers; returns the bytes of its payload.
fn relay_chunked(from: &mut impl BufRead, out: &mut Budgeted) -> std::io::Result<u64> {
    let mut payload = 0u64;
    loop {
        let mut line = String::new();
        if from.read_line(&mut line)? == 0 {
            return Ok(payload);
        }
        out.send(line.as_bytes())?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        // The chunk and its CRLF.
        relay_bytes(from, out, size + 2)?;
        payload += size;
    }
    // Trailers, up to the empty line.
    loop {
        let mut line = String::new();
        if from.read_line(&mut line)? == 0 {
            return Ok(payload);
        }
        out.send(line.as_bytes())?;
        if line == "\r\n" {
            return Ok(payload);
        }
    }
}
