//! Directories an import makes for itself, removed however it ends: scratch files always, an
//! output it did not finish on failure. In the Nix sandbox the build directory goes anyway;
//! run by hand, nothing is left behind.

use std::fs;
use std::path::{Path, PathBuf};

/// A directory removed when this is dropped, unless [`ScratchDir::keep`] was called.
#[derive(Debug)]
pub struct ScratchDir {
    path: Option<PathBuf>,
}

impl ScratchDir {
    /// `path`, removed on drop whether or not it exists yet (scratch space the caller owns).
    pub fn new(path: &Path) -> ScratchDir {
        ScratchDir {
            path: Some(path.to_owned()),
        }
    }

    /// `path`, removed on drop only if it does not exist now: what was there before is never
    /// removed.
    pub fn fresh(path: &Path) -> ScratchDir {
        ScratchDir {
            path: (!path.exists()).then(|| path.to_owned()),
        }
    }

    /// Keeps the directory: it is not removed.
    pub fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_unless_kept_and_never_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, old) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("old"),
        );
        fs::create_dir(&old).unwrap();
        {
            let _a = ScratchDir::new(&a);
            let b_guard = ScratchDir::fresh(&b);
            let _old = ScratchDir::fresh(&old);
            fs::create_dir_all(a.join("x")).unwrap();
            fs::create_dir_all(&b).unwrap();
            b_guard.keep();
        }
        assert!(!a.exists() && b.exists() && old.exists());
    }
}
