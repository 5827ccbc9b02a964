//! The shell scripts a build runs in an image root: `extraCommands` as the build user,
//! `runAsRoot` and `fakeRootCommands` as root in a user namespace ([`super::root_shell`]).
//! All run with the toolbox's `sh -e` and an environment of their own: only the toolbox's
//! `bin/` on PATH, the build directory as TMPDIR, nothing inherited.

use super::root_shell::{Owners, RootShell};
use super::BuildError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where scripts come from: the toolbox (a directory whose `bin/` holds `sh` and the tools)
/// and the build directory they may use for scratch files.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// The toolbox.
    pub toolbox: PathBuf,
    /// The build directory (`NIX_BUILD_TOP`).
    pub build_dir: PathBuf,
}

impl Scripts {
    fn shell(&self) -> PathBuf {
        self.toolbox.join("bin/sh")
    }

    /// The environment scripts run with.
    fn env(&self) -> Vec<(String, String)> {
        let top = self.build_dir.to_string_lossy().into_owned();
        vec![
            (
                "PATH".into(),
                self.toolbox.join("bin").to_string_lossy().into_owned(),
            ),
            ("HOME".into(), "/homeless-shelter".into()),
            ("NIX_BUILD_TOP".into(), top.clone()),
            ("TMPDIR".into(), top),
            (
                "NIX_BUILD_CORES".into(),
                std::env::var("NIX_BUILD_CORES").unwrap_or_else(|_| "1".into()),
            ),
        ]
    }

    /// Runs `extraCommands` in `root`, not as root.
    pub fn run_extra_commands(&self, script: &str, root: &Path) -> Result<(), BuildError> {
        if script.trim().is_empty() {
            return Ok(());
        }
        let shell = self.shell();
        let status = Command::new(&shell)
            .arg("-e")
            .arg("-c")
            .arg(script)
            .current_dir(root)
            .env_clear()
            .envs(self.env())
            .stdin(Stdio::null())
            .status()
            .map_err(|source| BuildError::Shell { shell, source })?;
        if !status.success() {
            return Err(BuildError::ExtraCommands(status));
        }
        Ok(())
    }

    /// Runs `script` (the argument `what`) as root in `dir`, or with `dir` as `/` when
    /// `chroot`; returns the owners it set, `None` for an empty script.
    pub fn run_as_root(
        &self,
        what: &'static str,
        script: &str,
        dir: &Path,
        chroot: bool,
    ) -> Result<Option<Owners>, BuildError> {
        if script.trim().is_empty() {
            return Ok(None);
        }
        let shell = self.shell();
        let owners = RootShell {
            what,
            shell: &shell,
            script,
            dir,
            chroot,
            env: self.env(),
        }
        .run()?;
        Ok(Some(owners))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn extra_commands_run_in_root_and_failures_surface() {
        let dir = tempfile::tempdir().unwrap();
        // The machine's own /bin as the toolbox.
        let scripts = Scripts {
            toolbox: "/".into(),
            build_dir: dir.path().into(),
        };
        scripts
            .run_extra_commands("mkdir tmp && chmod 1777 tmp", dir.path())
            .unwrap();
        let mode = fs::metadata(dir.path().join("tmp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777);
        let err = scripts
            .run_extra_commands("false; echo not reached", dir.path())
            .unwrap_err();
        assert!(matches!(err, BuildError::ExtraCommands(_)), "{err}");
        scripts
            .run_extra_commands("  \n", Path::new("/nonexistent"))
            .unwrap();
    }
}
