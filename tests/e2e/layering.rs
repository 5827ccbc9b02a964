//! How closures become layers: maxLayers, buildLayer, perLayerDerivations, and what a rebuild touches.

use super::*;

pub fn max_layers_below_2_fails_at_evaluation(ctx: &mut Context) -> Check {
    let nix = &mut ctx.nix;
    let err = nix.instantiate_fails("tooFewLayers")?;
    ensure(err.contains("`maxLayers`") && err.contains("got 1"), || {
        format!("message: {err}")
    })?;
    let err = nix.instantiate_fails("badCreated")?;
    ensure(
        err.contains("`created`") && err.contains("yesterday"),
        || format!("message: {err}"),
    )?;
    // An image for macOS, and an architecture no engine knows, as nixpkgs refuses them.
    let err = nix.instantiate_fails("darwinImage")?;
    ensure(
        err.contains("streamLayeredImage")
            && err.contains("\"aarch64-darwin\" is not a Linux system")
            && err.contains("pkgsCross"),
        || format!("message: {err}"),
    )?;
    let err = nix.instantiate_fails("madeUpArchitecture")?;
    ensure(
        err.contains("buildImage: `architecture`") && err.contains("\"x86\""),
        || format!("message: {err}"),
    )
}

pub fn closure_larger_than_max_layers_fills_exactly_max_layers(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    let plan = nix.build("capped")?;
    let file = dir.join("capped.tar");
    let img = streamed_image(&plan, &file)?;
    ensure(img.layers.len() == 5, || {
        format!("maxLayers = 5 gave {} layers", img.layers.len())
    })?;
    // The closure the image must hold: everything the config and the customisation
    // layer refer to, minus those two.
    let custom = nix.build("capped.customisationLayer")?;
    let config = nix.build("capped.configFile")?;
    let closure: BTreeSet<String> = ok(Command::new("nix-store")
        .arg("-qR")
        .arg(&custom)
        .arg(&config))?
    .lines()
    .filter(|p| Path::new(p) != custom && Path::new(p) != config)
    .map(str::to_owned)
    .collect();
    ensure(closure.len() > 5, || {
        format!("closure too small to test the cap: {closure:?}")
    })?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for layer in &img.layers {
        for p in store_paths_in(layer) {
            *seen.entry(p).or_default() += 1;
        }
    }
    let held: BTreeSet<String> = seen.keys().cloned().collect();
    ensure(held == closure, || {
        format!("image holds {held:?}\nclosure is {closure:?}")
    })?;
    ensure(seen.values().all(|&n| n == 1), || {
        format!("a store path is in more than one layer: {seen:?}")
    })?;
    let out = docker_load_run(docker, &plan, "strata-capped:latest")?;
    ensure(out.trim() == HELLO, || {
        format!("docker run printed {out:?}")
    })
}

pub fn layers_subcommand_reads_nix_path_info_by_hand(ctx: &mut Context) -> Check {
    let result = layers_from_path_info(ctx);
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Nix,
        Feature::PathInfo,
        result.clone(),
    );
    result
}

/// `strata layers --closure` on what this Nix's `nix path-info --json --recursive` prints
/// (an array up to Nix 2.18, an object keyed by path from 2.19 on).
fn layers_from_path_info(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let hello = nix.build("pkgs.hello")?;
    let info = ok(Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "--json",
            "--recursive",
        ])
        .arg(&hello))?;
    let file = dir.join("path-info.json");
    std::fs::write(&file, info).map_err(|e| e.to_string())?;
    let closure: BTreeSet<String> = ok(Command::new("nix-store").arg("-qR").arg(&hello))?
        .lines()
        .map(str::to_owned)
        .collect();
    let out = ok(Command::new(&helper)
        .args(["layers", "--max-layers", "3", "--closure"])
        .arg(&file))?;
    let layers: Vec<Vec<String>> = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let held: BTreeSet<String> = layers.iter().flatten().cloned().collect();
    ensure(layers.len() == 2 && held == closure, || {
        format!("layers {layers:?} for closure {closure:?}")
    })?;
    // The default layering keeps the largest path (the toolbox's busybox) alone and merges
    // the small ones.
    let toolbox = layers
        .iter()
        .find(|l| l.iter().any(|p| p.ends_with("-toolbox")));
    ensure(toolbox.is_some_and(|l| l.len() == 1), || {
        format!("layers {layers:?}")
    })
}

pub fn shared_layer_built_once_used_by_two_images(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    let deps = nix.build("sharedDeps")?;
    let set: Value = serde_json::from_slice(&std::fs::read(&deps).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let deps_diff = set["layers"][0]["record"]["diffId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure(set["layers"].as_array().map_or(0, Vec::len) == 1, || {
        format!("sharedDeps: {set}")
    })?;
    // Both images name the same layer derivation (one store path) ...
    for attr in ["appV1", "sharedOther"] {
        let drv = ok(Command::new("nix-store").arg("-q").arg("--references").arg(
            nix.eval_json(&format!("{attr}.drvPath"))?
                .as_str()
                .unwrap_or_default(),
        ))?;
        let drv = if attr == "sharedOther" {
            let stream = nix.eval_json("sharedOther.stream.drvPath")?;
            ok(Command::new("nix-store")
                .args(["-q", "--references"])
                .arg(stream.as_str().unwrap_or_default()))?
        } else {
            drv
        };
        let deps_drv = nix.eval_json("sharedDeps.drvPath")?;
        ensure(
            drv.lines()
                .any(|l| l == deps_drv.as_str().unwrap_or_default()),
            || format!("{attr} does not use the sharedDeps derivation {deps_drv}: {drv}"),
        )?;
    }
    // ... and list its digest at the bottom of their rootfs.
    let a = nix.build("appV1")?;
    let file = dir.join("app1.tar");
    let img_a = streamed_image(&a, &file)?;
    let b = nix.build("sharedOther")?;
    let img_b = open_image(&b)?;
    for (name, img) in [("appV1", &img_a), ("sharedOther", &img_b)] {
        ensure(
            img.config["rootfs"]["diff_ids"][0] == deps_diff.as_str(),
            || {
                format!(
                    "{name}: bottom layer is not the shared one ({deps_diff}): {}",
                    img.config["rootfs"]
                )
            },
        )?;
    }
    let out = docker_load_run(docker, &a, "strata-app:1")?;
    ensure(out == format!("{HELLO}\napp 1\n"), || {
        format!("docker run printed {out:?}")
    })?;
    feed(&b, docker.cmd().arg("load"))?;
    let out = docker.run("strata-shared-other:latest", &[])?;
    ensure(out.trim() == HELLO, || {
        format!("docker run printed {out:?}")
    })?;
    pipe(&a, podman.cmd().arg("load"))?;
    let out = podman.run("localhost/strata-app:1", &[])?;
    ensure(out.ends_with("app 1\n"), || {
        format!("podman run printed {out:?}")
    })?;
    pipe_cmd(
        Command::new("gzip").arg("-dc").arg(&b),
        podman.cmd().arg("load"),
    )?;
    let out = podman.run(
        "localhost/strata-shared-other:latest",
        &["/bin/tools-check"],
    )?;
    ensure(out.trim() == "tools ok", || {
        format!("podman run printed {out:?}")
    })
}

pub fn changing_the_app_rebuilds_only_its_derivations(ctx: &mut Context) -> Check {
    let (nix, docker) = (&mut ctx.nix, &mut ctx.docker);
    nix.build("appV1")?;
    nix.build("sharedDeps")?;
    // What a rebuild with a new app version would build, as `nix-build --dry-run` lists
    // it. The version is new to this run, so nothing of it can be built already.
    let version = format!("2-run{}", std::process::id());
    let out = run(Command::new("nix-build")
        .current_dir(repo())
        .arg("tests/nix/images.nix")
        .args(nix.args())
        .args([
            "--argstr",
            "appVersion2",
            &version,
            "--dry-run",
            "-A",
            "appV2",
        ]))?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut names: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains("will be built"))
        .skip(1)
        .take_while(|l| l.starts_with("  /nix/store/"))
        .map(|l| {
            l.trim()
                .split_once('-')
                .map(|(_, name)| name)
                .unwrap_or_default()
                .trim_end_matches(".drv")
                .to_owned()
        })
        .collect();
    names.sort();
    let app = format!("app-{version}");
    let want = [
        app.as_str(),
        "app-layers.json",
        "strata-app-config.json",
        "stream-strata-app",
    ];
    ensure(names == want, || {
        format!("expected to rebuild exactly {want:?}, got {names:?}; nix-build --dry-run says:\n{text}")
    })?;
    let built = run(Command::new("nix-build")
        .current_dir(repo())
        .arg("tests/nix/images.nix")
        .args(nix.args())
        .args(["--option", "sandbox", "true", "--no-out-link"])
        .args(["--argstr", "appVersion2", &version, "-A", "appV2"]))?;
    let log = String::from_utf8_lossy(&built.stderr).into_owned();
    ensure(built.status.success(), || format!("nix-build: {log}"))?;
    let plan = PathBuf::from(String::from_utf8_lossy(&built.stdout).trim());
    // Nix gives builders a pseudo-terminal: progress must still be plain lines in the log,
    // no bar redraws leaving tails of earlier lines.
    ensure(
        log.contains("strata: records: ") && !log.contains('\r'),
        || format!("the build log has redraws or no summary line:\n{log:?}"),
    )?;
    let out = docker_load_run(docker, &plan, &format!("strata-app:{version}"))?;
    ensure(out.ends_with(&format!("app {version}\n")), || {
        format!("docker run printed {out:?}")
    })
}

pub fn buildlayer_contents_and_split(ctx: &mut Context) -> Check {
    let (nix, docker) = (&mut ctx.nix, &mut ctx.docker);
    let set: Value = serde_json::from_slice(
        &std::fs::read(nix.build("splitLayer")?).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let kinds: Vec<&str> = set["layers"]
        .as_array()
        .map(|l| l.iter().filter_map(|x| x["kind"].as_str()).collect())
        .unwrap_or_default();
    ensure(kinds == ["storePaths", "storePaths", "tarball"], || {
        format!("split layer: {set}")
    })?;
    let plan = nix.build("splitImage")?;
    let out = docker_load_run(docker, &plan, "strata-split:latest")?;
    ensure(out.trim() == "tools ok", || {
        format!("docker run printed {out:?}")
    })
}

pub fn per_layer_derivations_give_the_same_layers(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    let on = nix.build("perLayer")?;
    let off = nix.build("perLayerOff")?;
    let (a, b) = (dir.join("per-layer-on.tar"), dir.join("per-layer-off.tar"));
    save(&on, &a)?;
    save(&off, &b)?;
    let (ia, ib) = (open_image(&a)?, open_image(&b)?);
    ensure(ia.config["rootfs"] == ib.config["rootfs"], || {
        format!(
            "layers differ:\n{}\n{}",
            ia.config["rootfs"], ib.config["rootfs"]
        )
    })?;
    ensure(ia.layers.len() == 4, || {
        format!("{} layers", ia.layers.len())
    })?;
    // Each automatic layer is a derivation of its own.
    let drv = nix.eval_json("perLayer.drvPath")?;
    let inputs = ok(Command::new("nix-store")
        .args(["-q", "--references"])
        .arg(drv.as_str().unwrap_or_default()))?;
    let layer_drvs = inputs
        .lines()
        .filter(|l| {
            l.split_once('-')
                .is_some_and(|(_, name)| name.starts_with("layer-"))
        })
        .count();
    ensure(layer_drvs == 3, || {
        format!(
            "expected 3 layer derivations (maxLayers 4 = 3 store layers + customisation): {inputs}"
        )
    })?;
    let out = docker_load_run(docker, &on, "strata-per-layer:latest")?;
    ensure(out.trim() == HELLO, || {
        format!("docker run printed {out:?}")
    })
}

pub fn default_layering_pushes_only_what_changed(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.dir);
    let registry = Registry::start(dir)?;
    let host = &registry.host;
    let v1 = nix.build("bigAppV1")?;
    let v2 = nix.build("bigAppV2")?;
    let layers = |plan: &Path| -> Result<Vec<Value>, String> {
        let text = std::fs::read_to_string(plan).map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(text.split_once('\n').map_or("", |(_, j)| j))
            .map_err(|e| e.to_string())?;
        Ok(json["layers"].as_array().cloned().unwrap_or_default())
    };
    let (l1, l2) = (layers(&v1)?, layers(&v2)?);
    ensure(l1.len() == 6 && l2.len() == 6, || {
        format!("maxLayers 6 gave {} and {} layers", l1.len(), l2.len())
    })?;
    let first = push_plan(&v1, &format!("{host}/big:v1"), &[])?;
    // Every blob goes to the empty registry: 6 layers and the config, ~30 MB of gzip (the
    // 190 MB of `seq` output compresses well).
    ensure(first.uploaded == 7 && first.bytes > 20_000_000, || {
        format!(
            "the first push sent {} blobs, {} bytes",
            first.uploaded, first.bytes
        )
    })?;
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let explain = || -> Result<Value, String> {
        let told = ok(Command::new(&helper)
            .args(["explain", "--json", "--against"])
            .arg(&v1)
            .arg(&v2))?;
        serde_json::from_str(&told).map_err(|e| format!("{e}: {told}"))
    };
    // Before the push, `strata explain --against` names the one new layer: the
    // application's.
    let before = explain()?;
    let new: Vec<&Value> = before["layers"]
        .as_array()
        .map(|l| l.iter().filter(|l| l["reused"] == false).collect())
        .unwrap_or_default();
    ensure(
        new.len() == 1 && new[0]["paths"].to_string().contains("-big-app-"),
        || format!("explain: {before}"),
    )?;
    let second = push_plan(&v2, &format!("{host}/big:v2"), &[])?;
    // The application's layer and the config (and the customisation layer, had it changed).
    ensure(second.uploaded <= 3 && second.bytes < 1_100_000, || {
        format!(
            "v2 uploaded {} blobs, {} bytes",
            second.uploaded, second.bytes
        )
    })?;
    // After it, explain knows the compressed size (the push kept it) and agrees with what
    // the push sent: the new layer's gzip bytes, and the config besides.
    let after = explain()?;
    let told = after["newPushBytes"].as_u64().unwrap_or(u64::MAX);
    ensure(
        told <= second.bytes && second.bytes - told < 100_000 && told > 0,
        || format!("explain says {told} bytes, the push sent {}", second.bytes),
    )?;
    // docker pulls it from the loopback registry and runs the changed application.
    ok(docker.cmd().args(["pull", &format!("{host}/big:v2")]))?;
    let out = docker.run(&format!("{host}/big:v2"), &[])?;
    ensure(out.trim() == "big app 2", || {
        format!("docker run printed {out:?}")
    })?;
    println!(
        "    first push {} bytes in {} blobs; after the change {} bytes in {} blobs",
        first.bytes, first.uploaded, second.bytes, second.uploaded
    );
    Ok(())
}

pub fn layering_pipeline_gives_nixpkgs_popularity_layers(ctx: &mut Context) -> Check {
    let (nix, dir) = (&mut ctx.nix, &mut ctx.dir);
    let plan = nix.build("pipelineImage")?;
    let img = streamed_image(&plan, &dir.join("pipeline.tar"))?;
    // Three store layers (two most popular paths alone, the rest together) and the
    // customisation layer.
    ensure(img.layers.len() == 4, || {
        format!("{} layers", img.layers.len())
    })?;
    let held: Vec<BTreeSet<String>> = img.layers[..3].iter().map(|l| store_paths_in(l)).collect();
    ensure(
        held[0].len() == 1 && held[1].len() == 1 && held[2].len() > 1,
        || format!("store layers {held:?}"),
    )?;
    ensure(
        held[0].iter().all(|p| p.ends_with("-locale-data-1.0")),
        || format!("the most popular path first: {held:?}"),
    )?;
    let err = nix.instantiate_fails("badPipeline")?;
    ensure(
        err.contains("`layeringPipeline`") && err.contains("limit_layer"),
        || format!("message: {err}"),
    )
}

/// The members of the `fleet` family (tests/nix/images.nix) and what each prints.
const FLEET: [(&str, &str); 3] = [
    ("web", "fleet web\n5\n"),
    ("worker", "fleet worker\n11\n"),
    ("cron", "fleet cron\n8\n"),
];

/// Each layer of a member (its diff_id) with the store paths it holds.
fn layers_and_paths(nix: &mut Nix, attr: &str) -> Result<Vec<(String, BTreeSet<String>)>, String> {
    let img = open_image(&nix.build(attr)?)?;
    let diff_ids = img.config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(diff_ids
        .iter()
        .zip(&img.layers)
        .map(|(d, layer)| {
            (
                d.as_str().unwrap_or_default().to_owned(),
                store_paths_in(layer),
            )
        })
        .collect())
}

/// imageFamily: three images of one package set, each within its own maxLayers. Every store
/// path two members hold is in a layer with the same digest in both, so after pushing all
/// three the registry stores fewer blobs and bytes than for the same images laid alone;
/// every member runs from the registry; bad families fail naming the member.
pub fn image_family_shares_layers_in_the_registry(ctx: &mut Context) -> Check {
    let (nix, docker, podman, dir) = (&mut ctx.nix, &mut ctx.docker, &mut ctx.podman, &mut ctx.dir);
    let mut members = BTreeMap::new();
    for (m, _) in FLEET {
        let layers = layers_and_paths(nix, &format!("fleet.{m}"))?;
        let max = if m == "cron" { 4 } else { 5 };
        ensure(layers.len() <= max, || {
            format!("{m}: {} layers", layers.len())
        })?;
        members.insert(m, layers);
    }
    // Where each member keeps each path: the layer's diff_id.
    let home = |layers: &[(String, BTreeSet<String>)], path: &String| {
        layers
            .iter()
            .find(|(_, p)| p.contains(path))
            .map(|(d, _)| d.clone())
    };
    let mut shared_paths = 0;
    for (a, la) in &members {
        for (b, lb) in &members {
            for path in la.iter().flat_map(|(_, p)| p) {
                let (Some(da), Some(db)) = (home(la, path), home(lb, path)) else {
                    continue;
                };
                shared_paths += usize::from(a < b);
                // cron's maxLayers of 4 is less than its classes: it keeps what all three
                // share and gives up what only it and worker share.
                let in_all = members.values().all(|l| home(l, path).is_some());
                if in_all || (*a != "cron" && *b != "cron") {
                    ensure(da == db, || {
                        format!("{path} is in layer {da} of {a} but {db} of {b}")
                    })?;
                }
            }
        }
    }
    ensure(shared_paths > 10, || {
        format!("only {shared_paths} shared paths")
    })?;
    let pushed =
        |registry: &Registry, family: &str, nix: &mut Nix| -> Result<(usize, u64), String> {
            for (m, _) in FLEET {
                let plan = nix.build(&format!("{family}.{m}.stream"))?;
                push_plan(&plan, &format!("{}/fleet-{m}:1", registry.host), &[])?;
            }
            let sizes = registry.blob_sizes();
            Ok((sizes.len(), sizes.iter().sum()))
        };
    let family_registry = Registry::start(dir)?;
    let (family_blobs, family_bytes) = pushed(&family_registry, "fleet", nix)?;
    let alone_registry = Registry::start(dir)?;
    let (alone_blobs, alone_bytes) = pushed(&alone_registry, "fleetAlone", nix)?;
    println!("    registry: family {family_blobs} blobs, {family_bytes} bytes; laid alone {alone_blobs} blobs, {alone_bytes} bytes");
    ensure(
        family_blobs < alone_blobs && family_bytes < alone_bytes,
        || {
            format!("family {family_blobs} blobs / {family_bytes} bytes, alone {alone_blobs} / {alone_bytes}")
        },
    )?;
    // With a layer derivation per automatic layer, a change of one member leaves the other
    // members' plans the same derivations (the same default tags).
    for (m, _) in FLEET {
        let before = nix.build(&format!("fleetPerLayer1.{m}.stream"))?;
        let after = nix.build(&format!("fleetPerLayer2.{m}.stream"))?;
        ensure((before == after) == (m != "cron"), || {
            format!("{m}: {} then {}", before.display(), after.display())
        })?;
    }
    for (m, prints) in FLEET {
        let image = format!("{}/fleet-{m}:1", family_registry.host);
        ok(docker.cmd().args(["pull", &image]))?;
        let out = docker.run(&image, &[])?;
        ensure(out == prints, || format!("{m} printed {out:?}"))?;
        // podman loads the archive buildLayeredImage made, and runs it.
        feed(&nix.build(&format!("fleet.{m}"))?, podman.cmd().arg("load"))?;
        let out = podman.run(&format!("localhost/strata-fleet-{m}:1"), &[])?;
        ensure(out == prints, || format!("{m} in podman printed {out:?}"))?;
    }
    bad_families_are_refused(nix)
}

/// Members of two architectures or with their own layering are refused at evaluation; a
/// member without room fails the family's build naming it.
fn bad_families_are_refused(nix: &mut Nix) -> Check {
    let err = nix.instantiate_fails("fleetOfTwoArchitectures.a")?;
    ensure(
        err.contains("imageFamily: the members are for different architectures"),
        || err.clone(),
    )?;
    let err = nix.instantiate_fails("fleetWithPipeline.a")?;
    ensure(
        err.contains("imageFamily: `images.a` sets `layeringPipeline`"),
        || err.clone(),
    )?;
    let err = nix.build_fails("fleetOverBudget.a")?;
    ensure(
        err.contains("strata: error: imageFamily: member `b`: `maxLayers` is 2"),
        || err.clone(),
    )
}
