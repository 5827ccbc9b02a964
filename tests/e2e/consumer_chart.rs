//! The chart's image cells: every image consumer of this generation takes strata's images in
//! every way it has (archives plain and compressed, compressed layers, the OCI layout alone,
//! `strata load`, a registry, a multi-architecture index, nix-shell and runAsRoot images), and
//! runs them where it runs images. What each did is recorded in the chart (`consumers`).

use crate::consumers::{not_applicable, Consumer, Feature};
use crate::support::*;
use crate::util::*;
use crate::Context;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An image as a cell takes it.
struct Sample {
    /// The archive.
    file: PathBuf,
    /// `name:tag` as docker loads it (podman adds `localhost/`).
    name: String,
    /// The OCI layout's tag, for umoci.
    tag: String,
    /// What running it prints (a part of it).
    expect: &'static str,
}

/// The images every consumer takes, and where they are in the registry.
struct Samples {
    archives: BTreeMap<Feature, Sample>,
    /// The pushed images (`PushPull`, `ChunkedPushPull`) and the pushed index (`Index`):
    /// reference, what they print.
    pushed: BTreeMap<Feature, (String, &'static str)>,
    /// `copyToDockerDaemon` and `copyToPodman` of the `strata load` cell.
    copy_to_docker: PathBuf,
    copy_to_podman: PathBuf,
    /// PATH with the tests' engines, for the copy executables.
    engines: String,
    dir: PathBuf,
}

pub fn consumers_take_strata_images(ctx: &mut Context) -> Check {
    let registry = Registry::start(&ctx.dir)?;
    let samples = samples(ctx, &registry.host)?;
    let mut names = 0;
    for consumer in &Consumer::IMAGE {
        for feature in Feature::IMAGE {
            if not_applicable(*consumer, feature) {
                continue;
            }
            names += 1;
            empty_store(ctx, *consumer);
            let result = cell(ctx, &samples, *consumer, feature, names);
            ctx.chart.record(&ctx.consumers, *consumer, feature, result);
        }
    }
    let failures = ctx.chart.failures();
    ensure(failures.is_empty(), || failures.join("\n\n"))
}

/// Removes every image `consumer` holds, so that a cell reads every layer it takes: an engine
/// skips a layer it already has (Docker 20.10 "loads" zstd layers it never has to read).
fn empty_store(ctx: &Context, consumer: Consumer) {
    match consumer {
        Consumer::Docker => {
            let _ = ctx
                .docker
                .cmd()
                .args(["image", "prune", "--all", "--force"])
                .output();
        }
        Consumer::Podman => {
            let _ = ctx.podman.cmd().args(["rmi", "--all", "--force"]).output();
        }
        Consumer::Containerd => {
            let listed = ok(ctx.docker.ctr().args(["images", "ls", "--quiet"])).unwrap_or_default();
            for image in listed.lines().filter(|l| !l.is_empty()) {
                let _ = ctx
                    .docker
                    .ctr()
                    .args(["images", "rm", "--sync", image])
                    .output();
            }
        }
        Consumer::Buildah => {
            let _ = ctx.podman.buildah().args(["rm", "--all"]).output();
            let _ = ctx
                .podman
                .buildah()
                .args(["rmi", "--all", "--force"])
                .output();
        }
        Consumer::Nix | Consumer::Skopeo | Consumer::Umoci | Consumer::Cosign | Consumer::Oras => {}
    }
}

/// Builds, saves and pushes what the cells take.
fn samples(ctx: &mut Context, host: &str) -> Result<Samples, String> {
    let dir = ctx.dir.join("chart");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let nix = &mut ctx.nix;
    let mut archives = BTreeMap::new();
    let zstd_tag = image_tag(nix, "layeredZstd")?;
    for (feature, attr, name, tag) in [
        (
            Feature::PlainArchive,
            "imageUncompressed",
            "strata-image-none",
            "latest",
        ),
        (Feature::GzipArchive, "layered", "strata-layered", "v1"),
        (
            Feature::ZstdArchive,
            "layeredZstd",
            "strata-layered-zstd",
            zstd_tag.as_str(),
        ),
        (Feature::GzipLayers, "gzLayers", "strata-gz-layers", "v1"),
        (
            Feature::ZstdLayers,
            "zstdLayers",
            "strata-zstd-layers",
            "v1",
        ),
        (
            Feature::ZstdChunkedLayers,
            "chunkedLayers",
            "strata-chunked-layers",
            "v1",
        ),
    ] {
        let file = archive_file(&nix.build(attr)?, &dir, attr)?;
        archives.insert(
            feature,
            Sample {
                file,
                name: format!("{name}:{tag}"),
                tag: tag.to_owned(),
                expect: HELLO,
            },
        );
    }
    // The plain archive without manifest.json: only its OCI layout is left to read.
    let oci = dir.join("oci-layout-only.tar");
    without_docker_manifest(&archives[&Feature::PlainArchive].file, &oci)?;
    archives.insert(
        Feature::OciLayout,
        Sample {
            file: oci,
            name: "strata-image-none:latest".into(),
            tag: "latest".into(),
            expect: HELLO,
        },
    );
    // Several images in one gzipped archive; the cells run the first.
    archives.insert(
        Feature::MergedArchive,
        Sample {
            file: nix.build("merged")?,
            name: "strata-layered:v1".into(),
            tag: "v1".into(),
            expect: HELLO,
        },
    );
    // Images made by scripts, decompressed: the compression has columns of its own.
    let root_owned = archive_file(&nix.build("rootOwned")?, &dir, "rootOwned")?;
    let plain = dir.join("rootOwned-plain.tar");
    decompress(&root_owned, &plain)?;
    archives.insert(
        Feature::RunAsRootImage,
        Sample {
            file: plain,
            name: "strata-root-owned:latest".into(),
            tag: "latest".into(),
            expect: "/home/alice 1000:1000",
        },
    );
    let nix_shell = Nix::with_nixpkgs().build("nixShell.run")?;
    archives.insert(
        Feature::NixShellImage,
        Sample {
            file: archive_file(&nix_shell, &dir, "nixShell.run")?,
            name: "nix-shell-run:latest".into(),
            tag: "latest".into(),
            expect: "This shell is not interactive",
        },
    );

    let app = format!("{host}/chart-app:v1");
    push_plan(&nix.build("appV1")?, &app, &[])?;
    let chunked = format!("{host}/chart-app-chunked:v1");
    push_plan(
        &nix.build("appV1")?,
        &chunked,
        &["--compression", "zstd:chunked"],
    )?;
    let multi = format!("{host}/chart-multi:v1");
    let to_registry = nix
        .build("multiArch.copyToRegistry")?
        .join("bin/copy-to-registry");
    ok(Command::new(&to_registry)
        .arg(format!("docker://{multi}"))
        .env("STRATA_PROGRESS", "none"))?;
    let pushed = BTreeMap::from([
        (Feature::PushPull, (app, "app 1")),
        (Feature::ChunkedPushPull, (chunked, "app 1")),
        (Feature::Index, (multi, HELLO)),
    ]);
    Ok(Samples {
        archives,
        pushed,
        copy_to_docker: nix
            .build("layered.copyToDockerDaemon")?
            .join("bin/copy-to-docker-daemon"),
        copy_to_podman: nix
            .build("layered.copyToPodman")?
            .join("bin/copy-to-podman"),
        engines: engines_path(&ctx.docker, &ctx.podman, &ctx.dir)?,
        dir,
    })
}

/// The archive a build gave, as a file: a streaming executable's output saved, an archive in
/// the store as it is.
fn archive_file(built: &Path, dir: &Path, attr: &str) -> Result<PathBuf, String> {
    if !is_executable(built) {
        return Ok(built.to_owned());
    }
    let file = dir.join(format!("{attr}.tar"));
    save(built, &file)?;
    Ok(file)
}

fn decompress(from: &Path, to: &Path) -> Check {
    let bytes = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .map_err(|e| format!("{}: {e}", from.display()))?;
    std::fs::write(to, out).map_err(|e| e.to_string())
}

/// Copies the archive `from` without its docker-archive members (`manifest.json`,
/// `repositories`): what is left is an OCI image layout alone.
fn without_docker_manifest(from: &Path, to: &Path) -> Check {
    let bytes = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(&bytes[..]);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let name = entry.path().map_err(|e| e.to_string())?.into_owned();
        if name == Path::new("manifest.json") || name == Path::new("repositories") {
            continue;
        }
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
        out.append(&header, &data[..]).map_err(|e| e.to_string())?;
    }
    let bytes = out.into_inner().map_err(|e| e.to_string())?;
    std::fs::write(to, bytes).map_err(|e| e.to_string())
}

/// One cell: `consumer` takes the image of `feature` and, where it runs images, runs it.
/// `n` names what the cell creates (containers, directories).
fn cell(ctx: &Context, samples: &Samples, consumer: Consumer, feature: Feature, n: usize) -> Check {
    let printed = |out: String, expect: &str| {
        ensure(out.contains(expect), || {
            format!("printed {out:?}, not {expect:?}")
        })
    };
    let scratch = samples.dir.join(format!("cell-{n}"));
    match (consumer, feature) {
        (Consumer::Docker, Feature::StrataLoad) => {
            ok(Command::new(&samples.copy_to_docker)
                .args(["--repo-tag", "strata-chart:docker"])
                .env("PATH", &samples.engines)
                .env("STRATA_PROGRESS", "none"))?;
            printed(ctx.docker.run("strata-chart:docker", &[])?, HELLO)
        }
        (Consumer::Podman, Feature::StrataLoad) => {
            ok(Command::new(&samples.copy_to_podman)
                .args(["--repo-tag", "strata-chart:podman"])
                .env("PATH", &samples.engines)
                .env("STRATA_PROGRESS", "none"))?;
            printed(ctx.podman.run("localhost/strata-chart:podman", &[])?, HELLO)
        }
        (_, Feature::PushPull | Feature::ChunkedPushPull | Feature::Index) => {
            let (reference, expect) = &samples.pushed[&feature];
            pulled(ctx, consumer, reference, expect, &scratch)
        }
        _ => {
            let sample = samples
                .archives
                .get(&feature)
                .ok_or_else(|| format!("no sample for {feature:?}"))?;
            loaded(ctx, consumer, feature, sample, &scratch)
        }
    }
}

/// `consumer` reads the archive of `sample` and runs it.
fn loaded(
    ctx: &Context,
    consumer: Consumer,
    feature: Feature,
    sample: &Sample,
    scratch: &Path,
) -> Check {
    let expect = |out: String| {
        ensure(out.contains(sample.expect), || {
            format!("{}: printed {out:?}, not {:?}", sample.name, sample.expect)
        })
    };
    let transport = if feature == Feature::OciLayout {
        "oci-archive"
    } else {
        "docker-archive"
    };
    // An archive of several images needs the one to read named.
    let source = match feature {
        Feature::MergedArchive => format!("{transport}:{}:{}", sample.file.display(), sample.name),
        _ => format!("{transport}:{}", sample.file.display()),
    };
    match consumer {
        Consumer::Docker => {
            let _ = ctx
                .docker
                .cmd()
                .args(["rmi", "--force", &sample.name])
                .output();
            feed(&sample.file, ctx.docker.cmd().arg("load"))?;
            expect(ctx.docker.run(&sample.name, &[])?)
        }
        Consumer::Podman => {
            let name = format!("localhost/{}", sample.name);
            let _ = ctx.podman.cmd().args(["rmi", "--force", &name]).output();
            feed(&sample.file, ctx.podman.cmd().arg("load"))?;
            expect(ctx.podman.run(&name, &[])?)
        }
        Consumer::Containerd => {
            let _ = ctx
                .docker
                .ctr()
                .args(["images", "rm", &sample.name])
                .output();
            feed(
                &sample.file,
                ctx.docker.ctr().args(["images", "import", "-"]),
            )?;
            expect(ctr_run(ctx, &sample.name, scratch)?)
        }
        Consumer::Skopeo => ok(Command::new("skopeo")
            .args(["copy", &source])
            .arg(format!("dir:{}", scratch.display())))
        .map(drop),
        Consumer::Buildah => expect(buildah_run(ctx, &[&source])?),
        Consumer::Umoci => {
            let layout = scratch.join("layout");
            std::fs::create_dir_all(&layout).map_err(|e| e.to_string())?;
            ok(Command::new("tar")
                .arg("-xf")
                .arg(&sample.file)
                .arg("-C")
                .arg(&layout))?;
            let bundle = scratch.join("bundle");
            ok(Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:{}", layout.display(), sample.tag))
                .arg(&bundle))?;
            ensure(bundle.join("rootfs/nix/store").is_dir(), || {
                format!("umoci unpacked no nix/store from {}", sample.name)
            })
        }
        Consumer::Nix | Consumer::Cosign | Consumer::Oras => Err("takes no images".into()),
    }
}

/// `consumer` pulls `reference` from the tests' registry (plain HTTP) and runs it.
fn pulled(
    ctx: &Context,
    consumer: Consumer,
    reference: &str,
    expect: &str,
    scratch: &Path,
) -> Check {
    let check = |out: String| {
        ensure(out.contains(expect), || {
            format!("{reference}: printed {out:?}, not {expect:?}")
        })
    };
    match consumer {
        Consumer::Docker => {
            let _ = ctx
                .docker
                .cmd()
                .args(["rmi", "--force", reference])
                .output();
            ok(ctx.docker.cmd().args(["pull", reference]))?;
            check(ctx.docker.run(reference, &[])?)
        }
        Consumer::Podman => {
            let _ = ctx
                .podman
                .cmd()
                .args(["rmi", "--force", reference])
                .output();
            ok(ctx
                .podman
                .cmd()
                .args(["pull", "--tls-verify=false", reference]))?;
            check(ctx.podman.run(reference, &[])?)
        }
        Consumer::Containerd => {
            ok(ctx
                .docker
                .ctr()
                .args(["images", "pull", "--plain-http", reference]))?;
            check(ctr_run(ctx, reference, scratch)?)
        }
        Consumer::Skopeo => {
            ok(Command::new("skopeo")
                .args(["copy", "--all", "--src-tls-verify=false"])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:copied", scratch.display())))?;
            let index: Value = serde_json::from_slice(
                &std::fs::read(scratch.join("index.json")).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            // An index comes with every platform's image.
            let top = &index["manifests"][0];
            if top["mediaType"] == "application/vnd.oci.image.index.v1+json" {
                let digest = top["digest"].as_str().unwrap_or_default().replace(':', "/");
                let inner: Value = serde_json::from_slice(
                    &std::fs::read(scratch.join("blobs").join(digest))
                        .map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
                ensure(
                    inner["manifests"].as_array().is_some_and(|m| m.len() == 2),
                    || format!("skopeo copy --all of {reference}: {inner}"),
                )?;
            }
            ensure(top["digest"].is_string(), || {
                format!("skopeo copy --all of {reference}: {index}")
            })
        }
        Consumer::Buildah => check(buildah_run(
            ctx,
            &["--tls-verify=false", &format!("docker://{reference}")],
        )?),
        Consumer::Umoci | Consumer::Nix | Consumer::Cosign | Consumer::Oras => {
            Err("not charted here".into())
        }
    }
}

/// `ctr run` of an image containerd has, in a container named after `scratch`.
fn ctr_run(ctx: &Context, image: &str, scratch: &Path) -> Result<String, String> {
    let id = scratch
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ok(ctx.docker.ctr().args(["run", "--rm", image, &id]))
}

/// `buildah from ARGS` (an image source and its options), then `buildah run` of the image's
/// command in that container (runc, no network); returns what it printed.
fn buildah_run(ctx: &Context, from: &[&str]) -> Result<String, String> {
    // This machine may not raise the file limit buildah asks for by default.
    let container = ok(ctx
        .podman
        .buildah()
        .args([
            "from",
            "--quiet",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(from))?
    .trim()
    .to_owned();
    let inspect: Value =
        serde_json::from_str(&ok(ctx.podman.buildah().args(["inspect", &container]))?)
            .map_err(|e| e.to_string())?;
    let config = &inspect["OCIv1"]["config"];
    let command: Vec<String> = ["Entrypoint", "Cmd"]
        .iter()
        .flat_map(|k| config[k].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let out = ok(ctx
        .podman
        .buildah()
        .args([
            "run",
            "--runtime",
            "runc",
            "--network",
            "none",
            &container,
            "--",
        ])
        .args(&command));
    let _ = ctx.podman.buildah().args(["rm", &container]).output();
    out
}
