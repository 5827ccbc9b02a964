//! Hand-made closures for the layerings' unit tests.

use crate::store::closure::{Closure, ClosureEntry};

/// The store path of the test package `name`.
pub(crate) fn p(name: &str) -> String {
    format!("/nix/store/{}-{name}", "0".repeat(32))
}

/// A closure of `(name, NAR size, references)`.
pub(crate) fn closure(nodes: &[(&str, u64, &[&str])]) -> Closure {
    Closure::from_entries(nodes.iter().map(|(name, size, refs)| ClosureEntry {
        path: p(name),
        references: refs.iter().map(|r| p(r)).collect(),
        nar_size: *size,
        nar_hash: None,
    }))
}
