//! End-to-end tests: images built by `nix-build` (sandbox on) from the library in its
//! no-nixpkgs form, used by real consumers: docker, podman, skopeo.
//!
//! Needs root, Nix, docker.io, podman, runc and skopeo (`scripts/test` installs them). Without
//! them the tests are skipped, unless `STRATA_E2E=1` makes them required (as in CI).
//! `cargo test --test e2e -- NAME...` runs only the checks whose names contain a NAME.

mod util;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use util::*;

const HELLO: &str = "Hello from strata!";

/// Members of a docker-archive, in order: (name, bytes).
fn members(archive: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    Ok(members_and_links(archive)?
        .into_iter()
        .map(|(name, bytes, _)| (name, bytes))
        .collect())
}

/// An archive member: name, bytes, symlink target.
type Member = (String, Vec<u8>, Option<String>);

/// Members of a (possibly gzipped) archive, in order.
fn members_and_links(archive: &Path) -> Result<Vec<Member>, String> {
    let bytes = std::fs::read(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        out
    } else {
        bytes
    };
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut out = Vec::new();
    for e in archive.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let name = e
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let link = e
            .link_name()
            .map_err(|e| e.to_string())?
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).map_err(|e| e.to_string())?;
        out.push((name, data, link));
    }
    Ok(out)
}

/// The parsed manifest.json, config and layer tars of a docker-archive.
struct Image {
    manifest: Value,
    config: Value,
    layers: Vec<Vec<u8>>,
}

fn open_image(archive: &Path) -> Result<Image, String> {
    let m: BTreeMap<String, Vec<u8>> = members(archive)?.into_iter().collect();
    let manifest: Value = serde_json::from_slice(m.get("manifest.json").ok_or("no manifest.json")?)
        .map_err(|e| e.to_string())?;
    let config_name = manifest[0]["Config"].as_str().ok_or("no Config")?;
    let config: Value = serde_json::from_slice(m.get(config_name).ok_or("config missing")?)
        .map_err(|e| e.to_string())?;
    let layers = manifest[0]["Layers"]
        .as_array()
        .ok_or("no Layers")?
        .iter()
        .map(|l| {
            m.get(l.as_str().unwrap_or_default())
                .cloned()
                .ok_or(format!("layer {l} missing"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Image {
        manifest,
        config,
        layers,
    })
}

/// Streams the image of `plan` into `file` and opens it.
fn streamed_image(plan: &Path, file: &Path) -> Result<Image, String> {
    save(plan, file)?;
    open_image(file)
}

/// Entries of a layer tar: (name, mode, type char).
fn entries(layer: &[u8]) -> Vec<(String, u32, char)> {
    tar::Archive::new(layer)
        .entries()
        .expect("layer is a tar")
        .map(|e| {
            let e = e.expect("entry");
            let h = e.header();
            let kind = match h.entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Regular => 'f',
                tar::EntryType::Link => 'h',
                _ => '?',
            };
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            (name, h.mode().unwrap_or(0), kind)
        })
        .collect()
}

/// Store paths (`/nix/store/<hash>-<name>`) with a top-level entry in a layer.
fn store_paths_in(layer: &[u8]) -> BTreeSet<String> {
    entries(layer)
        .into_iter()
        .filter_map(|(name, _, _)| {
            let rest = name.strip_prefix("nix/store/")?;
            let base = rest.trim_end_matches('/');
            (!base.is_empty() && !base.contains('/')).then(|| format!("/nix/store/{base}"))
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn image_tag(nix: &Nix, attr: &str) -> Result<String, String> {
    Ok(nix
        .eval_json(&format!("{attr}.imageTag"))?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Every image (and layer derivation) the tests build.
const BUILT: &[&str] = &[
    "sharedDeps",
    "appV1",
    "appV1.appLayer",
    "sharedOther",
    "splitLayer",
    "perLayer",
    "nowDated",
    "stream",
    "stream.customisationLayer",
    "stream.configFile",
    "layered",
    "layeredZstd",
    "capped",
    "nonRoot",
    "noStore",
    "noStore.customisationLayer",
    "arm",
    "empty",
    "onTopOfLayered",
    "onTopOfLayered.layer",
    "chain3",
    "chain3.layer",
    "rootOwned",
    "rootOwned.layer",
    "fakeRoot",
    "fakeRoot.customisationLayer",
    "layeredOnTop",
    "nixDbLayered",
    "nixDbLayered.stream.customisationLayer",
    "nixDbImage",
    "nixDbImage.layer",
    "nixDbLayeredRootfs",
    "chain3Rootfs",
    "merged",
    "family",
    "family.layer",
    "bulkOnBase",
    "runAsRootExtraCommands",
    "examples.hello",
    "examples.helloLayered",
    "examples.sharedOne",
    "examples.sharedTwo",
    "examples.withNixDbSingle",
    "examples.app",
    "examples.withNixDb",
    "examples.rootfs",
    "examples.merged",
    "examples.basics",
    "examples.multiArch",
    "gzLayers",
    "zstdLayers",
    "multiArch",
    "multiArch.copyToRegistry",
    "layered.copyToDockerDaemon",
];

fn main() {
    let required = std::env::var("STRATA_E2E").is_ok_and(|v| v == "1");
    let missing: Vec<&str> = [
        "nix-build",
        "dockerd",
        "docker",
        "podman",
        "skopeo",
        "runc",
        "busybox",
    ]
    .into_iter()
    .filter(|p| !have(p))
    .collect();
    let not_root = !ok(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0");
    if !missing.is_empty() || not_root {
        let why = if not_root {
            "not running as root".to_owned()
        } else {
            format!("missing {}", missing.join(", "))
        };
        eprintln!("e2e: skipped ({why}); scripts/test installs what they need");
        std::process::exit(if required { 1 } else { 0 });
    }
    if let Err(e) = ok(Command::new(repo().join("scripts/bootstrap")).stdout(Stdio::null())) {
        eprintln!("e2e: scripts/bootstrap failed:\n{e}");
        std::process::exit(1);
    }

    let scratch = Scratch::new();
    let mut suite = Suite::from_args();
    let mut nix = Nix::new();
    let docker = match Dockerd::start(&scratch.0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("e2e: {e}");
            std::process::exit(1);
        }
    };
    let podman = Podman::new(&scratch.0);
    let dir = scratch.0.clone();

    suite.check("stream_docker_load_and_run", || {
        let plan = nix.build("stream")?;
        let tag = image_tag(&nix, "stream")?;
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
    });

    suite.check("stream_podman_load_and_run", || {
        let plan = nix.build("stream")?;
        let tag = image_tag(&nix, "stream")?;
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
    });

    suite.check("skopeo_inspect_shows_config_arch_and_layers", || {
        let plan = nix.build("stream")?;
        let file = dir.join("stream.tar");
        save(&plan, &file)?;
        let src = format!("docker-archive:{}", file.display());
        let inspect: Value =
            serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", &src]))?)
                .map_err(|e| e.to_string())?;
        ensure(
            inspect["Architecture"] == "amd64" && inspect["Os"] == "linux",
            || format!("{inspect}"),
        )?;
        // hello, greeting, locale-data, toolbox, tools + the customisation layer.
        let layers = inspect["Layers"].as_array().map_or(0, Vec::len);
        ensure(layers == 6, || {
            format!("expected 6 layers, skopeo shows {layers}: {inspect}")
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
            config["history"].as_array().map_or(0, Vec::len) == 6,
            || format!("history: {config}"),
        )
    });

    suite.check("compressed_layers_in_archives", || {
        // tar+gzip layers: docker, podman, skopeo and umoci; tar+zstd: podman and skopeo
        // (Docker 20.10 cannot read zstd).
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
            if attr == "gzLayers" {
                feed(&file, docker.cmd().arg("load"))?;
                let out = docker.run(name, &[])?;
                ensure(out.trim() == HELLO, || {
                    format!("{attr}: docker run printed {out:?}")
                })?;
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
    });

    suite.check("archive_is_an_oci_layout_skopeo_and_umoci_read_it", || {
        // The streamed archive and buildImage's (legacy layout too) read both ways by skopeo,
        // unpacked by umoci; docker and podman load them in the other checks.
        for (attr, name, tag) in [
            ("stream", "strata-hello", image_tag(&nix, "stream")?),
            ("chain3", "strata-chain-3", "latest".to_owned()),
        ] {
            let built = nix.build(attr)?;
            let file = dir.join(format!("{attr}-oci.tar"));
            if is_executable(&built) {
                save(&built, &file)?;
            } else {
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(
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
    });

    suite.check("layers_are_deterministic_relative_and_hashed", || {
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
            ensure(
                e.len() >= 2
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
    });

    suite.check("build_layered_image_gz_docker_and_podman", || {
        let archive = nix.build("layered")?;
        ensure(
            archive.to_string_lossy().ends_with("strata-layered.tar.gz"),
            || format!("output name {}", archive.display()),
        )?;
        ensure(image_tag(&nix, "layered")? == "v1", || {
            "imageTag is not the given tag".into()
        })?;
        feed(&archive, docker.cmd().arg("load"))?;
        let out = docker.run("strata-layered:v1", &[])?;
        ensure(out.trim() == HELLO, || {
            format!("docker run printed {out:?}")
        })?;
        // Debian 12's podman 4.3 cannot read gzipped archives (podman#15944, a pgzip bug fixed
        // in later versions), whoever wrote them; decompressing first works everywhere.
        pipe_cmd(
            Command::new("gzip").arg("-dc").arg(&archive),
            podman.cmd().arg("load"),
        )?;
        let out = podman.run("localhost/strata-layered:v1", &["/bin/tools-check"])?;
        ensure(out.trim() == "tools ok", || {
            format!("podman run printed {out:?}")
        })
    });

    suite.check("build_layered_image_zstd_loads", || {
        let archive = nix.build("layeredZstd")?;
        let tag = image_tag(&nix, "layeredZstd")?;
        feed(&archive, podman.cmd().arg("load"))?;
        let out = podman.run(&format!("localhost/strata-layered-zstd:{tag}"), &[])?;
        ensure(out.trim() == HELLO, || {
            format!("podman run printed {out:?}")
        })?;
        // Docker decompresses zstd archives from version 23 on; Debian 12 ships 20.10.
        if docker.major_version() >= 23 {
            feed(&archive, docker.cmd().arg("load"))?;
            let out = docker.run(&format!("strata-layered-zstd:{tag}"), &[])?;
            ensure(out.trim() == HELLO, || {
                format!("docker run printed {out:?}")
            })?;
        }
        Ok(())
    });

    suite.check("image_tag_defaults_to_plan_hash", || {
        let plan = nix.build("stream")?;
        let tag = image_tag(&nix, "stream")?;
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
        let zstd_tag = image_tag(&nix, "layeredZstd")?;
        let stream_tag = image_tag(&nix, "layeredZstd.stream")?;
        ensure(zstd_tag == stream_tag, || {
            format!("{zstd_tag} != {stream_tag}")
        })
    });

    suite.check("tarsum_matches_dockers_go_code", || {
        let go = go_tarsum_reference(&dir)?;
        let ours = repo().join("build/bootstrap/helper/bin/strata");
        let mut tars: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
        for attr in BUILT {
            let out = nix.build(attr)?;
            for (what, tar) in tars_of(&out, &dir)? {
                tars.entry(sha256_hex(&tar))
                    .or_insert((format!("{attr}: {what}"), tar));
            }
        }
        let layers = tars.len();
        for (name, tar) in tarsum_vectors() {
            tars.insert(name.to_owned(), (name.to_owned(), tar));
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
    });

    suite.check("build_image_legacy_layout_docker_and_podman", || {
        // chain3: three buildImages on top of each other, so three legacy layers.
        let archive = nix.build("chain3")?;
        let go = go_tarsum_reference(&dir)?;
        let legacy = check_legacy_layout(&archive, &go, &dir, "strata-chain-3", 3)?;
        // buildImage over buildLayeredImage: the parent's store layers were planned without
        // tarsums, which the child's plan computes.
        let on_layered = nix.build("onTopOfLayered")?;
        check_legacy_layout(&on_layered, &go, &dir, "strata-on-top", 0)?;

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
        load_into_podman(&podman, &archive)?;
        let out = podman.run("localhost/strata-chain-3:latest", &[])?;
        ensure(out == expected, || format!("podman run printed {out:?}"))
    });

    suite.check("push_uploads_only_what_the_registry_lacks", || {
        let registry = Registry::start(&dir)?;
        let host = registry.host.clone();
        let helper = repo().join("build/bootstrap/helper/bin/strata");
        let push = |plan: &Path, target: &str, extra: &[&str]| -> Result<(usize, usize, String), String> {
            let out = run(Command::new(&helper)
                .arg("push")
                .args(extra)
                .arg(plan)
                .arg(target)
                .env("STRATA_PROGRESS", "none"))?;
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            ensure(out.status.success(), || format!("push {target}: {err}"))?;
            // "pushed REF (DIGEST): N blobs uploaded, M already there, ..."
            let number = |label: &str| -> usize {
                err.split(label).next().and_then(|b| b.split_whitespace().last()).and_then(|n| n.parse().ok()).unwrap_or(usize::MAX)
            };
            let digest = err.split('(').nth(1).and_then(|r| r.split(')').next()).unwrap_or_default().to_owned();
            Ok((number(" blobs uploaded"), number(" already there"), digest))
        };
        let v1 = nix.build("appV1")?;
        let v2 = nix.build("appV2")?;
        let layers = |plan: &Path| -> Result<usize, String> {
            let text = std::fs::read_to_string(plan).map_err(|e| e.to_string())?;
            let json: Value = serde_json::from_str(text.split_once('\n').map_or("", |(_, j)| j))
                .map_err(|e| e.to_string())?;
            Ok(json["layers"].as_array().map_or(0, Vec::len))
        };
        let n = layers(&v1)?;
        let (up, skip, digest1) = push(&v1, &format!("{host}/app:v1"), &[])?;
        ensure(up == n + 1 && skip == 0, || format!("first push of {n} layers: {up} uploaded, {skip} skipped"))?;
        // v2 changed the application: its layer and the config go; the shared dependency
        // layer and the (unchanged) customisation layer are already there.
        let (up, skip, _) = push(&v2, &format!("{host}/app:v2"), &[])?;
        ensure(up == 2 && skip == layers(&v2)? - 1, || format!("v2: {up} uploaded, {skip} skipped"))?;
        let (up, _, _) = push(&v2, &format!("{host}/app:v2"), &[])?;
        ensure(up == 0, || format!("re-push of v2 uploaded {up}"))?;
        // Same image, another repository: the same manifest digest.
        let (_, _, again) = push(&v1, &format!("{host}/other:v1"), &[])?;
        ensure(again == digest1, || format!("{again} != {digest1}"))?;
        // Mounted from a repository that has the blobs: nothing is uploaded.
        let (up, _, again) = push(&v1, &format!("{host}/mounted:v1"), &["--mount-from", "app"])?;
        ensure(up == 0 && again == digest1, || format!("mounted push: {up} uploaded, {again}"))?;
        // skopeo reads it, copies it into a docker-archive that docker loads and runs.
        let inspect: Value = serde_json::from_str(&ok(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", &format!("docker://{host}/app:v2")]))?)
        .map_err(|e| e.to_string())?;
        ensure(inspect["Layers"].as_array().map_or(0, Vec::len) == layers(&v2)?, || format!("{inspect}"))?;
        let copied = dir.join("pushed-v2.tar");
        let _ = std::fs::remove_file(&copied);
        ok(Command::new("skopeo").args(["copy", "--src-tls-verify=false", &format!("docker://{host}/app:v2")])
            .arg(format!("docker-archive:{}:strata-pushed:v2", copied.display())))?;
        feed(&copied, docker.cmd().arg("load"))?;
        let out = docker.run("strata-pushed:v2", &[])?;
        ensure(out.ends_with("app 2\n"), || format!("docker run printed {out:?}"))?;
        // zstd layers: skopeo and podman pull and run them.
        push(&v2, &format!("{host}/app:zstd"), &["--compression", "zstd"])?;
        let raw: Value = serde_json::from_str(&ok(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/app:zstd")]))?)
        .map_err(|e| e.to_string())?;
        ensure(raw["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd", || format!("{raw}"))?;
        ok(podman.cmd().args(["pull", "--tls-verify=false", &format!("{host}/app:zstd")]))?;
        let out = podman.run(&format!("{host}/app:zstd"), &[])?;
        ensure(out.ends_with("app 2\n"), || format!("podman run printed {out:?}"))?;
        // A registry that is down, and one that wants credentials we do not have.
        let down = run(Command::new(&helper).arg("push").arg(&v1).arg("127.0.0.1:1/app:v1"))?;
        let err = String::from_utf8_lossy(&down.stderr);
        ensure(!down.status.success() && err.contains("127.0.0.1:1") && err.contains("cannot connect") && err.trim().lines().count() == 1, || format!("registry down: {err}"))?;
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
        let denied = run(Command::new(&helper).arg("push").arg(&v1).arg(format!("{locked_host}/app:v1")).env("HOME", &dir).env_remove("REGISTRY_AUTH_FILE"))?;
        let err = String::from_utf8_lossy(&denied.stderr);
        ensure(!denied.status.success() && err.contains("refused access") && err.contains("no credentials") && err.trim().lines().count() == 1, || format!("401: {err}"))
    });

    suite.check("pull_image_by_digest_in_nix_build", || {
        let registry = Registry::start(&dir)?;
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
            let mut c = Command::new("nix-build");
            c.current_dir(repo())
                .arg("tests/nix/images.nix")
                .args(nix.args())
                .arg("--argstr")
                .arg("pullArgs")
                .arg(args.to_string())
                .args(["--option", "sandbox", "true", "--no-out-link", "-A", attr]);
            if check {
                c.arg("--check");
            }
            run(&mut c)
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
        let out = docker_load_run(&docker, &plan, "strata-on-pulled:latest")?;
        ensure(
            out.trim_end() == "tools ok\nHello from strata!\napp 1",
            || format!("on pulled: {out:?}"),
        )?;
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
    });

    suite.check("image_index_multi_arch_and_copy_scripts", || {
        let registry = Registry::start(&dir)?;
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
        let bin = dir.join("engines");
        std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        let podman_args = podman
            .cmd()
            .get_args()
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        for (name, text) in [
            (
                "docker",
                format!(
                    "#!/bin/sh\nexec '{}' --host '{}' \"$@\"\n",
                    ok(Command::new("sh").args(["-c", "command -v docker"]))?.trim(),
                    docker.host
                ),
            ),
            (
                "podman",
                format!("#!/bin/sh\nexec /usr/bin/podman {podman_args} \"$@\"\n"),
            ),
        ] {
            let path = bin.join(name);
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
            ok(Command::new("chmod").arg("755").arg(&path))?;
        }
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            bin.display()
        );
        let to_docker = nix
            .build("layered.copyToDockerDaemon")?
            .join("bin/copy-to-docker-daemon");
        let tag = image_tag(&nix, "layered")?;
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
            bad.status.code() == Some(2)
                && err.contains("--bogus")
                && err.trim().lines().count() == 1,
            || format!("bad option: {err}"),
        )
    });

    suite.check("nix_build_check_reproducible", || {
        // Every image the tests build; nowDated too, since "now" is resolved when the image
        // is streamed, not in the plan.
        for attr in BUILT {
            nix.check_reproducible(attr)
                .map_err(|e| format!("{attr}: {e}"))?;
        }
        Ok(())
    });

    suite.check("max_layers_below_2_fails_at_evaluation", || {
        let err = nix.instantiate_fails("tooFewLayers")?;
        ensure(err.contains("`maxLayers`") && err.contains("got 1"), || {
            format!("message: {err}")
        })?;
        let err = nix.instantiate_fails("badCreated")?;
        ensure(
            err.contains("`created`") && err.contains("yesterday"),
            || format!("message: {err}"),
        )
    });

    suite.check(
        "closure_larger_than_max_layers_fills_exactly_max_layers",
        || {
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
            let out = docker_load_run(&docker, &plan, "strata-capped:latest")?;
            ensure(out.trim() == HELLO, || {
                format!("docker run printed {out:?}")
            })
        },
    );

    suite.check("non_root_owner_and_store_dir_modes", || {
        let plan = nix.build("nonRoot")?;
        pipe(&plan, docker.cmd().arg("load"))?;
        let out = docker.run("strata-nonroot:latest", &[])?;
        let lines: Vec<&str> = out.lines().collect();
        ensure(lines.len() == 5 && lines[0] == HELLO && lines[1] == "1000", || format!("output {out:?}"))?;
        ensure(lines[2] == "755 0" && lines[3] == "755 0" && lines[4].ends_with(" 1000"), || {
            format!("expected /nix and /nix/store 755 root-owned, store files owned by 1000: {out:?}")
        })?;
        pipe(&plan, podman.cmd().arg("load"))?;
        let out = podman.run("localhost/strata-nonroot:latest", &[])?;
        ensure(out.lines().nth(1) == Some("1000"), || format!("podman output {out:?}"))
    });

    suite.check("image_without_store_paths", || {
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
        let out = docker_load_run(&docker, &plan, "strata-nostore:latest")?;
        ensure(out.trim() == "no store", || {
            format!("docker run printed {out:?}")
        })
    });

    suite.check("registry_prefix_lowercase_name_and_architecture", || {
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
        let inspect: Value =
            serde_json::from_str(&ok(Command::new("skopeo")
                .args(["inspect", &format!("docker-archive:{}", file.display())]))?)
            .map_err(|e| e.to_string())?;
        ensure(inspect["Architecture"] == "arm64", || format!("{inspect}"))?;
        pipe(&plan, docker.cmd().arg("load"))?;
        let tags = ok(docker
            .cmd()
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]))?;
        ensure(
            tags.lines()
                .any(|l| l == "registry.example.com/team/arm-app:1.0"),
            || format!("docker images: {tags}"),
        )
    });

    suite.check("created_now_and_empty_image", || {
        let plan = nix.build("nowDated")?;
        pipe(&plan, docker.cmd().arg("load"))?;
        let created =
            ok(docker
                .cmd()
                .args(["inspect", "--format", "{{.Created}}", "strata-now:latest"]))?;
        let year: u32 = created.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
        ensure(year >= 2025, || format!("created = \"now\" gave {created}"))?;
        let plan = nix.build("empty")?;
        let file = dir.join("empty.tar");
        let img = streamed_image(&plan, &file)?;
        ensure(
            img.layers.len() == 1 && img.config["config"] == serde_json::json!({}),
            || format!("{}", img.config),
        )?;
        pipe(&plan, docker.cmd().arg("load"))?;
        pipe(&plan, podman.cmd().arg("load"))?;
        let created = ok(podman.cmd().args([
            "inspect",
            "--format",
            "{{.Created}}",
            "localhost/strata-empty:latest",
        ]))?;
        ensure(created.starts_with("1970-01-01"), || {
            format!("podman inspect Created {created}")
        })
    });

    suite.check("layers_subcommand_reads_nix_path_info_by_hand", || {
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
        let layers: Vec<Vec<String>> =
            serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        let held: BTreeSet<String> = layers.iter().flatten().cloned().collect();
        ensure(layers.len() == 2 && held == closure, || {
            format!("layers {layers:?} for closure {closure:?}")
        })?;
        // The most popular path (referenced by all others) comes first.
        ensure(layers[0][0].ends_with("-locale-data-1.0"), || {
            format!("order {layers:?}")
        })
    });

    suite.check("errors_are_one_line", || {
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
    });

    suite.check("shared_layer_built_once_used_by_two_images", || {
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
        let out = docker_load_run(&docker, &a, "strata-app:1")?;
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
    });

    suite.check("changing_the_app_rebuilds_only_its_derivations", || {
        nix.build("appV1")?;
        nix.build("sharedDeps")?;
        // What a rebuild with a new app version would build, as `nix-build --dry-run` lists
        // it. The version is new to this run, so nothing of it can be built already.
        let version = format!("2-run{}", std::process::id());
        let out = run(Command::new("nix-build")
            .current_dir(repo())
            .arg("tests/nix/images.nix")
            .args(nix.args())
            .args(["--argstr", "appVersion2", &version, "--dry-run", "-A", "appV2"]))?;
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
        let plan = PathBuf::from(ok(Command::new("nix-build")
            .current_dir(repo())
            .arg("tests/nix/images.nix")
            .args(nix.args())
            .args(["--option", "sandbox", "true", "--no-out-link"])
            .args(["--argstr", "appVersion2", &version, "-A", "appV2"]))?
        .trim());
        let out = docker_load_run(&docker, &plan, &format!("strata-app:{version}"))?;
        ensure(out.ends_with(&format!("app {version}\n")), || format!("docker run printed {out:?}"))
    });

    suite.check("buildlayer_contents_and_split", || {
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
        let out = docker_load_run(&docker, &plan, "strata-split:latest")?;
        ensure(out.trim() == "tools ok", || {
            format!("docker run printed {out:?}")
        })
    });

    suite.check("per_layer_derivations_give_the_same_layers", || {
        let on = nix.build("perLayer")?;
        let off = nix.build("perLayerOff")?;
        let (a, b) = (dir.join("per-layer-on.tar"), dir.join("per-layer-off.tar"));
        save(&on, &a)?;
        save(&off, &b)?;
        let (ia, ib) = (open_image(&a)?, open_image(&b)?);
        ensure(ia.config["rootfs"] == ib.config["rootfs"], || {
            format!("layers differ:\n{}\n{}", ia.config["rootfs"], ib.config["rootfs"])
        })?;
        ensure(ia.layers.len() == 4, || format!("{} layers", ia.layers.len()))?;
        // Each automatic layer is a derivation of its own.
        let drv = nix.eval_json("perLayer.drvPath")?;
        let inputs = ok(Command::new("nix-store").args(["-q", "--references"]).arg(drv.as_str().unwrap_or_default()))?;
        let layer_drvs = inputs
            .lines()
            .filter(|l| l.split_once('-').is_some_and(|(_, name)| name.starts_with("layer-")))
            .count();
        ensure(layer_drvs == 3, || format!("expected 3 layer derivations (maxLayers 4 = 3 store layers + customisation): {inputs}"))?;
        let out = docker_load_run(&docker, &on, "strata-per-layer:latest")?;
        ensure(out.trim() == HELLO, || format!("docker run printed {out:?}"))
    });

    suite.check("record_mismatch_names_layer_and_paths", || {
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
    });

    suite.check("compressed_archives_identical_with_1_and_2_threads", || {
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
    });

    suite.check("build_image_on_top_of_layered_docker_and_podman", || {
        // The seeds' example: buildImage over a buildLayeredImage, Env inherited and deduped.
        let archive = nix.build("onTopOfLayered")?;
        let expected = "hello\nFROM_PARENT=true\nLAST_LAYER=child\n";
        feed(&archive, docker.cmd().arg("load"))?;
        let out = docker.run("strata-on-top:latest", &[])?;
        ensure(out == expected, || format!("docker run printed {out:?}"))?;
        load_into_podman(&podman, &archive)?;
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
    });

    suite.check("three_chained_images_upper_layers_win", || {
        let archive = nix.build("chain3")?;
        let expected = "layer1\nlayer2\nlayer3\nlayer3\n123";
        feed(&archive, docker.cmd().arg("load"))?;
        let out = docker.run("strata-chain-3:latest", &[])?;
        ensure(out == expected, || format!("docker run printed {out:?}"))?;
        load_into_podman(&podman, &archive)?;
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
    });

    suite.check(
        "run_as_root_and_fake_root_owners_show_in_the_container",
        || {
            let archive = nix.build("rootOwned")?;
            let expected =
                "/home/alice 1000:1000 755\n/tmp 0:0 1777\n/etc-passwd-test 12345:54321 644\n";
            feed(&archive, docker.cmd().arg("load"))?;
            let out = docker.run("strata-root-owned:latest", &[])?;
            ensure(out == expected, || format!("docker run printed {out:?}"))?;
            load_into_podman(&podman, &archive)?;
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
        },
    );

    suite.check("layered_on_top_inherits_env_and_skips_parent_paths", || {
        let plan = nix.build("layeredOnTop")?;
        let image = streamed_image(&plan, &dir.join("on-top.tar"))?;
        // Parent: toolbox, tools, customisation; child: its customisation layer only.
        ensure(image.layers.len() == 4, || {
            format!("{} layers", image.layers.len())
        })?;
        pipe(&plan, docker.cmd().arg("load"))?;
        let tag = image_tag(&nix, "layeredOnTop")?;
        let out = docker.run(&format!("strata-layered-on-top:{tag}"), &[])?;
        ensure(
            out.starts_with("tools ok\n")
                && out.contains("FROM_PARENT=true\n")
                && out.contains("FROM_CHILD=true\n")
                && out.contains("LAST_LAYER=child\n")
                && !out.contains("LAST_LAYER=parent"),
            || format!("docker run printed {out:?}"),
        )
    });

    suite.check("parent_from_docker_save_and_hostile_parents", || {
        // A parent written by `docker save` (a strata image loaded into docker).
        let layered = nix.build("layered")?;
        feed(&layered, docker.cmd().arg("load"))?;
        let saved = dir.join("saved.tar");
        ok(docker
            .cmd()
            .args(["save", "-o"])
            .arg(&saved)
            .arg("strata-layered:v1"))?;
        let build_on = |archive: &Path, attr: &str| nix_build_on(&nix, archive, attr, false);
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
            names.contains("bin/tools-check") && names.contains("etc/tools.conf"),
            || format!("export of a docker save archive: {names:?}"),
        )?;
        let merged = built("mergedArchive")?;
        let loaded = feed(&merged, docker.cmd().arg("load"))?;
        ensure(
            loaded.contains("strata-layered:v1") && loaded.contains("strata-hello:"),
            || format!("docker load of a merged docker save archive said {loaded:?}"),
        )?;

        for attr in ["onArchive", "onArchiveRootfs", "mergedArchive"] {
            let again = nix_build_on(&nix, &saved, attr, true)?;
            ensure(again.status.success(), || {
                format!(
                    "{attr} is not reproducible: {}",
                    String::from_utf8_lossy(&again.stderr)
                )
            })?;
        }

        let out = build_on(&evil, "onArchive")?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure(
            !out.status.success()
                && err
                    .contains("member `l/layer.tar: ../../escape`: the name has a `..` component"),
            || format!("hostile parent: {err}"),
        )
    });

    suite.check("nix_db_registers_the_closure", || {
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
    });

    suite.check("export_image_flattens_layers_like_docker_export", || {
        // Three chained images: upper layers win. Compared with what docker export of a
        // container of the same image holds.
        let rootfs = std::fs::read(nix.build("chain3Rootfs")?).map_err(|e| e.to_string())?;
        let mut ours: BTreeMap<String, String> = BTreeMap::new();
        let mut archive = tar::Archive::new(&rootfs[..]);
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let name = entry
                .path()
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned();
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
        let theirs: BTreeSet<String> =
            entries(&std::fs::read(&exported).map_err(|e| e.to_string())?)
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
            .filter(|n| !n.starts_with("etc/") && n != "etc")
            .collect();
        ensure(ours == theirs, || {
            format!(
                "exportImage and docker export differ: only ours {:?}, only docker's {:?}",
                ours.difference(&theirs).collect::<Vec<_>>(),
                theirs.difference(&ours).collect::<Vec<_>>()
            )
        })
    });

    suite.check("merge_images_loads_every_image", || {
        let merged = nix.build("merged")?;
        let loaded = feed(&merged, docker.cmd().arg("load"))?;
        for image in ["strata-layered:v1", "strata-layered-zstd:", "strata-on-top:latest"] {
            ensure(loaded.contains(image), || format!("docker load said {loaded:?}"))?;
        }
        let out = docker.run("strata-layered:v1", &[])?;
        ensure(out.trim() == HELLO, || format!("docker run printed {out:?}"))?;
        let out = docker.run("strata-on-top:latest", &[])?;
        ensure(out.starts_with("hello\n"), || format!("docker run printed {out:?}"))?;
        load_into_podman(&podman, &merged)?;
        let out = podman.run("localhost/strata-on-top:latest", &[])?;
        ensure(out.starts_with("hello\n"), || format!("podman run printed {out:?}"))?;
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
            format!("{files} layer files for {image_layers} image layers: shared layers not deduplicated")
        })
    });

    suite.check("family_packages_without_nixpkgs", || {
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
                        hosts: files dns\n";
        feed(&archive, docker.cmd().arg("load"))?;
        let out = docker.run("strata-family:latest", &[])?;
        ensure(out == expected, || format!("docker run printed {out:?}"))?;
        load_into_podman(&podman, &archive)?;
        let out = podman.run("localhost/strata-family:latest", &[])?;
        ensure(out == expected, || format!("podman run printed {out:?}"))
    });

    suite.check(
        "nixpkgs_ports_bulk_on_base_run_as_root_extra_repeated_layers",
        || {
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
            let out = nix_build_on(&nix, &base, "runAsRootOnArchive", false)?;
            ensure(out.status.success(), || {
                format!(
                    "runAsRoot on repeated layers: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
            let archive = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            let again = nix_build_on(&nix, &base, "runAsRootOnArchive", true)?;
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
        },
    );

    suite.check("examples_build_and_run", || {
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
            names.contains("bin/hello") && names.contains("home/alice/"),
            || format!("examples.rootfs holds {names:?}"),
        )
    });

    suite.check("flake_overlay_with_stand_in_nixpkgs", || flake_check(&dir));

    let passed = suite.finish();
    drop(docker);
    drop(podman);
    drop(scratch);
    std::process::exit(if passed { 0 } else { 1 });
}

/// Loads a gzipped archive into podman (Debian 12's podman cannot read gzip; see above).
fn load_into_podman(podman: &Podman, archive: &Path) -> Check {
    pipe_cmd(
        Command::new("gzip").arg("-dc").arg(archive),
        podman.cmd().arg("load"),
    )
    .map(drop)
}

fn docker_load_run(docker: &Dockerd, plan: &Path, image: &str) -> Result<String, String> {
    pipe(plan, docker.cmd().arg("load"))?;
    docker.run(image, &[])
}

/// Evaluates and builds the flake's outputs with nixpkgs overridden by a minimal local
/// stand-in (nixpkgs cannot be fetched here), proving the overlay, `lib` and packages wiring.
fn flake_check(scratch: &Path) -> Check {
    // A copy outside the repository: flakes in a git tree only see committed files, and the
    // test must not depend on what is committed.
    let copy = scratch.join("flake-src");
    let _ = std::fs::remove_dir_all(&copy);
    bash(&format!(
        "mkdir -p {c} && cp -r flake.nix flake.lock nix Cargo.toml Cargo.lock src examples tests {c}/ && mkdir -p {c}/tests/nix/stand-in-nixpkgs/prebuilt && cp -a build/bootstrap/helper build/bootstrap/toolbox {c}/tests/nix/stand-in-nixpkgs/prebuilt/",
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
        let out = flake(&[
            "build",
            "--no-link",
            "--json",
            &format!("path:.#packages.{system}.{attr}"),
        ])?;
        let json: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        json[0]["outputs"]["out"]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| format!("no out in {out}"))
    };
    let plan = built("example")?;
    let text = std::fs::read_to_string(&plan).map_err(|e| e.to_string())?;
    ensure(
        text.starts_with("#!")
            && text.contains("\"strataPlan\"")
            && text.contains("-hello-2.12/bin/hello"),
        || format!("flake example is not a plan of hello: {}", plan.display()),
    )?;
    let helper = built("default")?;
    ensure(helper.join("bin/strata").exists(), || {
        format!("packages.default has no bin/strata: {}", helper.display())
    })?;
    let archive = built("exampleLayered")?;
    ensure(archive.to_string_lossy().ends_with("-hello.tar.gz"), || {
        format!("exampleLayered: {}", archive.display())
    })
}

/// Whether `path` is an executable file (a streamLayeredImage) rather than an archive.
/// A legacy layer: id, `json` and the layer tar.
type LegacyLayer = (String, Vec<u8>, Vec<u8>);

/// Checks the v1.0 layout of a buildImage archive: `repositories` names the top layer; each
/// layer's directory holds `VERSION`, a `json` whose parent is the layer below and whose
/// checksum is Docker's tarsum of the layer, and `layer.tar`, a link to the layer's blob
/// (the one `manifest.json` lists at that position). `count` layers unless 0. Returns each
/// layer's id, json and bytes, bottom to top.
fn check_legacy_layout(
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
fn go_tarsum_reference(scratch: &Path) -> Result<PathBuf, String> {
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
fn tars_of(out: &Path, scratch: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
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
fn decompressed(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
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

/// Tars that exercise what tarsum reads: long names (GNU and PAX), ustar prefixes,
/// symlinks, hard links, empty files, directories only, xattrs, the empty archive.
fn tarsum_vectors() -> Vec<(&'static str, Vec<u8>)> {
    let long = format!("d/{}/{}.txt", "x".repeat(60), "y".repeat(70));
    let entry = |b: &mut tar::Builder<Vec<u8>>,
                 kind: tar::EntryType,
                 name: &str,
                 link: &str,
                 data: &[u8],
                 gnu: bool| {
        let mut h = if gnu {
            tar::Header::new_gnu()
        } else {
            tar::Header::new_ustar()
        };
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1);
        h.set_size(data.len() as u64);
        h.set_username("root").unwrap();
        if kind.is_symlink() || kind.is_hard_link() {
            b.append_link(&mut h, name, link).unwrap();
        } else {
            b.append_data(&mut h, name, data).unwrap();
        }
    };
    let mut vectors = Vec::new();
    for gnu in [true, false] {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, tar::EntryType::Directory, "d/", "", b"", gnu);
        entry(&mut b, tar::EntryType::Regular, "d/f", "", b"hello\n", gnu);
        entry(&mut b, tar::EntryType::Regular, "d/empty", "", b"", gnu);
        entry(&mut b, tar::EntryType::Symlink, "d/l", "f", b"", gnu);
        entry(&mut b, tar::EntryType::Link, "d/h", "d/f", b"", gnu);
        entry(&mut b, tar::EntryType::Regular, &long, "", b"long\n", gnu);
        entry(
            &mut b,
            tar::EntryType::Symlink,
            "d/long-link",
            &long,
            b"",
            gnu,
        );
        vectors.push((
            if gnu {
                "long names, links, empty file (GNU)"
            } else {
                "long names, links, empty file (PAX/ustar prefix)"
            },
            b.into_inner().unwrap(),
        ));
    }
    let mut b = tar::Builder::new(Vec::new());
    for d in ["a/", "a/b/", "c/"] {
        entry(&mut b, tar::EntryType::Directory, d, "", b"", true);
    }
    vectors.push(("directories only", b.into_inner().unwrap()));
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.zz", &b"2"[..]),
        ("SCHILY.xattr.user.aa", &b"1"[..]),
        ("SCHILY.xattr.security.capability", &b"\x01\x00"[..]),
    ])
    .unwrap();
    entry(&mut b, tar::EntryType::Regular, "f", "", b"x", false);
    entry(&mut b, tar::EntryType::Regular, "g", "", b"y", false);
    vectors.push(("xattrs", b.into_inner().unwrap()));
    vectors.push(("the empty archive", vec![0; 1024]));
    vectors.push(("no bytes at all", vec![]));
    vectors
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Copies the gzipped docker-archive `from` to the plain archive `to` with its bottom layer
/// listed once more on top, through a symlink member (nixpkgs #214434).
fn repeat_bottom_layer(from: &Path, to: &Path) -> Check {
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

/// `nix-build -A attr` (with `--check`: rebuilt and compared) of an image whose
/// `parentArchive` is `archive`.
fn nix_build_on(
    nix: &Nix,
    archive: &Path,
    attr: &str,
    check: bool,
) -> Result<std::process::Output, String> {
    let mut c = Command::new("nix-build");
    c.current_dir(repo())
        .arg("tests/nix/images.nix")
        .args(nix.args())
        .arg("--argstr")
        .arg("parentArchive")
        .arg(archive)
        .args(["--option", "sandbox", "true", "--no-out-link", "-A", attr]);
    if check {
        c.arg("--check");
    }
    run(&mut c)
}
