//! The customisation layer: the `contents` merged at the image root, `extraCommands` applied,
//! tarred at build time.
//!
//! It is tarred inside its derivation, before Nix makes the output read-only, so what
//! `extraCommands` sets up (a `tmp` with mode 1777, say) reaches the image as made. Contents
//! are merged the way nixpkgs' `symlinkJoin` does: directories become real directories,
//! everything else a symlink to the file in its store path; when two contents hold the same
//! file, the first one listed wins.

use crate::plan::record::{compute_record, LayerRecord};
use crate::progress::Progress;
use crate::tar::header::Stamp;
use crate::tar::layer::{LayerError, LayerSource};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the customisation layer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CustomisationError {
    /// A `contents` entry is not a directory (or a link to one).
    #[error("`contents` entry `{0}` is not a directory; contents are merged at the image root")]
    ContentNotDirectory(PathBuf),
    /// A filesystem operation failed.
    #[error("`{path}`: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The shell running `extraCommands` could not be started.
    #[error("cannot run `extraCommands` with `{shell}`: {source}")]
    Shell {
        /// The shell.
        shell: PathBuf,
        /// Why it did not start.
        source: io::Error,
    },
    /// `extraCommands` exited with an error.
    #[error("`extraCommands` failed ({0})")]
    ExtraCommands(std::process::ExitStatus),
    /// Tarring the result failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CustomisationError + '_ {
    move |source| CustomisationError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Merges `contents` into `root` (which must exist) like `symlinkJoin`.
pub fn merge_contents(contents: &[PathBuf], root: &Path) -> Result<(), CustomisationError> {
    for content in contents {
        let meta = fs::metadata(content).map_err(io_err(content))?;
        if !meta.is_dir() {
            return Err(CustomisationError::ContentNotDirectory(content.clone()));
        }
        link_tree(content, root)?;
    }
    Ok(())
}

fn link_tree(src: &Path, dst: &Path) -> Result<(), CustomisationError> {
    let mut children: Vec<_> = fs::read_dir(src)
        .and_then(|rd| {
            rd.map(|e| e.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(io_err(src))?;
    children.sort();
    for name in children {
        let (s, d) = (src.join(&name), dst.join(&name));
        let s_meta = fs::symlink_metadata(&s).map_err(io_err(&s))?;
        let d_meta = fs::symlink_metadata(&d).ok();
        if s_meta.is_dir() {
            match d_meta {
                None => {
                    fs::create_dir(&d).map_err(io_err(&d))?;
                    fs::set_permissions(&d, fs::Permissions::from_mode(0o755))
                        .map_err(io_err(&d))?;
                    link_tree(&s, &d)?;
                }
                Some(m) if m.is_dir() => link_tree(&s, &d)?,
                Some(_) => {} // an earlier content holds this name: first wins
            }
        } else if d_meta.is_none() {
            symlink(&s, &d).map_err(io_err(&d))?;
        }
    }
    Ok(())
}

/// Runs `extra_commands` with `shell -e -c` in `root`, with only `path` on PATH.
pub fn run_extra_commands(
    extra_commands: &str,
    shell: &Path,
    path: &str,
    root: &Path,
    env: &[(&str, &str)],
) -> Result<(), CustomisationError> {
    if extra_commands.trim().is_empty() {
        return Ok(());
    }
    let status = Command::new(shell)
        .arg("-e")
        .arg("-c")
        .arg(extra_commands)
        .current_dir(root)
        .env_clear()
        .env("PATH", path)
        .env("HOME", "/homeless-shelter")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .status()
        .map_err(|source| CustomisationError::Shell {
            shell: shell.to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(CustomisationError::ExtraCommands(status));
    }
    Ok(())
}

/// Writes `source` (owner `stamp`'s but where `owners` say otherwise) into `out` and returns
/// the layer's record, computed in the same pass.
pub fn write_layer_file(
    source: &LayerSource,
    stamp: &Stamp,
    out: &Path,
    progress: &Progress,
) -> Result<LayerRecord, CustomisationError> {
    let file = fs::File::create(out).map_err(io_err(out))?;
    let mut file = io::BufWriter::with_capacity(1 << 20, file);
    let record = compute_record(source, stamp, true, Some(&mut file), progress)?;
    file.flush().map_err(io_err(out))?;
    Ok(record)
}

/// Tars `root` as the customisation layer into `out` (owner root unless a root script gave
/// files other owners, the given mtime) and
/// returns the layer's record, computed in the same pass.
pub fn write_customisation_tar(
    root: &Path,
    store_dirs: bool,
    owners: Option<crate::rootfs::root_shell::Owners>,
    mtime: u64,
    out: &Path,
    progress: &Progress,
) -> Result<LayerRecord, CustomisationError> {
    let source = LayerSource::Tree {
        root: root.to_owned(),
        store_dirs,
        owners: owners.map(std::sync::Arc::new),
    };
    write_layer_file(&source, &Stamp::root(mtime), out, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_symlink_join_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir_all(a.join("bin")).unwrap();
        fs::create_dir_all(b.join("bin")).unwrap();
        fs::create_dir_all(b.join("share/doc")).unwrap();
        fs::write(a.join("bin/tool"), b"a").unwrap();
        fs::write(b.join("bin/tool"), b"b").unwrap();
        fs::write(b.join("bin/other"), b"b").unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        merge_contents(&[a.clone(), b.clone()], &root).unwrap();
        assert_eq!(
            fs::read_link(root.join("bin/tool")).unwrap(),
            a.join("bin/tool")
        );
        assert_eq!(
            fs::read_link(root.join("bin/other")).unwrap(),
            b.join("bin/other")
        );
        assert!(fs::symlink_metadata(root.join("share/doc"))
            .unwrap()
            .is_dir());

        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = merge_contents(&[file], &root).unwrap_err();
        assert!(err.to_string().contains("`contents`"), "{err}");
    }

    #[test]
    fn extra_commands_run_in_root_and_failures_surface() {
        let dir = tempfile::tempdir().unwrap();
        run_extra_commands(
            "mkdir tmp && chmod 1777 tmp",
            Path::new("/bin/sh"),
            "/bin:/usr/bin",
            dir.path(),
            &[],
        )
        .unwrap();
        let mode = fs::metadata(dir.path().join("tmp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777);
        let err = run_extra_commands(
            "false; echo not reached",
            Path::new("/bin/sh"),
            "/bin:/usr/bin",
            dir.path(),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, CustomisationError::ExtraCommands(_)), "{err}");
    }
}
