//! Loading an image into the local docker or podman by letting the engine pull it from an
//! [`ImageServer`]: the engine fetches only the layers it lacks, where `docker load` and
//! `podman load` read and hash every layer of an archive. Then the image is tagged with its
//! own name and the loopback name is removed.

use crate::plan::ImagePlan;
use crate::progress::Progress;
use crate::registry::serve::{ImageServer, ServeReport};
use std::process::Command;
use std::sync::Arc;

/// An engine to load into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// `docker` on PATH (its `DOCKER_HOST` and contexts apply).
    Docker,
    /// `podman` on PATH.
    Podman,
}

impl Engine {
    /// The command's name.
    pub fn command(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }

    /// Whether the engine pulls from this machine's loopback: docker's daemon may be on
    /// another machine (`DOCKER_HOST=tcp://…`, `ssh://…`); podman pulls in its own process.
    pub fn pulls_locally(self) -> bool {
        match self {
            Engine::Podman => true,
            Engine::Docker => std::env::var("DOCKER_HOST")
                .map_or(true, |h| h.is_empty() || h.starts_with("unix://")),
        }
    }
}

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The loopback server could not start.
    #[error("cannot serve the image on a loopback port: {0}")]
    Serve(std::io::Error),
    /// The engine could not be run.
    #[error("cannot run `{command}` (is it on PATH?): {source}")]
    Run {
        /// The command.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The engine failed.
    #[error("`{command}` failed: {message}")]
    Engine {
        /// The command line.
        command: String,
        /// The last line it printed.
        message: String,
    },
    /// A layer's bytes are not what its record says.
    #[error("layer {0} does not match its record; its content changed since the image was built")]
    Mismatch(String),
}

/// Loads `plan` into `engine` as `repo_tag` (`name:tag`); returns what was sent.
pub fn load(
    plan: &ImagePlan,
    engine: Engine,
    repo_tag: &str,
    progress: Arc<Progress>,
) -> Result<ServeReport, LoadError> {
    let created = plan.created_at(time::OffsetDateTime::now_utc());
    let server = ImageServer::start(plan, &created, progress).map_err(LoadError::Serve)?;
    let loopback = format!("{}/{repo_tag}", server.host());
    let pulled = match engine {
        // The daemon treats 127.0.0.0/8 as an insecure registry: plain HTTP.
        Engine::Docker => run(engine, &["pull", "-q", &loopback]),
        Engine::Podman => run(engine, &["pull", "-q", "--tls-verify=false", &loopback]),
    };
    let report = server.stop();
    if let Some(what) = &report.mismatch {
        return Err(LoadError::Mismatch(what.clone()));
    }
    pulled?;
    run(engine, &["tag", &loopback, repo_tag])?;
    match engine {
        Engine::Docker => run(engine, &["rmi", &loopback])?,
        Engine::Podman => run(engine, &["untag", &loopback, &loopback])?,
    }
    Ok(report)
}

/// Runs `engine args`, its output kept for the error.
fn run(engine: Engine, args: &[&str]) -> Result<(), LoadError> {
    let command = engine.command();
    let out = Command::new(command)
        .args(args)
        .output()
        .map_err(|source| LoadError::Run {
            command: command.to_owned(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    Err(LoadError::Engine {
        command: format!("{command} {}", args.join(" ")),
        message: text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .trim()
            .to_owned(),
    })
}
