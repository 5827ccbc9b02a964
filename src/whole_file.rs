//! Files written whole or not at all: the one way strata writes a file that a user or another
//! process may look at while it is written (archives, pulled images, the record cache).
//!
//! A file that is already there is replaced only once the new one is complete: the new bytes
//! go to a temporary name beside it and are renamed over it, so a failed run leaves what the
//! user had. A new file is written where it goes and removed if writing fails: a Nix builder's
//! `$out` is new, and its directory, the store, is no place for temporary names. Something that
//! is not a regular file (`/dev/null`, a pipe) is written as it is and never removed.

use crate::file_error::FileError;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written; dropped without [`WholeFile::finish`], it leaves nothing behind.
#[derive(Debug)]
pub struct WholeFile {
    /// Where the file goes.
    target: PathBuf,
    /// Where the bytes are written: the target, or a temporary name beside it.
    written: PathBuf,
    /// What becomes of `written` when the file is not finished.
    unfinished: Unfinished,
    /// The open file.
    out: BufWriter<File>,
    /// Set once the file is complete where it goes.
    finished: bool,
}

/// What a failed write does with what it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfinished {
    /// Removed: a temporary name, or a new file.
    Removed,
    /// Kept: a device or a pipe, written in place.
    Kept,
}

impl WholeFile {
    /// Opens `path` for writing, as the module doc says.
    pub fn create(path: &Path) -> Result<WholeFile, FileError> {
        match fs::metadata(path) {
            Ok(m) if m.is_file() => WholeFile::create_beside(path),
            Ok(_) => WholeFile::open(path, path.to_owned(), Unfinished::Kept),
            Err(_) => WholeFile::open(path, path.to_owned(), Unfinished::Removed),
        }
    }

    /// Opens `path` for writing under a temporary name beside it, renamed over it when
    /// finished, even when there is no file yet: readers never see half of it.
    pub fn create_beside(path: &Path) -> Result<WholeFile, FileError> {
        let name = path
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let temp = path.with_file_name(format!(".{name}.strata-partial-{}", std::process::id()));
        WholeFile::open(path, temp, Unfinished::Removed)
    }

    fn open(
        target: &Path,
        written: PathBuf,
        unfinished: Unfinished,
    ) -> Result<WholeFile, FileError> {
        let file = File::create(&written).map_err(FileError::on("create", &written))?;
        Ok(WholeFile {
            target: target.to_owned(),
            written,
            unfinished,
            out: BufWriter::with_capacity(1 << 20, file),
            finished: false,
        })
    }

    /// Flushes the file and puts it where it goes.
    pub fn finish(mut self) -> Result<(), FileError> {
        self.out
            .flush()
            .map_err(FileError::on("write", &self.target))?;
        if self.written != self.target {
            fs::rename(&self.written, &self.target)
                .map_err(FileError::on("replace", &self.target))?;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for WholeFile {
    fn drop(&mut self) {
        if !self.finished && self.unfinished == Unfinished::Removed {
            let _ = fs::remove_file(&self.written);
        }
    }
}

impl Write for WholeFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_failed_write_leaves_the_file_that_was_there() {
        let d = dir();
        let path = d.path().join("image.tar");
        fs::write(&path, b"what the user had").unwrap();
        let mut f = WholeFile::create(&path).unwrap();
        f.write_all(b"half an image").unwrap();
        drop(f);
        assert_eq!(fs::read(&path).unwrap(), b"what the user had");
        assert_eq!(names(d.path()), ["image.tar"]);
    }

    #[test]
    fn a_finished_write_replaces_the_file() {
        let d = dir();
        let path = d.path().join("image.tar");
        fs::write(&path, b"old").unwrap();
        let mut f = WholeFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        f.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names(d.path()), ["image.tar"]);
    }

    #[test]
    fn a_new_file_is_written_in_place_and_removed_when_unfinished() {
        let d = dir();
        let path = d.path().join("out");
        let mut f = WholeFile::create(&path).unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(names(d.path()), ["out"]);
        drop(f);
        assert!(names(d.path()).is_empty());
        let mut f = WholeFile::create(&path).unwrap();
        f.write_all(b"y").unwrap();
        f.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"y");
    }

    #[test]
    fn a_device_is_written_and_never_removed() {
        let f = WholeFile::create(Path::new("/dev/null")).unwrap();
        drop(f);
        assert!(Path::new("/dev/null").exists());
    }

    #[test]
    fn beside_means_readers_never_see_half() {
        let d = dir();
        let path = d.path().join("entry");
        let mut f = WholeFile::create_beside(&path).unwrap();
        f.write_all(b"half").unwrap();
        f.flush().unwrap();
        assert!(!path.exists());
        f.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"half");
        assert_eq!(names(d.path()), ["entry"]);
    }
}
