//! The shell scripts a build runs in an image root: `extraCommands` as the build user,
//! `runAsRoot` and `fakeRootCommands` as root in a user namespace ([`super::root_shell`]).
//! All run with the toolbox's `sh -e` (`bash -e` with a stdenv) and an environment of their own: the toolbox's `bin/`
//! on PATH (then the image's `/bin` for `runAsRoot`, as nixpkgs gives it), the build
//! directory as TMPDIR, nothing inherited. With a stdenv (the library built from nixpkgs),
//! `extraCommands` and `fakeRootCommands` run after `$stdenv/setup`, as nixpkgs runs them in
//! its derivations: stdenv's PATH and functions (`substituteInPlace`, `runHook`) are there.

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
    /// nixpkgs' stdenv (a directory holding `setup`), when the library has nixpkgs.
    pub stdenv: Option<PathBuf>,
}

/// Which script runs: what it is called in messages, and how nixpkgs runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// `extraCommands`, as the build user.
    ExtraCommands,
    /// `fakeRootCommands`, as root.
    FakeRootCommands,
    /// `runAsRoot`, as root, chrooted into the image root.
    RunAsRoot,
}

impl Script {
    /// The argument's name.
    pub fn name(self) -> &'static str {
        match self {
            Script::ExtraCommands => "extraCommands",
            Script::FakeRootCommands => "fakeRootCommands",
            Script::RunAsRoot => "runAsRoot",
        }
    }

    /// Whether it runs after stdenv's setup when there is one: nixpkgs runs runAsRoot as a
    /// plain script (`#!${stdenv.shell}`, `set -e`, its own PATH).
    fn after_setup(self) -> bool {
        self != Script::RunAsRoot
    }
}

impl Scripts {
    /// `bin/sh`, or with a stdenv `bin/bash`: nixpkgs runs its scripts with `bash -e`, and
    /// bash called as `sh` would run stdenv's setup in POSIX mode.
    fn shell(&self) -> PathBuf {
        let bash = self.toolbox.join("bin/bash");
        match self.stdenv.is_some() && bash.exists() {
            true => bash,
            false => self.toolbox.join("bin/sh"),
        }
    }

    /// The environment `script` runs with.
    fn env(&self, script: Script) -> Vec<(String, String)> {
        let top = self.build_dir.to_string_lossy().into_owned();
        let mut path = self.toolbox.join("bin").to_string_lossy().into_owned();
        if script == Script::RunAsRoot {
            // nixpkgs' runAsRoot has `${coreutils}/bin:/bin`: the image's own tools next.
            path.push_str(":/bin");
        }
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), "/homeless-shelter".into()),
            ("NIX_BUILD_TOP".into(), top.clone()),
            ("TMPDIR".into(), top),
            (
                "NIX_BUILD_CORES".into(),
                std::env::var("NIX_BUILD_CORES").unwrap_or_else(|_| "1".into()),
            ),
        ];
        if let Some(stdenv) = &self.stdenv {
            env.push(("stdenv".into(), stdenv.to_string_lossy().into_owned()));
            // stdenv's setup wants an `out`; the scripts' output is the image root, so this
            // is a scratch path in the build directory, never the derivation's output.
            let out = self.build_dir.join("script-out");
            env.push(("out".into(), out.to_string_lossy().into_owned()));
        }
        env
    }

    /// `text` as `script` runs it: after stdenv's setup when there is a stdenv and nixpkgs
    /// sources it (extraCommands and fakeRootCommands, fakechroot or not; not runAsRoot).
    fn script<'a>(&self, script: Script, text: &'a str) -> std::borrow::Cow<'a, str> {
        match (&self.stdenv, script.after_setup()) {
            (Some(_), true) => format!(". \"$stdenv/setup\"\n{text}").into(),
            _ => text.into(),
        }
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
            .arg(&*self.script(Script::ExtraCommands, script))
            .current_dir(root)
            .env_clear()
            .envs(self.env(Script::ExtraCommands))
            .stdin(Stdio::null())
            .status()
            .map_err(|source| BuildError::Shell { shell, source })?;
        if !status.success() {
            return Err(BuildError::ExtraCommands(status));
        }
        Ok(())
    }

    /// Runs `text` (the root script `script`) as root in `dir`, or with `dir` as `/` when
    /// `chroot`; returns the owners it set, `None` for an empty script.
    pub fn run_as_root(
        &self,
        script: Script,
        text: &str,
        dir: &Path,
        chroot: bool,
    ) -> Result<Option<Owners>, BuildError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let shell = self.shell();
        let text = self.script(script, text);
        let owners = RootShell {
            what: script.name(),
            shell: &shell,
            script: &text,
            dir,
            chroot,
            env: self.env(script),
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
            stdenv: None,
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

    #[test]
    fn with_a_stdenv_scripts_run_after_its_setup() {
        let dir = tempfile::tempdir().unwrap();
        let stdenv = dir.path().join("stdenv");
        fs::create_dir(&stdenv).unwrap();
        fs::write(
            stdenv.join("setup"),
            "greet() { echo \"hi from $out\" > greeting; }\n",
        )
        .unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let scripts = Scripts {
            toolbox: "/".into(),
            build_dir: dir.path().into(),
            stdenv: Some(stdenv),
        };
        scripts.run_extra_commands("greet", &root).unwrap();
        let greeting = fs::read_to_string(root.join("greeting")).unwrap();
        assert_eq!(
            greeting.trim(),
            format!("hi from {}/script-out", dir.path().display())
        );
        // Without one, the script runs as written.
        let plain = Scripts {
            stdenv: None,
            ..scripts
        };
        assert!(plain.run_extra_commands("greet", &root).is_err());
        assert_eq!(plain.script(Script::ExtraCommands, "x"), "x");
    }
}
