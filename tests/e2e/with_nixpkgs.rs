//! Images built as a nixpkgs user builds them (`tests/nix/with-nixpkgs.nix`: the stand-in
//! nixpkgs with strata's overlay): nixpkgs' nix-shell images and scripts under stdenv.

use crate::support::{ensure_created_now, open_image};
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
        (
            "passAsFile",
            "nix-shell-pass-as-file",
            true,
            "this is a string",
        ),
        (
            "command",
            "nix-shell-command",
            true,
            "This shell is interactive",
        ),
        (
            "run",
            "nix-shell-run",
            false,
            "This shell is not interactive",
        ),
        (
            "writableHome",
            "nix-shell-writable-home",
            false,
            "home directory is writable",
        ),
        (
            "nonexistentHome",
            "nix-shell-nonexistent-home",
            false,
            "home directory doesn't exist",
        ),
        // buildDerivation builds hello's output into /nix/store, which the user owns.
        (
            "buildDerivation",
            "nix-shell-build-derivation",
            false,
            "Hello, world!",
        ),
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
        env.iter()
            .any(|v| v.starts_with("out=/nix/store/") && v.ends_with("-hello-2.12")),
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
            == [
                "1000",
                "1000",
                "/build",
                "1000:1000",
                "1000:1000",
                "1000:1000",
            ],
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
        archive
            .to_string_lossy()
            .ends_with("-nix-shell-archive-env.tar.gz"),
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
/// (substituteInPlace, awk, runHook), except buildImage's beside runAsRoot, which run as
/// plain scripts, as nixpkgs runs them; runAsRoot has the image's /bin on PATH.
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
    ensure(lines == ["greeting=hello", "b", "sourced"], || {
        format!("buildImage's scripts under stdenv: {out:?}")
    })?;
    let with_root = nix.build("scripts.singleRunAsRoot")?;
    feed(&with_root, docker.cmd().arg("load"))?;
    let out = docker.run("scripts-under-stdenv-root:latest", &[])?;
    ensure(out == "from the image's /bin\nplain\n", || {
        format!("buildImage's runAsRoot and plain extraCommands: {out:?}")
    })
}

/// nixpkgs' examples.nix entries built on nixpkgs' packages (bash, buildEnv, writeTextDir),
/// their arguments unchanged, checked as nixos/tests/docker-tools.nix checks them.
pub fn nixpkgs_examples_through_the_overlay(ctx: &mut Context) -> Check {
    let (docker, podman) = (&ctx.docker, &ctx.podman);
    let mut nix = Nix::with_nixpkgs();
    // bash and the compression variants: docker loads gzip and plain archives, podman zstd
    // (Debian's docker 20.10 cannot).
    for (attr, image, engine) in [
        ("bash", "bash:latest", "docker"),
        ("bashUncompressed", "bash-uncompressed:latest", "docker"),
        (
            "bashLayeredUncompressed",
            "bash-layered-uncompressed:latest",
            "docker",
        ),
        ("bashZstdCompressed", "bash-zstd:latest", "podman"),
        (
            "bashLayeredZstdCompressed",
            "bash-layered-zstd:latest",
            "podman",
        ),
    ] {
        let archive = nix.build(&format!("examples.{attr}"))?;
        let out = match engine {
            "docker" => {
                feed(&archive, docker.cmd().arg("load"))?;
                docker.run(image, &["bash", "-c", "echo bash runs"])?
            }
            _ => {
                feed(&archive, podman.cmd().arg("load"))?;
                podman.run(
                    &format!("localhost/{image}"),
                    &["bash", "-c", "echo bash runs"],
                )?
            }
        };
        ensure(out == "bash runs\n", || {
            format!("examples.{attr} printed {out:?}")
        })?;
    }
    // redis: a service on bash, runAsRoot's /data its WorkingDir and Volume.
    let redis = nix.build("examples.redis")?;
    feed(&redis, docker.cmd().arg("load"))?;
    let out = docker.run("redis:latest", &[])?;
    ensure(out == "Ready to accept connections tcp in /data\n", || {
        format!("examples.redis printed {out:?}")
    })?;
    let config = open_image(&redis)?.config;
    ensure(
        config["config"]["Volumes"] == serde_json::json!({ "/data": {} }),
        || format!("examples.redis config: {}", config["config"]),
    )?;
    let out = docker.run("redis:latest", &["bash", "-c", "echo bash runs"])?;
    ensure(out == "bash runs\n", || {
        format!("examples.redis: its parent's bash printed {out:?}")
    })?;
    // compressor = "none" on L: a plain archive of plain layers.
    let plain = nix.build("examples.bashLayeredUncompressed")?;
    let image = open_image(&plain)?;
    ensure(
        image
            .layers
            .iter()
            .all(|l| l.get(257..262) == Some(&b"ustar"[..])),
        || "bashLayeredUncompressed: a layer is not a plain tar".to_owned(),
    )?;
    // A passwd user on a root-owned store: /nix and /nix/store are 755.
    feed(
        &nix.build("examples.bashLayeredWithUser")?,
        docker.cmd().arg("load"),
    )?;
    let out = ok(docker.cmd().args([
        "run",
        "--rm",
        "--network=none",
        "-u",
        "somebody",
        "bash-layered-with-user:latest",
        "bash",
        "-c",
        "id -un; stat -c %a /nix /nix/store",
    ]))?;
    ensure(out == "somebody\n755\n755\n", || {
        format!("bashLayeredWithUser as somebody: {out:?}")
    })?;
    // maxLayers = 2, loaded and run alone.
    let two = nix.build("examples.two-layered-image")?;
    let layers = open_image(&two)?.layers.len();
    ensure(layers == 2, || {
        format!("two-layered-image has {layers} layers")
    })?;
    feed(&two, docker.cmd().arg("load"))?;
    let out = docker.run("two-layered-image:latest", &[])?;
    ensure(out == "hello\n", || {
        format!("two-layered-image printed {out:?}")
    })?;
    // No store paths: `ls /` works, there is no /nix/store.
    feed(
        &nix.build("examples.no-store-paths")?,
        docker.cmd().arg("load"),
    )?;
    docker.run("no-store-paths:latest", &["ls", "/"])?;
    ensure(
        docker
            .run("no-store-paths:latest", &["ls", "/nix/store"])
            .is_err(),
        || "no-store-paths has a /nix/store".to_owned(),
    )?;
    // created = "now" on L.
    feed(
        &nix.build("examples.unstableDateLayered")?,
        docker.cmd().arg("load"),
    )?;
    ensure_created_now(docker.cmd(), "unstable-date-layered:latest")?;
    // etc: files linked into the store by an activation script under fakechroot; Cmd is a
    // script's path, one string, as nixpkgs writes it.
    pipe(&nix.build("examples.etc")?, docker.cmd().arg("load"))?;
    let out = docker.run("etc:latest", &[])?;
    ensure(out.contains("127.0.0.1 localhost"), || {
        format!("examples.etc printed {out:?}")
    })?;
    // caCertificates: every path a TLS client looks at is readable.
    feed(
        &nix.build("examples.image-with-certs")?,
        docker.cmd().arg("load"),
    )?;
    for path in [
        "/etc/ssl/certs/ca-bundle.crt",
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        docker
            .run("image-with-certs:latest", &["test", "-r", path])
            .map_err(|e| format!("image-with-certs: {path} is not readable: {e}"))?;
    }
    Ok(())
}

/// nixpkgs' Nix-in-the-image examples (nix, nixLayered, filesInStore, nix-layered): the
/// container's own `nix-store` reads the database strata wrote (the stand-in `nix` is the
/// machine's Nix with its libraries).
pub fn nix_inside_images_reads_their_database(ctx: &mut Context) -> Check {
    let docker = &ctx.docker;
    let mut nix = Nix::with_nixpkgs();
    let nix_pkg = nix.eval_json("pkgs.nix.outPath")?;
    let nix_pkg = nix_pkg.as_str().unwrap_or_default().to_owned();
    let bash_pkg = nix.eval_json("pkgs.bash.outPath")?;
    let bash = format!("{}/bin/bash", bash_pkg.as_str().unwrap_or_default());
    for (attr, image) in [
        ("examples.nix", "nix:latest"),
        ("examples.nixLayered", "nix-layered:latest"),
        ("examples.nix-layered", "nix-layered:latest"),
    ] {
        let built = nix.build(attr)?;
        match attr {
            "examples.nix-layered" => pipe(&built, docker.cmd().arg("load"))?,
            _ => feed(&built, docker.cmd().arg("load"))?,
        };
        // nix-layered sets no USER and has no passwd, and Nix needs a user name.
        let run = |args: &[&str]| -> Result<String, String> {
            let mut c = docker.cmd();
            c.args(["run", "--rm", "--network=none", "-e", "USER=root", image]);
            ok(c.args(args))
        };
        let out = run(&["nix-store", "-qR", &nix_pkg])?;
        ensure(out.lines().any(|l| l == nix_pkg), || {
            format!("{attr}: nix-store -qR {nix_pkg} printed {out:?}")
        })?;
        run(&["nix-store", "--verify", "--check-contents"])
            .map_err(|e| format!("{attr}: nix-store --verify --check-contents: {e}"))?;
        // The nix binary's symlinks are intact (nixos/tests/docker-tools.nix; nix-layered
        // has no coreutils to read them with).
        if attr != "examples.nix-layered" {
            let test = format!("test nix == $(readlink {nix_pkg}/bin/nix-daemon)");
            run(&[&bash, "-c", &test]).map_err(|e| format!("{attr}: {test}: {e}"))?;
        }
    }
    let files = nix.build("examples.filesInStore")?;
    feed(&files, docker.cmd().arg("load"))?;
    docker
        .run(
            "file-in-store:latest",
            &["nix-store", "--verify", "--check-contents"],
        )
        .map_err(|e| format!("filesInStore: nix-store --verify --check-contents: {e}"))?;
    let out = docker.run("file-in-store:latest", &[])?;
    ensure(out.contains("some data"), || {
        format!("filesInStore printed {out:?}")
    })
}
