//! The closure Nix hands a builder through `exportReferencesGraph`: every store path with its
//! references and NAR size.
//!
//! Accepted shapes, so the same reader serves the Nix builder and a user running the helper by
//! hand:
//! - a JSON array of `{path, references, narSize, narHash?}` (what `exportReferencesGraph` and
//!   Nix 2.8's `nix path-info --json --recursive` write),
//! - a JSON object keyed by store path with the same fields as values (newer `nix path-info`),
//! - a structured-attributes file (`.attrs.json`): every graph its `exportReferencesGraph`
//!   names is read and merged.

use crate::file_error::FileError;
use crate::store::path::is_store_path;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why a closure could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClosureError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// The file is not JSON.
    #[error("malformed closure file `{path}`: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the JSON reader found.
        source: serde_json::Error,
    },
    /// The file's JSON is not a closure.
    #[error("malformed closure file `{path}`: {source}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field or entry.
        source: ClosureFormatError,
    },
}

/// Why JSON is not a closure. Paths are escaped, so a message stays one line whatever the
/// file holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClosureFormatError {
    /// `exportReferencesGraph` is not an object.
    #[error("`exportReferencesGraph` must be an object of graph names")]
    GraphsNotObject,
    /// A graph `exportReferencesGraph` names is not there.
    #[error("graph `{}` named by `exportReferencesGraph` is missing", .0.escape_debug())]
    MissingGraph(String),
    /// An entry lacks a field or has one of the wrong type.
    #[error("entry {at}: {source}")]
    Entry {
        /// Where the entry is (`closure[3]`, a graph's name and index, or its path).
        at: String,
        /// What the JSON reader found.
        source: serde_json::Error,
    },
    /// An entry is not a store path.
    #[error("`{}` is not a path in /nix/store", .0.escape_debug())]
    NotInStore(String),
    /// An entry refers to something that is not a store path.
    #[error(
        "`{}` has a reference `{}` that is not a path in /nix/store",
        .path.escape_debug(),
        .reference.escape_debug()
    )]
    ReferenceNotInStore {
        /// The entry's path.
        path: String,
        /// The reference.
        reference: String,
    },
    /// Neither an array nor an object.
    #[error("expected a JSON array of store paths or an object")]
    Shape,
}

/// One store path of a closure.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClosureEntry {
    /// The store path, `/nix/store/<hash>-<name>`.
    pub path: String,
    /// Store paths this one refers to (may include itself).
    #[serde(default)]
    pub references: Vec<String>,
    /// Size of the path's NAR serialisation, in bytes.
    #[serde(default, rename = "narSize")]
    pub nar_size: u64,
    /// The NAR hash Nix recorded (`sha256:<nixbase32>`), when given.
    #[serde(default, rename = "narHash")]
    pub nar_hash: Option<String>,
}

/// A closure: store paths sorted by path, each listed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    entries: Vec<ClosureEntry>,
}

impl Closure {
    /// Builds a closure from entries; duplicates (the same path in two graphs) are merged.
    pub fn from_entries(entries: impl IntoIterator<Item = ClosureEntry>) -> Closure {
        let mut by_path: BTreeMap<String, ClosureEntry> = BTreeMap::new();
        for e in entries {
            by_path.entry(e.path.clone()).or_insert(e);
        }
        Closure {
            entries: by_path.into_values().collect(),
        }
    }

    /// The entries, sorted by path.
    pub fn entries(&self) -> &[ClosureEntry] {
        &self.entries
    }

    /// Number of store paths.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the closure holds no store path.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads a closure from a JSON file in any of the accepted shapes (see the module docs).
    pub fn read_file(path: &Path) -> Result<Closure, ClosureError> {
        let bytes = std::fs::read(path).map_err(FileError::on("read closure file", path))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|source| ClosureError::Json {
            path: path.to_owned(),
            source,
        })?;
        Closure::from_json(&value).map_err(|source| ClosureError::Malformed {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads the closure from a structured-attributes object: the union of every graph its
    /// `exportReferencesGraph` names; no `exportReferencesGraph` means an empty closure.
    pub fn from_attrs(attrs: &Value) -> Result<Closure, ClosureFormatError> {
        match attrs.get("exportReferencesGraph") {
            Some(_) => Closure::from_json(attrs),
            None => Ok(Closure::default()),
        }
    }

    /// Reads one graph of a structured-attributes object, `name` in its
    /// `exportReferencesGraph` (a family builder has one graph per member).
    pub fn graph(attrs: &Value, name: &str) -> Result<Closure, ClosureFormatError> {
        let items = attrs
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| ClosureFormatError::MissingGraph(name.to_owned()))?;
        parse_array(items, name)
    }

    /// This closure without the paths of `exclude`, and without references to them: what is
    /// left to layer once those paths are elsewhere (a parent, given layers, the
    /// customisation layer), its roots the paths only they referred to.
    pub fn without(&self, exclude: &BTreeSet<String>) -> Closure {
        let entries = self
            .entries
            .iter()
            .filter(|e| !exclude.contains(&e.path))
            .map(|e| ClosureEntry {
                references: e
                    .references
                    .iter()
                    .filter(|r| !exclude.contains(*r))
                    .cloned()
                    .collect(),
                ..e.clone()
            })
            .collect();
        Closure { entries }
    }

    /// Reads a closure from parsed JSON in any of the accepted shapes; errors name the entry.
    pub fn from_json(value: &Value) -> Result<Closure, ClosureFormatError> {
        match value {
            Value::Array(items) => parse_array(items, "closure"),
            Value::Object(map) => {
                if let Some(graphs) = map.get("exportReferencesGraph") {
                    let names = graphs
                        .as_object()
                        .ok_or(ClosureFormatError::GraphsNotObject)?;
                    let mut all = Vec::new();
                    for name in names.keys() {
                        let items = map
                            .get(name)
                            .and_then(Value::as_array)
                            .ok_or_else(|| ClosureFormatError::MissingGraph(name.clone()))?;
                        all.extend(parse_array(items, name)?.entries);
                    }
                    Ok(Closure::from_entries(all))
                } else {
                    let mut all = Vec::new();
                    for (path, fields) in map {
                        let mut fields = fields.clone();
                        if let Value::Object(f) = &mut fields {
                            f.insert("path".into(), Value::String(path.clone()));
                        }
                        all.push(parse_entry(&fields, path)?);
                    }
                    check_paths(Closure::from_entries(all))
                }
            }
            _ => Err(ClosureFormatError::Shape),
        }
    }
}

fn parse_array(items: &[Value], what: &str) -> Result<Closure, ClosureFormatError> {
    let mut all = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        all.push(parse_entry(item, &format!("{what}[{i}]"))?);
    }
    check_paths(Closure::from_entries(all))
}

fn parse_entry(item: &Value, at: &str) -> Result<ClosureEntry, ClosureFormatError> {
    ClosureEntry::deserialize(item).map_err(|source| ClosureFormatError::Entry {
        at: at.to_owned(),
        source,
    })
}

/// Refuses entries and references outside the store.
fn check_paths(closure: Closure) -> Result<Closure, ClosureFormatError> {
    for e in &closure.entries {
        if !is_store_path(&e.path) {
            return Err(ClosureFormatError::NotInStore(e.path.clone()));
        }
        if let Some(r) = e.references.iter().find(|r| !is_store_path(r)) {
            return Err(ClosureFormatError::ReferenceNotInStore {
                path: e.path.clone(),
                reference: r.clone(),
            });
        }
    }
    Ok(closure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a";
    const B: &str = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b";

    #[test]
    fn reads_export_references_graph_array() {
        let c = Closure::from_json(&json!([
            {"path": B, "references": [], "narSize": 3},
            {"path": A, "references": [A, B], "narSize": 5, "narHash": "sha256:x", "closureSize": 8},
        ]))
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.entries()[0].path, A);
        assert_eq!(c.entries()[0].nar_size, 5);
    }

    #[test]
    fn reads_attrs_file_shape_and_merges_graphs() {
        let c = Closure::from_json(&json!({
            "exportReferencesGraph": {"one": [A], "two": [B]},
            "one": [{"path": A, "references": [B]}, {"path": B, "references": []}],
            "two": [{"path": B, "references": []}],
            "outputs": {"out": "/nix/store/x"}
        }))
        .unwrap();
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn attrs_without_graph_is_an_empty_closure() {
        let c = Closure::from_attrs(&json!({"outputs": {"out": "/nix/store/x"}})).unwrap();
        assert!(c.is_empty());
    }

    #[test]
    fn reads_path_info_object_shape() {
        let c =
            Closure::from_json(&json!({ A: {"references": [B]}, B: {"references": []} })).unwrap();
        assert_eq!(c.entries()[0].references, vec![B.to_owned()]);
    }

    #[test]
    fn rejects_malformed_entries_naming_them() {
        let err = Closure::from_json(&json!([{"references": []}])).unwrap_err();
        assert!(err.to_string().contains("closure[0]"), "{err}");
        let err = Closure::from_json(&json!([{"path": "/etc/passwd"}])).unwrap_err();
        assert!(err.to_string().contains("/etc/passwd"), "{err}");
        let err = Closure::from_json(&json!("x")).unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
    }

    #[test]
    fn errors_stay_one_line_whatever_the_paths_hold() {
        // The closure fuzz target's find: a newline in a reference broke the one-line error.
        let line = |value| Closure::from_json(&value).unwrap_err().to_string();
        let err = line(json!([{"path": A, "references": ["/x\ny"]}]));
        assert!(err.contains(r"`/x\ny`") && !err.contains('\n'), "{err}");
        let err = line(json!([{"path": "/x\ny"}]));
        assert!(!err.contains('\n'), "{err}");
        let err = line(json!({"exportReferencesGraph": {"a\nb": []}}));
        assert!(!err.contains('\n'), "{err}");
    }
}
