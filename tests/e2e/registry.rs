//! Registries: push, pullImage, multi-architecture indexes and the copy executables.

use super::*;

pub fn push_uploads_only_what_the_registry_lacks(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    let registry = Registry::start(dir)?;
    let host = registry.host.clone();
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let push = |plan: &Path, target: &str, extra: &[&str]| {
        push_plan(plan, target, extra).map(|p| (p.uploaded, p.skipped, p.digest))
    };
    let v1 = nix.build("appV1")?;
    let v2 = nix.build("appV2")?;
    // Into a repository with no tags, layers whose compressed digests nothing knows yet go
    // in chunks, compressed once; a push to a repository that has tags compresses the
    // layers it knows nothing of first, to ask the registry for them.
    let fresh = push_plan(&v1, &format!("{host}/fresh:v1"), &[])?;
    ensure(fresh.compressed_first == 0, || {
        format!(
            "the push into an empty repository compressed {} layers first",
            fresh.compressed_first
        )
    })?;
    let cold = dir.join("cold-cache");
    let _ = std::fs::remove_dir_all(&cold);
    let out = run(Command::new(&helper)
        .arg("push")
        .arg(&v1)
        .arg(format!("{host}/fresh:v1-again"))
        .env("STRATA_CACHE_DIR", &cold)
        .env("STRATA_PROGRESS", "none"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure(
        out.status.success() && err.contains("compressed first") && err.contains(" 0 bytes sent"),
        || format!("push with no cache into a repository with tags: {err}"),
    )?;
    let layers = |plan: &Path| -> Result<usize, String> {
        let text = std::fs::read_to_string(plan).map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(text.split_once('\n').map_or("", |(_, j)| j))
            .map_err(|e| e.to_string())?;
        Ok(json["layers"].as_array().map_or(0, Vec::len))
    };
    let n = layers(&v1)?;
    let (up, skip, digest1) = push(&v1, &format!("{host}/app:v1"), &[])?;
    ensure(up == n + 1 && skip == 0, || {
        format!("first push of {n} layers: {up} uploaded, {skip} skipped")
    })?;
    // v2 changed the application: its layer and the config go; the shared dependency
    // layer and the (unchanged) customisation layer are already there.
    let (up, skip, _) = push(&v2, &format!("{host}/app:v2"), &[])?;
    ensure(up == 2 && skip == layers(&v2)? - 1, || {
        format!("v2: {up} uploaded, {skip} skipped")
    })?;
    let (up, _, _) = push(&v2, &format!("{host}/app:v2"), &[])?;
    ensure(up == 0, || format!("re-push of v2 uploaded {up}"))?;
    // Same image, another repository: the same manifest digest.
    let (_, _, again) = push(&v1, &format!("{host}/other:v1"), &[])?;
    ensure(again == digest1, || format!("{again} != {digest1}"))?;
    // Mounted from a repository that has the blobs: nothing is uploaded.
    let (up, _, again) = push(&v1, &format!("{host}/mounted:v1"), &["--mount-from", "app"])?;
    ensure(up == 0 && again == digest1, || {
        format!("mounted push: {up} uploaded, {again}")
    })?;
    // skopeo reads it, copies it into a docker-archive that docker loads and runs.
    let inspect: Value = serde_json::from_str(&ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/app:v2"),
    ]))?)
    .map_err(|e| e.to_string())?;
    ensure(
        inspect["Layers"].as_array().map_or(0, Vec::len) == layers(&v2)?,
        || format!("{inspect}"),
    )?;
    let copied = dir.join("pushed-v2.tar");
    let _ = std::fs::remove_file(&copied);
    ok(Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{host}/app:v2"),
        ])
        .arg(format!(
            "docker-archive:{}:strata-pushed:v2",
            copied.display()
        )))?;
    feed(&copied, docker.cmd().arg("load"))?;
    let out = docker.run("strata-pushed:v2", &[])?;
    ensure(out.ends_with("app 2\n"), || {
        format!("docker run printed {out:?}")
    })?;
    // zstd layers: skopeo and podman pull and run them.
    push(&v2, &format!("{host}/app:zstd"), &["--compression", "zstd"])?;
    let raw: Value = serde_json::from_str(&ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/app:zstd"),
    ]))?)
    .map_err(|e| e.to_string())?;
    ensure(
        raw["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd",
        || format!("{raw}"),
    )?;
    ok(podman
        .cmd()
        .args(["pull", "--tls-verify=false", &format!("{host}/app:zstd")]))?;
    let out = podman.run(&format!("{host}/app:zstd"), &[])?;
    ensure(out.ends_with("app 2\n"), || {
        format!("podman run printed {out:?}")
    })?;
    // Compressed digests in the cache that the bytes disprove (one too long, one too short:
    // another strata's) fail the push at once, in one line, and are dropped, so the next
    // push goes through. A too-long size used to leave the registry waiting for the rest.
    let cache = dir.join("stale-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let push_cached = |target: &str| -> Result<(bool, String), String> {
        let out = run(Command::new(&helper)
            .args(["push", "--parallel", "1"])
            .arg(&v1)
            .arg(format!("{host}/{target}"))
            .env("STRATA_CACHE_DIR", &cache)
            .env("STRATA_PROGRESS", "none"))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (pushed, err) = push_cached("cached:v1")?;
    ensure(pushed, || format!("push filling the cache: {err}"))?;
    let entries = files_under(&cache);
    ensure(entries.len() >= 2, || format!("cache entries: {entries:?}"))?;
    for (k, file) in entries.iter().take(2).enumerate() {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        let (digest, size) = text.trim().split_once(' ').unwrap_or_default();
        let size: u64 = size.parse().map_err(|_| format!("cache entry {text:?}"))?;
        let wrong = if k == 0 { size + 1000 } else { size - 1 };
        std::fs::write(file, format!("{digest} {wrong}\n")).map_err(|e| e.to_string())?;
    }
    for _ in 0..2 {
        let (pushed, err) = push_cached("stale:v1")?;
        ensure(
            !pushed && err.contains("recorded or cached") && err.trim().lines().count() == 1,
            || format!("push with a stale cache entry: {err}"),
        )?;
    }
    let (pushed, err) = push_cached("stale:v1")?;
    ensure(pushed, || {
        format!("push after the stale entries were dropped: {err}")
    })?;
    // A registry that is down, and one that wants credentials we do not have.
    let down = run(Command::new(&helper)
        .arg("push")
        .arg(&v1)
        .arg("127.0.0.1:1/app:v1"))?;
    let err = String::from_utf8_lossy(&down.stderr);
    ensure(
        !down.status.success()
            && err.contains("127.0.0.1:1")
            && err.contains("cannot connect")
            && err.trim().lines().count() == 1,
        || format!("registry down: {err}"),
    )?;
    let locked = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let locked_host = locked.local_addr().map_err(|e| e.to_string())?.to_string();
    std::thread::spawn(move || {
        for stream in locked.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = std::io::Write::write_all(&mut stream, b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let denied = run(Command::new(&helper)
        .arg("push")
        .arg(&v1)
        .arg(format!("{locked_host}/app:v1"))
        .env("HOME", &dir)
        .env_remove("REGISTRY_AUTH_FILE"))?;
    let err = String::from_utf8_lossy(&denied.stderr);
    ensure(
        !denied.status.success()
            && err.contains("refused access")
            && err.contains("no credentials")
            && err.trim().lines().count() == 1,
        || format!("401: {err}"),
    )
}

pub fn pull_image_by_digest_in_nix_build(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    let registry = Registry::start(dir)?;
    let host = registry.host.clone();
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    // skopeo, not strata, puts the image there (gzip layers, Docker schema 2 manifest).
    let archive = dir.join("to-pull.tar");
    save(&nix.build("appV1")?, &archive)?;
    ok(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{host}/pulled:v1")))?;
    let inspect: Value = serde_json::from_str(&ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/pulled:v1"),
    ]))?)
    .map_err(|e| e.to_string())?;
    let prefetched = ok(Command::new(&helper)
        .args([
            "prefetch",
            "--json",
            "--tls-verify=false",
            &format!("{host}/pulled:v1"),
        ])
        .env("STRATA_PROGRESS", "none"))?;
    let mut args: Value =
        serde_json::from_str(&prefetched).map_err(|e| format!("{e}: {prefetched}"))?;
    ensure(args["imageDigest"] == inspect["Digest"], || {
        format!("prefetch {args} vs skopeo {inspect}")
    })?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    args["name"] = Value::from(format!("pulled-{nonce}.tar"));
    let build = |args: &Value, attr: &str, check: bool| {
        nix.build_with(("pullArgs", &args.to_string()), attr, check)
    };
    let out = build(&args, "pulled", false)?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(out.status.success(), || format!("pullImage: {err}"))?;
    let pulled = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let image = format!("{host}/pulled:v1");
    let loaded = feed(&pulled, docker.cmd().arg("load"))?;
    ensure(loaded.contains(&image), || format!("docker load: {loaded}"))?;
    let out = docker.run(&image, &[])?;
    ensure(out.ends_with("app 1\n"), || {
        format!("docker run printed {out:?}")
    })?;
    feed(&pulled, podman.cmd().arg("load"))?;
    let out = podman.run(&image, &[])?;
    ensure(out.ends_with("app 1\n"), || {
        format!("podman run printed {out:?}")
    })?;
    // The fetch is fixed-output: a rebuild gives the same bytes.
    let again = build(&args, "pulled", true)?;
    ensure(again.status.success(), || {
        format!("--check: {}", String::from_utf8_lossy(&again.stderr))
    })?;
    // fromImage takes it.
    let on = build(&args, "onPulled", false)?;
    ensure(on.status.success(), || {
        format!("onPulled: {}", String::from_utf8_lossy(&on.stderr))
    })?;
    let plan = PathBuf::from(String::from_utf8_lossy(&on.stdout).trim());
    let out = docker_load_run(docker, &plan, "strata-on-pulled:latest")?;
    ensure(
        out.trim_end() == "tools ok\nHello from strata!\napp 1",
        || format!("on pulled: {out:?}"),
    )?;
    // buildImage takes it too (onTopOfPulledImage).
    let on = build(&args, "onPulledSingle", false)?;
    ensure(on.status.success(), || {
        format!("onPulledSingle: {}", String::from_utf8_lossy(&on.stderr))
    })?;
    let archive = PathBuf::from(String::from_utf8_lossy(&on.stdout).trim());
    feed(&archive, docker.cmd().arg("load"))?;
    let out = docker.run("strata-on-pulled-single:latest", &[])?;
    ensure(out.trim_end() == HELLO, || {
        format!("buildImage on pulled: {out:?}")
    })?;
    // A wrong hash: Nix's own mismatch message.
    let mut wrong = args.clone();
    wrong["hash"] = Value::from("sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    wrong["name"] = Value::from(format!("pulled-wrong-{nonce}.tar"));
    let bad = build(&wrong, "pulled", false)?;
    let err = String::from_utf8_lossy(&bad.stderr);
    ensure(
        !bad.status.success() && err.contains("hash mismatch"),
        || format!("wrong hash: {err}"),
    )
}

pub fn image_index_multi_arch_and_copy_scripts(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    let registry = Registry::start(dir)?;
    let host = registry.host.clone();
    let index = nix.build("multiArch")?;
    // The streamed archive: an OCI index of both platforms; docker loads the first.
    let file = dir.join("multi.tar");
    save(&index, &file)?;
    let top: Value = serde_json::from_slice(
        &members(&file)?
            .into_iter()
            .find(|(n, _)| n == "index.json")
            .map(|(_, b)| b)
            .unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    ensure(
        top["manifests"][0]["mediaType"] == "application/vnd.oci.image.index.v1+json"
            && top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v1",
        || format!("index.json: {top}"),
    )?;
    let loaded = feed(&file, docker.cmd().arg("load"))?;
    ensure(loaded.contains("strata-multi:v1"), || {
        format!("docker load: {loaded}")
    })?;
    let out = docker.run("strata-multi:v1", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("docker run printed {out:?}")
    })?;
    // copyToRegistry pushes both images and the index.
    let to_registry = nix
        .build("multiArch.copyToRegistry")?
        .join("bin/copy-to-registry");
    let out = run(Command::new(&to_registry)
        .arg(format!("docker://{host}/multi:v1"))
        .env("STRATA_PROGRESS", "none"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure(out.status.success() && err.contains("pushed"), || {
        format!("copy-to-registry: {err}")
    })?;
    let raw: Value = serde_json::from_str(&ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/multi:v1"),
    ]))?)
    .map_err(|e| e.to_string())?;
    let platforms: Vec<String> = raw["manifests"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["platform"]["os"].as_str().unwrap_or("?"),
                        e["platform"]["architecture"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ensure(
        raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
            && platforms == ["linux/amd64", "linux/arm64"],
        || format!("skopeo inspect --raw: {raw}"),
    )?;
    // podman picks its platform from the index and runs it.
    ok(podman
        .cmd()
        .args(["pull", "--tls-verify=false", &format!("{host}/multi:v1")]))?;
    let out = podman.run(&format!("{host}/multi:v1"), &[])?;
    ensure(out.trim() == HELLO, || {
        format!("podman run printed {out:?}")
    })?;
    // strata pull resolves the index to another platform.
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let pulled = dir.join("multi-arm64.tar");
    ok(Command::new(&helper)
        .args(["pull", "--arch", "arm64", "-o"])
        .arg(&pulled)
        .arg(format!("{host}/multi:v1"))
        .env("STRATA_PROGRESS", "none"))?;
    let inspect: Value = serde_json::from_str(&ok(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", pulled.display())))?)
    .map_err(|e| e.to_string())?;
    ensure(inspect["Architecture"] == "arm64", || {
        format!("pulled arm64: {inspect}")
    })?;
    // copyToDockerDaemon and copyToPodman load the image without a tarball, through the
    // engines on PATH (here wrappers pointing at the tests' own engines).
    let path = engines_path(docker, podman, dir)?;
    let to_docker = nix
        .build("layered.copyToDockerDaemon")?
        .join("bin/copy-to-docker-daemon");
    let tag = image_tag(nix, "layered")?;
    let out = run(Command::new(&to_docker)
        .args(["--repo-tag", "strata-copied:docker"])
        .env("PATH", &path)
        .env("STRATA_PROGRESS", "none"))?;
    ensure(out.status.success(), || {
        format!(
            "copy-to-docker-daemon: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let said = docker.run("strata-copied:docker", &[])?;
    ensure(said.trim() == HELLO, || {
        format!("docker run printed {said:?} (image tag {tag})")
    })?;
    let to_podman = nix
        .build("layered.copyToPodman")?
        .join("bin/copy-to-podman");
    let out = run(Command::new(&to_podman)
        .args(["--repo-tag", "strata-copied:podman"])
        .env("PATH", &path)
        .env("STRATA_PROGRESS", "none"))?;
    ensure(out.status.success(), || {
        format!("copy-to-podman: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let said = podman.run("localhost/strata-copied:podman", &[])?;
    ensure(said.trim() == HELLO, || {
        format!("podman run printed {said:?}")
    })?;
    // A bad option is a one-line usage error.
    let bad = run(Command::new(&to_registry).arg("--bogus"))?;
    let err = String::from_utf8_lossy(&bad.stderr);
    ensure(
        bad.status.code() == Some(2) && err.contains("--bogus") && err.trim().lines().count() == 1,
        || format!("bad option: {err}"),
    )
}

/// The regular files under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
