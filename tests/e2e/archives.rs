//! Archives in the store (buildLayeredImage, mergeImages, exportImage): compression, the OCI layout inside, skopeo and umoci reading them.

use super::*;

pub fn compressed_layers_in_archives(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    // tar+gzip layers: docker, podman, skopeo and umoci; tar+zstd: podman, skopeo, and
    // docker from 23 on (Debian 12's 20.10 cannot read zstd).
    for (attr, name, media) in [
        (
            "gzLayers",
            "strata-gz-layers:v1",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            "zstdLayers",
            "strata-zstd-layers:v1",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    ] {
        let built = nix.build(attr)?;
        let file = dir.join(format!("{attr}.tar"));
        if is_executable(&built) {
            save(&built, &file)?;
        } else {
            std::fs::copy(&built, &file).map_err(|e| e.to_string())?;
        }
        let raw: Value = serde_json::from_str(&ok(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", file.display())))?)
        .map_err(|e| e.to_string())?;
        let layers = raw["layers"].as_array().cloned().unwrap_or_default();
        ensure(
            !layers.is_empty() && layers.iter().all(|l| l["mediaType"] == media),
            || format!("{attr}: {raw}"),
        )?;
        let docker_archive: Value = serde_json::from_str(&ok(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", file.display())))?)
        .map_err(|e| e.to_string())?;
        ensure(
            docker_archive["Layers"].as_array().map_or(0, Vec::len) == layers.len(),
            || format!("{attr}: {docker_archive}"),
        )?;
        feed(&file, podman.cmd().arg("load"))?;
        let out = podman.run(&format!("localhost/{name}"), &[])?;
        ensure(out.trim() == HELLO, || {
            format!("{attr}: podman run printed {out:?}")
        })?;
        let docker_reads_zstd = ctx
            .consumers
            .known_limit(Consumer::Docker, Feature::ZstdLayers)
            .is_none();
        if attr == "gzLayers" || docker_reads_zstd {
            feed(&file, docker.cmd().arg("load"))?;
            let out = docker.run(name, &[])?;
            ensure(out.trim() == HELLO, || {
                format!("{attr}: docker run printed {out:?}")
            })?;
        }
        if attr == "gzLayers" {
            let layout = dir.join("gz-layout");
            let bundle = dir.join("gz-bundle");
            let _ = std::fs::remove_dir_all(&layout);
            let _ = std::fs::remove_dir_all(&bundle);
            std::fs::create_dir_all(&layout).map_err(|e| e.to_string())?;
            ok(Command::new("tar")
                .arg("-xf")
                .arg(&file)
                .arg("-C")
                .arg(&layout))?;
            ok(Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:v1", layout.display()))
                .arg(&bundle))?;
            ensure(bundle.join("rootfs/bin/tools-check").exists(), || {
                "umoci: no bin/tools-check in the rootfs".to_owned()
            })?;
        }
    }
    let err = nix.instantiate_fails("badLayerCompressor")?;
    ensure(
        err.contains("`layerCompressor`") && err.contains("\"xz\""),
        || format!("message: {err}"),
    )
}

pub fn archive_is_an_oci_layout_skopeo_and_umoci_read_it(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    // The streamed archive and buildImage's (legacy layout too) read both ways by skopeo,
    // unpacked by umoci; docker and podman load them in the other checks.
    for (attr, name, tag) in [
        ("stream", "strata-hello", image_tag(nix, "stream")?),
        ("chain3", "strata-chain-3", "latest".to_owned()),
    ] {
        let built = nix.build(attr)?;
        let file = dir.join(format!("{attr}-oci.tar"));
        if is_executable(&built) {
            save(&built, &file)?;
        } else {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(
                std::fs::File::open(&built).map_err(|e| e.to_string())?,
            )
            .read_to_end(&mut plain)
            .map_err(|e| e.to_string())?;
            std::fs::write(&file, plain).map_err(|e| e.to_string())?;
        }
        let inspect = |transport: &str| -> Result<Value, String> {
            let src = format!("{transport}:{}", file.display());
            serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", &src]))?)
                .map_err(|e| e.to_string())
        };
        let (oci, docker_archive) = (inspect("oci-archive")?, inspect("docker-archive")?);
        ensure(
            oci["Layers"] == docker_archive["Layers"]
                && oci["Architecture"] == "amd64"
                && oci["Env"] == docker_archive["Env"],
            || format!("{attr}: oci-archive {oci}\ndocker-archive {docker_archive}"),
        )?;
        let layout = dir.join(format!("{attr}-layout"));
        let bundle = dir.join(format!("{attr}-bundle"));
        let _ = std::fs::remove_dir_all(&layout);
        let _ = std::fs::remove_dir_all(&bundle);
        std::fs::create_dir_all(&layout).map_err(|e| e.to_string())?;
        ok(Command::new("tar")
            .arg("-xf")
            .arg(&file)
            .arg("-C")
            .arg(&layout))?;
        let index: Value = serde_json::from_slice(
            &std::fs::read(layout.join("index.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let annotations = &index["manifests"][0]["annotations"];
        ensure(
            annotations["io.containerd.image.name"] == format!("{name}:{tag}").as_str(),
            || format!("{attr}: index.json {index}"),
        )?;
        ok(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle))?;
        let config: Value = serde_json::from_slice(
            &std::fs::read(bundle.join("config.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let program = config["process"]["args"][0].as_str().unwrap_or_default();
        let unpacked = bundle.join("rootfs").join(program.trim_start_matches('/'));
        ensure(
            !program.is_empty() && unpacked.symlink_metadata().is_ok(),
            || format!("{attr}: umoci's bundle lacks the image's program {program:?}"),
        )?;
    }
    Ok(())
}

pub fn build_layered_image_gz_docker_and_podman(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    let archive = nix.build("layered")?;
    ensure(
        archive.to_string_lossy().ends_with("strata-layered.tar.gz"),
        || format!("output name {}", archive.display()),
    )?;
    ensure(image_tag(nix, "layered")? == "v1", || {
        "imageTag is not the given tag".into()
    })?;
    feed(&archive, docker.cmd().arg("load"))?;
    let out = docker.run("strata-layered:v1", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("docker run printed {out:?}")
    })?;
    // As it is, gzipped: podman 4.3 and 5 both load it (skopeo 1.9's docker-archive: does not).
    feed(&archive, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-layered:v1", &["/bin/tools-check"])?;
    ensure(out.trim() == "tools ok", || {
        format!("podman run printed {out:?}")
    })
}

pub fn build_layered_image_zstd_loads(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    let archive = nix.build("layeredZstd")?;
    let tag = image_tag(nix, "layeredZstd")?;
    feed(&archive, podman.cmd().arg("load"))?;
    let out = podman.run(&format!("localhost/strata-layered-zstd:{tag}"), &[])?;
    ensure(out.trim() == HELLO, || {
        format!("podman run printed {out:?}")
    })?;
    // Docker decompresses zstd archives from version 23 on; Debian 12 ships 20.10.
    if ctx
        .consumers
        .known_limit(Consumer::Docker, Feature::ZstdArchive)
        .is_none()
    {
        feed(&archive, docker.cmd().arg("load"))?;
        let out = docker.run(&format!("strata-layered-zstd:{tag}"), &[])?;
        ensure(out.trim() == HELLO, || {
            format!("docker run printed {out:?}")
        })?;
    }
    Ok(())
}

pub fn compressed_archives_identical_with_1_and_2_threads(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let plan = nix.build("appV1")?;
    for compressor in ["gz", "zstd"] {
        let mut outputs = Vec::new();
        for threads in ["1", "2"] {
            let file = dir.join(format!("threads-{threads}.{compressor}"));
            ok(Command::new(&helper)
                .env("RAYON_NUM_THREADS", threads)
                .env("STRATA_PROGRESS", "none")
                .args(["archive", "--compressor", compressor, "--plan"])
                .arg(&plan)
                .arg("--output")
                .arg(&file))?;
            outputs.push(std::fs::read(&file).map_err(|e| e.to_string())?);
        }
        ensure(outputs[0] == outputs[1], || {
            format!("{compressor}: 1 and 2 threads differ")
        })?;
    }
    Ok(())
}

pub fn export_image_flattens_layers_like_docker_export(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    // Three chained images: upper layers win. Compared with what docker export of a
    // container of the same image holds.
    let rootfs = std::fs::read(nix.build("chain3Rootfs")?).map_err(|e| e.to_string())?;
    let mut ours: BTreeMap<String, String> = BTreeMap::new();
    let mut archive = tar::Archive::new(&rootfs[..]);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?;
        let name = path.to_string_lossy();
        let name = name.strip_prefix("./").unwrap_or(&name);
        let name = name.trim_end_matches('/').to_owned();
        let mut bytes = Vec::new();
        if entry.header().entry_type().is_file() {
            entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        }
        ours.insert(name, String::from_utf8_lossy(&bytes).into_owned());
    }
    for (file, want) in [
        ("tmp/layer1", "layer1\n"),
        ("tmp/layer2", "layer2\n"),
        ("tmp/layer3", "layer3\n"),
        ("tmp/top", "layer3\n"),
        ("layer-order", "123"),
    ] {
        ensure(ours.get(file).map(String::as_str) == Some(want), || {
            format!("exported {file}: {:?}", ours.get(file))
        })?;
    }
    feed(&nix.build("chain3")?, docker.cmd().arg("load"))?;
    let id = ok(docker.cmd().args(["create", "strata-chain-3:latest"]))?;
    let exported = dir.join("chain3-export.tar");
    ok(docker
        .cmd()
        .args(["export", "-o"])
        .arg(&exported)
        .arg(id.trim()))?;
    let _ = run(docker.cmd().args(["rm", id.trim()]));
    let theirs: BTreeSet<String> = entries(&std::fs::read(&exported).map_err(|e| e.to_string())?)
        .into_iter()
        .map(|e| e.0.trim_end_matches('/').to_owned())
        .filter(|n| {
            !n.is_empty()
                && !n.starts_with("dev")
                && !n.starts_with("proc")
                && !n.starts_with("sys")
                && !n.starts_with("etc/")
                && n != "etc"
                && n != ".dockerenv"
        })
        .collect();
    let ours: BTreeSet<String> = ours
        .into_keys()
        .filter(|n| !n.is_empty() && !n.starts_with("etc/") && n != "etc")
        .collect();
    // As nixpkgs' exportImage lists (its test greps `tar -tf` for `./bin/…`): `./` names,
    // sorted directory by directory, every mtime 1980-01-01 (its SOURCE_DATE_EPOCH).
    let listed = ok(Command::new("tar")
        .arg("-tvf")
        .arg(nix.build("chain3Rootfs")?))?;
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    ensure(
        names.first() == Some(&"./")
            && names.contains(&"./tmp/layer1")
            && names.iter().all(|n| n.starts_with("./")),
        || format!("tar -tf of the export: {names:?}"),
    )?;
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| {
        a.trim_end_matches('/')
            .split('/')
            .cmp(b.trim_end_matches('/').split('/'))
    });
    ensure(sorted == names, || format!("not sorted by name: {names:?}"))?;
    ensure(listed.lines().all(|l| l.contains("1980-01-01")), || {
        format!("mtimes: {listed}")
    })?;
    ensure(ours == theirs, || {
        format!(
            "exportImage and docker export differ: only ours {:?}, only docker's {:?}",
            ours.difference(&theirs).collect::<Vec<_>>(),
            theirs.difference(&ours).collect::<Vec<_>>()
        )
    })
}

pub fn merge_images_loads_every_image(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    let merged = nix.build("merged")?;
    let loaded = feed(&merged, docker.cmd().arg("load"))?;
    for image in [
        "strata-layered:v1",
        "strata-layered-zstd:",
        "strata-on-top:latest",
    ] {
        ensure(loaded.contains(image), || {
            format!("docker load said {loaded:?}")
        })?;
    }
    let out = docker.run("strata-layered:v1", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("docker run printed {out:?}")
    })?;
    let out = docker.run("strata-on-top:latest", &[])?;
    ensure(out.starts_with("hello\n"), || {
        format!("docker run printed {out:?}")
    })?;
    // podman 4.3 falls back to its gzip-less docker-archive reader for an archive of
    // several images (consumers.rs); podman 5 loads it as it is.
    if ctx
        .consumers
        .known_limit(Consumer::Podman, Feature::MergedArchive)
        .is_some()
    {
        pipe_cmd(
            Command::new("gzip").arg("-dc").arg(&merged),
            podman.cmd().arg("load"),
        )?;
    } else {
        feed(&merged, podman.cmd().arg("load"))?;
    }
    let out = podman.run("localhost/strata-on-top:latest", &[])?;
    ensure(out.starts_with("hello\n"), || {
        format!("podman run printed {out:?}")
    })?;
    // An image merged without a tag runs under the tag it was given (its plan's hash).
    let zstd = format!("strata-layered-zstd:{}", image_tag(nix, "layeredZstd")?);
    ensure(loaded.contains(&zstd), || {
        format!("docker load said {loaded:?}, not {zstd}")
    })?;
    let out = docker.run(&zstd, &[])?;
    ensure(out.trim() == HELLO, || format!("{zstd} printed {out:?}"))?;
    // nixpkgs' layeredImageWithFakeRootCommands: the owner fakeRootCommands gave, and the
    // closure of the store path it linked; merged with an uncompressed buildImage
    // (mergedBashFakeRoot), both survive.
    for archive in ["layeredFakeRoot", "mergedFakeRoot"] {
        // Gone before the merge is loaded, so what runs next came from it.
        let _ = docker
            .cmd()
            .args([
                "rmi",
                "-f",
                "strata-layered-fake-root:latest",
                "strata-image-none:latest",
            ])
            .output();
        feed(&nix.build(archive)?, docker.cmd().arg("load"))?;
        let out = docker.run(
            "strata-layered-fake-root:latest",
            &[
                "sh",
                "-c",
                "stat -c %u /home/alice && /hello/bin/hello && readlink $(readlink /bin/ls)",
            ],
        )?;
        // The toolbox's applet links are store symlinks, kept as they are.
        ensure(
            out == "1000\nhello from the fakeRootCommands link\nbusybox\n",
            || format!("{archive}: strata-layered-fake-root printed {out:?}"),
        )?;
    }
    let out = docker.run("strata-image-none:latest", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("mergedFakeRoot: strata-image-none printed {out:?}")
    })?;
    // The two layered images share their store layers: each is stored once.
    let manifest = ok(Command::new("sh").arg("-c").arg(format!(
        "gzip -dc {} | tar -xO manifest.json",
        merged.display()
    )))?;
    let manifest: Value = serde_json::from_str(&manifest).map_err(|e| e.to_string())?;
    let named: Vec<&str> = manifest
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["Layers"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let image_layers = named.len();
    let files = named.iter().collect::<BTreeSet<_>>().len();
    ensure(files < image_layers, || {
        format!(
            "{files} layer files for {image_layers} image layers: shared layers not deduplicated"
        )
    })
}

/// nixpkgs' nginx example and check, with busybox's httpd: the server starts, drops to
/// fakeNss's nobody and serves its page. The engine here has no bridge to publish ports
/// through (`-p`), so the container shares the host's network and binds a free port.
pub fn layered_web_server_serves_like_nixpkgs_nginx(ctx: &mut Context) -> Check {
    use std::io::{Read, Write};
    let (nix, docker) = (&mut ctx.nix, &mut ctx.docker);
    feed(&nix.build("webServer")?, docker.cmd().arg("load"))?;
    let exposed = ok(docker.cmd().args([
        "inspect",
        "--format",
        "{{json .Config.ExposedPorts}}",
        "strata-web-server:latest",
    ]))?;
    ensure(exposed.trim() == r#"{"80/tcp":{}}"#, || {
        format!("ExposedPorts: {exposed}")
    })?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let id = ok(docker.cmd().args([
        "run",
        "-d",
        "--network=host",
        "-e",
        &format!("PORT={port}"),
        "strata-web-server:latest",
    ]))?;
    let id = id.trim();
    let get = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer)
    };
    let mut answer = Err("never tried".to_owned());
    for _ in 0..50 {
        answer = get().map_err(|e| e.to_string());
        if answer.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let user = ok(docker.cmd().args(["top", id, "-o", "pid,user"]));
    let logs = ok(docker.cmd().args(["logs", id])).unwrap_or_default();
    let _ = docker.cmd().args(["rm", "-f", id]).output();
    let answer = answer.map_err(|e| format!("GET / on port {port}: {e}; logs: {logs}"))?;
    ensure(
        answer.starts_with("HTTP/1.") && answer.contains("Hello from httpd"),
        || format!("GET / answered {answer:?}"),
    )?;
    let user = user?;
    ensure(
        user.lines()
            .skip(1)
            .all(|l| l.split_whitespace().nth(1) == Some("nobody")),
        || format!("httpd runs as {user:?}, not fakeNss's nobody"),
    )
}
