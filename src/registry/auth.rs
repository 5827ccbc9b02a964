//! Authentication: basic credentials from the containers-auth file or Docker's config, and
//! bearer tokens from the realm a registry's `WWW-Authenticate` challenge names. Credentials
//! are kept encoded and never printed.

use super::transport::transport_message;
use base64::Engine as _;
use std::path::PathBuf;

/// What a client authenticates with, and what it learnt so far.
#[derive(Clone, Default)]
pub(super) struct Auth {
    /// base64 `user:password`, when the auth files have some for the host.
    basic: Option<String>,
    /// The file they came from.
    source: Option<PathBuf>,
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
}

impl Auth {
    /// The credentials the auth files hold for `host`.
    pub(super) fn for_host(host: &str) -> Auth {
        match credentials(host) {
            Some((basic, source)) => Auth {
                basic: Some(basic),
                source: Some(source),
                ..Auth::default()
            },
            None => Auth::default(),
        }
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
            Some(p) => format!("; credentials for it were taken from {}", p.display()),
            None => "; no credentials for it in REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json".to_owned(),
        }
    }

    /// Answers a `WWW-Authenticate` challenge: basic credentials, or a bearer token from the
    /// realm it names (asked with the basic credentials, when there are some) for
    /// `repository`.
    pub(super) fn answer(
        &mut self,
        agent: &ureq::Agent,
        challenge: &str,
        repository: &str,
    ) -> Result<(), Refusal> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
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
        let mut req = agent.get(realm);
        if let Some(service) = get("service") {
            req = req.query("service", service);
        }
        let scope = get("scope")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("repository:{repository}:pull,push"));
        req = req.query("scope", &scope);
        if let Some(basic) = &self.basic {
            req = req.set("Authorization", &format!("Basic {basic}"));
        }
        let answer = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, _)) => return Err(Refusal::Unauthorized),
            Err(ureq::Error::Transport(t)) => {
                return Err(Refusal::Unreachable(format!(
                    "token from {realm}: {}",
                    transport_message(&t)
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
    fn challenges_are_split_into_parameters() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull,push".into()));
    }
}
