//! fromImage: parents from docker save and from strata, and hostile parent archives.

use super::*;

pub fn layered_on_top_inherits_env_and_skips_parent_paths(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    let plan = nix.build("layeredOnTop")?;
    let image = streamed_image(&plan, &dir.join("on-top.tar"))?;
    // Parent: toolbox, tools, customisation; child: its customisation layer only.
    ensure(image.layers.len() == 4, || {
        format!("{} layers", image.layers.len())
    })?;
    pipe(&plan, docker.cmd().arg("load"))?;
    let tag = image_tag(nix, "layeredOnTop")?;
    let out = docker.run(&format!("strata-layered-on-top:{tag}"), &[])?;
    ensure(
        out.starts_with("tools ok\n")
            && out.contains("FROM_PARENT=true\n")
            && out.contains("FROM_CHILD=true\n")
            && out.contains("LAST_LAYER=child\n")
            && !out.contains("LAST_LAYER=parent"),
        || format!("docker run printed {out:?}"),
    )
}

/// nixos/tests/docker-tools.nix's environment-variable, layered-image, bulk-layer,
/// layer-order, fakechroot-link and layered-prefix checks, on images with nixpkgs' arguments.
pub fn nixpkgs_env_inheritance_layered_children_and_bulk_layers(ctx: &mut Context) -> Check {
    let (nix, docker) = (&mut ctx.nix, &mut ctx.docker);
    // Env from a buildImage parent, in a buildImage and a buildLayeredImage child.
    for (attr, image) in [
        ("envChildSingle", "strata-env-child:latest"),
        ("envChildLayered", "strata-env-child-layered:latest"),
    ] {
        let archive = nix.build(attr)?;
        feed(&archive, docker.cmd().arg("load"))?;
        let out = docker.run(image, &["env"])?;
        let vars: Vec<&str> = out.lines().collect();
        for var in ["FROM_PARENT=true", "FROM_CHILD=true", "LAST_LAYER=child"] {
            ensure(vars.contains(&var), || {
                format!("{attr}: env lacks {var}: {out:?}")
            })?;
        }
        // Once in the config, the child's value (nixpkgs reads it with `tar -xOf`).
        let config = open_image(&archive)?.config;
        let env = config["config"]["Env"].to_string();
        ensure(
            env.matches("LAST_LAYER").count() == 1 && env.contains("LAST_LAYER=child"),
            || format!("{attr}: config Env {env}"),
        )?;
    }
    // layered-image: extraCommands' file; layered-on-top-layered writes in its WorkingDir.
    feed(&nix.build("layeredImage")?, docker.cmd().arg("load"))?;
    let out = docker.run("strata-layered-image:latest", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("layeredImage printed {out:?}")
    })?;
    let out = docker.run("strata-layered-image:latest", &["cat", "extraCommands"])?;
    ensure(out == "(extraCommand)\n", || {
        format!("layeredImage's extraCommands file: {out:?}")
    })?;
    feed(&nix.build("layeredOnTopLayered")?, docker.cmd().arg("load"))?;
    let out = docker.run("strata-layered-on-top-layered:latest", &[])?;
    ensure(out == "hello\n", || {
        format!("layeredOnTopLayered printed {out:?}")
    })?;
    // bulk-layer and layered-bulk-layer: /bin/hello at the root.
    for (attr, image) in [
        ("bulkLayer", "strata-bulk-layer:latest"),
        ("bulkOnBase", "strata-bulk-on-base:latest"),
    ] {
        feed(&nix.build(attr)?, docker.cmd().arg("load"))?;
        let out = docker.run(image, &["ls", "/bin/hello"])?;
        ensure(out.trim() == "/bin/hello", || {
            format!("{attr}: ls /bin/hello printed {out:?}")
        })?;
    }
    let layers = open_image(&nix.build("bulkLayer")?)?.layers.len();
    ensure(layers == 2, || {
        format!("bulkLayer has {layers} layers, not 2")
    })?;
    // layersOrder: each file holds the last layer that wrote it.
    feed(&nix.build("layersOrder")?, docker.cmd().arg("load"))?;
    let out = docker.run(
        "strata-l3:latest",
        &["cat", "/tmp/layer1", "/tmp/layer2", "/tmp/layer3"],
    )?;
    ensure(out == "layer1\nlayer2\nlayer3\n", || {
        format!("layersOrder printed {out:?}")
    })?;
    // imageViaFakeChroot: /bin/hello made with an absolute path, a link into the store.
    let plan = nix.build("imageViaFakeChroot")?;
    pipe(&plan, docker.cmd().arg("load"))?;
    let out = docker.run("strata-image-via-fake-chroot:latest", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("imageViaFakeChroot printed {out:?}")
    })?;
    // prefixedLayeredImage: the prefix is part of the repository docker lists.
    feed(
        &nix.build("prefixedLayeredImage")?,
        docker.cmd().arg("load"),
    )?;
    let repos = ok(docker
        .cmd()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]))?;
    let image = "registry.example.com/team/strata-prefixed-layered:latest";
    ensure(repos.lines().any(|r| r == image), || {
        format!("docker images lacks {image}: {repos}")
    })?;
    let out = docker.run(image, &[])?;
    ensure(out.trim() == HELLO, || format!("{image} printed {out:?}"))
}

pub fn parent_from_docker_save_and_hostile_parents(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    // A parent written by `docker save` (a strata image loaded into docker).
    let layered = nix.build("layered")?;
    feed(&layered, docker.cmd().arg("load"))?;
    let saved = dir.join("saved.tar");
    ok(docker
        .cmd()
        .args(["save", "-o"])
        .arg(&saved)
        .arg("strata-layered:v1"))?;
    let build_on = |archive: &Path, attr: &str| nix_build_on(nix, archive, attr, false);
    let out = build_on(&saved, "onArchive")?;
    ensure(out.status.success(), || {
        format!(
            "build on docker save failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let plan = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    pipe(&plan, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-on-archive:latest", &["/bin/tools-check"])?;
    ensure(out.trim() == "tools ok", || {
        format!("podman run printed {out:?}")
    })?;

    // A hostile parent: a layer entry climbing out of the root.
    let evil = dir.join("evil.tar");
    bash(&format!(
        "set -e; d=$(mktemp -d); cd $d; mkdir -p l; echo x > x; \
         tar --transform 's,^x,../../escape,' -cf l/layer.tar x; \
         id=sha256:$(sha256sum l/layer.tar | cut -d' ' -f1); \
         printf '{{\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}}}' $id > c.json; \
         printf '[{{\"Config\":\"c.json\",\"Layers\":[\"l/layer.tar\"]}}]' > manifest.json; \
         tar -cf {} l/layer.tar c.json manifest.json",
        evil.display()
    ))?;
    // exportImage and mergeImages of the docker save archive.
    let built = |attr: &str| -> Result<PathBuf, String> {
        let out = build_on(&saved, attr)?;
        ensure(out.status.success(), || {
            format!("{attr}: {}", String::from_utf8_lossy(&out.stderr))
        })?;
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    };
    let rootfs = std::fs::read(built("onArchiveRootfs")?).map_err(|e| e.to_string())?;
    let names: BTreeSet<String> = entries(&rootfs).into_iter().map(|e| e.0).collect();
    ensure(
        names.contains("./bin/tools-check") && names.contains("./etc/tools.conf"),
        || format!("export of a docker save archive: {names:?}"),
    )?;
    let merged = built("mergedArchive")?;
    let loaded = feed(&merged, docker.cmd().arg("load"))?;
    ensure(
        loaded.contains("strata-layered:v1") && loaded.contains("strata-hello:"),
        || format!("docker load of a merged docker save archive said {loaded:?}"),
    )?;

    for attr in ["onArchive", "onArchiveRootfs", "mergedArchive"] {
        let again = nix_build_on(nix, &saved, attr, true)?;
        ensure(again.status.success(), || {
            format!(
                "{attr} is not reproducible: {}",
                String::from_utf8_lossy(&again.stderr)
            )
        })?;
    }

    // A parent written the way nixpkgs' streamer writes layers (absolute member names, PAX
    // headers, hard links as regular files): streamLayeredImage, buildImage, exportImage
    // and mergeImages take it.
    let nixpkgs_style = dir.join("nixpkgs-style.tar");
    ok(Command::new("python3")
        .arg(repo().join("tests/scripts/nixpkgs_style_archive.py"))
        .arg(&saved)
        .arg(&nixpkgs_style)
        .arg("nixpkgs-style:latest"))?;
    let on_nixpkgs = |attr: &str| -> Result<PathBuf, String> {
        let out = nix_build_on(nix, &nixpkgs_style, attr, false)?;
        ensure(out.status.success(), || {
            format!(
                "{attr} on a nixpkgs-style parent: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    };
    pipe(&on_nixpkgs("onArchive")?, docker.cmd().arg("load"))?;
    let out = docker.run("strata-on-archive:latest", &["/bin/tools-check"])?;
    ensure(out.trim() == "tools ok", || {
        format!("on a nixpkgs-style parent: {out:?}")
    })?;
    feed(&on_nixpkgs("runAsRootOnArchive")?, docker.cmd().arg("load"))?;
    let out = docker.run("strata-root-on-archive:latest", &[])?;
    ensure(out.trim() == "ran", || {
        format!("buildImage on a nixpkgs-style parent: {out:?}")
    })?;
    let rootfs = std::fs::read(on_nixpkgs("onArchiveRootfs")?).map_err(|e| e.to_string())?;
    let names: BTreeSet<String> = entries(&rootfs).into_iter().map(|e| e.0).collect();
    ensure(names.contains("./bin/tools-check"), || {
        format!("export of a nixpkgs-style parent: {names:?}")
    })?;
    let loaded = feed(&on_nixpkgs("mergedArchive")?, docker.cmd().arg("load"))?;
    ensure(loaded.contains("nixpkgs-style:latest"), || {
        format!("merge of a nixpkgs-style parent: {loaded:?}")
    })?;
    let out = docker.run("nixpkgs-style:latest", &["/bin/tools-check"])?;
    ensure(out.trim() == "tools ok", || {
        format!("the merged nixpkgs-style image: {out:?}")
    })?;

    let out = build_on(&evil, "onArchive")?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure(
        !out.status.success()
            && err.contains("member `l/layer.tar: ../../escape`: the name has a `..` component"),
        || format!("hostile parent: {err}"),
    )
}

/// A parent whose layers are zstd:chunked (`fromImage = chunkedLayers`): read as the plain
/// zstd it also is, its layers kept as they were, annotations included, so a partial pull
/// still finds their tables; podman loads and runs the child.
pub fn zstd_chunked_parent_is_read_and_kept(ctx: &mut Context) -> Check {
    let (nix, podman, dir) = (&mut ctx.nix, &mut ctx.podman, &mut ctx.dir);
    let plan = nix.build("onChunked")?;
    let file = dir.join("on-chunked.tar");
    save(&plan, &file)?;
    let members: BTreeMap<String, Vec<u8>> = members(&file)?.into_iter().collect();
    let index: Value = serde_json::from_slice(&members["index.json"]).map_err(|e| e.to_string())?;
    let digest = index["manifests"][0]["digest"].as_str().unwrap_or_default();
    let manifest = &members[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))];
    let manifest: Value = serde_json::from_slice(manifest).map_err(|e| e.to_string())?;
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    ensure(layers.len() >= 3, || format!("{manifest}"))?;
    for layer in &layers {
        ensure(
            layer["annotations"]["io.github.containers.zstd-chunked.manifest-checksum"].is_string(),
            || format!("a layer without its table of contents: {layer}"),
        )?;
    }
    feed(&file, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-on-chunked:v1", &[])?;
    ensure(out == format!("tools ok\n{HELLO}\n"), || {
        format!("podman run printed {out:?}")
    })
}
