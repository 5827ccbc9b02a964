//! Image references as the registry commands take them: `[docker://]HOST[:PORT]/NAME[:TAG|@DIGEST]`.

use super::RegistryError;

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
}
