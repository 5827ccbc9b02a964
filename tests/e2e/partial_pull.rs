//! Partial pulls of zstd:chunked layers (issue 28): podman 5 with `enable_partial_images`
//! fetches, of a layer it lacks, only the files no layer in its store has, by HTTP ranges.
//! Measured through the counting fault proxy: the bytes podman's pull of an image moves when
//! the image before it, one file apart in a 64 MiB layer, is already in its store, with
//! plain zstd layers and with zstd:chunked ones; and what podman does when the registry
//! answers requests for several ranges badly.
//!
//! The images come from [`chunked_writer`]: skopeo's conversion (containers/image's reference
//! writer) until strata writes zstd:chunked itself, then strata's. Only podman ≥ 5.1 pulls
//! the current format partially, so on Debian 12 (podman 4.3) the checks skip.

use crate::consumers::{Consumer, Consumers};
use crate::fault_proxy::{Exchange, Fault, FaultProxy, RangeAnswer, Rule};
use crate::support::{push_plan, sha256_hex};
use crate::util::*;
use crate::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Files in the layer, bytes in each, and the one file the second image changes: 64 MiB of
/// incompressible data, so what a pull moves is the files' own bytes. A third image changes
/// three files far apart, which a partial pull asks for as three ranges in one request.
const FILES: usize = 256;
const FILE_SIZE: usize = 256 << 10;
const CHANGED: usize = 100;
const SCATTERED: [usize; 3] = [10, CHANGED, 200];

/// Who writes the layers under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// containers/image: the image laid out here uncompressed, its layer compressed by
    /// `skopeo copy --dest-compress-format`.
    Skopeo,
    /// strata: the data built into an image by nix-build, pushed by `strata push
    /// --compression`.
    Strata,
}

/// The one place that says who writes the zstd:chunked layers under test: strata
/// (`strata push --compression zstd|zstd:chunked` of a Nix-built image), or, with
/// `STRATA_E2E_CHUNKED=skopeo`, skopeo's own conversion, the reference writer, to compare.
pub fn chunked_writer() -> Writer {
    match std::env::var("STRATA_E2E_CHUNKED").as_deref() {
        Ok("skopeo") => Writer::Skopeo,
        _ => Writer::Strata,
    }
}

/// The layer compression of a pair of images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layers {
    Zstd,
    Chunked,
}

impl Layers {
    /// The name skopeo's `--dest-compress-format` and strata's `--compression` both take.
    fn format(self) -> &'static str {
        match self {
            Layers::Zstd => "zstd",
            Layers::Chunked => "zstd:chunked",
        }
    }
}

/// An image in the registry, as its manifest there says.
struct Published {
    /// `REPOSITORY:TAG`, without the registry.
    name: String,
    /// `sha256:...` of its config: podman's image ID.
    config: String,
    /// Its layers: digest and size.
    layers: Vec<(String, u64)>,
    /// sha256 of each data file, by file name.
    files: BTreeMap<String, String>,
    /// The strata plan it was pushed from (strata's images only).
    plan: Option<PathBuf>,
}

/// Why this run cannot pull partially, if it cannot: c/storage 1.54 (podman 5.1) is the first
/// to read the tar-split digest from the TOC, which both writers make; podman 4.3 reads
/// only the old format and takes zstd:chunked as plain zstd (docs/research/zstd-chunked.md
/// §5.1).
fn no_partial_pulls(consumers: &Consumers) -> Option<String> {
    (!consumers.at_least(Consumer::Podman, (5, 1))).then(|| {
        format!(
            "podman {} has no partial pulls of the current zstd:chunked format (5.1 on)",
            consumers.version(Consumer::Podman)
        )
    })
}

/// With the first image in podman's store, the pull of the second (one 256 KiB file
/// changed in a 64 MiB layer) moves the whole layer with zstd layers, and little more than
/// the file with zstd:chunked ones; both give the image pushed, file for file.
pub fn partial_pulls_move_only_changed_files(ctx: &mut Context) -> Check {
    if let Some(why) = no_partial_pulls(&ctx.consumers) {
        println!("e2e: partial pulls not checked: {why}");
        return Ok(());
    }
    let registry = Registry::start(&ctx.dir)?;
    let proxy = FaultProxy::start(&registry.host)?;
    let mut moved = BTreeMap::new();
    for layers in [Layers::Zstd, Layers::Chunked] {
        let pair = publish(ctx, &registry.host, layers, &[1, 2])?;
        let store = Podman::new(&ctx.dir.join(format!("{}-store", repository(layers))));
        for (n, image) in pair.iter().enumerate() {
            proxy.take_exchanges();
            let out = pull(&store, &format!("{}/{}", proxy.host, image.name), true)?;
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            ensure(out.status.success(), || {
                format!("pull {}: {log}", image.name)
            })?;
            if layers == Layers::Chunked {
                ensure(
                    log.contains("Created zstd:chunked differ for blob")
                        && !log.contains("Failed to retrieve partial blob"),
                    || format!("{}: not a partial pull:\n{}", image.name, tail(&log)),
                )?;
            }
            check_pulled(&store, &format!("{}/{}", proxy.host, image.name), image)?;
            let exchanges = proxy.take_exchanges();
            println!(
                "e2e: {} {}: {}{}",
                layers.format(),
                image.name,
                describe_moved(&exchanges),
                missing_line(&log).map_or(String::new(), |l| format!("; podman: {l}"))
            );
            moved.insert((layers, image.name.clone()), blob_bytes(&exchanges));
            if layers == Layers::Chunked && n == 1 {
                explain_predicted(&pair[0], image, &exchanges)?;
            }
        }
    }
    let second = |layers: Layers| moved[&(layers, format!("{}:2", repository(layers)))];
    let (plain, chunked) = (second(Layers::Zstd), second(Layers::Chunked));
    let data = (FILES * FILE_SIZE) as u64;
    // Random data does not compress: a plain pull moves at least the layer's data. A partial
    // one moves the changed file, the TOC and tar-split (under 100 KiB here) and the config.
    ensure(plain >= data, || {
        format!("the zstd pull moved {plain} bytes, less than the {data} bytes of its layer")
    })?;
    ensure(chunked <= (FILE_SIZE + (1 << 20)) as u64, || {
        format!("the zstd:chunked pull moved {chunked} bytes for one {FILE_SIZE}-byte file")
    })
}

/// `strata explain --against` the first image's plan predicts, within 10 % or 50 kB, the
/// bytes podman's partial pull of the second moved for the layers the first lacks (the
/// config left out).
fn explain_predicted(first: &Published, second: &Published, exchanges: &[Exchange]) -> Check {
    let (Some(old), Some(new)) = (&first.plan, &second.plan) else {
        println!("e2e: no plans (skopeo's images): explain's prediction not checked");
        return Ok(());
    };
    let out = ok(
        Command::new(repo().join("build/bootstrap/helper/bin/strata"))
            .env("STRATA_PROGRESS", "none")
            .args(["explain", "--json", "--against"])
            .arg(old)
            .arg(new),
    )?;
    let e: Value = serde_json::from_str(&out).map_err(|e| format!("explain: {e}: {out}"))?;
    let predicted = e["chunkedPull"]["bytes"]
        .as_u64()
        .ok_or_else(|| format!("explain printed no chunkedPull: {out}"))?;
    let moved: u64 = second
        .layers
        .iter()
        .filter(|l| !first.layers.contains(l))
        .flat_map(|(digest, _)| exchanges.iter().filter(move |x| x.gets_blob(digest)))
        .map(|x| x.body)
        .sum();
    println!(
        "e2e: strata explain predicted {predicted} bytes ({}); podman's partial pull moved {moved} of the new layers",
        e["chunkedPull"]
    );
    let margin = (moved / 10).max(50_000);
    ensure(predicted.abs_diff(moved) <= margin, || {
        format!("explain predicted {predicted} bytes, the pull moved {moved}")
    })
}

/// A registry that answers requests for several ranges with 501 (for any, or for more than
/// two: then the TOC is fetched, and the files of the third image fail), with the whole
/// blob, or with the first range only: podman's partial pull either gives the image pushed
/// or fails with a message naming the blob and leaves no image behind; the same pull with
/// partial pulls off then gives the image; strata's own pull, which asks for no ranges, is
/// not affected.
pub fn bad_range_answers_still_pull_correctly(ctx: &mut Context) -> Check {
    if let Some(why) = no_partial_pulls(&ctx.consumers) {
        println!("e2e: bad range answers not checked: {why}");
        return Ok(());
    }
    let registry = Registry::start(&ctx.dir)?;
    let proxy = FaultProxy::start(&registry.host)?;
    let images = publish(ctx, &registry.host, Layers::Chunked, &[1, 2, 3])?;
    for answer in [
        RangeAnswer::NotImplemented,
        RangeAnswer::NotImplementedOver(2),
        RangeAnswer::WholeBlob,
        RangeAnswer::FirstRangeOnly,
    ] {
        proxy.set(vec![Rule {
            pattern: "GET /v2/",
            fault: Fault::MultiRange(answer),
            times: usize::MAX,
        }]);
        let store = Podman::new(&ctx.dir.join(format!("ranges-{answer:?}")));
        for image in &images {
            pull_despite_ranges(&proxy, &store, image, answer)?;
        }
    }
    strata_pull_asks_no_ranges(ctx, &proxy, &images[0])
}

/// One pull through a proxy answering ranges with `answer`: the image pushed, or a clean
/// failure that a pull with partial pulls off repairs.
fn pull_despite_ranges(
    proxy: &FaultProxy,
    store: &Podman,
    image: &Published,
    answer: RangeAnswer,
) -> Check {
    let reference = format!("{}/{}", proxy.host, image.name);
    let before = ok(storage(store).args(["images", "--all", "--quiet", "--no-trunc"]))?;
    proxy.take_exchanges();
    let out = pull(store, &reference, true)?;
    let exchanges = proxy.take_exchanges();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        println!(
            "e2e: {answer:?}, {}: pulled, {}",
            image.name,
            describe_moved(&exchanges)
        );
        return check_pulled(store, &reference, image);
    }
    let error = log
        .lines()
        .rfind(|l| l.starts_with("Error: "))
        .unwrap_or_default()
        .to_owned();
    println!("e2e: {answer:?}, {}: the pull failed: {error}", image.name);
    let names_blob = image.layers.iter().any(|(d, _)| error.contains(d.as_str()));
    ensure(error.contains("partial pull of blob") && names_blob, || {
        format!(
            "{answer:?}: the failure does not name the blob:\n{}",
            tail(&log)
        )
    })?;
    let after = ok(storage(store).args(["images", "--all", "--quiet", "--no-trunc"]))?;
    ensure(after == before, || {
        format!("{answer:?}: a failed pull changed the images from\n{before}to\n{after}")
    })?;
    // What the user does: pull with partial pulls off (a plain zstd download).
    let out = pull(store, &reference, false)?;
    ensure(out.status.success(), || {
        format!(
            "{answer:?}: the pull with partial pulls off failed:\n{}",
            tail(&String::from_utf8_lossy(&out.stderr))
        )
    })?;
    let ranged = proxy.take_exchanges().iter().any(|e| e.ranges() > 1);
    ensure(!ranged, || {
        format!("{answer:?}: partial pulls off, podman still asked for ranges")
    })?;
    check_pulled(store, &reference, image)
}

/// strata's `pull` streams each blob whole (a download cut off is asked for again from the
/// start), so the registry's range answers cannot touch it: through the proxy answering
/// 501 it pulls the zstd:chunked image, and podman loads the archive as the image pushed.
fn strata_pull_asks_no_ranges(ctx: &Context, proxy: &FaultProxy, image: &Published) -> Check {
    proxy.set(vec![Rule {
        pattern: "GET /v2/",
        fault: Fault::MultiRange(RangeAnswer::NotImplemented),
        times: usize::MAX,
    }]);
    proxy.take_exchanges();
    let archive = ctx.dir.join("partial-strata-pull.tar");
    let reference = format!("{}/{}", proxy.host, image.name);
    ok(
        Command::new(repo().join("build/bootstrap/helper/bin/strata"))
            .env("STRATA_PROGRESS", "none")
            .args(["pull", "-o"])
            .arg(&archive)
            .arg(&reference),
    )?;
    let exchanges = proxy.take_exchanges();
    println!(
        "e2e: strata pull through the 501 proxy: {}",
        describe_moved(&exchanges)
    );
    let ranged: Vec<&Exchange> = exchanges.iter().filter(|e| e.range.is_some()).collect();
    ensure(ranged.is_empty(), || {
        format!("strata pull asked for ranges: {ranged:?}")
    })?;
    let store = Podman::new(&ctx.dir.join("partial-strata-pull"));
    ok(storage(&store).arg("load").arg("--input").arg(&archive))?;
    // By ID: the name podman gives what it loads is not this check's business.
    check_pulled(&store, image.config.trim_start_matches("sha256:"), image)
}

/// The repository of a pair: one per compression.
fn repository(layers: Layers) -> String {
    format!("partial-{}", layers.format().replace(':', "-"))
}

/// Writes `versions` of the data, makes an image of each with `layers`, pushes them to the
/// registry at `host` (as `REPOSITORY:VERSION`) and reads back what it holds.
fn publish(
    ctx: &mut Context,
    host: &str,
    layers: Layers,
    versions: &[u32],
) -> Result<Vec<Published>, String> {
    let writer = chunked_writer();
    println!("e2e: {} layers written by {writer:?}", layers.format());
    // containers/image remembers, by uncompressed digest, the blobs it pushed (its blob-info
    // cache, kept across runs in /var/lib/containers/cache) and reuses them: a zstd push of
    // data pushed before as zstd:chunked got the zstd:chunked blob. Data of its own per run
    // and per compression makes every push a real one.
    let salt = (u64::from(std::process::id()) << 8) | layers as u64;
    let mut images = Vec::new();
    for &version in versions {
        let data = ctx.dir.join(format!("{}-{version}", repository(layers)));
        write_data(&data, salt, version)?;
        let name = format!("{}:{version}", repository(layers));
        let target = format!("{host}/{name}");
        let plan = match writer {
            Writer::Skopeo => skopeo_push(&data, &target, layers).map(|()| None)?,
            Writer::Strata => Some(strata_push(ctx, &data, &target, layers)?),
        };
        let mut image = published(&target)?;
        image.name = name;
        image.files = file_sums(&data)?;
        image.plan = plan;
        images.push(image);
    }
    Ok(images)
}

/// Writes `FILES` files of `FILE_SIZE` pseudo-random bytes (splitmix64, so nothing
/// compresses) into `dir`; version 2 changes file `CHANGED`, version 3 the `SCATTERED` ones.
fn write_data(dir: &Path, salt: u64, version: u32) -> Check {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for i in 0..FILES {
        let changed = match version {
            1 => false,
            2 => i == CHANGED,
            _ => SCATTERED.contains(&i),
        };
        let mark = if changed { u64::from(version) << 40 } else { 0 };
        let mut state = salt.wrapping_mul(0x1_0000_0001) ^ (i as u64) ^ mark;
        let mut bytes = Vec::with_capacity(FILE_SIZE);
        while bytes.len() < FILE_SIZE {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        let file = dir.join(format!("f{i:03}"));
        std::fs::write(&file, &bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// sha256 of each file in `dir`, by name (sha256sum: the test binary is unoptimised).
fn file_sums(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let out = ok(Command::new("sh")
        .arg("-c")
        .arg("sha256sum *")
        .current_dir(dir))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(sum, name)| (name.to_owned(), sum.to_owned()))
        .collect())
}

/// An OCI layout of an image whose one layer, uncompressed, holds `data` as `/data`; skopeo
/// compresses it to `layers` on its way to `target`.
fn skopeo_push(data: &Path, target: &str, layers: Layers) -> Check {
    let layout = data.with_extension("oci");
    let blobs = layout.join("blobs/sha256");
    let _ = std::fs::remove_dir_all(&layout);
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    let tar = layout.join("layer.tar");
    let file = std::fs::File::create(&tar).map_err(|e| e.to_string())?;
    let mut builder = tar::Builder::new(file);
    builder.mode(tar::HeaderMode::Deterministic);
    builder
        .append_dir_all("data", data)
        .and_then(|()| builder.finish())
        .map_err(|e| format!("{}: {e}", tar.display()))?;
    let sum = ok(Command::new("sha256sum").arg(&tar))?;
    let layer = sum.split_whitespace().next().unwrap_or_default().to_owned();
    let size = std::fs::metadata(&tar).map_err(|e| e.to_string())?.len();
    std::fs::rename(&tar, blobs.join(&layer)).map_err(|e| e.to_string())?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer}")]},
    });
    let config = add_blob(&blobs, &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer}"), "size": size}],
    });
    let manifest = add_blob(&blobs, &manifest)?;
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest.0, "size": manifest.1}],
    });
    for (name, value) in [
        ("index.json", index),
        ("oci-layout", json!({"imageLayoutVersion": "1.0.0"})),
    ] {
        std::fs::write(layout.join(name), value.to_string()).map_err(|e| e.to_string())?;
    }
    ok(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(["--dest-compress-format", layers.format()])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{target}")))?;
    std::fs::remove_dir_all(&layout).map_err(|e| format!("{}: {e}", layout.display()))
}

/// Writes `value` as a blob of the layout; its digest and size.
fn add_blob(blobs: &Path, value: &Value) -> Result<(String, u64), String> {
    let bytes = value.to_string().into_bytes();
    let hex = sha256_hex(&bytes);
    std::fs::write(blobs.join(&hex), &bytes).map_err(|e| e.to_string())?;
    Ok((format!("sha256:{hex}"), bytes.len() as u64))
}

/// strata's own: `partialImage` of tests/nix/images.nix (the data as a store path the
/// config names) pushed by `strata push --compression zstd|zstd:chunked`. Ready for the
/// zstd:chunked writer; [`chunked_writer`] turns it on. Returns the plan.
fn strata_push(
    ctx: &Context,
    data: &Path,
    target: &str,
    layers: Layers,
) -> Result<PathBuf, String> {
    let out = ctx.nix.build_with(
        ("partialData", &data.to_string_lossy()),
        "partialImage",
        false,
    )?;
    ensure(out.status.success(), || {
        format!("partialImage: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let plan = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    push_plan(&plan, target, &["--compression", layers.format()])?;
    Ok(plan)
}

/// The image `target` as the registry holds it (files not filled in).
fn published(target: &str) -> Result<Published, String> {
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{target}")))?;
    let manifest: Value = serde_json::from_str(&raw).map_err(|e| format!("{target}: {e}"))?;
    let layers = manifest["layers"]
        .as_array()
        .ok_or_else(|| format!("{target}: no layers in {raw}"))?
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap_or_default().to_owned(),
                l["size"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    Ok(Published {
        name: String::new(),
        config: manifest["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        layers,
        files: BTreeMap::new(),
        plan: None,
    })
}

/// A podman command on `store` with the overlay driver, named on every command: only overlay
/// implements partial pulls (`ApplyDiffWithDiffer`; vfs falls back), and a store must be
/// opened with the driver it was made with. The Debian 13 root's /tmp (ext4) takes native
/// overlay mounts, so no fuse-overlayfs is needed.
fn storage(store: &Podman) -> Command {
    let mut c = store.cmd();
    c.args(["--storage-driver", "overlay"]);
    c
}

/// `podman pull` of `reference` over plain HTTP with partial pulls on or off (podman 5.3
/// on has them off by default: `--pull-option` is the command-line form of storage.conf's
/// `[storage.options.pull_options] enable_partial_images = "true"`), logging at debug
/// level: the log says whether the pull was partial.
fn pull(store: &Podman, reference: &str, partial: bool) -> Result<Output, String> {
    run(storage(store)
        .arg("--pull-option")
        .arg(format!("enable_partial_images={partial}"))
        .args(["--log-level=debug", "pull", "--quiet", "--tls-verify=false"])
        .arg(reference))
}

/// Fails unless podman's `reference` is `image`: its ID is the config digest (podman 5.4
/// checks a partial pull's DiffID itself) and its data files have the bytes written.
fn check_pulled(store: &Podman, reference: &str, image: &Published) -> Check {
    let id = ok(storage(store).args(["image", "inspect", "--format", "{{.ID}}", reference]))?;
    ensure(
        image.config.ends_with(id.trim()) && !id.trim().is_empty(),
        || format!("{reference}: image ID {id}, config {}", image.config),
    )?;
    let mount = ok(storage(store).args(["image", "mount", reference]))?;
    let sums = data_dir(Path::new(mount.trim())).and_then(|d| file_sums(&d));
    ok(storage(store).args(["image", "unmount", reference]))?;
    let sums = sums?;
    let wrong: Vec<&String> = image
        .files
        .iter()
        .filter(|(name, sum)| sums.get(*name) != Some(sum))
        .map(|(name, _)| name)
        .collect();
    ensure(wrong.is_empty() && sums.len() == image.files.len(), || {
        format!(
            "{reference}: {} files, {} wrong or missing: {wrong:?}",
            sums.len(),
            wrong.len()
        )
    })
}

/// Where the data files are in a mounted image: `/data` (skopeo's images) or the store path
/// `*-partial-data` (strata's).
fn data_dir(root: &Path) -> Result<PathBuf, String> {
    if root.join("data").is_dir() {
        return Ok(root.join("data"));
    }
    let store = root.join("nix/store");
    std::fs::read_dir(&store)
        .map_err(|e| format!("{}: {e}", store.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-partial-data"))
        .ok_or_else(|| format!("{}: no data directory", root.display()))
}

/// Body bytes of the blob GETs among `exchanges`.
fn blob_bytes(exchanges: &[Exchange]) -> u64 {
    exchanges
        .iter()
        .filter(|e| e.gets_blob("sha256:"))
        .map(|e| e.body)
        .sum()
}

/// The blob GETs of a pull in one line: bytes, requests, their statuses and ranges.
fn describe_moved(exchanges: &[Exchange]) -> String {
    let blobs: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.gets_blob("sha256:"))
        .collect();
    let each: Vec<String> = blobs
        .iter()
        .map(|e| format!("{} {} B ({} ranges)", e.status, e.body, e.ranges()))
        .collect();
    format!(
        "{} blob bytes in {} GETs: {}",
        blob_bytes(exchanges),
        blobs.len(),
        each.join(", ")
    )
}

/// podman's `Missing N bytes out of M (P %)` debug line, if it logged one.
fn missing_line(log: &str) -> Option<String> {
    let at = log.find("Missing ")?;
    let line = &log[at..];
    Some(line[..line.find('"').unwrap_or(line.len())].to_owned())
}

/// The last lines of a log, for a failure message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
