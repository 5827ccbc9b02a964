//! Images built as a nixpkgs user builds them (`tests/nix/with-nixpkgs.nix`: the stand-in
//! nixpkgs with strata's overlay): nixpkgs' nix-shell images and scripts under stdenv.

use crate::util::*;
use crate::Context;
use serde_json::Value;
use std::process::Command;

/// `docker run --rm -it IMAGE` in a pseudo-terminal (`script`), for the examples whose shell
/// must be interactive; returns what the terminal showed.
fn run_in_terminal(docker: &Dockerd, image: &str) -> Result<String, String> {
    ok(Command::new("script").args([
        "-qec",
        &format!(
            "docker --host {} run --rm -it --network=none {image}",
            docker.host
        ),
        "/dev/null",
    ]))
}

/// nixpkgs' examples.nix nix-shell examples, with the outputs
/// nixos/tests/docker-tools-nix-shell.nix expects, and buildNixShellImage's archive.
pub fn nix_shell_images_as_nixpkgs_examples(ctx: &mut Context) -> Check {
    let (docker, podman) = (&ctx.docker, &ctx.podman);
    let mut nix = Nix::with_nixpkgs();
    // (attribute, image, shell run in a terminal, what it prints)
    let cases = [
        ("hook", "nix-shell-hook", true, "This is the shell hook!"),
        ("inputs", "nix-shell-inputs", true, "Hello, world!"),
        ("passAsFile", "nix-shell-pass-as-file", true, "this is a string"),
        ("command", "nix-shell-command", true, "This shell is interactive"),
        ("run", "nix-shell-run", false, "This shell is not interactive"),
        ("writableHome", "nix-shell-writable-home", false, "home directory is writable"),
        (
            "nonexistentHome",
            "nix-shell-nonexistent-home",
            false,
            "home directory doesn't exist",
        ),
        // buildDerivation builds hello's output into /nix/store, which the user owns.
        ("buildDerivation", "nix-shell-build-derivation", false, "Hello, world!"),
    ];
    for (attr, image, terminal, expected) in cases {
        let plan = nix.build(&format!("nixShell.{attr}"))?;
        pipe(&plan, docker.cmd().arg("load"))?;
        let name = format!("{image}:latest");
        let out = match terminal {
            true => run_in_terminal(docker, &name)?,
            false => docker.run(&name, &[])?,
        };
        ensure(out.contains(expected), || {
            format!("nixShell.{attr}: {image} printed {out:?}, not {expected:?}")
        })?;
    }

    // The build environment: nixbld (uid 1000) in /build, owning /nix/store and /build,
    // stdenv's setup at hand.
    let plan = nix.build("nixShell.basic")?;
    pipe(&plan, docker.cmd().arg("load"))?;
    let inspect: Value = serde_json::from_str(&ok(docker
        .cmd()
        .args(["inspect", "nix-shell-basic:latest"]))?)
    .map_err(|e| e.to_string())?;
    let config = &inspect[0]["Config"];
    ensure(
        config["User"] == "1000:1000" && config["WorkingDir"] == "/build",
        || format!("nix-shell-basic config: {config}"),
    )?;
    let env: Vec<&str> = config["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for var in ["HOME=/build", "NIX_BUILD_TOP=/build", "name=hello-2.12"] {
        ensure(env.contains(&var), || {
            format!("nix-shell-basic Env lacks {var}: {env:?}")
        })?;
    }
    ensure(
        env.iter().any(|v| v.starts_with("out=/nix/store/") && v.ends_with("-hello-2.12")),
        || format!("nix-shell-basic Env has no out: {env:?}"),
    )?;
    let out = docker.run(
        "nix-shell-basic:latest",
        &[
            "bash",
            "-c",
            "source $stdenv/setup && id -u && id -g && pwd && stat -c %u:%g /nix /nix/store /build",
        ],
    )?;
    ensure(
        out.split_whitespace().collect::<Vec<_>>()
            == ["1000", "1000", "/build", "1000:1000", "1000:1000", "1000:1000"],
        || format!("nix-shell-basic: ids, directory and owners: {out:?}"),
    )?;

    // podman runs the same kind of image.
    let plan = nix.build("nixShell.run")?;
    pipe(&plan, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/nix-shell-run:latest", &[])?;
    ensure(out.contains("This shell is not interactive"), || {
        format!("podman nix-shell-run printed {out:?}")
    })?;

    // buildNixShellImage: the archive nixpkgs names DRV-env.tar.gz.
    let archive = nix.build("nixShell.archive")?;
    ensure(
        archive.to_string_lossy().ends_with("-nix-shell-archive-env.tar.gz"),
        || format!("buildNixShellImage wrote {}", archive.display()),
    )?;
    feed(&archive, docker.cmd().arg("load"))?;
    let out = run_in_terminal(docker, "nix-shell-archive-env:latest")?;
    ensure(out.contains("archived"), || {
        format!("buildNixShellImage's image printed {out:?}")
    })?;
    nix.check_reproducible("nixShell.buildDerivation")?;

    for (attr, message) in [
        ("refused.structuredAttrs", "uses __structuredAttrs"),
        ("refused.commandAndRun", "give `command` or `run`, not both"),
    ] {
        let err = nix.instantiate_fails(attr)?;
        ensure(
            err.contains("streamNixShellImage: ") && err.contains(message),
            || format!("{attr}: {err}"),
        )?;
    }
    Ok(())
}

/// With nixpkgs, extraCommands and fakeRootCommands run after stdenv's setup
/// (substituteInPlace, awk, runHook), runAsRoot with the image's /bin on PATH.
pub fn scripts_run_under_stdenv_with_nixpkgs(ctx: &mut Context) -> Check {
    let docker = &ctx.docker;
    let mut nix = Nix::with_nixpkgs();
    let layered = nix.build("scripts.layered")?;
    feed(&layered, docker.cmd().arg("load"))?;
    let out = docker.run(
        "scripts-under-stdenv:latest",
        &[
            "sh",
            "-c",
            "cat /etc/app.conf /etc/awk-said /etc/setup-was; stat -c %u:%g /home/alice; hello",
        ],
    )?;
    let lines: Vec<&str> = out.lines().collect();
    ensure(
        lines
            == [
                "greeting=hello from fakeRootCommands",
                "b",
                "sourced",
                "1000:1000",
                "Hello, world!",
            ],
        || format!("buildLayeredImage's scripts under stdenv: {out:?}"),
    )?;
    let single = nix.build("scripts.single")?;
    feed(&single, docker.cmd().arg("load"))?;
    let out = docker.run("scripts-under-stdenv-b:latest", &[])?;
    let lines: Vec<&str> = out.lines().collect();
    ensure(
        lines == ["from the image's /bin", "greeting=hello", "b", "sourced"],
        || format!("buildImage's scripts under stdenv: {out:?}"),
    )
}
