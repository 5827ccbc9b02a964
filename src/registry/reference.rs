//! Image references as docker and skopeo read them: `[docker://][DOMAIN/]NAME[:TAG][@DIGEST]`,
//! by the grammar of the distribution spec's reference package, with Docker Hub's
//! normalisation (no domain, `docker.io` or `index.docker.io` → the Hub's registry,
//! one-component names under `library/`).

use super::RegistryError;

/// Docker Hub's registry endpoint, where `docker.io/...` names are pulled from.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// Longest name (domain and repository) the grammar allows.
const MAX_NAME: usize = 255;

/// Why a text is not an image reference. The parts quoted are the text's own; the message
/// that quotes them ([`RegistryError::Reference`]) escapes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadReference {
    /// A digest without its algorithm.
    #[error("`{0}` is not a digest (ALGORITHM:ENCODED, such as sha256:<64 hex digits>)")]
    NotDigest(String),
    /// A digest algorithm outside the grammar.
    #[error("`{0}` is not a digest algorithm")]
    Algorithm(String),
    /// A digest whose encoding does not fit its algorithm.
    #[error("`{digest}` is not a {algorithm} digest{}", encoding_hint(.algorithm))]
    Encoding {
        /// The digest.
        digest: String,
        /// Its algorithm.
        algorithm: String,
    },
    /// A tag outside the grammar.
    #[error("a tag is 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`")]
    Tag,
    /// An IPv6 host without its `]`.
    #[error("an IPv6 host needs its closing `]`")]
    Ipv6Unclosed,
    /// Brackets around something that is not an IPv6 address.
    #[error("`{0}` is not an IPv6 address")]
    Ipv6(String),
    /// Something other than a port after an IPv6 host.
    #[error("only `:PORT` may follow an IPv6 host")]
    AfterIpv6,
    /// A host that is neither DNS labels nor an IPv4 address.
    #[error("`{0}` is not a host name or address")]
    Host(String),
    /// A port that is not 1 to 5 digits.
    #[error("`{0}` is not a port")]
    Port(String),
    /// A port of 0 or above 65535.
    #[error("port {0} is out of range")]
    PortRange(String),
    /// Capitals in the repository name.
    #[error("the repository name must be lowercase")]
    Uppercase,
    /// A repository name component outside the grammar.
    #[error("each part of the repository name is lowercase letters and digits, joined by `.`, `_`, `__` or dashes")]
    Component,
    /// A name longer than [`MAX_NAME`].
    #[error("the name is longer than 255 characters")]
    TooLong,
}

/// What the encoding of an `algorithm` digest must be, for [`BadReference::Encoding`].
fn encoding_hint(algorithm: &str) -> &'static str {
    match algorithm {
        "sha256" => " (64 lowercase hex digits)",
        "sha512" => " (128 lowercase hex digits)",
        _ => "",
    }
}

/// An image reference: registry host, repository, and tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` requests go to ([`DOCKER_HUB`] for Docker Hub's names).
    pub host: String,
    /// Repository path (`library/hello`).
    pub repository: String,
    /// What is fetched: the digest when one is given, else the tag, else `latest`.
    pub reference: String,
    /// Whether the text named a tag or a digest (else `latest` was assumed).
    pub explicit: bool,
}

impl Reference {
    /// The repository's full name, as signatures name it: `HOST[:PORT]/NAME`
    /// (`index.docker.io/library/hello` for Docker Hub's, as cosign writes it).
    pub fn repository_name(&self) -> String {
        let host = if self.host == DOCKER_HUB {
            "index.docker.io"
        } else {
            &self.host
        };
        format!("{host}/{}", self.repository)
    }

    /// Parses `[docker://][DOMAIN/]NAME[:TAG][@DIGEST]` (Docker Hub when there is no domain).
    pub fn parse(text: &str) -> Result<Reference, RegistryError> {
        // Escaped: a newline or a control character in the text must not break the line.
        let bad = |why: BadReference| RegistryError::Reference {
            text: text.escape_debug().to_string(),
            why,
        };
        let s = text.strip_prefix("docker://").unwrap_or(text);
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(bad)?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is a port).
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].find(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !is_tag(tag) {
                return Err(bad(BadReference::Tag));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), rest)
            }
            _ => (None, name),
        };
        let host = match domain {
            None | Some("docker.io") | Some("index.docker.io") | Some(DOCKER_HUB) => {
                DOCKER_HUB.to_owned()
            }
            Some(d) => {
                check_domain(d).map_err(bad)?;
                d.to_owned()
            }
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad(BadReference::Uppercase));
        }
        if !path.split('/').all(is_path_component) {
            return Err(bad(BadReference::Component));
        }
        let repository = if host == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        // The limit is on the normalised name, as docker counts it (Hub names as
        // `docker.io/...`), so that a name printed and read again is still within it.
        let domain_name = if host == DOCKER_HUB {
            "docker.io"
        } else {
            &host
        };
        if domain_name.len() + 1 + repository.len() > MAX_NAME {
            return Err(bad(BadReference::TooLong));
        }
        Ok(Reference {
            host,
            repository,
            reference: digest.or(tag).unwrap_or("latest").to_owned(),
            explicit: digest.is_some() || tag.is_some(),
        })
    }

    /// Whether the reference names a digest (else a tag).
    pub fn is_digest(&self) -> bool {
        self.reference.contains(':')
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.is_digest() { '@' } else { ':' };
        write!(
            f,
            "{}/{}{sep}{}",
            self.host, self.repository, self.reference
        )
    }
}

/// The image name as the user wrote it: no `docker://`, tag or digest (what a pulled image is
/// named by default, as docker names it).
pub fn name_as_written(written: &str) -> String {
    let s = written.strip_prefix("docker://").unwrap_or(written);
    let s = s.split('@').next().unwrap_or(s);
    match s.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name.to_owned(),
        _ => s.to_owned(),
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

/// One `/`-separated part of a repository name: lowercase letters and digits, joined by
/// `.`, `_`, `__` or one or more `-`.
fn is_path_component(part: &str) -> bool {
    let b = part.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// A registry domain: `host[:port]`, the host DNS labels (letters, digits, inner `-`), an
/// IPv4 address, or an IPv6 address in brackets; the port 1 to 5 digits.
fn check_domain(domain: &str) -> Result<(), BadReference> {
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or(BadReference::Ipv6Unclosed)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(BadReference::Ipv6(addr.to_owned()));
        }
        match after {
            "" => ("", None),
            p => (
                "",
                Some(p.strip_prefix(':').ok_or(BadReference::AfterIpv6)?),
            ),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    };
    if !host.is_empty() && !host.split('.').all(label) {
        return Err(BadReference::Host(host.to_owned()));
    }
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadReference::Port(port.to_owned()));
        }
        if port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535) {
            return Err(BadReference::PortRange(port.to_owned()));
        }
    }
    Ok(())
}

/// A digest as the distribution spec defines it: `algorithm:encoded`, the algorithm's
/// components lowercase letters and digits joined by `+`, `.`, `_` or `-`, the encoding
/// `[A-Za-z0-9=_-]+`; sha256 and sha512 encodings are lowercase hex of 64 and 128 digits.
pub fn check_digest(digest: &str) -> Result<(), BadReference> {
    let (algorithm, encoded) = digest
        .split_once(':')
        .ok_or_else(|| BadReference::NotDigest(digest.to_owned()))?;
    let component_ok = algorithm.split(|c| "+._-".contains(c)).all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if !component_ok {
        return Err(BadReference::Algorithm(algorithm.to_owned()));
    }
    let hex = |n: usize| {
        encoded.len() == n
            && encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = match algorithm {
        "sha256" => hex(64),
        "sha512" => hex(128),
        _ => {
            !encoded.is_empty()
                && encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(BadReference::Encoding {
            digest: digest.to_owned(),
            algorithm: algorithm.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Valid references and their normalised form (cases of docker's reference tests).
    #[test]
    fn references_parse_as_docker_reads_them() {
        let cases: &[(&str, &str)] = &[
            ("hello", "registry-1.docker.io/library/hello:latest"),
            (
                "docker.io/library/nginx",
                "registry-1.docker.io/library/nginx:latest",
            ),
            (
                "index.docker.io/library/nginx:1.25",
                "registry-1.docker.io/library/nginx:1.25",
            ),
            (
                "docker.io/nginx",
                "registry-1.docker.io/library/nginx:latest",
            ),
            (
                "docker://docker.io/user/app:v1",
                "registry-1.docker.io/user/app:v1",
            ),
            ("test_com", "registry-1.docker.io/library/test_com:latest"),
            ("test.com:tag", "registry-1.docker.io/library/test.com:tag"),
            (
                "test.com:5000",
                "registry-1.docker.io/library/test.com:5000",
            ),
            ("test.com/repo:tag", "test.com/repo:tag"),
            ("test:5000/repo", "test:5000/repo:latest"),
            ("test:5000/repo:tag", "test:5000/repo:tag"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app/x:v1", "localhost:5000/app/x:v1"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
            ("[::1]:5000/app:v1", "[::1]:5000/app:v1"),
            ("Example.COM/a/b", "Example.COM/a/b:latest"),
            (
                "registry-1.docker.io/x",
                "registry-1.docker.io/library/x:latest",
            ),
            ("a.b/x__y.z-w---v/q:_t", "a.b/x__y.z-w---v/q:_t"),
        ];
        for (text, normal) in cases {
            let r = Reference::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.to_string(), *normal, "{text}");
        }
        let r = Reference::parse(&format!("test:5000/repo:tag@{SHA}")).unwrap();
        assert_eq!(
            (r.reference.as_str(), r.explicit),
            (SHA, true),
            "the digest wins"
        );
        assert!(!Reference::parse("test:5000/repo").unwrap().explicit);
        // Found by the fuzz target: a Hub name within the limit as written, over it once
        // normalised, printed a reference that did not parse. The limit is on the
        // normalised name (`docker.io/library/…`).
        let within = "x".repeat(255 - "docker.io/library/".len());
        let r = Reference::parse(&within).unwrap();
        let again = Reference::parse(&r.to_string()).unwrap();
        assert_eq!((again.host, again.repository), (r.host, r.repository));
        assert!(Reference::parse(&format!("{within}x")).is_err());
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        assert!(Reference::parse(&format!("a.b/c@{sha512}")).is_ok());
        assert!(Reference::parse(
            "a.b/c@multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
        )
        .is_ok());
    }

    /// Invalid references, each refused with a reason.
    #[test]
    fn bad_references_are_refused() {
        let long = format!("a.b/{}", "a".repeat(252));
        let cases: &[&str] = &[
            "",
            "\n",
            "a.b/x:\n",
            "a.b/x@sha256:\u{1b}[2J",
            ":justtag",
            "@sha256:ffff",
            "host/x@1",
            "host/x@sha256:abc",
            &format!("host/x@sha256:{}", "A".repeat(64)),
            "host/x@md5:",
            "!127.0.0.1:0000/x",
            "127.0.0.1:0/x",
            "127.0.0.1:99999/x",
            "host:port/x",
            "-host.com/x",
            "[::1/x",
            "[zz]:5000/x",
            "a.b/x:bad tag",
            "a.b/x:-tag",
            &format!("a.b/x:{}", "t".repeat(129)),
            "Uppercase:tag",
            "a.b/Upper/x",
            "a.b/../x",
            "a.b/x/..",
            "a.b/x//y",
            "a.b/x/",
            "a.b/x-",
            "a.b/.x",
            "a.b/x..y",
            "a.b/x___y",
            "a.b/x_-y",
            &long,
        ];
        for text in cases {
            let e = Reference::parse(text).expect_err(text);
            let message = e.to_string();
            assert!(
                message.contains("is not an image reference") && !message.contains('\n'),
                "{text}: {message}"
            );
        }
    }

    /// Parsing what a reference prints gives it back, for random texts from the grammar's
    /// alphabet (a deterministic fuzz: `cargo fuzz` needs nightly; this runs everywhere).
    #[test]
    fn parse_print_parse_round_trips() {
        let alphabet = b"abcXYZ019-._:/@[]!";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..200_000 {
            let len = (next() % 24) as usize;
            let mut text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect();
            if next() % 4 == 0 {
                text.push_str(&format!("@{SHA}"));
            }
            if let Ok(r) = Reference::parse(&text) {
                parsed += 1;
                let again = Reference::parse(&r.to_string())
                    .unwrap_or_else(|e| panic!("{text} printed as {r} does not parse: {e}"));
                assert_eq!(
                    (&again.host, &again.repository, &again.reference),
                    (&r.host, &r.repository, &r.reference),
                    "{text}"
                );
                assert!(!r.repository.contains("..") && !r.repository.starts_with('/'));
            }
        }
        assert!(parsed > 1000, "only {parsed} random texts parsed");
    }
}
