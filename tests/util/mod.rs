//! Harness for the end-to-end tests: commands that fail loudly, a Docker daemon and a podman
//! store started for the run and stopped after it, and nix-build in the sandbox.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Result of a check: `Err` carries a message with everything needed to debug it.
pub type Check = Result<(), String>;

/// Repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file or directory under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// The tarsum golden cases: (name, tar bytes, the three sums Docker's Go code gives, one per
/// line: Version0, Version1, Dev).
pub fn tarsum_fixtures() -> Result<Vec<(String, Vec<u8>, String)>, String> {
    let dir = fixture("tarsum");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "tar") {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let tar = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let sums_file = path.with_extension("sums");
            let sums = std::fs::read_to_string(&sums_file)
                .map_err(|e| format!("{}: {e}", sums_file.display()))?;
            cases.push((name, tar, sums));
        }
    }
    cases.sort();
    Ok(cases)
}

/// Describes a finished command for a failure message: command line, status, stdout, stderr.
pub fn describe(cmd: &Command, out: &Output) -> String {
    let mut s = format!("command: {cmd:?}\nstatus: {}\n", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stdout = if stdout.len() > 4000 {
        &stdout[stdout.len() - 4000..]
    } else {
        &stdout
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = if stderr.len() > 4000 {
        &stderr[stderr.len() - 4000..]
    } else {
        &stderr
    };
    let _ = write!(s, "--- stdout\n{stdout}\n--- stderr\n{stderr}");
    s
}

/// Runs `cmd` to completion, capturing output; `Err` only when it cannot start. Stdin is
/// empty unless the caller set it.
pub fn run(cmd: &mut Command) -> Result<Output, String> {
    cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd` and requires success; returns stdout as text.
pub fn ok(cmd: &mut Command) -> Result<String, String> {
    let out = run(cmd)?;
    if !out.status.success() {
        return Err(format!("command failed\n{}", describe(cmd, &out)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a bash script (for pipelines) and requires success; returns stdout.
pub fn bash(script: &str) -> Result<String, String> {
    ok(Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .current_dir(repo()))
}

/// Fails with `what` unless `cond`.
pub fn ensure(cond: bool, what: impl FnOnce() -> String) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// True when `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A scratch directory for the whole run, removed at the end.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates `/tmp/strata-e2e-<pid>`.
    pub fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("strata-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // dockerd leaves mounts behind (its netns, an overlay of a stopped daemon); unmount
        // them, deepest first, or the directory cannot be removed.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let mut under: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(1))
                .filter(|m| Path::new(m).starts_with(&self.0))
                .collect();
            under.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in under {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `nix-build`'s arguments for a sandboxed build that leaves no link behind.
const SANDBOXED: [&str; 4] = ["--option", "sandbox", "true", "--no-out-link"];

/// Runs `cmd`, expecting `what` to fail; returns its stderr.
fn fails(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = run(cmd)?;
    if out.status.success() {
        return Err(format!("expected {what} to fail\n{}", describe(cmd, &out)));
    }
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Builds attributes of `tests/nix/images.nix` (or another test file) with the sandbox on,
/// once each.
pub struct Nix {
    file: &'static str,
    helper: PathBuf,
    toolbox: PathBuf,
    /// Static bash and the machine's Nix bundle, for files built through the stand-in
    /// nixpkgs.
    bash: Option<(PathBuf, PathBuf)>,
    built: HashMap<String, PathBuf>,
}

impl Nix {
    /// `tests/nix/images.nix`, with the helper and toolbox `scripts/bootstrap` prepared.
    pub fn new() -> Nix {
        let boot = repo().join("build/bootstrap");
        Nix {
            file: "tests/nix/images.nix",
            helper: boot.join("helper"),
            toolbox: boot.join("toolbox"),
            bash: None,
            built: HashMap::new(),
        }
    }

    /// `tests/nix/with-nixpkgs.nix`: images built through the stand-in nixpkgs, which also
    /// takes the static bash and the Nix bundle `scripts/bootstrap` prepared.
    pub fn with_nixpkgs() -> Nix {
        Nix {
            file: "tests/nix/with-nixpkgs.nix",
            bash: Some((
                repo().join("build/bootstrap/bash"),
                repo().join("build/bootstrap/nix"),
            )),
            ..Nix::new()
        }
    }

    /// The arguments that instantiate the library in its no-nixpkgs form (and the bash and
    /// Nix of the stand-in nixpkgs).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--arg".into(),
            "helper".into(),
            self.helper.display().to_string(),
            "--arg".into(),
            "toolbox".into(),
            self.toolbox.display().to_string(),
        ];
        if let Some((bash, nix)) = &self.bash {
            for (name, path) in [("bash", bash), ("nix", nix)] {
                args.extend(["--arg".into(), name.into(), path.display().to_string()]);
            }
        }
        args
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(repo()).arg(self.file).args(self.args());
        c
    }

    /// `nix-build --option sandbox true -A attr`, returning the output path.
    pub fn build(&mut self, attr: &str) -> Result<PathBuf, String> {
        if let Some(p) = self.built.get(attr) {
            return Ok(p.clone());
        }
        let out = ok(self.command("nix-build").args(SANDBOXED).args(["-A", attr]))?;
        let path = PathBuf::from(out.trim());
        self.built.insert(attr.to_owned(), path.clone());
        Ok(path)
    }

    /// `nix-build` (sandboxed) of `attr` with the file's argument `name` given the string
    /// `value` (`--argstr`), with `--check` when asked; its output, whether it succeeded or
    /// not (nothing is remembered: the value makes another build).
    pub fn build_with(
        &self,
        (name, value): (&str, &str),
        attr: &str,
        check: bool,
    ) -> Result<Output, String> {
        let mut c = self.command("nix-build");
        c.args(["--argstr", name, value])
            .args(SANDBOXED)
            .args(["-A", attr]);
        if check {
            c.arg("--check");
        }
        run(&mut c)
    }

    /// Rebuilds `attr` with `nix-build --check`: fails unless it is bit-for-bit reproducible.
    pub fn check_reproducible(&mut self, attr: &str) -> Check {
        self.build(attr)?;
        ok(self
            .command("nix-build")
            .args(SANDBOXED)
            .args(["--check", "-A", attr]))
        .map(drop)
    }

    /// Evaluates `attr` to JSON.
    pub fn eval_json(&self, attr: &str) -> Result<serde_json::Value, String> {
        let out = ok(self
            .command("nix-instantiate")
            .args(["--eval", "--strict", "--json", "-A", attr]))?;
        serde_json::from_str(&out).map_err(|e| format!("{attr}: not JSON: {e}: {out}"))
    }

    /// Builds `attr` (sandboxed), expecting failure; returns stderr.
    pub fn build_fails(&self, attr: &str) -> Result<String, String> {
        let mut cmd = self.command("nix-build");
        cmd.args(SANDBOXED).args(["-A", attr]);
        fails(&mut cmd, "the build")
    }

    /// Instantiates `attr`, expecting failure; returns stderr.
    pub fn instantiate_fails(&self, attr: &str) -> Result<String, String> {
        let mut cmd = self.command("nix-instantiate");
        cmd.args(["-A", attr]);
        fails(&mut cmd, "evaluation")
    }
}

/// A Docker engine started for the run (Debian's docker.io), on its own socket and data root.
pub struct Dockerd {
    child: Child,
    dir: PathBuf,
    /// `unix://...` socket to pass as `--host`.
    pub host: String,
}

impl Dockerd {
    /// Starts dockerd and waits until it answers.
    pub fn start(scratch: &Path) -> Result<Dockerd, String> {
        let dir = scratch.join("docker");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let sock = dir.join("docker.sock");
        let host = format!("unix://{}", sock.display());
        let log = std::fs::File::create(dir.join("dockerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("dockerd")
            .args([
                "--storage-driver=overlay2",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
            ])
            .arg("--host")
            .arg(&host)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start dockerd: {e}"))?;
        let d = Dockerd { child, dir, host };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if d.cmd()
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default();
        Err(format!("dockerd did not answer within 60 s; log:\n{log}"))
    }

    /// A `docker` command talking to this daemon.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("--host").arg(&self.host);
        c
    }

    /// A `ctr` command talking to the containerd this daemon started, in a namespace of the
    /// tests' own (Kubernetes nodes use `k8s.io` the same way).
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.join("exec/containerd/containerd.sock"))
            .args(["--namespace", "strata-test"]);
        c
    }

    /// `docker run --rm --network=none IMAGE ARGS...`, returning stdout.
    pub fn run(&self, image: &str, args: &[&str]) -> Result<String, String> {
        let run = || {
            ok(self
                .cmd()
                .args(["run", "--rm", "--network=none", image])
                .args(args))
        };
        // Docker 26 on a loaded machine was seen once to report a container's success with
        // none of its output (a quick container, output lost before the CLI attached). One
        // more run tells that apart from an image that prints nothing, which still fails.
        match run()? {
            out if out.is_empty() => run(),
            out => Ok(out),
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd unmount its overlays before the data root is removed.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// podman with its own storage under the scratch directory, run the way this machine needs.
pub struct Podman {
    root: PathBuf,
}

impl Podman {
    /// Uses `scratch/podman` for images and state.
    pub fn new(scratch: &Path) -> Podman {
        Podman {
            root: scratch.join("podman"),
        }
    }

    /// A `podman` command on this store.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        c
    }

    /// A `buildah` command on a store of its own beside podman's.
    pub fn buildah(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.root.join("buildah-storage"))
            .arg("--runroot")
            .arg(self.root.join("buildah-run"));
        c
    }

    /// `podman run` with the options this machine needs, returning stdout.
    pub fn run(&self, image: &str, args: &[&str]) -> Result<String, String> {
        ok(self
            .cmd()
            .args(["run", "--rm", "--runtime", "runc", "--network=none"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                image,
            ])
            .args(args))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rmi", "--all", "--force"]).output();
        let _ = self.cmd().args(["system", "reset", "--force"]).output();
        let _ = self.buildah().args(["rm", "--all"]).output();
        let _ = self.buildah().args(["rmi", "--all", "--force"]).output();
    }
}

/// Pipes the output of running the executable `producer` into `consumer`; both must succeed.
pub fn pipe(producer: &Path, consumer: &mut Command) -> Result<String, String> {
    pipe_cmd(&mut Command::new(producer), consumer)
}

/// Pipes the output of `producer` into `consumer`; both must succeed.
pub fn pipe_cmd(producer: &mut Command, consumer: &mut Command) -> Result<String, String> {
    let mut p = producer
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {producer:?}: {e}"))?;
    let stdout = p.stdout.take().expect("piped");
    let out = consumer.stdin(stdout).output();
    // The Command keeps the pipe's read end; drop it so that a consumer that exits early
    // makes the producer see a closed pipe instead of blocking forever.
    consumer.stdin(Stdio::null());
    let out = out.map_err(|e| format!("cannot run {consumer:?}: {e}"))?;
    let pout = p.wait_with_output().map_err(|e| e.to_string())?;
    if !pout.status.success() || !out.status.success() {
        return Err(format!(
            "{producer:?} | {consumer:?} failed\nproducer status {}: {}\n{}",
            pout.status,
            String::from_utf8_lossy(&pout.stderr),
            describe(consumer, &out)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program` with `file` on stdin; must succeed.
pub fn feed(file: &Path, consumer: &mut Command) -> Result<String, String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    ok(consumer.stdin(f))
}

/// Writes the output of running `producer` to `dest`.
pub fn save(producer: &Path, dest: &Path) -> Check {
    let f = std::fs::File::create(dest).map_err(|e| e.to_string())?;
    let out = Command::new(producer)
        .stdout(f)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", producer.display()))?;
    ensure(out.status.success(), || {
        format!(
            "{} failed: {}",
            producer.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs the checks whose names contain one of `filters` (all when empty), one at a time,
/// printing each result; returns the number of failures.
pub struct Suite {
    filters: Vec<String>,
    failures: Vec<String>,
    ran: usize,
}

impl Suite {
    /// Takes name filters from the command line (flags are ignored).
    pub fn from_args() -> Suite {
        Suite {
            filters: std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .collect(),
            failures: Vec::new(),
            ran: 0,
        }
    }

    /// True when no name filter was given: every check runs.
    pub fn runs_all(&self) -> bool {
        self.filters.is_empty()
    }

    /// Runs `f` as the check `name`, unless filtered out; returns whether it passed (`None`
    /// when it did not run).
    pub fn check(&mut self, name: &str, f: impl FnOnce() -> Check) -> Option<bool> {
        if !self.filters.is_empty() && !self.filters.iter().any(|flt| name.contains(flt.as_str())) {
            return None;
        }
        self.ran += 1;
        let start = Instant::now();
        let result = f();
        let secs = start.elapsed().as_secs_f64();
        let passed = result.is_ok();
        match result {
            Ok(()) => println!("e2e ok    {name} ({secs:.1}s)"),
            Err(e) => {
                println!("e2e FAIL  {name} ({secs:.1}s)\n{e}\n");
                self.failures.push(name.to_owned());
            }
        }
        let _ = std::io::stdout().flush();
        Some(passed)
    }

    /// Prints the summary; returns true when every check passed.
    pub fn finish(self) -> bool {
        println!(
            "e2e: {} checks, {} failed{}",
            self.ran,
            self.failures.len(),
            if self.failures.is_empty() {
                String::new()
            } else {
                format!(": {}", self.failures.join(", "))
            }
        );
        self.failures.is_empty()
    }
}

/// Debian's `docker-registry` (the distribution registry), listening on 127.0.0.1 only, with
/// its storage in the scratch directory; stopped when dropped.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Where it stores what it is sent.
    data: PathBuf,
}

impl Registry {
    /// Starts a registry on a free port and waits until it answers.
    pub fn start(scratch: &Path) -> Result<Registry, String> {
        Registry::start_with(scratch, None, None)
    }

    /// Starts a registry serving HTTPS with `tls` (certificate and key files) and, with
    /// `htpasswd` (a bcrypt file), requiring basic authentication.
    pub fn start_with(
        scratch: &Path,
        tls: Option<(&Path, &Path)>,
        htpasswd: Option<&Path>,
    ) -> Result<Registry, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = scratch.join(format!("registry-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{}{}",
                dir.join("data").display(),
                tls.map_or(String::new(), |(cert, key)| format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                )),
                htpasswd.map_or(String::new(), |file| format!(
                    "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                    file.display()
                )),
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("log")).map_err(|e| e.to_string())?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start docker-registry: {e}"))?;
        let registry = Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            data: dir.join("data"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&registry.host).is_ok() {
                return Ok(registry);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "docker-registry did not listen on {}",
            registry.host
        ))
    }
}

impl Registry {
    /// The size of every blob it stores (layers, configs, manifests), each once.
    pub fn blob_sizes(&self) -> Vec<u64> {
        let blobs = self.data.join("docker/registry/v2/blobs/sha256");
        let mut sizes = Vec::new();
        for prefix in std::fs::read_dir(&blobs).into_iter().flatten().flatten() {
            for blob in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(meta) = std::fs::metadata(blob.path().join("data")) {
                    sizes.push(meta.len());
                }
            }
        }
        sizes
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
