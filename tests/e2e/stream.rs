//! streamLayeredImage streamed into docker and podman: contents, modes, config, tags, owners, and the errors a user meets.

use super::*;

pub fn stream_docker_load_and_run(ctx: &mut Context) -> Check {
    let (nix, docker) = (&mut ctx.nix, &mut ctx.docker);
    let plan = nix.build("stream")?;
    let tag = image_tag(nix, "stream")?;
    let loaded = pipe(&plan, docker.cmd().arg("load"))?;
    let image = format!("strata-hello:{tag}");
    ensure(loaded.contains(&image), || {
        format!("docker load said {loaded:?}, expected {image}")
    })?;
    let out = docker.run(&image, &[])?;
    ensure(out.trim() == HELLO, || {
        format!("docker run printed {out:?}")
    })?;
    let out = docker.run(&image, &["/bin/tools-check"])?;
    ensure(out.trim() == "tools ok", || {
        format!("contents not at the root: {out:?}")
    })?;
    // nixpkgs' flag names the image: `--repo_tag` (and `-t`, `--repo-tag`).
    for flag in ["--repo_tag", "-t"] {
        let loaded = pipe_cmd(
            Command::new(&plan).args([flag, "strata-renamed:flag"]),
            docker.cmd().arg("load"),
        )?;
        ensure(loaded.contains("strata-renamed:flag"), || {
            format!("{flag}: docker load said {loaded:?}")
        })?;
    }
    let toolbox = PathBuf::from(nix.eval_json("toolboxPath")?.as_str().unwrap_or_default());
    let stat = format!("{}/bin/stat", toolbox.display());
    let cat = format!("{}/bin/cat", toolbox.display());
    let out = docker.run(&image, &[&stat, "-c", "%a", "/tmp", "/nix", "/nix/store"])?;
    ensure(
        out.split_whitespace().collect::<Vec<_>>() == ["1777", "755", "755"],
        || format!("modes of /tmp /nix /nix/store: {out:?}"),
    )?;
    let out = docker.run(&image, &[&cat, "/extra.txt", "/etc/tools.conf"])?;
    ensure(out == "extra\nfrom tools\n", || {
        format!("extraCommands/contents files: {out:?}")
    })?;
    let inspect = ok(docker.cmd().args([
        "inspect",
        "--format",
        "{{.Created}} {{.Architecture}} {{.Os}} {{json .Config.Env}}",
        &image,
    ]))?;
    ensure(
        inspect.trim() == r#"1970-01-01T00:00:01Z amd64 linux ["GREETING=1"]"#,
        || format!("docker inspect: {inspect}"),
    )
}

pub fn stream_podman_load_and_run(ctx: &mut Context) -> Check {
    let (nix, podman) = (&mut ctx.nix, &mut ctx.podman);
    let plan = nix.build("stream")?;
    let tag = image_tag(nix, "stream")?;
    pipe(&plan, podman.cmd().arg("load"))?;
    let out = podman.run(&format!("localhost/strata-hello:{tag}"), &[])?;
    ensure(out.trim() == HELLO, || {
        format!("podman run printed {out:?}")
    })?;
    let out = podman.run(
        &format!("localhost/strata-hello:{tag}"),
        &["/bin/tools-check"],
    )?;
    ensure(out.trim() == "tools ok", || {
        format!("podman run printed {out:?}")
    })
}

pub fn skopeo_inspect_shows_config_arch_and_layers(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    let plan = nix.build("stream")?;
    let file = dir.join("stream.tar");
    save(&plan, &file)?;
    let src = format!("docker-archive:{}", file.display());
    let inspect: Value = serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", &src]))?)
        .map_err(|e| e.to_string())?;
    ensure(
        inspect["Architecture"] == "amd64" && inspect["Os"] == "linux",
        || format!("{inspect}"),
    )?;
    // The default layering: the toolbox (busybox, the one large path), tools, and the three
    // small paths that change together (hello, greeting, locale-data); then the
    // customisation layer.
    let layers = inspect["Layers"].as_array().map_or(0, Vec::len);
    ensure(layers == 4, || {
        format!("expected 4 layers, skopeo shows {layers}: {inspect}")
    })?;
    let config: Value = serde_json::from_str(&ok(
        Command::new("skopeo").args(["inspect", "--config", &src])
    )?)
    .map_err(|e| e.to_string())?;
    let cmd = config["config"]["Cmd"][0].as_str().unwrap_or_default();
    ensure(
        cmd.starts_with("/nix/store/") && cmd.ends_with("-hello-app-0.3/bin/hello"),
        || format!("Cmd: {config}"),
    )?;
    ensure(config["config"]["Env"][0] == "GREETING=1", || {
        format!("Env: {config}")
    })?;
    ensure(
        config["history"].as_array().map_or(0, Vec::len) == 4,
        || format!("history: {config}"),
    )
}

pub fn layers_are_deterministic_relative_and_hashed(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    let plan = nix.build("stream")?;
    let (a, b) = (dir.join("a.tar"), dir.join("b.tar"));
    save(&plan, &a)?;
    save(&plan, &b)?;
    let (ba, bb) = (
        std::fs::read(&a).map_err(|e| e.to_string())?,
        std::fs::read(&b).map_err(|e| e.to_string())?,
    );
    ensure(ba == bb, || "two streams of the same plan differ".into())?;
    let img = open_image(&a)?;
    let diff_ids = img.config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure(diff_ids.len() == img.layers.len(), || {
        "diff_ids and layers differ in number".into()
    })?;
    for (i, layer) in img.layers.iter().enumerate() {
        let want = format!("sha256:{}", sha256_hex(layer));
        ensure(diff_ids[i] == want.as_str(), || {
            format!("layer {i}: diff_id {} but sha256 {want}", diff_ids[i])
        })?;
        let e = entries(layer);
        // Store layers; the customisation layer (the last) of a root-owned image leaves the
        // store directories to them, as nixpkgs' does.
        let customisation = i + 1 == img.layers.len();
        ensure(
            customisation && !e.iter().any(|(n, _, _)| n.starts_with("nix/"))
                || e.len() >= 2
                    && e[0] == ("nix/".into(), 0o755, 'd')
                    && e[1] == ("nix/store/".into(), 0o755, 'd'),
            || {
                format!(
                    "layer {i} must start with nix/ and nix/store/ (0755): {:?}",
                    &e[..e.len().min(3)]
                )
            },
        )?;
        ensure(
            e.iter()
                .all(|(n, _, _)| !n.starts_with('/') && !n.contains("..")),
            || format!("layer {i} has absolute or .. names"),
        )?;
        ensure(e.iter().all(|(_, _, t)| *t != 'h' && *t != '?'), || {
            format!("layer {i} has hard links or odd entries")
        })?;
    }
    let m = &img.manifest[0];
    ensure(
        m["RepoTags"][0]
            .as_str()
            .is_some_and(|t| t.starts_with("strata-hello:")),
        || format!("manifest: {m}"),
    )
}

pub fn image_tag_defaults_to_plan_hash(ctx: &mut Context) -> Check {
    let nix = &mut ctx.nix;
    let plan = nix.build("stream")?;
    let tag = image_tag(nix, "stream")?;
    let base = plan
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    ensure(
        base.starts_with(&format!("{tag}-")) && tag.len() == 32,
        || format!("tag {tag} for {base}"),
    )?;
    let name = nix.eval_json("stream.imageName")?;
    ensure(name == "strata-hello", || format!("imageName {name}"))?;
    // buildLayeredImage without a tag takes the tag of its stream.
    let zstd_tag = image_tag(nix, "layeredZstd")?;
    let stream_tag = image_tag(nix, "layeredZstd.stream")?;
    ensure(zstd_tag == stream_tag, || {
        format!("{zstd_tag} != {stream_tag}")
    })
}

pub fn non_root_owner_and_store_dir_modes(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    let plan = nix.build("nonRoot")?;
    pipe(&plan, docker.cmd().arg("load"))?;
    let out = docker.run("strata-nonroot:latest", &[])?;
    let lines: Vec<&str> = out.lines().collect();
    ensure(
        lines.len() == 5 && lines[0] == HELLO && lines[1] == "1000",
        || format!("output {out:?}"),
    )?;
    ensure(
        lines[2] == "755 1000" && lines[3] == "755 1000" && lines[4].ends_with(" 1000"),
        || {
            format!(
                "expected /nix and /nix/store 755 and, as in nixpkgs, owned by 1000 like the store files: {out:?}"
            )
        },
    )?;
    pipe(&plan, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-nonroot:latest", &[])?;
    ensure(out.lines().nth(1) == Some("1000"), || {
        format!("podman output {out:?}")
    })
}

pub fn image_without_store_paths(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    let plan = nix.build("noStore")?;
    let file = dir.join("nostore.tar");
    let img = streamed_image(&plan, &file)?;
    ensure(img.layers.len() == 1, || {
        format!("{} layers", img.layers.len())
    })?;
    let e = entries(&img.layers[0]);
    ensure(!e.iter().any(|(n, _, _)| n.starts_with("nix")), || {
        format!("no nix/ entries expected: {e:?}")
    })?;
    let out = docker_load_run(docker, &plan, "strata-nostore:latest")?;
    ensure(out.trim() == "no store", || {
        format!("docker run printed {out:?}")
    })
}

pub fn no_store_paths_images_run_only_with_the_store_mounted(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    for (attr, image) in [
        ("helloOnRootNoStore", "strata-hello-no-store:latest"),
        (
            "helloOnRootNoStoreFakechroot",
            "strata-hello-no-store-fakechroot:latest",
        ),
    ] {
        let plan = nix.build(attr)?;
        let img = streamed_image(&plan, &dir.join(format!("{attr}.tar")))?;
        let stored: Vec<String> = img
            .layers
            .iter()
            .flat_map(|l| entries(l))
            .map(|(n, _, _)| n)
            .filter(|n| n.trim_start_matches('/').starts_with("nix/store/"))
            .collect();
        ensure(stored.is_empty(), || {
            format!("{attr}: store entries {stored:?}")
        })?;
        pipe(&plan, docker.cmd().arg("load"))?;
        // As in nixos/tests/docker-tools.nix: fails on its own, runs with /nix/store mounted.
        let alone = run(docker.cmd().args(["run", "--rm", "--network=none", image]))?;
        ensure(!alone.status.success(), || {
            format!("{attr} ran without the store")
        })?;
        let out = ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "-v",
            "/nix/store:/nix/store:ro",
            image,
        ]))?;
        ensure(out.trim() == HELLO, || {
            format!("{attr} with the store printed {out:?}")
        })?;
    }
    Ok(())
}

pub fn bare_paths_in_contents_and_store_symlinks(ctx: &mut Context) -> Check {
    let (nix, docker) = (&mut ctx.nix, &mut ctx.docker);
    // nixos/tests/docker-tools.nix: `copyToRoot`/`contents = [ … ./test-dummy ]` puts
    // hello.txt at the root, for buildImage and streamLayeredImage.
    feed(&nix.build("imageWithPath")?, docker.cmd().arg("load"))?;
    let out = docker.run("strata-image-with-path:latest", &[])?;
    ensure(out == "hello from a bare path\n", || {
        format!("imageWithPath printed {out:?}")
    })?;
    let out = docker_load_run(
        docker,
        &nix.build("layeredWithPath")?,
        "strata-layered-with-path:latest",
    )?;
    ensure(out == "hello from a bare path\n", || {
        format!("layeredWithPath printed {out:?}")
    })?;
    // A store path that is a symlink is kept as one (`test -L`), its target with it.
    feed(&nix.build("layeredStoreSymlink")?, docker.cmd().arg("load"))?;
    let out = docker.run("strata-store-symlink:latest", &[])?;
    ensure(out.trim() == "en_US.UTF-8", || {
        format!("layeredStoreSymlink printed {out:?}")
    })
}

pub fn registry_prefix_lowercase_name_and_architecture(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    let plan = nix.build("arm")?;
    let file = dir.join("arm.tar");
    let img = streamed_image(&plan, &file)?;
    ensure(
        img.manifest[0]["RepoTags"][0] == "registry.example.com/team/arm-app:1.0",
        || format!("{}", img.manifest),
    )?;
    ensure(img.config["architecture"] == "arm64", || {
        format!("{}", img.config)
    })?;
    let inspect: Value = serde_json::from_str(&ok(
        Command::new("skopeo").args(["inspect", &format!("docker-archive:{}", file.display())])
    )?)
    .map_err(|e| e.to_string())?;
    ensure(inspect["Architecture"] == "arm64", || format!("{inspect}"))?;
    // nixpkgs' `variant` (issue 17): in the config beside the architecture.
    let v8 = streamed_image(&nix.build("armV8")?, &dir.join("arm-v8.tar"))?;
    ensure(
        v8.config["architecture"] == "arm64" && v8.config["variant"] == "v8",
        || format!("{}", v8.config),
    )?;
    pipe(&plan, docker.cmd().arg("load"))?;
    let tags = ok(docker
        .cmd()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]))?;
    ensure(
        tags.lines()
            .any(|l| l == "registry.example.com/team/arm-app:1.0"),
        || format!("docker images: {tags}"),
    )
}

pub fn created_now_and_empty_image(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    let plan = nix.build("nowDated")?;
    pipe(&plan, docker.cmd().arg("load"))?;
    ensure_created_now(docker.cmd(), "strata-now:latest")?;
    // buildImage: "now" is the build's time (unstableDate); by default the stable date.
    feed(&nix.build("imageNow")?, docker.cmd().arg("load"))?;
    ensure_created_now(docker.cmd(), "strata-image-now:latest")?;
    feed(&nix.build("imageUncompressed")?, docker.cmd().arg("load"))?;
    let stable = created(docker.cmd(), "strata-image-none:latest")?;
    ensure(stable == "1970-01-01T00:00:01Z", || {
        format!("buildImage's default Created is {stable}")
    })?;
    let plan = nix.build("empty")?;
    let file = dir.join("empty.tar");
    let img = streamed_image(&plan, &file)?;
    ensure(
        img.layers.len() == 1 && img.config["config"] == serde_json::json!({}),
        || format!("{}", img.config),
    )?;
    pipe(&plan, docker.cmd().arg("load"))?;
    pipe(&plan, podman.cmd().arg("load"))?;
    let created = created(podman.cmd(), "localhost/strata-empty:latest")?;
    ensure(created.starts_with("1970-01-01"), || {
        format!("podman inspect Created {created}")
    })
}

pub fn errors_are_one_line(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let plan = nix.build("stream")?;
    // Reader closes early: `./result | head -c 10`.
    let mut child = Command::new(&plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut first = [0u8; 10];
    child
        .stdout
        .take()
        .expect("piped")
        .read_exact(&mut first)
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(
        !out.status.success() && err.lines().count() == 1 && err.contains("broken pipe"),
        || format!("head -c 10: status {}, stderr {err:?}", out.status),
    )?;
    // A plan naming a store path that does not exist.
    let text = std::fs::read_to_string(&plan).map_err(|e| e.to_string())?;
    let gone = "/nix/store/00000000000000000000000000000000-gone";
    let bad_plan = dir.join("bad-plan");
    let hello_path = text
        .lines()
        .find(|l| l.contains("-locale-data-1.0\""))
        .ok_or("no locale-data in plan")?;
    let old = hello_path
        .trim()
        .trim_end_matches(',')
        .trim_matches('"')
        .to_owned();
    std::fs::write(&bad_plan, text.replace(&old, gone)).map_err(|e| e.to_string())?;
    let out = run(Command::new(&helper)
        .arg("stream")
        .arg(&bad_plan)
        .stdout(Stdio::null()))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(
        !out.status.success() && err.lines().count() == 1 && err.contains(gone),
        || format!("missing path: {err:?}"),
    )?;
    ensure(
        err.matches("No such file or directory").count() == 1,
        || format!("cause repeated: {err:?}"),
    )?;
    // A malformed closure file.
    let bad = dir.join("closure.json");
    std::fs::write(&bad, "[{\"references\": []}]").map_err(|e| e.to_string())?;
    let out = run(Command::new(&helper)
        .args(["layers", "--closure"])
        .arg(&bad))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(
        !out.status.success()
            && err.lines().count() == 1
            && err.contains("closure.json")
            && err.contains("path"),
        || format!("malformed closure: {err:?}"),
    )?;
    // None of these may panic.
    ensure(!err.contains("panicked"), || err.clone())
}

pub fn record_mismatch_names_layer_and_paths(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let plan = nix.build("appV1")?;
    let text = std::fs::read_to_string(&plan).map_err(|e| e.to_string())?;
    let (shebang, json) = text.split_once('\n').unwrap_or_default();
    let mut value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    // A record crafted for other bytes: what a store path with changed content looks like.
    value["layers"][0]["record"]["diffId"] = Value::from(format!("sha256:{}", "0".repeat(64)));
    let bad = dir.join("crafted-plan");
    std::fs::write(&bad, format!("{shebang}\n{value}")).map_err(|e| e.to_string())?;
    let out = run(Command::new(&helper)
        .arg("stream")
        .arg(&bad)
        .stdout(Stdio::null()))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let path = value["layers"][0]["paths"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure(
        !out.status.success()
            && err.lines().count() == 1
            && err.contains("layer 1 does not match its record")
            && err.contains(&path),
        || format!("status {}, stderr {err:?}", out.status),
    )
}

pub fn load_sends_only_the_layers_an_engine_lacks(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    let path = engines_path(docker, podman, dir)?;
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let v1 = nix.build("appV1")?;
    let v2 = nix.build("appV2")?;
    // "N of M layers sent" from the summary line.
    let load = |engine: &str, plan: &Path, tag: &str| -> Result<(usize, usize), String> {
        let out = run(Command::new(&helper)
            .args(["load", "--engine", engine, "-t", tag])
            .arg(plan)
            .env("PATH", &path)
            .env("STRATA_PROGRESS", "none"))?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure(out.status.success(), || format!("strata load: {err}"))?;
        let said = err.split(": ").last().unwrap_or_default();
        let mut numbers = said
            .split_whitespace()
            .filter_map(|w| w.parse::<usize>().ok());
        match (numbers.next(), numbers.next()) {
            (Some(sent), Some(all)) => Ok((sent, all)),
            _ => Err(format!("no summary: {err}")),
        }
    };
    for engine in ["docker", "podman"] {
        let (_, all) = load(engine, &v1, "strata-load:1")?;
        // The application changed: its layer (and the customisation layer, which names it)
        // are all the engine lacks.
        let (sent, all2) = load(engine, &v2, "strata-load:2")?;
        ensure(all == all2 && sent <= 2 && sent < all, || {
            format!("{engine}: the second load sent {sent} of {all2} layers")
        })?;
        let said = if engine == "docker" {
            docker.run("strata-load:2", &[])?
        } else {
            podman.run("localhost/strata-load:2", &[])?
        };
        ensure(said.ends_with("app 2\n"), || {
            format!("{engine} run printed {said:?}")
        })?;
        // The loopback name is gone: only the image's own names remain (other checks' pulls
        // from their registries may be listed).
        let images = if engine == "docker" {
            ok(docker.cmd().args(["images", "--format", "{{.Repository}}"]))?
        } else {
            ok(podman.cmd().args(["images", "--format", "{{.Repository}}"]))?
        };
        ensure(
            !images
                .lines()
                .any(|r| r.starts_with("127.0.0.1:") && r.ends_with("/strata-load")),
            || format!("{engine} still lists the loopback name: {images}"),
        )?;
        println!("    {engine}: the second load sent {sent} of {all2} layers");
    }
    Ok(())
}
