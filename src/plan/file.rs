//! The files strata's builders write and read back: executables made of a
//! `#!<helper> <command>` line and JSON (image and index plans, copy scripts), and plain JSON
//! files (layer sets, records, imported parents), each named in the errors about it.

use super::PlanError;
use crate::file_error::FileError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// An executable file: a `#!` line that runs `helper command` on the file, then `value` as
/// JSON.
pub fn script_bytes(helper: &Path, command: &str, value: &impl Serialize) -> Vec<u8> {
    let mut out = format!("#!{} {command}\n", helper.display()).into_bytes();
    serde_json::to_writer_pretty(&mut out, value).expect("plan serialisation cannot fail");
    out.push(b'\n');
    out
}

/// Whether `path` is an executable strata file (a plan: a streamLayeredImage result) rather
/// than an archive: it starts with `#!`.
pub fn is_script(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"#!"
}

/// The JSON of an executable plan file: what follows its `#!` line, if it has one.
pub fn script_json(bytes: &[u8]) -> &[u8] {
    match bytes.strip_prefix(b"#!") {
        Some(rest) => rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[][..], |end| &rest[end..]),
        None => bytes,
    }
}

/// Reads a plan file (image or index, with or without its `#!` line) as JSON.
pub fn read_script(path: &Path) -> Result<Value, PlanError> {
    let bytes = std::fs::read(path).map_err(FileError::on("read", path))?;
    serde_json::from_slice(script_json(&bytes)).map_err(|source| PlanError::Json {
        path: path.to_owned(),
        what: "strata plan",
        source,
    })
}

/// Reads a JSON file, naming it in errors.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, PlanError> {
    let bytes = std::fs::read(path).map_err(FileError::on("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| PlanError::Json {
        path: path.to_owned(),
        what,
        source,
    })
}
