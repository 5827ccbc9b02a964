//! The structured attributes (`__structuredAttrs = true`) Nix hands a builder.

use crate::file_error::FileError;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
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
    #[error(transparent)]
    Read(#[from] FileError),
    /// The file is not JSON, or an attribute not of the type a builder expects.
    #[error("`{path}`: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the JSON reader found, naming the attribute.
        source: serde_json::Error,
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

/// Deserialises a `#[serde(flatten)]` field so that an error names the attribute at fault:
/// serde reads a flattened field from a buffered copy of the attributes, out of sight of the
/// path [`Attrs::parse`] follows, so a wrong `uid` in a flattened ownership stamp would read
/// `invalid type: string "root", expected u64` and name nothing. Use as
/// `#[serde(flatten, deserialize_with = "crate::store::attrs::named_errors")]`.
pub fn named_errors<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserialize_naming(deserializer)
}

/// `T` from `deserializer`, an error prefixed with the path of the value at fault
/// (`contents[1]: ...`); at the top level, or within a flattened field that does not use
/// [`named_errors`], the path is unknown and the error is serde's alone.
fn deserialize_naming<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match path.as_str() {
            "." => inner,
            _ => D::Error::custom(format!("{path}: {inner}")),
        }
    })
}

impl Attrs {
    /// Reads the attributes file found by [`locate`].
    pub fn load(explicit: Option<&Path>) -> Result<Attrs, AttrsError> {
        let path = locate(explicit)?;
        let bytes = std::fs::read(&path).map_err(FileError::on("read", &path))?;
        let value = serde_json::from_slice(&bytes).map_err(|source| AttrsError::Json {
            path: path.clone(),
            source,
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

    /// Deserialises the attributes as `T` (unknown attributes are ignored). An error names
    /// the attribute at fault (`uid: invalid type: ...`): serde's own message names only
    /// the type, which leaves the user to guess which of a builder's arguments was wrong.
    /// Fields of `T` that are `#[serde(flatten)]` need [`named_errors`] for this.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, AttrsError> {
        deserialize_naming(&self.value).map_err(|source| AttrsError::Json {
            path: self.path.clone(),
            source,
        })
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

    /// Attributes of the wrong type, as a caller bypassing the Nix checks passes them.
    const WRONG_TYPES: &str = r#"{"uid": "root", "gid": 0, "uname": "root", "gname": "root",
        "mtime": "1970-01-01T00:00:01Z", "contents": ["/nix/store/x-a", 5], "extraCommands": ["ls"]}"#;

    fn wrong_types() -> Attrs {
        Attrs {
            path: PathBuf::from("/build/.attrs.json"),
            value: serde_json::from_str(WRONG_TYPES).unwrap(),
        }
    }

    #[test]
    fn a_type_error_names_the_attribute() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Owner {
            uid: u64,
        }
        let err = wrong_types().parse::<Owner>().unwrap_err().to_string();
        assert_eq!(
            err,
            r#"`/build/.attrs.json`: uid: invalid type: string "root", expected u64"#
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        #[serde(rename_all = "camelCase")]
        struct Contents {
            contents: Vec<PathBuf>,
        }
        let err = wrong_types().parse::<Contents>().unwrap_err().to_string();
        assert_eq!(
            err,
            "`/build/.attrs.json`: contents[1]: invalid type: integer `5`, expected path string"
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        #[serde(rename_all = "camelCase")]
        struct Commands {
            extra_commands: String,
        }
        let err = wrong_types().parse::<Commands>().unwrap_err().to_string();
        assert_eq!(
            err,
            "`/build/.attrs.json`: extraCommands: invalid type: sequence, expected a string"
        );
    }

    #[test]
    fn a_type_error_in_a_flattened_struct_names_the_attribute() {
        // As the builders' settings flatten the ownership stamp (`tar::header::Stamp`).
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Stamp {
            uid: u64,
            gid: u64,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Settings {
            #[serde(flatten, deserialize_with = "named_errors")]
            stamp: Stamp,
        }
        let err = wrong_types().parse::<Settings>().unwrap_err().to_string();
        assert_eq!(
            err,
            r#"`/build/.attrs.json`: uid: invalid type: string "root", expected u64"#
        );
        // Flattened twice, as the plan's attributes hold the image settings, which hold
        // the stamp; a wrong field beside the inner one is named too.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        #[serde(rename_all = "camelCase")]
        struct Plan {
            #[serde(flatten, deserialize_with = "named_errors")]
            settings: Settings,
            contents: Vec<PathBuf>,
        }
        // (serde reads the fields of its own first, the flattened ones after.)
        let err = wrong_types().parse::<Plan>().unwrap_err().to_string();
        assert_eq!(
            err,
            "`/build/.attrs.json`: contents[1]: invalid type: integer `5`, expected path string"
        );
        let mut fixed = wrong_types();
        fixed.value["contents"] = serde_json::json!([]);
        let err = fixed.parse::<Plan>().unwrap_err().to_string();
        assert_eq!(
            err,
            r#"`/build/.attrs.json`: uid: invalid type: string "root", expected u64"#
        );
        fixed.value["uid"] = 0.into();
        // A missing attribute was always named by serde.
        fixed.value.as_object_mut().unwrap().remove("gid");
        let err = fixed.parse::<Plan>().unwrap_err().to_string();
        assert_eq!(err, "`/build/.attrs.json`: missing field `gid`");
    }
}
