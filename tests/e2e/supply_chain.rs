//! Supply chain: every image's SBOMs (CycloneDX, SPDX) and provenance, built by Nix from the
//! exact closure, checked against the image's own layers and by the formats' own validators.

use super::*;

/// (image attribute, its sbom attribute).
const DESCRIBED: &[(&str, &str)] = &[
    ("stream", "stream.sbom"),
    ("licensed", "licensed.sbom"),
    ("layered", "layered.sbom"),
    ("onTopOfLayered", "onTopOfLayered.sbom"),
];

/// The validators' venv (scripts/setup makes it on the host; the Debian 13 root cannot run
/// the host's Python, and the documents are the same bytes there).
fn validators() -> Option<PathBuf> {
    let python = repo().join("build/pyvenv/bin/python");
    ok(Command::new(&python).arg("--version"))
        .is_ok()
        .then_some(python)
}

pub fn sboms_describe_the_exact_closure(ctx: &mut Context) -> Check {
    let nix = &mut ctx.nix;
    let python = validators();
    if python.is_none() && std::env::var_os("STRATA_E2E_PREBUILT").is_none() {
        return Err("build/pyvenv has no SBOM validators: run scripts/setup".into());
    }
    for (attr, sbom_attr) in DESCRIBED {
        let sbom = nix.build(sbom_attr)?;
        let image = open_image(&archive_of(nix, attr, &ctx.dir)?)?;
        let in_layers: BTreeSet<String> = image
            .layers
            .iter()
            .flat_map(|l| store_paths_in(l))
            .collect();
        let read = |file: &str| -> Result<Value, String> {
            serde_json::from_slice(&std::fs::read(sbom.join(file)).map_err(|e| e.to_string())?)
                .map_err(|e| format!("{sbom_attr}/{file}: {e}"))
        };
        let cdx = read("cyclonedx.json")?;
        let components: Vec<String> = cdx["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["bom-ref"].as_str().map(str::to_owned))
            .collect();
        let listed: BTreeSet<String> = components.iter().cloned().collect();
        ensure(
            listed == in_layers && listed.len() == components.len(),
            || {
                format!(
                    "{sbom_attr}: components {components:?}, the image's layers hold {in_layers:?}"
                )
            },
        )?;
        // Every component's hash is the NAR hash Nix recorded.
        for c in cdx["components"].as_array().into_iter().flatten() {
            let path = c["bom-ref"].as_str().unwrap_or_default();
            let ours = c["hashes"][0]["content"].as_str().unwrap_or_default();
            let nix32 = ok(Command::new("nix-store").args(["-q", "--hash", path]))?;
            let theirs = ok(Command::new("nix")
                .args(["--extra-experimental-features", "nix-command"])
                .args(["hash", "to-base16", nix32.trim()]))?;
            ensure(ours == theirs.trim(), || {
                format!("{sbom_attr}: {path} hash {ours}, Nix says {theirs}")
            })?;
        }
        // The image the documents name is the one streamed: its config digest.
        let config = image.manifest[0]["Config"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("blobs/sha256/")
            .to_owned();
        let provenance = read("provenance.json")?;
        ensure(
            cdx["metadata"]["component"]["hashes"][0]["content"] == config.as_str()
                && provenance["subject"][0]["digest"]["sha256"] == config.as_str(),
            || format!("{sbom_attr}: config {config}, documents {cdx} {provenance}"),
        )?;
        let spdx = read("spdx.json")?;
        let packages = spdx["packages"].as_array().map_or(0, Vec::len);
        ensure(packages == components.len() + 1, || {
            format!(
                "{sbom_attr}: {packages} SPDX packages for {} store paths",
                components.len()
            )
        })?;
        if let Some(python) = &python {
            ok(Command::new(python)
                .arg(repo().join("tests/scripts/validate_sbom.py"))
                .arg(sbom.join("cyclonedx.json"))
                .arg(sbom.join("spdx.json")))
            .map_err(|e| format!("{sbom_attr}: {e}"))?;
        }
    }
    licences_from_meta(nix)?;
    index_documents_per_platform(nix)
}

/// The archive of `attr`: a stream saved, or the archive built.
fn archive_of(nix: &mut Nix, attr: &str, dir: &Path) -> Result<PathBuf, String> {
    let built = nix.build(attr)?;
    if !is_executable(&built) {
        return Ok(built);
    }
    let file = dir.join(format!("{attr}-for-sbom.tar"));
    save(&built, &file)?;
    Ok(file)
}

/// `licensed`: tools (contents, MIT), hello (sbomPackages: GPL-3.0-or-later and a licence
/// with no SPDX identifier) and greeting (hello's build input: Apache-2.0).
fn licences_from_meta(nix: &mut Nix) -> Check {
    let sbom = nix.build("licensed.sbom")?;
    let cdx: Value = serde_json::from_slice(
        &std::fs::read(sbom.join("cyclonedx.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let licences = |name: &str| -> Vec<String> {
        cdx["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["name"] == name)
            .flat_map(|c| c["licenses"].as_array().cloned().unwrap_or_default())
            .map(|l| {
                l["license"]["id"]
                    .as_str()
                    .or(l["license"]["name"].as_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    for (name, want) in [
        ("tools", vec!["MIT"]),
        (
            "hello-app",
            vec!["Strata Test Licence 1.0", "GPL-3.0-or-later"],
        ),
        ("greeting", vec!["Apache-2.0"]),
        ("locale-data", vec![]),
    ] {
        let got = licences(name);
        ensure(got == want, || {
            format!("{name}: licences {got:?}, not {want:?}")
        })?;
    }
    let spdx: Value =
        serde_json::from_slice(&std::fs::read(sbom.join("spdx.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let declared: Vec<&str> = spdx["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "hello-app")
        .filter_map(|p| p["licenseDeclared"].as_str())
        .collect();
    ensure(
        declared == ["(LicenseRef-Strata-Test-Licence-1.0 AND GPL-3.0-or-later)"],
        || format!("hello-app licenseDeclared {declared:?}"),
    )
}

/// An index's documents: a directory per platform, each with the three documents.
fn index_documents_per_platform(nix: &mut Nix) -> Check {
    let sbom = nix.build("multiArch.sbom")?;
    for platform in ["amd64", "arm64"] {
        for file in ["cyclonedx.json", "spdx.json", "provenance.json"] {
            let path = sbom.join(platform).join(file);
            ensure(path.is_file(), || {
                format!("multiArch.sbom lacks {platform}/{file}")
            })?;
        }
    }
    Ok(())
}
