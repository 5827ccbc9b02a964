//! buildImage: the legacy layout and its tarsums, parents, runAsRoot and fakeRootCommands owners, the Nix database.

use super::*;

pub fn tarsum_matches_dockers_go_code(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    let go = go_tarsum_reference(dir)?;
    let ours = repo().join("build/bootstrap/helper/bin/strata");
    let mut tars: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    for attr in BUILT {
        let out = nix.build(attr)?;
        for (what, tar) in tars_of(&out, dir)? {
            tars.entry(sha256_hex(&tar))
                .or_insert((format!("{attr}: {what}"), tar));
        }
    }
    let layers = tars.len();
    // The golden cases of the root-free tier (tests/cli.rs), checked against Docker's own
    // code here so that their `.sums` stay Docker's.
    for (name, tar, _) in tarsum_fixtures()? {
        tars.insert(name.clone(), (name, tar));
    }
    let file = dir.join("tarsum-input.tar");
    for (what, tar) in tars.values() {
        std::fs::write(&file, tar).map_err(|e| e.to_string())?;
        let go_sums: Vec<String> = feed(&file, &mut Command::new(&go))?
            .lines()
            .map(|l| l.split_once(": ").map_or(l, |(_, sum)| sum).to_owned())
            .collect();
        let our_sums: Vec<String> = feed(
            &file,
            Command::new(&ours).args(["tarsum", "--tarsum-version", "all"]),
        )?
        .lines()
        .map(str::to_owned)
        .collect();
        ensure(go_sums.len() == 3 && our_sums == go_sums, || {
            format!("{what}: strata {our_sums:?}, Docker {go_sums:?}")
        })?;
    }
    println!(
        "    {layers} distinct tars from the built images and {} crafted ones agree",
        tars.len() - layers
    );
    Ok(())
}

pub fn build_image_legacy_layout_docker_and_podman(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    // chain3: three buildImages on top of each other, so three legacy layers.
    let archive = nix.build("chain3")?;
    let go = go_tarsum_reference(dir)?;
    let legacy = check_legacy_layout(&archive, &go, dir, "strata-chain-3", 3)?;
    // buildImage over buildLayeredImage: the parent's store layers were planned without
    // tarsums, which the child's plan computes.
    let on_layered = nix.build("onTopOfLayered")?;
    check_legacy_layout(&on_layered, &go, dir, "strata-on-top", 0)?;

    // Docker reads the legacy layout alone when there is no manifest.json (nor OCI
    // index): layer directories and `repositories`.
    let legacy_only = dir.join("legacy-only.tar");
    let mut builder =
        tar::Builder::new(std::fs::File::create(&legacy_only).map_err(|e| e.to_string())?);
    let top = legacy.last().map_or("", |(id, _, _)| id.as_str());
    let repositories = format!(r#"{{"strata-legacy-only":{{"v1":"{top}"}}}}"#);
    let mut files = vec![("repositories".to_owned(), repositories.into_bytes())];
    for (id, json, layer) in legacy {
        files.push((format!("{id}/VERSION"), b"1.0".to_vec()));
        files.push((format!("{id}/json"), json));
        files.push((format!("{id}/layer.tar"), layer));
    }
    for (name, bytes) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        builder
            .append_data(&mut h, name, &bytes[..])
            .map_err(|e| e.to_string())?;
    }
    builder.into_inner().map_err(|e| e.to_string())?;
    feed(&legacy_only, docker.cmd().arg("load"))?;
    let expected = "layer1\nlayer2\nlayer3\nlayer3\n123";
    let out = docker.run("strata-legacy-only:v1", &[])?;
    ensure(out == expected, || {
        format!("docker run (legacy layout) printed {out:?}")
    })?;
    // And the whole archive, manifest.json first, under docker and podman.
    feed(&archive, docker.cmd().arg("load"))?;
    let out = docker.run("strata-chain-3:latest", &[])?;
    ensure(out == expected, || format!("docker run printed {out:?}"))?;
    feed(&archive, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-chain-3:latest", &[])?;
    ensure(out == expected, || format!("podman run printed {out:?}"))
}

pub fn build_image_on_top_of_layered_docker_and_podman(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    // The seeds' example: buildImage over a buildLayeredImage, Env inherited and deduped.
    let archive = nix.build("onTopOfLayered")?;
    let expected = "hello\nFROM_PARENT=true\nLAST_LAYER=child\n";
    feed(&archive, docker.cmd().arg("load"))?;
    let out = docker.run("strata-on-top:latest", &[])?;
    ensure(out == expected, || format!("docker run printed {out:?}"))?;
    feed(&archive, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-on-top:latest", &[])?;
    ensure(out == expected, || format!("podman run printed {out:?}"))?;
    let image = open_image(&archive)?;
    let env = &image.config["config"]["Env"];
    ensure(
        env.as_array().is_some_and(|e| {
            e.iter()
                .filter(|v| v.as_str().unwrap_or("").starts_with("LAST_LAYER="))
                .count()
                == 1
        }),
        || format!("Env not deduplicated: {env}"),
    )
}

pub fn three_chained_images_upper_layers_win(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    let archive = nix.build("chain3")?;
    let expected = "layer1\nlayer2\nlayer3\nlayer3\n123";
    feed(&archive, docker.cmd().arg("load"))?;
    let out = docker.run("strata-chain-3:latest", &[])?;
    ensure(out == expected, || format!("docker run printed {out:?}"))?;
    feed(&archive, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-chain-3:latest", &[])?;
    ensure(out == expected, || format!("podman run printed {out:?}"))?;
    let image = open_image(&archive)?;
    let history = image.config["history"].as_array().map_or(0, Vec::len);
    ensure(image.layers.len() == 3 && history == 3, || {
        format!("{} layers, {history} history entries", image.layers.len())
    })?;
    // The upper layers hold only what their runAsRoot changed: the parent's store paths
    // are not repeated.
    for layer in &image.layers[1..] {
        ensure(
            store_paths_in(layer).is_empty() && layer.len() < 16384,
            || {
                format!(
                    "upper layer of {} bytes with {:?}",
                    layer.len(),
                    store_paths_in(layer)
                )
            },
        )?;
    }
    Ok(())
}

pub fn run_as_root_and_fake_root_owners_show_in_the_container(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    let archive = nix.build("rootOwned")?;
    let expected = "/home/alice 1000:1000 755\n/tmp 0:0 1777\n/etc-passwd-test 12345:54321 644\n";
    feed(&archive, docker.cmd().arg("load"))?;
    let out = docker.run("strata-root-owned:latest", &[])?;
    ensure(out == expected, || format!("docker run printed {out:?}"))?;
    feed(&archive, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-root-owned:latest", &[])?;
    ensure(out == expected, || format!("podman run printed {out:?}"))?;

    let plan = nix.build("fakeRoot")?;
    let expected = "/home/alice 1000:1000 755\n/data 12345:12345 1777\n";
    pipe(&plan, docker.cmd().arg("load"))?;
    let out = docker.run("strata-fake-root:latest", &[])?;
    ensure(out == expected, || format!("docker run printed {out:?}"))?;
    pipe(&plan, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-fake-root:latest", &[])?;
    ensure(out == expected, || format!("podman run printed {out:?}"))
}

pub fn nix_db_registers_the_closure(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    // buildLayeredImageWithNixDb and buildImageWithNixDb, read back with the host's Nix
    // from the exported root filesystem: every store path of the image is registered
    // with the references and NAR hash the host's database has for it.
    for (image, rootfs, name) in [
        (
            "nixDbLayered",
            "nixDbLayeredRootfs",
            "strata-nixdb-layered:latest",
        ),
        ("nixDbImage", "nixDbImageRootfs", "strata-nixdb:latest"),
    ] {
        let archive = nix.build(image)?;
        feed(&archive, docker.cmd().arg("load"))?;
        let out = docker.run(name, &[])?;
        ensure(out.trim() == HELLO, || {
            format!("{name}: docker run printed {out:?}")
        })?;
        let root = dir.join(rootfs);
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        ok(Command::new("tar")
            .arg("-xf")
            .arg(nix.build(rootfs)?)
            .arg("-C")
            .arg(&root))?;
        let store = format!("local?root={}", root.display());
        let verify = run(Command::new("nix-store").args([
            "--store",
            &store,
            "--verify",
            "--check-contents",
        ]))?;
        let said = String::from_utf8_lossy(&verify.stderr);
        ensure(
            verify.status.success() && !said.contains("modified") && !said.contains("error"),
            || format!("{image}: nix-store --verify --check-contents said {said}"),
        )?;
        let registered = ok(Command::new("nix")
            .args(["--extra-experimental-features", "nix-command"])
            .args(["path-info", "--store", &store, "--all"]))?;
        let registered: BTreeSet<&str> = registered.lines().collect();
        let present: BTreeSet<String> = std::fs::read_dir(root.join("nix/store"))
            .map_err(|e| e.to_string())?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // nix-store --verify makes `.links`.
            .filter(|n| !n.starts_with('.'))
            .map(|n| format!("/nix/store/{n}"))
            .collect();
        ensure(
            registered
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
                == present,
            || format!("{image}: registered {registered:?}, in the image {present:?}"),
        )?;
        for path in &present {
            let refs = |store: Option<&str>| {
                let mut c = Command::new("nix-store");
                if let Some(s) = store {
                    c.args(["--store", s]);
                }
                ok(c.args(["-q", "--references", path]))
            };
            let (mine, host) = (refs(Some(&store))?, refs(None)?);
            ensure(mine == host, || {
                format!("{image}: references of {path}: image {mine:?}, host {host:?}")
            })?;
        }
        ensure(
            root.join("nix/var/nix/db/schema").exists()
                && std::fs::read_dir(root.join("nix/var/nix/gcroots/docker"))
                    .map(|d| d.count() > 0)
                    .unwrap_or(false),
            || format!("{image}: no schema file or GC roots"),
        )?;
    }
    Ok(())
}

pub fn build_image_without_tag_compressors_prefix_and_arm64(ctx: &mut Context) -> Check {
    let (nix, docker, podman) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman);
    // No tag: loaded under imageName:imageTag (the plan's hash), NixDb variants too.
    for attr in ["imageNoTag", "nixDbImageNoTag", "nixDbLayeredNoTag"] {
        let archive = nix.build(attr)?;
        let name = nix.eval_json(&format!("{attr}.imageName"))?;
        let image = format!(
            "{}:{}",
            name.as_str().unwrap_or_default(),
            image_tag(nix, attr)?
        );
        let loaded = feed(&archive, docker.cmd().arg("load"))?;
        ensure(loaded.contains(&image), || {
            format!("{attr}: docker load said {loaded:?}, not {image}")
        })?;
        let out = docker.run(&image, &[])?;
        ensure(out.trim() == HELLO, || format!("{attr} printed {out:?}"))?;
    }
    // compressor = "none": a plain tar docker loads; "zstd": zstd, podman loads it.
    let plain = std::fs::read(nix.build("imageUncompressed")?).map_err(|e| e.to_string())?;
    ensure(plain.get(257..262) == Some(&b"ustar"[..]), || {
        "compressor none: not a plain tar".into()
    })?;
    feed(&nix.build("imageUncompressed")?, docker.cmd().arg("load"))?;
    let out = docker.run("strata-image-none:latest", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("imageUncompressed printed {out:?}")
    })?;
    let zstd = nix.build("imageZstd")?;
    let head = std::fs::read(&zstd).map_err(|e| e.to_string())?;
    ensure(head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), || {
        "compressor zstd: not zstd".into()
    })?;
    feed(&zstd, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-image-zstd:latest", &[])?;
    ensure(out.trim() == HELLO, || format!("imageZstd printed {out:?}"))?;
    // A registry prefix stays in the name.
    let loaded = feed(&nix.build("imagePrefixed")?, docker.cmd().arg("load"))?;
    ensure(
        loaded.contains("registry.example.com/team/strata-prefixed:latest"),
        || format!("prefixed: docker load said {loaded:?}"),
    )?;
    let out = docker.run("registry.example.com/team/strata-prefixed:latest", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("imagePrefixed printed {out:?}")
    })?;
    // arm64: the config says so (this machine cannot run it).
    let arm = open_image(&nix.build("imageArm64")?)?;
    ensure(arm.config["architecture"] == "arm64", || {
        format!("imageArm64 config: {}", arm.config)
    })
}

pub fn nixpkgs_ports_bulk_on_base_run_as_root_extra_repeated_layers(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    // layered-bulk-layer: maxLayers = 4 on a maxLayers = 2 parent gives 4 layers.
    let bulk = nix.build("bulkOnBase")?;
    let layers = open_image(&bulk)?.layers.len();
    ensure(layers == 4, || {
        format!("bulkOnBase has {layers} layers, not 4")
    })?;
    feed(&bulk, docker.cmd().arg("load"))?;
    let out = docker.run("strata-bulk-on-base:latest", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("bulkOnBase printed {out:?}")
    })?;
    // #34779: runAsRoot and extraCommands both ran.
    let both = nix.build("runAsRootExtraCommands")?;
    feed(&both, docker.cmd().arg("load"))?;
    let out = docker.run("strata-run-as-root-extra:latest", &[])?;
    ensure(out == "(runAsRoot)\n(extraCommand)\n", || {
        format!("runAsRootExtraCommands printed {out:?}")
    })?;
    // #214434: a base whose manifest lists one layer twice, the second time through a
    // symlink member (as docker save writes identical layers), under runAsRoot.
    let base = dir.join("repeated-layers.tar");
    repeat_bottom_layer(&nix.build("layered")?, &base)?;
    let out = nix_build_on(nix, &base, "runAsRootOnArchive", false)?;
    ensure(out.status.success(), || {
        format!(
            "runAsRoot on repeated layers: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let archive = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let again = nix_build_on(nix, &base, "runAsRootOnArchive", true)?;
    ensure(again.status.success(), || {
        format!(
            "runAsRootOnArchive is not reproducible: {}",
            String::from_utf8_lossy(&again.stderr)
        )
    })?;
    feed(&archive, docker.cmd().arg("load"))?;
    let out = docker.run("strata-root-on-archive:latest", &[])?;
    ensure(out == "ran\n", || {
        format!("runAsRootOnArchive printed {out:?}")
    })
}

/// Whether `path` is an executable file (a streamLayeredImage) rather than an archive.
/// A legacy layer: id, `json` and the layer tar.
pub type LegacyLayer = (String, Vec<u8>, Vec<u8>);

/// Checks the v1.0 layout of a buildImage archive: `repositories` names the top layer; each
/// layer's directory holds `VERSION`, a `json` whose parent is the layer below and whose
/// checksum is Docker's tarsum of the layer, and `layer.tar`, a link to the layer's blob
/// (the one `manifest.json` lists at that position). `count` layers unless 0. Returns each
/// layer's id, json and bytes, bottom to top.
pub fn check_legacy_layout(
    archive: &Path,
    go: &Path,
    scratch: &Path,
    name: &str,
    count: usize,
) -> Result<Vec<LegacyLayer>, String> {
    let all = members_and_links(archive)?;
    let file = |member: &str| {
        all.iter()
            .find(|(n, _, _)| n == member)
            .map(|(_, bytes, _)| bytes.clone())
            .ok_or(format!("{member} missing"))
    };
    let image = open_image(archive)?;
    let layers: Vec<String> = image.manifest[0]["Layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    ensure(count == 0 || layers.len() == count, || {
        format!("layers {layers:?}")
    })?;
    let repositories: Value =
        serde_json::from_slice(&file("repositories")?).map_err(|e| e.to_string())?;
    let top = repositories[name]["latest"]
        .as_str()
        .ok_or(format!("{name}: repositories {repositories}"))?;
    let mut chain = Vec::new();
    let mut next = Some(top.to_owned());
    while let Some(id) = next {
        let json = file(&format!("{id}/json"))?;
        let parsed: Value = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        ensure(parsed["id"] == id.as_str(), || {
            format!("{id}/json: {parsed}")
        })?;
        next = parsed["parent"].as_str().map(str::to_owned);
        chain.push((id, json, parsed));
    }
    chain.reverse();
    ensure(chain.len() == layers.len(), || {
        format!(
            "{} layers in the parent chain, {} in manifest.json",
            chain.len(),
            layers.len()
        )
    })?;
    let tarsum_file = scratch.join("legacy-layer.tar");
    let mut out = Vec::new();
    for (i, ((id, json, parsed), blob)) in chain.into_iter().zip(&layers).enumerate() {
        ensure(file(&format!("{id}/VERSION"))? == b"1.0", || {
            format!("{id}/VERSION is not 1.0")
        })?;
        let link = all
            .iter()
            .find(|(n, _, _)| *n == format!("{id}/layer.tar"))
            .and_then(|(_, _, link)| link.clone());
        ensure(
            link.as_deref() == Some(format!("../{blob}").as_str()),
            || format!("{id}/layer.tar links to {link:?}, not to layer {i}'s blob {blob}"),
        )?;
        ensure(
            parsed["config"] == image.config["config"]
                && parsed["created"] == image.config["created"],
            || format!("layer {i}: json {parsed} does not carry the image config"),
        )?;
        let layer = file(blob)?;
        std::fs::write(&tarsum_file, &layer).map_err(|e| e.to_string())?;
        let docker_sum = feed(&tarsum_file, &mut Command::new(go))?;
        let v1 = docker_sum
            .lines()
            .find_map(|l| l.strip_prefix("Version1: "))
            .ok_or(format!("no Version1 in {docker_sum}"))?;
        ensure(parsed["checksum"] == v1, || {
            format!(
                "layer {i}: checksum {} but Docker's tarsum is {v1}",
                parsed["checksum"]
            )
        })?;
        out.push((id, json, layer));
    }
    Ok(out)
}

/// Builds a tarsum reference from Docker's own Go sources (Debian's
/// golang-github-docker-docker-dev) in GOPATH mode, once per run.
pub fn go_tarsum_reference(scratch: &Path) -> Result<PathBuf, String> {
    let root = scratch.join("tarsumref");
    let bin = root.join("tarsumref");
    if bin.exists() {
        return Ok(bin);
    }
    let src = root.join("gopath/src/tarsumref");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    std::fs::copy(repo().join("tests/tarsum_ref/main.go"), src.join("main.go"))
        .map_err(|e| e.to_string())?;
    ok(Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("tarsumref")
        .env("GO111MODULE", "off")
        .env(
            "GOPATH",
            format!("{}:/usr/share/gocode", root.join("gopath").display()),
        )
        .env("GOCACHE", root.join("cache"))
        .env("HOME", &root))
    .map_err(|e| {
        format!("building Docker's tarsum (golang-go, golang-github-docker-docker-dev): {e}")
    })?;
    Ok(bin)
}

/// The tars a build output holds: each layer of an image (a plan is streamed first), an
/// exported root file system, a layer directory's `layer.tar`.
pub fn tars_of(out: &Path, scratch: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    if out.is_dir() {
        let mut tars = Vec::new();
        for e in std::fs::read_dir(out).map_err(|e| e.to_string())? {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.extension().is_some_and(|x| x == "tar") {
                let bytes = std::fs::read(&p).map_err(|e| e.to_string())?;
                tars.push((p.display().to_string(), bytes));
            }
        }
        return Ok(tars);
    }
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let file = if is_executable(out) {
        let file = scratch.join("streamed.tar");
        save(out, &file)?;
        file
    } else if name.contains(".tar") {
        out.to_path_buf()
    } else {
        return Ok(vec![]);
    };
    let raw = std::fs::read(&file).map_err(|e| e.to_string())?;
    let bytes = decompressed(raw)?;
    let plain = scratch.join("plain.tar");
    std::fs::write(&plain, &bytes).map_err(|e| e.to_string())?;
    let m = members(&plain)?;
    let Some((_, manifest)) = m.iter().find(|(n, _)| n == "manifest.json") else {
        return Ok(vec![(name.into_owned(), bytes)]);
    };
    let manifest: Value = serde_json::from_slice(manifest).map_err(|e| e.to_string())?;
    let layers: BTreeSet<&str> = manifest
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["Layers"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    // Layers stored compressed (layerCompressor) are checked as the tars they hold.
    m.into_iter()
        .filter(|(n, _)| layers.contains(n.as_str()))
        .map(|(n, b)| Ok((format!("{name} {n}"), decompressed(b)?)))
        .collect()
}

/// `bytes`, gunzipped or unzstded when they are compressed.
pub fn decompressed(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::decode_all(&bytes[..]).map_err(|e| e.to_string())
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Copies the gzipped docker-archive `from` to the plain archive `to` with its bottom layer
/// listed once more on top, through a symlink member (nixpkgs #214434).
pub fn repeat_bottom_layer(from: &Path, to: &Path) -> Check {
    let mut members = members(from)?;
    let find = |members: &[(String, Vec<u8>)], name: &str| {
        members
            .iter()
            .position(|(n, _)| n == name)
            .ok_or(format!("no {name}"))
    };
    let m = find(&members, "manifest.json")?;
    let mut manifest: Value = serde_json::from_slice(&members[m].1).map_err(|e| e.to_string())?;
    let bottom = manifest[0]["Layers"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    manifest[0]["Layers"]
        .as_array_mut()
        .ok_or("no Layers")?
        .push("dup/layer.tar".into());
    let config_name = manifest[0]["Config"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    members[m].1 = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let c = find(&members, &config_name)?;
    let mut config: Value = serde_json::from_slice(&members[c].1).map_err(|e| e.to_string())?;
    let first = config["rootfs"]["diff_ids"][0].clone();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .ok_or("no diff_ids")?
        .push(first);
    members[c].1 = serde_json::to_vec(&config).map_err(|e| e.to_string())?;

    let out = std::fs::File::create(to).map_err(|e| e.to_string())?;
    let mut builder = tar::Builder::new(out);
    for (name, bytes) in &members {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        builder
            .append_data(&mut h, name, &bytes[..])
            .map_err(|e| e.to_string())?;
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    builder
        .append_link(&mut h, "dup/layer.tar", format!("../{bottom}"))
        .map_err(|e| e.to_string())?;
    builder.finish().map_err(|e| e.to_string())
}
