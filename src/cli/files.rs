//! What the builders share at the edge: the closure in the attributes, and output files.

use crate::store::attrs::Attrs;
use crate::store::closure::Closure;
use anyhow::{Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The closure `exportReferencesGraph` put in the attributes.
pub(super) fn closure_of(attrs: &Attrs) -> Result<Closure> {
    Closure::from_attrs(&attrs.value)
        .with_context(|| format!("malformed closure in `{}`", attrs.path.display()))
}

/// Writes `bytes` to `path` with `mode` (read-only outputs, executable plans).
pub(super) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write `{}`", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of `{}`", path.display()))
}

/// Writes `value` to `path` as read-only pretty JSON.
pub(super) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    write_file(path, &serde_json::to_vec_pretty(value)?, 0o444)
}

/// Creates the directory `dir`.
pub(super) fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir(dir).with_context(|| format!("cannot create `{}`", dir.display()))
}
