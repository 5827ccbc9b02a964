//! A loopback proxy in front of a registry that misbehaves on cue: answers 503 with a
//! `Retry-After`, resets a connection in the middle of a request's body or of an answer,
//! or stalls. Requests are told apart by their first line (ureq sends one at a time per
//! connection, so an injected answer never lands in the middle of another).

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
}

/// A rule: requests whose first line contains `pattern` get `fault`, `times` times.
#[derive(Clone, Debug)]
pub struct Rule {
    pub pattern: &'static str,
    pub fault: Fault,
    pub times: usize,
}

/// The proxy; stops accepting when dropped (connections under way finish).
pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// Faults injected so far, as `pattern fault` lines.
    pub injected: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// A proxy forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Result<FaultProxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let host = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let injected: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, i, up) = (
            Arc::clone(&rules),
            Arc::clone(&injected),
            upstream.to_owned(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (r, i, up) = (Arc::clone(&r), Arc::clone(&i), up.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &up, &r, &i);
                });
            }
        });
        Ok(FaultProxy {
            host,
            rules,
            injected,
        })
    }

    /// Replaces the rules.
    pub fn set(&self, rules: Vec<Rule>) {
        *self.rules.lock().unwrap() = rules;
        self.injected.lock().unwrap().clear();
    }

    /// The faults injected since the rules were set.
    pub fn injected(&self) -> Vec<String> {
        self.injected.lock().unwrap().clone()
    }
}

/// The fault the first matching rule with tries left gives `line`, counting it.
fn fault_for(line: &str, rules: &Mutex<Vec<Rule>>, injected: &Mutex<Vec<String>>) -> Option<Fault> {
    let mut rules = rules.lock().unwrap();
    let rule = rules
        .iter_mut()
        .find(|r| r.times > 0 && line.contains(r.pattern))?;
    rule.times -= 1;
    injected
        .lock()
        .unwrap()
        .push(format!("{} {:?}", line.trim(), rule.fault));
    Some(rule.fault.clone())
}

/// Cuts a connection: shut both ways; once every handle is dropped with bytes unread, the
/// kernel answers the peer's next bytes with a reset.
fn reset(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Both);
}

/// Relays one client connection, request by request.
fn serve(
    client: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    injected: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    // Bytes of answer still allowed through before a reset (u64::MAX: no limit).
    let answer_budget = Arc::new(AtomicU64::new(u64::MAX));
    {
        let (mut from, mut to) = (server.try_clone()?, client.try_clone()?);
        let budget = Arc::clone(&answer_budget);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let left = budget.load(Ordering::SeqCst);
                if (n as u64) > left {
                    let _ = to.write_all(&buf[..left as usize]);
                    reset(&to);
                    reset(&from);
                    break;
                }
                if left != u64::MAX {
                    budget.fetch_sub(n as u64, Ordering::SeqCst);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
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
    loop {
        let mut head = Vec::new();
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let first = line.clone();
        head.extend_from_slice(line.as_bytes());
        let mut length = 0u64;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            head.extend_from_slice(line.as_bytes());
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = (&mut reader).take(length);
        let refusal = |status: &str, extra: &str, text: &str| {
            format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
        };
        let fault = fault_for(&first, rules, injected);
        let answer = match &fault {
            Some(Fault::Unavailable(text)) => Some(refusal(
                "503 Service Unavailable",
                "Retry-After: 1\r\n",
                text,
            )),
            Some(Fault::Refuse(text)) => Some(refusal("400 Bad Request", "", text)),
            _ => None,
        };
        if let Some(answer) = answer {
            std::io::copy(&mut body, &mut std::io::sink())?;
            let mut c = client.try_clone()?;
            c.write_all(answer.as_bytes())?;
            reset(&server);
            let _ = c.shutdown(Shutdown::Both);
            return Ok(());
        }
        match fault {
            Some(Fault::ResetInBody(after)) => {
                to_server.write_all(&head)?;
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
            _ => {}
        }
        to_server.write_all(&head)?;
        std::io::copy(&mut body, &mut to_server)?;
    }
    let _ = to_server.shutdown(Shutdown::Write);
    Ok(())
}
