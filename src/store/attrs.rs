//! The structured attributes (`__structuredAttrs = true`) Nix hands a builder.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Name of the attributes file in the build directory.
const ATTRS_FILE: &str = ".attrs.json";

/// Why the attributes could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttrsError {
    /// No attributes file could be found.
    #[error("no structured attributes: NIX_ATTRS_JSON_FILE is not set and there is no {ATTRS_FILE} in the build directory (run as a Nix builder with __structuredAttrs = true, or pass --attrs FILE)")]
    NotFound,
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not what a builder expects.
    #[error("`{path}`: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the attribute.
        message: String,
    },
}

/// The parsed attributes file.
#[derive(Debug, Clone)]
pub struct Attrs {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents.
    pub value: Value,
}

/// Finds the attributes file: `explicit` when given, else `$NIX_ATTRS_JSON_FILE`, else
/// `.attrs.json` in `$NIX_BUILD_TOP` or the working directory.
///
/// Nix 2.8 with the sandbox on sets `NIX_ATTRS_JSON_FILE` to the path outside the sandbox,
/// which does not exist inside it; the file is then found in the build directory.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, AttrsError> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("NIX_ATTRS_JSON_FILE") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(top) = std::env::var_os("NIX_BUILD_TOP") {
        candidates.push(Path::new(&top).join(ATTRS_FILE));
    }
    candidates.push(PathBuf::from(ATTRS_FILE));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(AttrsError::NotFound)
}

/// The build directory (`NIX_BUILD_TOP`), or the temporary directory outside Nix: where a
/// builder keeps scratch files.
pub fn build_dir() -> PathBuf {
    std::env::var_os("NIX_BUILD_TOP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

impl Attrs {
    /// Reads the attributes file found by [`locate`].
    pub fn load(explicit: Option<&Path>) -> Result<Attrs, AttrsError> {
        let path = locate(explicit)?;
        let bytes = std::fs::read(&path).map_err(|source| AttrsError::Read {
            path: path.clone(),
            source,
        })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| AttrsError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Attrs { path, value })
    }

    /// The path of output `name` (usually `out`).
    pub fn output(&self, name: &str) -> Result<PathBuf, AttrsError> {
        self.value
            .get("outputs")
            .and_then(|o| o.get(name))
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| self.malformed(format!("no path for output `{name}` in `outputs`")))
    }

    /// Deserialises the attributes as `T` (unknown attributes are ignored).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, AttrsError> {
        serde_json::from_value(self.value.clone()).map_err(|e| self.malformed(e.to_string()))
    }

    fn malformed(&self, message: String) -> AttrsError {
        AttrsError::Malformed {
            path: self.path.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".attrs.json");
        std::fs::write(
            &file,
            br#"{"outputs": {"out": "/nix/store/x-out"}, "text": "hi"}"#,
        )
        .unwrap();
        let attrs = Attrs::load(Some(&file)).unwrap();
        assert_eq!(
            attrs.output("out").unwrap(),
            PathBuf::from("/nix/store/x-out")
        );
        assert!(attrs
            .output("dev")
            .unwrap_err()
            .to_string()
            .contains("`dev`"));
        #[derive(serde::Deserialize)]
        struct T {
            text: String,
        }
        assert_eq!(attrs.parse::<T>().unwrap().text, "hi");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Missing {
            nope: String,
        }
        let err = attrs.parse::<Missing>().unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
