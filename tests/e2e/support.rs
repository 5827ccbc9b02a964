//! Helpers several areas share: reading archives and layers back.

use crate::util::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::Command;

pub const HELLO: &str = "Hello from strata!";

/// Members of a docker-archive, in order: (name, bytes).
pub fn members(archive: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    Ok(members_and_links(archive)?
        .into_iter()
        .map(|(name, bytes, _)| (name, bytes))
        .collect())
}

/// An archive member: name, bytes, symlink target.
pub type Member = (String, Vec<u8>, Option<String>);

/// Members of a (possibly gzipped) archive, in order.
pub fn members_and_links(archive: &Path) -> Result<Vec<Member>, String> {
    let bytes = std::fs::read(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
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
pub struct Image {
    pub manifest: Value,
    pub config: Value,
    pub layers: Vec<Vec<u8>>,
}

pub fn open_image(archive: &Path) -> Result<Image, String> {
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
pub fn streamed_image(plan: &Path, file: &Path) -> Result<Image, String> {
    save(plan, file)?;
    open_image(file)
}

/// Entries of a layer tar: (name, mode, type char).
pub fn entries(layer: &[u8]) -> Vec<(String, u32, char)> {
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
pub fn store_paths_in(layer: &[u8]) -> BTreeSet<String> {
    entries(layer)
        .into_iter()
        .filter_map(|(name, _, _)| {
            let rest = name.strip_prefix("nix/store/")?;
            let base = rest.trim_end_matches('/');
            (!base.is_empty() && !base.contains('/')).then(|| format!("/nix/store/{base}"))
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn image_tag(nix: &Nix, attr: &str) -> Result<String, String> {
    Ok(nix
        .eval_json(&format!("{attr}.imageTag"))?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Every image (and layer derivation) the tests build.
pub const BUILT: &[&str] = &[
    "imageNoTag",
    "nixDbImageNoTag",
    "imageUncompressed",
    "imageZstd",
    "sharedDeps",
    "appV1",
    "appV1.appLayer",
    "sharedOther",
    "splitLayer",
    "perLayer",
    "nowDated",
    "layeredFakeRoot",
    "webServer",
    "envParentSingle",
    "envChildSingle",
    "envChildLayered",
    "layeredImage",
    "layeredOnTopLayered",
    "bulkLayer",
    "layersOrder",
    "imageViaFakeChroot",
    "prefixedLayeredImage",
    "mergedFakeRoot",
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
    "examples.family.greeter",
    "examples.family.shell",
    "gzLayers",
    "zstdLayers",
    "chunkedLayers",
    "onChunked",
    "multiArch",
    "multiArch.copyToRegistry",
    "layered.copyToDockerDaemon",
    "evalChecks",
    "stream.sbom",
    "licensed.sbom",
    "layered.sbom",
    "onTopOfLayered.sbom",
    "multiArch.sbom",
    "licensedInImage",
    "singleInImage",
    "fleet.web",
    "fleet.worker",
    "fleet.cron",
];

pub fn docker_load_run(docker: &Dockerd, plan: &Path, image: &str) -> Result<String, String> {
    pipe(plan, docker.cmd().arg("load"))?;
    docker.run(image, &[])
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// `nix-build -A attr` (with `--check`: rebuilt and compared) of an image whose
/// `parentArchive` is `archive`.
pub fn nix_build_on(
    nix: &Nix,
    archive: &Path,
    attr: &str,
    check: bool,
) -> Result<std::process::Output, String> {
    nix.build_with(("parentArchive", &archive.to_string_lossy()), attr, check)
}

/// What `strata push` said it did.
pub struct Pushed {
    pub uploaded: usize,
    pub skipped: usize,
    pub bytes: u64,
    pub digest: String,
    /// Layers compressed before the upload to learn their digests (0 when none).
    pub compressed_first: usize,
}

/// Pushes the image of `plan` to `target` with the bootstrap helper; reads its report line
/// ("pushed REF (DIGEST): N blobs uploaded, M already there, ..., B bytes sent in S s").
pub fn push_plan(plan: &Path, target: &str, extra: &[&str]) -> Result<Pushed, String> {
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    let out = run(Command::new(&helper)
        .arg("push")
        .args(extra)
        .arg(plan)
        .arg(target)
        .env("STRATA_PROGRESS", "none"))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(out.status.success(), || format!("push {target}: {err}"))?;
    let number = |label: &str| -> u64 {
        err.split(label)
            .next()
            .and_then(|b| b.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    };
    let digest = err
        .split('(')
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_default()
        .to_owned();
    Ok(Pushed {
        uploaded: number(" blobs uploaded") as usize,
        skipped: number(" already there") as usize,
        bytes: number(" bytes sent"),
        digest,
        compressed_first: match number(" layers compressed first") {
            u64::MAX => 0,
            n => n as usize,
        },
    })
}

/// A PATH whose `docker` and `podman` are the tests' own engines (wrappers in `dir`), for
/// the commands that run the engines they find on PATH.
pub fn engines_path(docker: &Dockerd, podman: &Podman, dir: &Path) -> Result<String, String> {
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
    Ok(format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display()
    ))
}

/// An image's `Created` as `docker inspect` (or `podman inspect`) shows it: `command` is the
/// engine's command, e.g. `docker.cmd()`.
pub fn created(mut command: Command, image: &str) -> Result<String, String> {
    ok(command.args(["inspect", "--format", "{{.Created}}", image])).map(|c| c.trim().to_owned())
}

/// Fails unless `image` was created at build or stream time (`created = "now"`), not at a
/// fixed date: its year is this decade's.
pub fn ensure_created_now(command: Command, image: &str) -> Check {
    let created = created(command, image)?;
    let year: u32 = created.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
    ensure(year >= 2025, || {
        format!("{image}: created = \"now\" gave {created}")
    })
}
