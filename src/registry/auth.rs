//! Authentication: basic credentials from the containers-auth file or Docker's config, and
//! bearer tokens from the realm a registry's `WWW-Authenticate` challenge names. Credentials
//! are kept encoded and never printed.

use super::transport::transport_message;
use base64::Engine as _;
use std::path::PathBuf;

/// What a client authenticates with, and what it learnt so far.
#[derive(Clone, Default)]
pub(super) struct Auth {
    /// base64 `user:password`, when the auth files have some for the host (or its
    /// credential helper gave some).
    basic: Option<String>,
    /// An identity token a credential helper gave (user `<token>`): exchanged at the realm
    /// for a bearer token, as docker does.
    identity_token: Option<String>,
    /// The file they came from.
    source: Option<PathBuf>,
    /// The credential helper the file names for the host, not asked yet.
    helper: Option<Helper>,
    /// A bearer token the registry's realm gave.
    token: Option<String>,
    /// The registry asked for basic credentials: send them with every request.
    send_basic: bool,
}

/// Why a challenge could not be answered.
pub(super) enum Refusal {
    /// No credentials fit, or the registry refused them.
    Unauthorized,
    /// The realm could not be reached.
    Unreachable(String),
    /// Credentials could not be had or may not be sent: a credential helper failed, or the
    /// registry or its realm speaks plain HTTP from another host.
    Credentials(String),
}

/// A `docker-credential-NAME` program and the server it is asked about.
#[derive(Clone, Debug)]
struct Helper {
    program: String,
    server: String,
}

impl Auth {
    /// The credentials the auth files hold for `host`.
    pub(super) fn for_host(host: &str) -> Auth {
        match credentials(host) {
            Some((Found::Basic(basic), source)) => Auth {
                basic: Some(basic),
                source: Some(source),
                ..Auth::default()
            },
            Some((Found::Helper(helper), source)) => Auth {
                helper: Some(helper),
                source: Some(source),
                ..Auth::default()
            },
            None => Auth::default(),
        }
    }

    /// Asks the credential helper, once, when the file named one.
    fn ask_helper(&mut self) -> Result<(), Refusal> {
        let Some(helper) = self.helper.take() else {
            return Ok(());
        };
        match run_helper(&helper)? {
            Some((user, secret)) if user == "<token>" => self.identity_token = Some(secret),
            Some((user, secret)) => {
                self.basic = Some(
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")),
                );
            }
            None => {}
        }
        Ok(())
    }

    /// The `Authorization` header requests carry now, if any.
    pub(super) fn header(&self) -> Option<String> {
        match (&self.token, &self.basic, self.send_basic) {
            (Some(token), _, _) => Some(format!("Bearer {token}")),
            (None, Some(basic), true) => Some(format!("Basic {basic}")),
            _ => None,
        }
    }

    /// Where credentials were looked for, for a refusal's message.
    pub(super) fn hint(&self) -> String {
        match &self.source {
            Some(p) if self.basic.is_none() && self.identity_token.is_none() => format!(
                "; {} names a credential helper for it, which had none",
                p.display()
            ),
            Some(p) => format!("; credentials for it were taken from {}", p.display()),
            None => "; no credentials for it in REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json".to_owned(),
        }
    }

    /// Answers a `WWW-Authenticate` challenge: basic credentials, or a bearer token from the
    /// realm it names (asked with the basic credentials, when there are some) for
    /// `repository`.
    /// Nothing is sent in clear text to another host: not to the registry when
    /// `plain_remote`, not to a realm on plain HTTP unless it is this machine.
    pub(super) fn answer(
        &mut self,
        agent: &ureq::Agent,
        challenge: &str,
        repository: &str,
        plain_remote: bool,
    ) -> Result<(), Refusal> {
        self.ask_helper()?;
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let clear_text = |to: &str| {
            Refusal::Credentials(format!(
                "{to} speaks plain HTTP and is not this machine: credentials are not sent in clear text (use HTTPS)"
            ))
        };
        if scheme.eq_ignore_ascii_case("basic") {
            if plain_remote && self.basic.is_some() {
                return Err(clear_text("the registry"));
            }
            return match self.basic {
                Some(_) if !self.send_basic => {
                    self.send_basic = true;
                    Ok(())
                }
                _ => Err(Refusal::Unauthorized),
            };
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Refusal::Unauthorized);
        }
        let params = challenge_params(params);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let realm = get("realm").ok_or(Refusal::Unauthorized)?;
        let has_credentials = self.basic.is_some() || self.identity_token.is_some();
        if has_credentials && (plain_remote || realm_is_plain_remote(realm)) {
            return Err(clear_text(&format!("the token realm {realm}")));
        }
        let scope = get("scope")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("repository:{repository}:pull,push"));
        let result = self.request_token(agent, realm, get("service"), &scope);
        let answer = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, _)) => return Err(Refusal::Unauthorized),
            Err(ureq::Error::Transport(t)) => {
                return Err(Refusal::Unreachable(format!(
                    "token from {realm}: {}",
                    transport_message(&t, realm)
                )))
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
            .ok_or(Refusal::Unauthorized)?;
        self.token = Some(token.to_owned());
        Ok(())
    }

    /// Asks `realm` for a token for `scope`: with the identity token a credential helper
    /// gave, as OAuth 2's refresh-token grant (as docker exchanges one); else a GET, with
    /// the basic credentials when there are some.
    // ureq's own result, handed straight to its caller.
    #[allow(clippy::result_large_err)]
    fn request_token(
        &self,
        agent: &ureq::Agent,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<ureq::Response, ureq::Error> {
        if let Some(refresh) = &self.identity_token {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", "strata"),
                ("scope", scope),
            ];
            if let Some(service) = service {
                form.push(("service", service));
            }
            return agent.post(realm).send_form(&form);
        }
        let mut req = agent.get(realm);
        if let Some(service) = service {
            req = req.query("service", service);
        }
        req = req.query("scope", scope);
        if let Some(basic) = &self.basic {
            req = req.set("Authorization", &format!("Basic {basic}"));
        }
        req.call()
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

/// Whether a token realm is a plain-HTTP URL to another host.
fn realm_is_plain_remote(realm: &str) -> bool {
    let Some(rest) = realm.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    !super::transport::is_loopback(host)
}

/// Where a host's credentials are.
enum Found {
    /// base64 `user:password`.
    Basic(String),
    /// To be asked of a credential helper.
    Helper(Helper),
}

/// The credentials the auth files hold for `host` (or the credential helper they name),
/// and the file. As docker reads its config: `credHelpers` for the host first, then
/// `credsStore`, then `auths`; files in the order containers tools read them.
fn credentials(host: &str) -> Option<(Found, PathBuf)> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(d).join("containers/auth.json"));
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        files.push(PathBuf::from(d).join("config.json"));
    } else if let Some(h) = std::env::var_os("HOME") {
        files.push(PathBuf::from(h).join(".docker/config.json"));
    }
    let hub = host == "registry-1.docker.io";
    let names = [
        host.to_owned(),
        format!("https://{host}"),
        format!("http://{host}"),
        if hub {
            "https://index.docker.io/v1/".to_owned()
        } else {
            host.to_owned()
        },
    ];
    // Docker's helpers store the Hub under its v1 URL, other hosts under their name.
    let server = if hub {
        "https://index.docker.io/v1/".to_owned()
    } else {
        host.to_owned()
    };
    for file in files {
        let Ok(text) = std::fs::read(&file) else {
            continue;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let helper = names
            .iter()
            .find_map(|n| json["credHelpers"][n].as_str())
            .or_else(|| json["credsStore"].as_str())
            .filter(|n| !n.is_empty());
        if let Some(name) = helper {
            let found = Found::Helper(Helper {
                program: format!("docker-credential-{name}"),
                server: server.clone(),
            });
            return Some((found, file));
        }
        for name in &names {
            if let Some(auth) = json["auths"][name]["auth"].as_str() {
                // Checked to be base64 of user:password, kept encoded.
                let ok = base64::engine::general_purpose::STANDARD
                    .decode(auth)
                    .is_ok_and(|d| d.contains(&b':'));
                if ok {
                    return Some((Found::Basic(auth.to_owned()), file));
                }
            }
        }
    }
    None
}

/// Most bytes read from a credential helper.
const MAX_HELPER_ANSWER: u64 = 1 << 20;

/// Runs `docker-credential-NAME get` with the server on its input, as docker does: its
/// `Username` and `Secret`, or `None` when it has no credentials for the server.
fn run_helper(helper: &Helper) -> Result<Option<(String, String)>, Refusal> {
    use std::io::{Read as _, Write as _};
    use std::process::{Command, Stdio};
    let failed = |why: String| {
        Refusal::Credentials(format!(
            "credential helper `{} get` for {}: {why}",
            helper.program, helper.server
        ))
    };
    let mut child = Command::new(&helper.program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => failed("not found on PATH".to_owned()),
            _ => failed(e.to_string()),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(helper.server.as_bytes());
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(MAX_HELPER_ANSWER).read_to_end(&mut out);
    }
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(MAX_HELPER_ANSWER).read_to_end(&mut err);
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    let said = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    if !status.success() {
        let message = said(&out) + &said(&err);
        // The helpers' protocol: this text means "nothing stored", not a failure.
        if message.contains("credentials not found") {
            return Ok(None);
        }
        let message: String = message.chars().take(300).collect();
        return Err(failed(format!("{status}: {message}")));
    }
    let json: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| failed(format!("its answer is not JSON ({e})")))?;
    let user = json["Username"].as_str().unwrap_or_default();
    let secret = json["Secret"].as_str().unwrap_or_default();
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some((user.to_owned(), secret.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_split_into_parameters() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull,push".into()));
    }

    #[test]
    fn credentials_never_go_to_a_plain_http_realm_elsewhere() {
        assert!(realm_is_plain_remote("http://auth.example/token"));
        assert!(realm_is_plain_remote("http://127.example.net:80/token"));
        assert!(!realm_is_plain_remote("http://127.0.0.1:5000/token"));
        assert!(!realm_is_plain_remote("http://localhost/token?x=1"));
        assert!(!realm_is_plain_remote("https://auth.example/token"));
        let mut auth = Auth {
            basic: Some("dTpw".into()),
            ..Auth::default()
        };
        let agent = ureq::agent();
        let refused = auth.answer(
            &agent,
            r#"Bearer realm="http://auth.example/token""#,
            "a",
            false,
        );
        assert!(matches!(refused, Err(Refusal::Credentials(m)) if m.contains("clear text")));
        let refused = auth.answer(&agent, r#"Basic realm="r""#, "a", true);
        assert!(matches!(refused, Err(Refusal::Credentials(m)) if m.contains("clear text")));
        assert!(!auth.send_basic);
    }

    #[test]
    fn credential_helpers_are_run_and_their_failures_named() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(&path)
                .status()
                .unwrap();
            Helper {
                program: path.display().to_string(),
                server: "r.example:5000".into(),
            }
        };
        let good = script(
            "good",
            r#"read s; echo "{\"ServerURL\":\"$s\",\"Username\":\"u\",\"Secret\":\"p\"}""#,
        );
        assert_eq!(
            run_helper(&good).ok().flatten(),
            Some(("u".into(), "p".into()))
        );
        let none = script(
            "none",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        assert!(matches!(run_helper(&none), Ok(None)));
        let bad = script("bad", "echo locked >&2; exit 2");
        let Err(Refusal::Credentials(message)) = run_helper(&bad) else {
            panic!("a failing helper passed");
        };
        assert!(
            message.contains("bad get` for r.example:5000") && message.contains("locked"),
            "{message}"
        );
        let missing = Helper {
            program: "docker-credential-strata-nonexistent".into(),
            server: "r".into(),
        };
        let Err(Refusal::Credentials(message)) = run_helper(&missing) else {
            panic!("a missing helper passed");
        };
        assert!(message.contains("not found on PATH"), "{message}");
    }
}
