//! Supply chain: every image's SBOMs (CycloneDX, SPDX) and provenance, built by Nix from the
//! exact closure, checked against the image's own layers and by the formats' own validators.

use super::*;

/// (image attribute, its sbom attribute).
const DESCRIBED: &[(&str, &str)] = &[
    ("stream", "stream.sbom"),
    ("licensed", "licensed.sbom"),
    ("layered", "layered.sbom"),
    ("onTopOfLayered", "onTopOfLayered.sbom"),
    ("licensedInImage", "licensedInImage.sbom"),
    ("singleInImage", "singleInImage.sbom"),
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
        let mut in_layers = BTreeSet::new();
        for layer in &image.layers {
            in_layers.extend(store_paths_in(&plain(layer)?));
        }
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
        // `strata sbom ARCHIVE` finds the same store paths from the archive alone.
        let archive = archive_of(nix, attr, &ctx.dir)?;
        let helper = repo().join("build/bootstrap/helper/bin/strata");
        let from_archive: Value =
            serde_json::from_str(&ok(Command::new(&helper).arg("sbom").arg(&archive))?)
                .map_err(|e| e.to_string())?;
        let found: BTreeSet<String> = from_archive["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["bom-ref"].as_str().map(str::to_owned))
            .collect();
        // buildImage's layer is one tar whose history names no store paths.
        if !attr.starts_with("onTop") && !attr.starts_with("single") {
            ensure(found == listed, || {
                format!(
                    "strata sbom {}: {found:?}, not {listed:?}",
                    archive.display()
                )
            })?;
        }
    }
    licences_from_meta(nix)?;
    index_documents_per_platform(nix)?;
    for attr in ["licensedInImage", "singleInImage"] {
        sboms_in_the_image(ctx, attr, python.as_deref())?;
    }
    Ok(())
}

/// `sbomInImage`: the top layer holds the documents at /usr/share/sbom and nothing else;
/// they list the store paths of the layers below, are valid, and the image runs under docker
/// and podman, which can read them.
fn sboms_in_the_image(ctx: &mut Context, attr: &str, python: Option<&Path>) -> Check {
    let archive = archive_of(&mut ctx.nix, attr, &ctx.dir)?;
    let image = open_image(&archive)?;
    let layers: Vec<Vec<u8>> = image
        .layers
        .iter()
        .map(|l| plain(l))
        .collect::<Result<_, _>>()?;
    let (top, below) = layers.split_last().ok_or("no layers")?;
    let names: Vec<String> = entries(top).into_iter().map(|e| e.0).collect();
    let base = ctx.nix.eval_json(&format!("{attr}.imageName"))?;
    let base = base
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let files = [
        format!("usr/share/sbom/{base}.cdx.json"),
        format!("usr/share/sbom/{base}.spdx.json"),
        format!("usr/share/sbom/{base}.intoto.json"),
    ];
    // Entries in name order, as every strata layer has them.
    let mut want: Vec<String> = ["usr/", "usr/share/", "usr/share/sbom/"]
        .into_iter()
        .map(str::to_owned)
        .chain(files.iter().cloned())
        .collect();
    want.sort();
    ensure(names == want, || {
        format!("{attr}: top layer holds {names:?}")
    })?;
    let in_layers: BTreeSet<String> = below.iter().flat_map(|l| store_paths_in(l)).collect();
    let tag = image_tag(&ctx.nix, attr)?;
    let name = format!(
        "{}:{tag}",
        ctx.nix
            .eval_json(&format!("{attr}.imageName"))?
            .as_str()
            .unwrap_or_default()
    );
    feed(&archive, ctx.docker.cmd().arg("load"))?;
    let dir = ctx.dir.join(format!("{attr}-sbom"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for file in &files {
        let text = docker_cat(ctx, &name, file)?;
        std::fs::write(dir.join(file.rsplit('/').next().unwrap_or("x")), text)
            .map_err(|e| e.to_string())?;
    }
    let cdx: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{base}.cdx.json"))).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let listed: BTreeSet<String> = cdx["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["bom-ref"].as_str().map(str::to_owned))
        .collect();
    ensure(listed == in_layers, || {
        format!("{attr}: the documents in the image list {listed:?}, the layers below hold {in_layers:?}")
    })?;
    if let Some(python) = python {
        ok(Command::new(python)
            .arg(repo().join("tests/scripts/validate_sbom.py"))
            .arg(dir.join(format!("{base}.cdx.json")))
            .arg(dir.join(format!("{base}.spdx.json"))))?;
    }
    let out = ctx.docker.run(&name, &[])?;
    ensure(out.trim() == HELLO, || {
        format!("{attr}: docker run printed {out:?}")
    })?;
    feed(&archive, ctx.podman.cmd().arg("load"))?;
    let out = ctx.podman.run(&format!("localhost/{name}"), &[])?;
    ensure(out.trim() == HELLO, || {
        format!("{attr}: podman run printed {out:?}")
    })
}

/// A layer's tar: as stored, or decompressed when stored with gzip (`layerCompressor`).
fn plain(layer: &[u8]) -> Result<Vec<u8>, String> {
    if !layer.starts_with(&[0x1f, 0x8b]) {
        return Ok(layer.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(layer)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// A file of the image `name`, read with `docker cp` from a container never started (the
/// image needs no shell).
fn docker_cat(ctx: &Context, name: &str, file: &str) -> Result<String, String> {
    let id = ok(ctx.docker.cmd().args(["create", name]))?
        .trim()
        .to_owned();
    let out = run(ctx.docker.cmd().args(["cp", &format!("{id}:/{file}"), "-"]));
    let _ = ctx.docker.cmd().args(["rm", &id]).output();
    let out = out?;
    ensure(out.status.success(), || {
        format!("docker cp {file}: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut entry = archive
        .entries()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("docker cp gave no file")?
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    entry.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
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

/// Keys for the signing checks: an openssl PKCS#8 key and another one (the wrong key), and
/// where cosign is installed a cosign-encrypted key pair (its password in `COSIGN_PASSWORD`).
struct Keys {
    /// (private key, public key) pairs to sign and verify with; the first is openssl's.
    pairs: Vec<(PathBuf, PathBuf, Option<&'static str>)>,
    /// A public key that matches none of them.
    wrong_public: PathBuf,
}

fn make_keys(dir: &Path) -> Result<Keys, String> {
    let dir = dir.join("keys");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let openssl_pair = |name: &str| -> Result<(PathBuf, PathBuf), String> {
        let (key, public) = (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.pub")),
        );
        ok(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&key))?;
        ok(Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public))?;
        Ok((key, public))
    };
    let (key, public) = openssl_pair("openssl")?;
    let (_, wrong_public) = openssl_pair("wrong")?;
    let mut pairs = vec![(key, public, None)];
    if have("cosign") {
        ok(Command::new("cosign")
            .args(["generate-key-pair", "--output-key-prefix", "cosign"])
            .env("COSIGN_PASSWORD", "strata-test")
            .current_dir(&dir))?;
        pairs.push((
            dir.join("cosign.key"),
            dir.join("cosign.pub"),
            Some("strata-test"),
        ));
    }
    Ok(Keys {
        pairs,
        wrong_public,
    })
}

/// copyToRegistry attaches the image's SBOMs and provenance and signs what it pushed; a
/// second registry client lists the documents; cosign and containers/image's
/// `sigstoreSigned` policy accept the signature and refuse a wrong key; a push cut short
/// while attaching is completed by pushing again; bad keys and a registry refusing artifacts
/// fail in one line that shows no key.
pub fn pushes_attach_documents_and_signatures(ctx: &mut Context) -> Check {
    let registry = Registry::start(&ctx.dir)?;
    let proxy = crate::fault_proxy::FaultProxy::start(&registry.host)?;
    let host = proxy.host.clone();
    let keys = make_keys(&ctx.dir)?;
    let to_registry = ctx
        .nix
        .build("licensed.copyToRegistry")?
        .join("bin/copy-to-registry");
    let sbom = ctx.nix.build("licensed.sbom")?;
    let push = |target: &str, extra: &[&str], password: Option<&str>| {
        let mut c = Command::new(&to_registry);
        c.arg(target).args(extra).env("STRATA_PROGRESS", "none");
        if let Some(p) = password {
            c.env("COSIGN_PASSWORD", p);
        }
        run(&mut c)
    };
    // A push cut short after the documents, before the referrers index: pushing again
    // completes it.
    proxy.set(vec![crate::fault_proxy::Rule {
        pattern: "PUT /v2/signed/manifests/sha256-",
        fault: crate::fault_proxy::Fault::Refuse(
            r#"{"errors":[{"code":"DENIED","message":"not now"}]}"#,
        ),
        times: 1,
    }]);
    let reference = format!("{host}/signed:v1");
    let out = push(&reference, &[], None)?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(
        !out.status.success() && err.trim().lines().count() == 1 && err.contains("sha256-"),
        || format!("a refused referrers index: {err}"),
    )?;
    let (key, _, password) = &keys.pairs[0];
    let signed = |key: &Path, password: Option<&str>| -> Result<String, String> {
        let out = push(
            &reference,
            &["--sign-key", &key.display().to_string()],
            password,
        )?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure(
            out.status.success() && err.contains("3 documents attached") && err.contains("signed"),
            || format!("push --sign-key: {err}"),
        )?;
        Ok(err)
    };
    let err = signed(key, *password)?;
    let key_text = std::fs::read_to_string(key).map_err(|e| e.to_string())?;
    let body_line = key_text.lines().nth(1).unwrap_or("-");
    ensure(!err.contains(body_line), || {
        "the push printed the key".to_owned()
    })?;
    // Read back: each document as Nix built it.
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    for (format, file) in [
        ("cyclonedx", "cyclonedx.json"),
        ("spdx", "spdx.json"),
        ("provenance", "provenance.json"),
    ] {
        let got = run(Command::new(&helper).args(["sbom", &reference, "--format", format]))?;
        let want = std::fs::read(sbom.join(file)).map_err(|e| e.to_string())?;
        ensure(got.status.success() && got.stdout == want, || {
            format!(
                "strata sbom {reference} --format {format}: {}",
                String::from_utf8_lossy(&got.stderr)
            )
        })?;
    }
    // Pushing again adds nothing: the referrers index still lists three documents.
    signed(key, *password)?;
    let discovered = referrers_seen_by_oras(&reference);
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Oras,
        Feature::Referrers,
        discovered,
    );
    for (key, _, password) in &keys.pairs[1..] {
        signed(key, *password)?;
    }
    index_documents_and_signature(ctx, &host, &keys)?;
    // cosign and the sigstoreSigned policy: the right public keys pass, the wrong one fails.
    let verified = verify_with_cosign(&reference, &keys);
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Cosign,
        Feature::SignaturePolicy,
        verified,
    );
    let dir = ctx.dir.join("policy");
    let skopeo = policy_check(&dir, &host, &keys, |policy, registries_d| {
        let out = dir.join("copied");
        let _ = std::fs::remove_dir_all(&out);
        run(Command::new("skopeo")
            .arg("--policy")
            .arg(policy)
            .arg("--registries.d")
            .arg(registries_d)
            .args([
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{reference}"),
            ])
            .arg(format!("dir:{}", out.display())))
    });
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Skopeo,
        Feature::SignaturePolicy,
        skopeo,
    );
    let podman = podman_policy_check(ctx, &dir, &host, &reference, &keys);
    ctx.chart.record(
        &ctx.consumers,
        Consumer::Podman,
        Feature::SignaturePolicy,
        podman,
    );
    if ctx
        .consumers
        .known_limit(Consumer::Skopeo, Feature::SignaturePolicy)
        .is_none()
    {
        unsigned_change_is_refused(ctx, &dir, &host, &reference, &keys)?;
    }
    bad_keys_and_refused_artifacts(&to_registry, &proxy, &host, &keys)?;
    let failures = ctx.chart.failures();
    ensure(failures.is_empty(), || failures.join("\n\n"))
}

/// An index: copy-to-registry attaches each platform's documents to that platform's image
/// and signs the index and the images; `strata sbom --arch` reads one platform's back.
fn index_documents_and_signature(ctx: &mut Context, host: &str, keys: &Keys) -> Check {
    let to_registry = ctx
        .nix
        .build("multiArch.copyToRegistry")?
        .join("bin/copy-to-registry");
    let sbom = ctx.nix.build("multiArch.sbom")?;
    let reference = format!("{host}/signed-multi:v1");
    let (key, _, password) = &keys.pairs[0];
    let mut c = Command::new(&to_registry);
    c.arg(&reference)
        .arg("--sign-key")
        .arg(key)
        .env("STRATA_PROGRESS", "none");
    if let Some(p) = password {
        c.env("COSIGN_PASSWORD", p);
    }
    let out = run(&mut c)?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(
        out.status.success()
            && err.contains("6 documents attached")
            && err.contains("signed (3 manifests)"),
        || format!("copy-to-registry of an index: {err}"),
    )?;
    let helper = repo().join("build/bootstrap/helper/bin/strata");
    for arch in ["amd64", "arm64"] {
        let got =
            run(Command::new(&helper)
                .args(["sbom", &reference, "--arch", arch, "--format", "spdx"]))?;
        let want = std::fs::read(sbom.join(arch).join("spdx.json")).map_err(|e| e.to_string())?;
        ensure(got.status.success() && got.stdout == want, || {
            format!(
                "strata sbom {reference} --arch {arch}: {}",
                String::from_utf8_lossy(&got.stderr)
            )
        })?;
    }
    Ok(())
}

/// Another image pushed under the signed tag without signing it: the policy that accepted the
/// signed one refuses it (the signatures name the old manifest's digest).
fn unsigned_change_is_refused(
    ctx: &mut Context,
    dir: &Path,
    host: &str,
    reference: &str,
    keys: &Keys,
) -> Check {
    push_plan(&ctx.nix.build("stream")?, reference, &["--no-attach"])?;
    let (policy, registries_d) = policy_files(dir, host, &keys.pairs[0].1, "after-change")?;
    let out = run(Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .arg("--registries.d")
        .arg(&registries_d)
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .arg(format!("dir:{}", dir.join("changed").display())))?;
    ensure(!out.status.success(), || {
        "skopeo accepted an image pushed over the signed one without a signature".to_owned()
    })
}

/// `oras discover` (a registry client no one here wrote) lists the three documents.
fn referrers_seen_by_oras(reference: &str) -> Check {
    let out =
        ok(Command::new("oras").args(["discover", "--plain-http", "--format", "json", reference]))?;
    let json: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let mut types: Vec<String> = json["manifests"]
        .as_array()
        .or(json["referrers"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m["artifactType"].as_str().map(str::to_owned))
        .collect();
    types.sort();
    ensure(
        types
            == [
                "application/spdx+json",
                "application/vnd.cyclonedx+json",
                "application/vnd.in-toto+json",
            ],
        || format!("oras discover: {out}"),
    )
}

/// `cosign verify --key` accepts each pair's public key and refuses the wrong one (no
/// transparency log: the signatures were made without one).
fn verify_with_cosign(reference: &str, keys: &Keys) -> Check {
    let verify = |public: &Path| {
        run(Command::new("cosign")
            .args([
                "verify",
                "--insecure-ignore-tlog=true",
                "--allow-http-registry",
                "--key",
            ])
            .arg(public)
            .arg(reference))
    };
    for (_, public, _) in &keys.pairs {
        let out = verify(public)?;
        ensure(out.status.success(), || {
            format!(
                "cosign verify --key {}: {}",
                public.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    }
    let out = verify(&keys.wrong_public)?;
    ensure(!out.status.success(), || {
        "cosign verify accepted the wrong key".to_owned()
    })
}

/// A `sigstoreSigned` policy for `host` with `public`, and a registries.d telling
/// containers/image to read sigstore attachments there: (policy file, registries.d).
fn policy_files(
    dir: &Path,
    host: &str,
    public: &Path,
    name: &str,
) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir.join("registries.d")).map_err(|e| e.to_string())?;
    let policy = dir.join(format!("{name}.json"));
    let text = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {host: [{
            "type": "sigstoreSigned",
            "keyPath": public.display().to_string(),
            "signedIdentity": {"type": "matchRepository"},
        }]}},
    });
    std::fs::write(&policy, text.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("registries.d/strata-e2e.yaml"),
        format!("docker:\n  {host}:\n    use-sigstore-attachments: true\n"),
    )
    .map_err(|e| e.to_string())?;
    Ok((policy, dir.join("registries.d")))
}

/// Runs `pull` (a copy or pull under a policy) with each pair's public key (must pass) and
/// the wrong one (must fail).
fn policy_check(
    dir: &Path,
    host: &str,
    keys: &Keys,
    pull: impl Fn(&Path, &Path) -> Result<std::process::Output, String>,
) -> Check {
    for (i, (_, public, _)) in keys.pairs.iter().enumerate() {
        let (policy, registries_d) = policy_files(dir, host, public, &format!("right-{i}"))?;
        let out = pull(&policy, &registries_d)?;
        ensure(out.status.success(), || {
            format!(
                "refused under a policy with the signing key: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    }
    let (policy, registries_d) = policy_files(dir, host, &keys.wrong_public, "wrong")?;
    let out = pull(&policy, &registries_d)?;
    ensure(!out.status.success(), || {
        "accepted under a policy with the wrong key".to_owned()
    })
}

/// podman pulls under the policy. podman reads registries.d only from
/// /etc/containers/registries.d; the file is written there only inside the Debian 13 root
/// the tests make (STRATA_E2E_PREBUILT), and removed after.
fn podman_policy_check(
    ctx: &Context,
    dir: &Path,
    host: &str,
    reference: &str,
    keys: &Keys,
) -> Check {
    if std::env::var_os("STRATA_E2E_PREBUILT").is_none() {
        return Err("podman reads registries.d only from /etc/containers, which the tests change only inside the Debian 13 root".into());
    }
    let system = Path::new("/etc/containers/registries.d/strata-e2e.yaml");
    let result = policy_check(dir, host, keys, |policy, registries_d| {
        std::fs::create_dir_all("/etc/containers/registries.d").map_err(|e| e.to_string())?;
        std::fs::copy(registries_d.join("strata-e2e.yaml"), system).map_err(|e| e.to_string())?;
        let _ = ctx
            .podman
            .cmd()
            .args(["rmi", "--force", reference])
            .output();
        run(ctx
            .podman
            .cmd()
            .args(["pull", "--tls-verify=false", "--signature-policy"])
            .arg(policy)
            .arg(reference))
    });
    let _ = std::fs::remove_file(system);
    result
}

/// A public key, a missing key, an encrypted key without its password, and a registry that
/// refuses the artifact manifests: each a one-line error naming what is at fault, no key
/// text in it.
fn bad_keys_and_refused_artifacts(
    to_registry: &Path,
    proxy: &crate::fault_proxy::FaultProxy,
    host: &str,
    keys: &Keys,
) -> Check {
    let push = |key: &Path, target: &str| {
        run(Command::new(to_registry)
            .arg(target)
            .arg("--sign-key")
            .arg(key)
            .env_remove("COSIGN_PASSWORD")
            .env("STRATA_PROGRESS", "none"))
    };
    let target = format!("{host}/bad:v1");
    let mut cases = vec![
        (keys.pairs[0].1.clone(), "is a public key"),
        (
            PathBuf::from("/nonexistent/key.pem"),
            "/nonexistent/key.pem",
        ),
    ];
    if let Some((cosign_key, _, _)) = keys.pairs.get(1) {
        cases.push((cosign_key.clone(), "COSIGN_PASSWORD is not set"));
    }
    for (key, says) in cases {
        let out = push(&key, &target)?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure(
            !out.status.success()
                && err.trim().lines().count() == 1
                && err.contains(says)
                && !err.contains("BEGIN"),
            || format!("bad key {}: {err}", key.display()),
        )?;
    }
    // Nothing was pushed with a bad key.
    let listed = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]))?;
    ensure(!listed.status.success(), || {
        "a push with a bad key pushed the image".to_owned()
    })?;
    proxy.set(vec![crate::fault_proxy::Rule {
        pattern: "PUT /v2/refused/manifests/sha256:",
        fault: crate::fault_proxy::Fault::Refuse(
            r#"{"errors":[{"code":"MANIFEST_INVALID","message":"artifacts are not accepted"}]}"#,
        ),
        times: 100,
    }]);
    let out = run(Command::new(to_registry)
        .arg(format!("{host}/refused:v1"))
        .env("STRATA_PROGRESS", "none"))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(
        !out.status.success()
            && err.trim().lines().count() == 1
            && err.contains("artifacts are not accepted"),
        || format!("a registry refusing artifacts: {err}"),
    )?;
    let out = run(Command::new(to_registry)
        .arg(format!("{host}/refused:v1"))
        .arg("--no-attach")
        .env("STRATA_PROGRESS", "none"))?;
    ensure(out.status.success(), || {
        format!(
            "--no-attach to a registry refusing artifacts: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
