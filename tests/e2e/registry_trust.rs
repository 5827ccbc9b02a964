//! Registries as users run them: HTTPS with a private CA (trusted through `--cert-dir`,
//! `SSL_CERT_FILE`, containers' `certs.d` and the system store), htpasswd authentication,
//! credentials from credential helpers; and registries that fail on the way (resets, 503
//! with `Retry-After`, stalls), through a fault-injecting proxy.

use super::fault_proxy::{Fault, FaultProxy, Rule};
use super::*;
use base64::Engine as _;
use std::time::{Duration, Instant};

/// A test CA and a certificate from it for 127.0.0.1 and localhost: (ca.crt, server.crt,
/// server.key).
fn test_pki(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).map_err(|e| e.to_string())?;
    let (ca, cert, key) = (
        pki.join("ca.crt"),
        pki.join("server.crt"),
        pki.join("server.key"),
    );
    let ext = pki.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    let openssl = |args: &[&str]| ok(Command::new("openssl").args(args).current_dir(&pki));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=strata e2e test CA",
            ],
        ]
        .concat(),
    )?;
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    Ok((ca, cert, key))
}

/// The helper with no credentials, CAs or proxies from the machine: HOME and the auth
/// files point into `dir`.
fn strata(dir: &Path) -> Command {
    let mut c = Command::new(repo().join("build/bootstrap/helper/bin/strata"));
    let home = dir.join("empty-home");
    let _ = std::fs::create_dir_all(&home);
    c.env("HOME", &home)
        .env("STRATA_PROGRESS", "none")
        .env("STRATA_CACHE_DIR", dir.join("trust-cache"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("DOCKER_CONFIG")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("NIX_SSL_CERT_FILE");
    c
}

/// Runs `cmd`; `Ok(stderr)` when it failed with a one-line error, `Err` otherwise.
fn fails(cmd: &mut Command) -> Result<String, String> {
    let out = run(cmd)?;
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    ensure(!out.status.success(), || {
        format!("{cmd:?} succeeded: {err}")
    })?;
    ensure(err.lines().count() == 1, || {
        format!("{cmd:?}: not one line: {err}")
    })?;
    Ok(err)
}

/// Runs `cmd`, requiring success; its stderr.
fn succeeds(cmd: &mut Command) -> Result<String, String> {
    let out = run(cmd)?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure(out.status.success(), || format!("{cmd:?} failed: {err}"))?;
    Ok(err)
}

/// Removes the test CA from the system store again when dropped.
struct SystemCa(PathBuf);

impl Drop for SystemCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = Command::new("update-ca-certificates")
            .arg("--fresh")
            .output();
    }
}

pub fn registries_with_tls_auth_and_credential_helpers(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, ctx.dir.clone());
    let plan = nix.build("appV1")?;
    let (ca, cert, key) = test_pki(&dir)?;
    let htpasswd = dir.join("htpasswd");
    let users = ok(Command::new("htpasswd").args(["-Bbn", "tester", "s3cret"]))?;
    std::fs::write(&htpasswd, users).map_err(|e| e.to_string())?;
    let registry = Registry::start_with(&dir, Some((&cert, &key)), Some(&htpasswd))?;
    let host = registry.host.clone();
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).map_err(|e| e.to_string())?;
    std::fs::copy(&ca, certs.join("ca.crt")).map_err(|e| e.to_string())?;
    let auth = dir.join("auth.json");
    let basic = base64::engine::general_purpose::STANDARD.encode("tester:s3cret");
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{basic}"}}}}}}"#),
    )
    .map_err(|e| e.to_string())?;
    let target = format!("{host}/tls/app:v1");
    let cert_dir = format!("--cert-dir={}", certs.display());

    // An unknown CA is named as such, not "cannot connect".
    let err = fails(
        strata(&dir)
            .args(["push", "--tls-verify"])
            .arg(&plan)
            .arg(&target),
    )?;
    ensure(
        err.contains("certificate signed by unknown authority"),
        || err.clone(),
    )?;
    // The CA trusted, no credentials: refused, saying where credentials were looked for.
    let err = fails(
        strata(&dir)
            .args(["push", "--tls-verify", &cert_dir])
            .arg(&plan)
            .arg(&target),
    )?;
    ensure(
        err.contains("refused access") && err.contains("no credentials"),
        || err.clone(),
    )?;
    // --cert-dir and basic credentials from an auth file.
    succeeds(
        strata(&dir)
            .args(["push", "--tls-verify", &cert_dir])
            .arg(&plan)
            .arg(&target)
            .env("REGISTRY_AUTH_FILE", &auth),
    )?;
    // SSL_CERT_FILE.
    let pulled = dir.join("tls-pulled.tar");
    succeeds(
        strata(&dir)
            .args(["pull", "--tls-verify", "-o"])
            .arg(&pulled)
            .arg(&target)
            .env("REGISTRY_AUTH_FILE", &auth)
            .env("SSL_CERT_FILE", &ca),
    )?;
    // certs.d under the user's config, credentials from a credential helper docker's
    // config names for the host.
    let home = dir.join("helper-home");
    let certs_d = home.join(".config/containers/certs.d").join(&host);
    std::fs::create_dir_all(&certs_d).map_err(|e| e.to_string())?;
    std::fs::copy(&ca, certs_d.join("ca.crt")).map_err(|e| e.to_string())?;
    let bin = dir.join("helper-bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let script = |name: &str, body: &str| -> Check {
        let path = bin.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).map_err(|e| e.to_string())?;
        ok(Command::new("chmod").arg("+x").arg(&path)).map(drop)
    };
    script(
        "strata-test",
        &format!(
            r#"read server; [ "$1" = get ] && [ "$server" = "{host}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}; echo '{{"ServerURL":"{host}","Username":"tester","Secret":"s3cret"}}'"#
        ),
    )?;
    script("strata-broken", "echo 'the keychain is locked' >&2; exit 3")?;
    let config = dir.join("docker-config");
    std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let with_helper = |helper: &str, key: &str| -> Result<Command, String> {
        let json = if key == "credsStore" {
            format!(r#"{{"credsStore":"{helper}"}}"#)
        } else {
            format!(r#"{{"credHelpers":{{"{host}":"{helper}"}}}}"#)
        };
        std::fs::write(config.join("config.json"), json).map_err(|e| e.to_string())?;
        let mut c = strata(&dir);
        c.env("HOME", &home)
            .env("DOCKER_CONFIG", &config)
            .env("PATH", &path);
        Ok(c)
    };
    let printed =
        ok(with_helper("strata-test", "credHelpers")?.args(["prefetch", "--tls-verify", &target]))?;
    ensure(printed.contains("imageDigest = \"sha256:"), || {
        printed.clone()
    })?;
    succeeds(
        with_helper("strata-test", "credsStore")?
            .args(["push", "--tls-verify"])
            .arg(&plan)
            .arg(format!("{host}/tls/app:helper")),
    )?;
    let err = fails(
        with_helper("strata-broken", "credHelpers")?
            .args(["push"])
            .arg(&plan)
            .arg(&target),
    )?;
    ensure(
        err.contains("docker-credential-strata-broken get")
            && err.contains("the keychain is locked"),
        || err.clone(),
    )?;
    let err = fails(
        with_helper("strata-missing", "credsStore")?
            .args(["push"])
            .arg(&plan)
            .arg(&target),
    )?;
    ensure(
        err.contains("docker-credential-strata-missing") && err.contains("not found on PATH"),
        || err.clone(),
    )?;
    // --tls-verify=false: HTTPS without checks (no CA given).
    succeeds(
        strata(&dir)
            .args(["push", "--tls-verify=false"])
            .arg(&plan)
            .arg(format!("{host}/tls/app:unchecked"))
            .env("REGISTRY_AUTH_FILE", &auth),
    )?;
    // The system store (update-ca-certificates), nothing else given.
    let installed = SystemCa(PathBuf::from(
        "/usr/local/share/ca-certificates/strata-e2e-test.crt",
    ));
    std::fs::copy(&ca, &installed.0).map_err(|e| e.to_string())?;
    ok(&mut Command::new("update-ca-certificates"))?;
    let from_store = dir.join("tls-store.tar");
    succeeds(
        strata(&dir)
            .args(["pull", "--tls-verify", "-o"])
            .arg(&from_store)
            .arg(&target)
            .env("REGISTRY_AUTH_FILE", &auth),
    )?;
    // pullImage in the sandbox trusts it too: Nix gives fixed-output builds the machine's
    // CA bundle.
    let open = Registry::start_with(&dir, Some((&cert, &key)), None)?;
    let image = format!("{}/open/app:v1", open.host);
    succeeds(strata(&dir).args(["push"]).arg(&plan).arg(&image))?;
    let prefetched = ok(strata(&dir).args(["prefetch", "--json", "--tls-verify", &image]))?;
    let mut args: Value =
        serde_json::from_str(&prefetched).map_err(|e| format!("{e}: {prefetched}"))?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    args["name"] = Value::from(format!("pulled-tls-{nonce}.tar"));
    let out = nix.build_with(("pullArgs", &args.to_string()), "pulled", false)?;
    ensure(out.status.success(), || {
        format!("pullImage: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let built = String::from_utf8_lossy(&out.stdout).into_owned();
    let loaded = feed(Path::new(built.trim()), docker.cmd().arg("load"))?;
    ensure(loaded.contains(&image), || format!("docker load: {loaded}"))?;
    let out = docker.run(&image, &[])?;
    ensure(out.ends_with("app 1\n"), || {
        format!("docker run printed {out:?}")
    })?;
    drop(installed);
    // An HTTPS client meeting a plain-HTTP registry is told so.
    let plain = Registry::start(&dir)?;
    let err = fails(
        strata(&dir)
            .args(["push", "--tls-verify"])
            .arg(&plan)
            .arg(format!("{}/app:v1", plain.host)),
    )?;
    ensure(err.contains("speaks plain HTTP"), || err.clone())?;
    // A failed pull leaves the file that was there.
    let kept = dir.join("kept.tar");
    std::fs::write(&kept, "mine").map_err(|e| e.to_string())?;
    fails(
        strata(&dir)
            .args(["pull", "-o"])
            .arg(&kept)
            .arg("127.0.0.1:1/none:v1")
            .env("STRATA_REGISTRY_ATTEMPTS", "1"),
    )?;
    ensure(
        std::fs::read_to_string(&kept).map_err(|e| e.to_string())? == "mine",
        || "a failed pull changed the file".into(),
    )?;
    // skopeo copies what was pushed; docker runs it.
    let copied = dir.join("tls-copied.tar");
    let _ = std::fs::remove_file(&copied);
    ok(Command::new("skopeo")
        .args([
            "copy",
            "--src-creds",
            "tester:s3cret",
            &format!("--src-cert-dir={}", certs.display()),
        ])
        .arg(format!("docker://{target}"))
        .arg(format!("docker-archive:{}:strata-tls:v1", copied.display())))?;
    feed(&copied, docker.cmd().arg("load"))?;
    let out = docker.run("strata-tls:v1", &[])?;
    ensure(out.ends_with("app 1\n"), || {
        format!("docker run printed {out:?}")
    })?;
    feed(&pulled, docker.cmd().arg("load"))?;
    Ok(())
}

pub fn registry_faults_are_retried_or_reported(ctx: &mut Context) -> Check {
    let (nix, docker, dir) = (&mut ctx.nix, &mut ctx.docker, ctx.dir.clone());
    let plan = nix.build("appV2")?;
    let registry = Registry::start(&dir)?;
    let proxy = FaultProxy::start(&registry.host)?;
    let via = |path: &str| format!("{}/{path}", proxy.host);
    let cache = dir.join("faults-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let faulty = |rules: Vec<Rule>| {
        proxy.set(rules);
        let mut c = strata(&dir);
        c.env("STRATA_CACHE_DIR", &cache)
            .env("STRATA_REGISTRY_TIMEOUT", "3");
        c
    };
    let rule = |pattern, fault, times| Rule {
        pattern,
        fault,
        times,
    };
    // A fresh repository: layers go in chunks. A chunk cut off, 503s on the blob's closing
    // PUT and on the manifest, a stalled tag list: the push completes.
    let started = Instant::now();
    let err = succeeds(
        faulty(vec![
            rule("PATCH ", Fault::ResetInBody(100_000), 1),
            rule("PUT /v2/faults/app/blobs/", Fault::Unavailable("{}"), 1),
            rule("PUT /v2/faults/app/manifests/", Fault::Unavailable("{}"), 1),
            rule("GET /v2/faults/app/tags/list", Fault::Stall, 1),
        ])
        .arg("push")
        .arg(&plan)
        .arg(via("faults/app:v2")),
    )?;
    let injected = proxy.injected();
    ensure(injected.len() == 4, || {
        format!("faults injected: {injected:?}; {err}")
    })?;
    // A hang guard, not a speed target: the faults cost a few seconds of retries; a push
    // stuck on the stalled tag list would never end.
    ensure(started.elapsed() < Duration::from_secs(90), || {
        format!("took {:?}", started.elapsed())
    })?;
    // Monolithic uploads (digests now cached) cut off mid-body, and a reset HEAD.
    let err = succeeds(
        faulty(vec![
            rule(
                "PUT /v2/faults/other/blobs/uploads/",
                Fault::ResetInBody(50_000),
                2,
            ),
            rule("HEAD /v2/faults/other/blobs/", Fault::ResetInAnswer(0), 1),
        ])
        .arg("push")
        .arg(&plan)
        .arg(via("faults/other:v2")),
    )?;
    let injected = proxy.injected();
    ensure(injected.len() == 3, || {
        format!("faults injected: {injected:?}; {err}")
    })?;
    // A registry that stays unavailable: the push gives up with its reason, naming the tries.
    let started = Instant::now();
    let err = fails(
        faulty(vec![rule(
            "PUT /v2/faults/down/manifests/",
            Fault::Unavailable(
                r#"{"errors":[{"code":"UNAVAILABLE","message":"registry in maintenance"}]}"#,
            ),
            100,
        )])
        .env("STRATA_REGISTRY_ATTEMPTS", "3")
        .arg("push")
        .arg(&plan)
        .arg(via("faults/down:v2")),
    )?;
    ensure(
        err.contains("HTTP 503")
            && err.contains("registry in maintenance")
            && err.contains("after 3 tries"),
        || err.clone(),
    )?;
    // A hang guard, not a speed target: three tries with their back-off take seconds.
    ensure(started.elapsed() < Duration::from_secs(60), || {
        format!("gave up after {:?}", started.elapsed())
    })?;
    // A pull whose layer download is cut off resumes it; a 503 on the manifest is retried.
    let pulled = dir.join("faults-pulled.tar");
    let err = succeeds(
        faulty(vec![
            rule("GET /v2/faults/app/blobs/", Fault::ResetInAnswer(20_000), 1),
            rule("GET /v2/faults/app/manifests/", Fault::Unavailable("{}"), 1),
        ])
        .args(["pull", "-o"])
        .arg(&pulled)
        .arg(via("faults/app:v2")),
    )?;
    let injected = proxy.injected();
    ensure(injected.len() == 2, || {
        format!("faults injected: {injected:?}; {err}")
    })?;
    feed(&pulled, docker.cmd().arg("load"))?;
    let out = docker.run(&via("faults/app:v2"), &[])?;
    ensure(out.ends_with("app 2\n"), || {
        format!("docker run printed {out:?}")
    })?;
    // What went through the faults is intact: skopeo copies it from the registry itself.
    let copied = dir.join("faults-copied.tar");
    let _ = std::fs::remove_file(&copied);
    ok(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/faults/other:v2", registry.host))
        .arg(format!(
            "docker-archive:{}:strata-faults:v2",
            copied.display()
        )))?;
    feed(&copied, docker.cmd().arg("load"))?;
    let out = docker.run("strata-faults:v2", &[])?;
    ensure(out.ends_with("app 2\n"), || {
        format!("docker run printed {out:?}")
    })?;
    Ok(())
}
