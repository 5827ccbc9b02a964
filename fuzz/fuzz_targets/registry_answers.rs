//! Fuzzes what a registry answers to a pull: the manifest or index under the tag, the
//! manifest an index names, the blobs, an authentication challenge and the token its realm
//! gives, served by a loopback server from the fuzzer's bytes (parts split by `\n--\n`).
//! Any answers give an archive or a one-line error: no panic, no hang, no unbounded memory
//! (`cargo +nightly fuzz run registry_answers corpus/registry_answers seeds/registry_answers
//! -- -max_len=4096`; the seeds are a manifest, an index, a bearer and a basic challenge).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use strata::progress::Progress;
use strata::registry::client::{Client, Connection, TlsOptions};
use strata::registry::pull::{pull, Wanted};
use strata::registry::reference::Reference;

/// The answers of the current input: top manifest, child manifest, blob, challenge, token.
static ANSWERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// `127.0.0.1:PORT` of the server, started once.
fn server() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let realm = format!("http://{host}/token");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut authorized = false;
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    authorized |= header.to_ascii_lowercase().starts_with("authorization:");
                    header.clear();
                }
                let answers = ANSWERS.lock().unwrap().clone();
                let part = |i: usize| answers.get(i).cloned().unwrap_or_default();
                let challenge: String = String::from_utf8_lossy(&part(3))
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                let (status, extra, body) = if path.starts_with("/token") {
                    (200, String::new(), part(4))
                } else if !challenge.is_empty() && !authorized {
                    let header = challenge.replace("REALM", &realm);
                    (401, format!("WWW-Authenticate: {header}\r\n"), Vec::new())
                } else if path.contains("/manifests/sha256:") {
                    (200, String::new(), part(1))
                } else if path.contains("/manifests/") {
                    (200, String::new(), part(0))
                } else if path.contains("/blobs/") {
                    (200, String::new(), part(2))
                } else {
                    (404, String::new(), Vec::new())
                };
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            }
        });
        host
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(4).position(|w| w == b"\n--\n") {
        parts.push(rest[..at].to_vec());
        rest = &rest[at + 4..];
    }
    parts.push(rest.to_vec());
    *ANSWERS.lock().unwrap() = parts;
    let host = server();
    let reference = Reference::parse(&format!("{host}/app:t")).unwrap();
    let mut connection = Connection::new(TlsOptions {
        plain_http: true,
        ..TlsOptions::default()
    });
    connection.read = Duration::from_secs(2);
    connection.attempts = 1;
    let mut client = Client::new(&reference, &connection).unwrap();
    let wanted = Wanted {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    let mut out = Vec::new();
    let result = pull(&mut client, "t", &wanted, "app:t", &mut out, &|_, _| {
        Progress::quiet()
    });
    if let Err(e) = result {
        assert!(!e.to_string().contains('\n'), "{e}");
    }
    assert!(out.len() <= data.len() * 4 + (1 << 20));
});
