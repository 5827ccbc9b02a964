//! The library as a whole: reproducible builds, the no-nixpkgs package family, the examples and the flake.

use super::*;

pub fn nix_build_check_reproducible(ctx: &mut Context) -> Check {
    // Every image the tests build, sandbox on; then each again with --check (nowDated too,
    // since "now" is resolved when the image is streamed, not in the plan).
    let nix = &mut ctx.nix;
    let built = BUILT.iter().try_for_each(|attr| {
        nix.build(attr)
            .map(drop)
            .map_err(|e| format!("{attr}: {e}"))
    });
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Nix,
        Feature::SandboxedBuilds,
        built.clone(),
    );
    built?;
    record_outputs(ctx)?;
    let nix = &mut ctx.nix;
    let checked = BUILT.iter().try_for_each(|attr| {
        nix.check_reproducible(attr)
            .map_err(|e| format!("{attr}: {e}"))
    });
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Nix,
        Feature::CheckRebuild,
        checked.clone(),
    );
    checked
}

/// Writes `build/e2e/outputs-<generation>.json`: every built attribute's store path and NAR
/// hash as this generation's Nix built it.
fn record_outputs(ctx: &mut Context) -> Check {
    let mut paths = Vec::new();
    for attr in BUILT {
        paths.push(ctx.nix.build(attr)?);
    }
    let hashes = ok(Command::new("nix-store")
        .args(["-q", "--hash"])
        .args(&paths))?;
    let record: BTreeMap<&str, Value> = BUILT
        .iter()
        .zip(paths.iter().zip(hashes.lines()))
        .map(|(attr, (path, hash))| {
            (
                *attr,
                serde_json::json!({"path": path.display().to_string(), "narHash": hash}),
            )
        })
        .collect();
    let dir = chart_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join(format!("outputs-{}.json", ctx.consumers.slug()));
    let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Against the record the other generation's run left (`record_outputs`): every store path
/// both Nix versions built (the same derivation, so the same inputs) has the same NAR hash.
/// Paths only one built (another commit's record) are skipped; with no record of another
/// generation there is nothing to compare, and the chart says so by an empty cell.
pub fn same_outputs_as_the_other_generation(ctx: &mut Context) -> Check {
    let dir = chart_dir();
    let read = |file: &Path| -> Result<BTreeMap<String, Value>, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
    };
    let own_name = format!("outputs-{}.json", ctx.consumers.slug());
    let own = read(&dir.join(&own_name))?;
    let mut compared = 0;
    let mut differ = Vec::new();
    for entry in std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("outputs-") || name == own_name {
            continue;
        }
        let other = read(&entry.path())?;
        for (attr, mine) in &own {
            let Some(theirs) = other.get(attr) else {
                continue;
            };
            if theirs["path"] != mine["path"] {
                continue;
            }
            compared += 1;
            if theirs["narHash"] != mine["narHash"] {
                differ.push(format!(
                    "{attr} ({}): {} here, {} in {name}",
                    mine["path"], mine["narHash"], theirs["narHash"]
                ));
            }
        }
    }
    if compared == 0 {
        println!(
            "e2e: no other generation's outputs to compare with yet ({})",
            dir.display()
        );
        return Ok(());
    }
    let result = ensure(differ.is_empty(), || {
        format!(
            "the two Nix versions built different bytes:\n{}",
            differ.join("\n")
        )
    });
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Nix,
        Feature::SameOutputs,
        result.clone(),
    );
    println!("e2e: {compared} store paths compared with the other generation's");
    result
}

pub fn family_packages_without_nixpkgs(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    // binSh, usrBinEnv, caCertificates, fakeNss (overridden) and a useradd through
    // shadowSetup in runAsRoot, under docker and podman.
    let archive = nix.build("family")?;
    let expected = "root:x:0:0:root user:/var/empty:/bin/sh\n\
                    bob:x:1001:1001::/var/empty:/bin/sh\n\
                    alice:x:1000:1000::/home/alice:/bin/sh\n\
                    staff:x:2000:alice\n\
                    alice:x:1000:\n\
                    /home/alice 1000:1000 755\n\
                    env ok\n\
                    certs ok\n\
                    hosts: files dns\n\
                    busybox\n";
    feed(&archive, docker.cmd().arg("load"))?;
    let out = docker.run("strata-family:latest", &[])?;
    ensure(out == expected, || format!("docker run printed {out:?}"))?;
    // A passwd user (`-u`) on a root-owned store: nixos/tests/docker-tools.nix's 755 check.
    let out = ok(docker.cmd().args([
        "run",
        "--rm",
        "--network=none",
        "-u",
        "1000:1000",
        "--entrypoint",
        "/bin/sh",
        "strata-family:latest",
        "-c",
        "id -un; stat -c %a:%u /nix /nix/store",
    ]))?;
    ensure(out == "alice\n755:0\n755:0\n", || {
        format!("-u 1000:1000 on a root-owned store: {out:?}")
    })?;
    feed(&archive, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-family:latest", &[])?;
    ensure(out == expected, || format!("podman run printed {out:?}"))
}

pub fn examples_build_and_run(ctx: &mut Context) -> Check {
    let (nix, docker) = (&mut ctx.nix, &mut ctx.docker);
    // One example per function (examples/default.nix), as README and docs show them.
    const WORLD: &str = "Hello, world!";
    let runs = [
        ("examples.hello", "hello:latest", WORLD.to_owned()),
        ("examples.helloLayered", "hello:latest", WORLD.to_owned()),
        (
            "examples.app",
            "hello-app:latest",
            format!("{WORLD}\nI am alice in /home/alice"),
        ),
        ("examples.sharedOne", "shared-one:latest", "one".to_owned()),
        ("examples.sharedTwo", "shared-two:latest", WORLD.to_owned()),
        ("examples.withNixDb", "hello-nixdb:latest", WORLD.to_owned()),
        (
            "examples.withNixDbSingle",
            "hello-nixdb-single:latest",
            WORLD.to_owned(),
        ),
        (
            "examples.basics",
            "basics:latest",
            "root\nnobody".to_owned(),
        ),
        (
            "examples.family.greeter",
            "greeter:latest",
            WORLD.to_owned(),
        ),
        (
            "examples.family.shell",
            "shell:latest",
            format!("shell\n{WORLD}"),
        ),
    ];
    for (attr, image, want) in runs {
        let built = nix.build(attr)?;
        if is_executable(&built) {
            pipe(&built, docker.cmd().arg("load"))?;
        } else {
            feed(&built, docker.cmd().arg("load"))?;
        }
        let out = docker.run(image, &[])?;
        ensure(out.trim() == want, || {
            format!("{attr}: docker run printed {out:?}")
        })?;
    }
    let merged = nix.build("examples.merged")?;
    let loaded = feed(&merged, docker.cmd().arg("load"))?;
    ensure(
        loaded.contains("hello:latest") && loaded.contains("hello-app:latest"),
        || format!("examples.merged: docker load said {loaded:?}"),
    )?;
    let multi = nix.build("examples.multiArch")?;
    pipe(&multi, docker.cmd().arg("load"))?;
    let out = docker.run("hello-multi:latest", &[])?;
    ensure(out.trim() == "Hello, world!", || {
        format!("examples.multiArch: docker run printed {out:?}")
    })?;
    let rootfs = std::fs::read(nix.build("examples.rootfs")?).map_err(|e| e.to_string())?;
    let names: BTreeSet<String> = entries(&rootfs).into_iter().map(|e| e.0).collect();
    ensure(
        names.contains("./bin/hello") && names.contains("./home/alice/"),
        || format!("examples.rootfs holds {names:?}"),
    )
}

pub fn flake_overlay_with_stand_in_nixpkgs(ctx: &mut Context) -> Check {
    let result = flake_check(&ctx.dir).and_then(|()| readme_flake(&ctx.dir, &ctx.docker));
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Nix,
        Feature::Flake,
        result.clone(),
    );
    result
}

/// Evaluates and builds the flake's outputs with nixpkgs overridden by a minimal local
/// stand-in (nixpkgs cannot be fetched here), proving the overlay, `lib` and packages wiring.
pub fn flake_check(scratch: &Path) -> Check {
    // A copy outside the repository: flakes in a git tree only see committed files, and the
    // test must not depend on what is committed.
    let copy = scratch.join("flake-src");
    let _ = std::fs::remove_dir_all(&copy);
    bash(&format!(
        "mkdir -p {c} && cp -r flake.nix flake.lock nix checks Cargo.toml Cargo.lock src examples tests {c}/ && mkdir -p {c}/tests/nix/stand-in-nixpkgs/prebuilt && cp -a build/bootstrap/helper build/bootstrap/toolbox build/bootstrap/bash {c}/tests/nix/stand-in-nixpkgs/prebuilt/",
        c = copy.display()
    ))?;
    let stand_in = copy.join("tests/nix/stand-in-nixpkgs");
    let flake = |args: &[&str]| -> Result<String, String> {
        ok(Command::new("nix")
            .args(["--extra-experimental-features", "nix-command flakes"])
            .args(args)
            .args(["--override-input", "nixpkgs"])
            .arg(format!("path:{}", stand_in.display()))
            .args(["--no-write-lock-file", "--option", "sandbox", "true"])
            // Nix 2.8's evaluation cache sometimes answers "attribute ... unexpectedly
            // missing" for a fresh copy of the flake; evaluate afresh every time.
            .args(["--option", "eval-cache", "false"])
            .current_dir(&copy))
    };
    let system = "x86_64-linux";
    let is_fn = flake(&[
        "eval",
        "path:.#overlays.default",
        "--apply",
        "builtins.isFunction",
    ])?;
    ensure(is_fn.trim() == "true", || {
        format!("overlays.default is not a function: {is_fn}")
    })?;
    let lib = flake(&[
        "eval",
        "path:.#lib",
        "--apply",
        "l: builtins.attrNames (builtins.functionArgs l)",
    ])?;
    ensure(
        lib.contains("\"helper\"") && lib.contains("\"pkgs\""),
        || format!("lib arguments: {lib}"),
    )?;
    // Nix 2.8 has no --print-out-paths; --json names the outputs.
    let built = |attr: &str| -> Result<PathBuf, String> {
        let out = flake(&["build", "--no-link", "--json", &format!("path:.#{attr}")])?;
        let json: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        json[0]["outputs"]["out"]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| format!("no out in {out}"))
    };
    let plan = built(&format!("packages.{system}.example"))?;
    let text = std::fs::read_to_string(&plan).map_err(|e| e.to_string())?;
    ensure(
        text.starts_with("#!")
            && text.contains("\"strataPlan\"")
            && text.contains("-hello-2.12/bin/hello"),
        || format!("flake example is not a plan of hello: {}", plan.display()),
    )?;
    let checks = built(&format!("checks.{system}.eval"))?;
    let listed = std::fs::read_to_string(&checks).map_err(|e| e.to_string())?;
    ensure(
        listed.contains("overrideScope reaches streamLayeredImage"),
        || format!("flake checks.eval: {listed}"),
    )?;
    // pkgs.dockerTools through the overlay: meta, variant, .override (issue 17).
    let overlay = built(&format!("checks.{system}.overlay"))?;
    let listed = std::fs::read_to_string(&overlay).map_err(|e| e.to_string())?;
    ensure(
        listed.contains("dockerTools passes variant to the plan"),
        || format!("flake checks.overlay: {listed}"),
    )?;
    let example = built(&format!("checks.{system}.example"))?;
    ensure(example == plan, || {
        format!(
            "checks.example {} is not packages.example {}",
            example.display(),
            plan.display()
        )
    })?;
    let helper = built(&format!("packages.{system}.default"))?;
    ensure(helper.join("bin/strata").exists(), || {
        format!("packages.default has no bin/strata: {}", helper.display())
    })?;
    let archive = built(&format!("packages.{system}.exampleLayered"))?;
    ensure(archive.to_string_lossy().ends_with("-hello.tar.gz"), || {
        format!("exampleLayered: {}", archive.display())
    })
}

/// The README's flake, word for word but for its two URLs (the copy `flake_check` made, and
/// the stand-in nixpkgs in it): `nix build .#image && docker load < result && docker run`.
fn readme_flake(scratch: &Path, docker: &Dockerd) -> Check {
    let readme = std::fs::read_to_string(repo().join("README.md")).map_err(|e| e.to_string())?;
    let flake = readme
        .split("```nix\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or("README.md has no nix block")?;
    let copy = scratch.join("flake-src");
    let stand_in = copy.join("tests/nix/stand-in-nixpkgs");
    let (strata_url, nixpkgs_url) = (
        "path:/path/to/strata",
        "github:NixOS/nixpkgs/nixos-unstable",
    );
    ensure(
        flake.contains(strata_url) && flake.contains(nixpkgs_url),
        || format!("the README's flake no longer names {strata_url} and {nixpkgs_url}: {flake}"),
    )?;
    let flake = flake
        .replace(strata_url, &format!("path:{}", copy.display()))
        .replace(nixpkgs_url, &format!("path:{}", stand_in.display()));
    let project = scratch.join("readme-flake");
    let _ = std::fs::remove_dir_all(&project);
    std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
    std::fs::write(project.join("flake.nix"), flake).map_err(|e| e.to_string())?;
    // Nix 2.8 has no --print-out-paths; --json names the outputs.
    let out = ok(Command::new("nix")
        .args(["--extra-experimental-features", "nix-command flakes"])
        .args(["build", "--no-link", "--json", ".#image"])
        .args([
            "--option",
            "sandbox",
            "true",
            "--option",
            "eval-cache",
            "false",
        ])
        .current_dir(&project))?;
    let json: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let image = json[0]["outputs"]["out"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| format!("no out in {out}"))?;
    let loaded = feed(&image, docker.cmd().arg("load"))?;
    let name = loaded
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .ok_or_else(|| format!("docker load said {loaded:?}"))?;
    let said = docker.run(name.trim(), &[])?;
    ensure(said.trim() == "Hello, world!", || {
        format!("the README's image {name} printed {said:?}")
    })
}
