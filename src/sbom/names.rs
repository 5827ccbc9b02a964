//! A store path's package name and version, read from its store name the way Nix's
//! `builtins.parseDrvName` reads a derivation name, and the package URL made of them.

/// Output names nixpkgs gives the outputs of multi-output packages, which end a store name
/// (`openssl-3.0.13-bin`) and are no part of the version.
const OUTPUTS: &[&str] = &[
    "bin", "dev", "out", "lib", "man", "doc", "info", "debug", "static", "devdoc", "py", "data",
];

/// What a store name says of its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageName {
    /// The name: everything before the first `-` that is followed by a digit.
    pub name: String,
    /// The version (empty when the store name has none).
    pub version: String,
    /// The output the path is, when the store name ends with a known output name.
    pub output: Option<String>,
}

impl PackageName {
    /// Parses the store name of `path` (`/nix/store/<hash>-hello-2.12` gives `hello`, `2.12`).
    pub fn of_store_path(path: &str) -> PackageName {
        let base = path.rsplit('/').next().unwrap_or(path);
        let store_name = base.split_once('-').map_or(base, |(_, name)| name);
        PackageName::parse(store_name)
    }

    /// Parses a store name without its hash.
    pub fn parse(store_name: &str) -> PackageName {
        let split = store_name
            .char_indices()
            .find(|&(i, c)| {
                c == '-'
                    && store_name[i + 1..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_ascii_digit())
            })
            .map(|(i, _)| i);
        let (name, version) = match split {
            Some(i) => (&store_name[..i], &store_name[i + 1..]),
            None => (store_name, ""),
        };
        let (version, output) = match version.rsplit_once('-') {
            Some((v, o)) if OUTPUTS.contains(&o) => (v, Some(o.to_owned())),
            _ => (version, None),
        };
        let (name, output) = match (output, name.rsplit_once('-')) {
            (None, Some((n, o))) if version.is_empty() && OUTPUTS.contains(&o) => {
                (n, Some(o.to_owned()))
            }
            (output, _) => (name, output),
        };
        PackageName {
            name: name.to_owned(),
            version: version.to_owned(),
            output,
        }
    }

    /// `pkg:nix/NAME@VERSION`, when there is a version to pin (a package URL without one
    /// names no release). Characters outside the unreserved set are percent-encoded.
    pub fn purl(&self) -> Option<String> {
        if self.version.is_empty() || self.name.is_empty() {
            return None;
        }
        Some(format!(
            "pkg:nix/{}@{}",
            percent_encode(&self.name),
            percent_encode(&self.version)
        ))
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(store_name: &str) -> (String, String, Option<String>) {
        let p = PackageName::parse(store_name);
        (p.name, p.version, p.output)
    }

    #[test]
    fn names_and_versions_as_parse_drv_name_reads_them() {
        let cases = [
            ("hello-2.12", "hello", "2.12", None),
            ("glibc-2.38-27", "glibc", "2.38-27", None),
            (
                "bash-interactive-5.2p26",
                "bash-interactive",
                "5.2p26",
                None,
            ),
            (
                "python3.11-requests-2.31.0",
                "python3.11-requests",
                "2.31.0",
                None,
            ),
            ("openssl-3.0.13-bin", "openssl", "3.0.13", Some("bin")),
            ("gcc-13.2.0-lib", "gcc", "13.2.0", Some("lib")),
            ("toolbox", "toolbox", "", None),
            ("source", "source", "", None),
            ("tzdata-2024a", "tzdata", "2024a", None),
            ("nss-cacert-3.98", "nss-cacert", "3.98", None),
            ("libunistring-1.1-dev", "libunistring", "1.1", Some("dev")),
            ("hello-app-0.3", "hello-app", "0.3", None),
            ("config-man", "config", "", Some("man")),
            ("x-", "x-", "", None),
            ("", "", "", None),
        ];
        for (store_name, name, version, output) in cases {
            assert_eq!(
                parsed(store_name),
                (name.into(), version.into(), output.map(str::to_owned)),
                "{store_name}"
            );
        }
        let p = PackageName::of_store_path("/nix/store/abc123-hello-2.12");
        assert_eq!((p.name.as_str(), p.version.as_str()), ("hello", "2.12"));
    }

    #[test]
    fn purls_pin_a_version_and_encode_odd_characters() {
        assert_eq!(
            PackageName::parse("hello-2.12").purl().as_deref(),
            Some("pkg:nix/hello@2.12")
        );
        assert_eq!(
            PackageName::parse("gtk+3-3.24.41").purl().as_deref(),
            Some("pkg:nix/gtk%2B3@3.24.41")
        );
        assert_eq!(PackageName::parse("toolbox").purl(), None);
    }
}
