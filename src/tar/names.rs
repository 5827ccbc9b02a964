//! Entry names in tars strata reads (parent images, layers to unpack or flatten): the one
//! set of rules that keeps a name inside the tree it is unpacked into.

use std::path::{Path, PathBuf};

/// An entry of a layer tar that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("layer `{layer}`, entry `{entry}`: {reason}")]
pub struct RefusedEntry {
    /// The layer tar.
    pub layer: PathBuf,
    /// The entry's name, as the tar has it.
    pub entry: String,
    /// Why.
    pub reason: String,
}

impl RefusedEntry {
    /// Entry `entry` of `layer`, refused for `reason`.
    pub fn new(layer: &Path, entry: &str, reason: &str) -> RefusedEntry {
        RefusedEntry {
            layer: layer.to_owned(),
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Longest name or link target accepted in a tar strata reads: Linux's `PATH_MAX`. Docker and
/// podman unpack an entry at its path under the layer's root, so a longer one cannot be
/// unpacked anyway, and a reader holds no more of a name.
pub const MAX_NAME: usize = 4096;

/// Why an entry name or link target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Longer than [`MAX_NAME`] (its length).
    #[error("a name of {0} bytes, longer than the {MAX_NAME} Linux paths take")]
    TooLong(usize),
    /// Not UTF-8.
    #[error("the name is not UTF-8")]
    NotUtf8,
    /// Holds a NUL byte.
    #[error("the name holds a NUL byte")]
    Nul,
    /// Has a `..` component.
    #[error("the name has a `..` component")]
    DotDot,
}

/// Refuses a name or link target longer than [`MAX_NAME`].
pub fn check_length(raw: &[u8]) -> Result<(), NameError> {
    if raw.len() > MAX_NAME {
        return Err(NameError::TooLong(raw.len()));
    }
    Ok(())
}

/// Longest part of a name an error message quotes.
const SHOWN: usize = 200;

/// A name as error messages quote it: lossy UTF-8, and for a name longer than 200 bytes its
/// start, `…` and its length, so that an error stays readable whatever the name.
pub fn shown(raw: &[u8]) -> String {
    if raw.len() <= SHOWN {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let start = String::from_utf8_lossy(&raw[..SHOWN]);
    format!(
        "{}… ({} bytes)",
        start.trim_end_matches('\u{fffd}'),
        raw.len()
    )
}

/// Normalises a member or entry name: leading `./` and `/`-runs and a trailing `/` go, `.`
/// components go. The root itself gives `""`. A leading `/` means the root, as docker and
/// containerd read layers (nixpkgs' streamer writes `/nix/store/…`). `..` components and
/// names longer than [`MAX_NAME`] are refused.
pub fn clean_name(raw: &[u8]) -> Result<String, NameError> {
    check_length(raw)?;
    let text = std::str::from_utf8(raw).map_err(|_| NameError::NotUtf8)?;
    if text.contains('\0') {
        return Err(NameError::Nul);
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(NameError::DotDot),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Whether the symlink target `target`, found at `name`, stays inside the tree when
/// resolved lexically. Absolute targets do: a container resolves them in its own root.
pub fn link_stays_inside(name: &str, target: &[u8]) -> bool {
    if target.starts_with(b"/") {
        return true;
    }
    let mut depth = name.split('/').count() as i64 - 1;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

/// Removes `.` and `..` components lexically (the caller made sure `..` cannot go above the
/// top).
pub fn resolve_dots(path: &[u8]) -> String {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    String::from_utf8_lossy(&parts.join(&b'/')).into_owned()
}
