//! The root-free tier: the `strata` binary run on the fixtures in `tests/fixtures/`, with no
//! root, Nix or daemon. Builders get a hand-written `.attrs.json` and a scratch build
//! directory, as Nix would give them; outputs and exit codes are checked against golden
//! files. Runs in seconds.

#[path = "util/mod.rs"]
mod util;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use util::{describe, fixture, tarsum_fixtures};

/// The binary under test.
fn strata() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    // No user cache (a directory under /dev/null cannot be made): what a command prints
    // depends on its arguments alone.
    cmd.env("STRATA_PROGRESS", "none")
        .env("STRATA_CACHE_DIR", "/dev/null/no-cache");
    cmd
}

/// Runs `cmd` with `stdin`, returning its output.
fn run_with(cmd: &mut Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `cmd`, which must succeed; returns stdout.
fn success(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("strata runs");
    assert!(out.status.success(), "{}", describe(cmd, &out));
    out.stdout
}

/// Runs `cmd`, which must fail with `code` and one line on stderr; returns that line.
fn failure(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().expect("strata runs");
    assert_eq!(out.status.code(), Some(code), "{}", describe(cmd, &out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("strata: error: "), "{err}");
    err.trim_end().to_owned()
}

/// A scratch build directory: what `NIX_BUILD_TOP` is to a builder.
struct Build(tempfile::TempDir);

impl Build {
    fn new() -> Build {
        Build(tempfile::tempdir().unwrap())
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }

    /// Runs builder `command` with `attrs` (plus `outputs.out` = `out`), as Nix would.
    fn builder(&self, command: &str, attrs: Value, out: &str) -> Command {
        let mut attrs = attrs;
        attrs["outputs"] = json!({ "out": self.path(out) });
        let file = self.path(&format!("{command}.attrs.json"));
        std::fs::write(&file, serde_json::to_vec(&attrs).unwrap()).unwrap();
        let mut cmd = strata();
        cmd.args([command, "--attrs"])
            .arg(&file)
            .env("NIX_BUILD_TOP", self.0.path());
        cmd
    }
}

/// Members of a tar: name → bytes.
fn members(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    let mut out = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(e.path().unwrap().to_string_lossy().into_owned(), data);
    }
    out
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn tarsum_golden_files_match_dockers_sums() {
    let cases = tarsum_fixtures().unwrap();
    assert!(cases.len() >= 10, "{} cases", cases.len());
    // Every case is run and every failure reported, not only the first.
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, tar, sums)| {
            let out = run_with(strata().args(["tarsum", "--tarsum-version", "all"]), &tar);
            let got = String::from_utf8_lossy(&out.stdout);
            (!out.status.success() || got != sums)
                .then(|| format!("{name}: {out:?}, wanted {sums:?}"))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Every closure shape gives the golden layering for `max` layers; all shapes are run
/// before a failure is reported.
fn layers_of_every_closure_shape_match_the_golden_layering(max: usize) {
    let golden = std::fs::read(fixture(&format!("closures/layers-max{max}.golden.json"))).unwrap();
    let differ: Vec<&str> = [
        "export-references-graph",
        "path-info-object",
        "structured-attrs",
    ]
    .into_iter()
    .filter(|shape| {
        let out = success(
            strata()
                .args(["layers", "--max-layers", &max.to_string(), "--closure"])
                .arg(fixture(&format!("closures/{shape}.json"))),
        );
        json_of(&out) != json_of(&golden)
    })
    .collect();
    assert!(
        differ.is_empty(),
        "maxLayers {max}: {differ:?} differ from the golden file"
    );
}

#[test]
fn layers_of_every_closure_shape_match_the_golden_layering_at_3() {
    layers_of_every_closure_shape_match_the_golden_layering(3);
}

#[test]
fn layers_of_every_closure_shape_match_the_golden_layering_at_100() {
    layers_of_every_closure_shape_match_the_golden_layering(100);
}

#[test]
fn a_family_of_one_closure_twice_has_the_same_layers_in_both() {
    let closure = fixture("closures/export-references-graph.json");
    let out = success(
        strata()
            .args(["layers", "--max-layers", "10", "--closure"])
            .arg(&closure)
            .arg("--family")
            .arg(&closure),
    );
    let members = json_of(&out);
    assert_eq!(members.as_array().unwrap().len(), 2);
    assert_eq!(members[0], members[1]);
    let report = json_of(&success(
        strata()
            .args(["layers", "--max-layers", "10", "--measure", "--closure"])
            .arg(&closure)
            .arg("--family")
            .arg(&closure),
    ));
    assert_eq!(report["pairs"][0]["sharing"]["ratio"], 1.0);
    assert_eq!(report["storedRatio"], 1.0);
}

#[test]
fn bad_command_lines_exit_2_and_bad_inputs_exit_1() {
    let line = failure(strata().arg("--bogus"), 2);
    assert!(line.contains("--bogus"), "{line}");
    let line = failure(
        strata()
            .args(["layers", "--max-layers", "1", "--closure"])
            .arg(fixture("closures/export-references-graph.json")),
        1,
    );
    assert!(
        line.contains("`maxLayers`") && line.contains("got 1"),
        "{line}"
    );
    let line = failure(
        strata().args(["layers", "--closure", "/nonexistent.json"]),
        1,
    );
    assert!(line.contains("/nonexistent.json"), "{line}");
    let line = failure(
        strata()
            .args(["layers", "--closure"])
            .arg(fixture("parents/oci-layout.tar")),
        1,
    );
    assert!(line.contains("malformed closure file"), "{line}");
    let line = failure(
        strata().args(["archive", "--plan", "/nonexistent", "--output", "/dev/null"]),
        1,
    );
    assert!(line.contains("`/nonexistent`"), "{line}");
    let out = run_with(strata().args(["tarsum", "--tarsum-version", "v9"]), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--tarsum-version`"));
    // References are refused before any request: a digest that is none, a host that is
    // none, a tag docker refuses, a repository climbing out of /v2/.
    let wrong: Vec<String> = [
        ("127.0.0.1:1/x@1", "is not a digest"),
        ("!127.0.0.1:0000/x", "is not a host"),
        ("127.0.0.1:1/x:bad tag", "a tag is"),
        ("127.0.0.1:1/../x", "each part of the repository name"),
    ]
    .into_iter()
    .filter_map(|(reference, why)| {
        let line = failure(strata().args(["prefetch", reference]), 1);
        let told = line.contains(&format!("`{reference}` is not an image reference"))
            && line.contains(why);
        (!told).then(|| format!("{reference}: {line}"))
    })
    .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The customisation layer of the `rootfs/hello` fixture, built in `build`.
fn customisation_layer(build: &Build) -> PathBuf {
    let attrs = json!({
        "contents": [fixture("rootfs/hello")],
        "extraCommands": "",
        "toolbox": "/nonexistent-toolbox",
        "mtime": "1970-01-01T00:00:01Z",
        "includeStorePaths": false,
    });
    success(&mut build.builder("customisation-layer", attrs, "custom"));
    build.path("custom")
}

/// The plan of an image of the customisation layer alone.
fn plan(build: &Build, custom: &Path, extra: Value) -> PathBuf {
    let mut attrs = json!({
        "helperBin": env!("CARGO_BIN_EXE_strata"),
        "imageName": "Fixture",
        "tag": "1",
        "imageSystem": "aarch64-linux",
        "created": "1970-01-01T00:00:01Z",
        "mtime": "1970-01-01T00:00:01Z",
        "uid": 0, "gid": 0, "uname": "root", "gname": "root",
        "maxLayers": 100,
        "includeStorePaths": false,
        "config": {"Cmd": ["/bin/hello"]},
        "customisationLayer": custom,
    });
    for (k, v) in extra.as_object().unwrap() {
        attrs[k] = v.clone();
    }
    success(&mut build.builder("plan", attrs, "plan"));
    build.path("plan")
}

#[test]
fn a_builder_attribute_of_the_wrong_type_is_named() {
    // What reaches the helper when the Nix checks are bypassed (a hand-made derivation):
    // the attribute at fault is named, flattened settings (the plan's stamp) included.
    let build = Build::new();
    let custom = customisation_layer(&build);
    let mut attrs = json!({
        "helperBin": env!("CARGO_BIN_EXE_strata"),
        "imageName": "fixture",
        "imageSystem": "aarch64-linux",
        "created": "1970-01-01T00:00:01Z",
        "mtime": "1970-01-01T00:00:01Z",
        "uid": "root", "gid": 0, "uname": "root", "gname": "root",
        "maxLayers": 100,
        "includeStorePaths": false,
        "customisationLayer": custom,
    });
    let line = failure(&mut build.builder("plan", attrs.clone(), "plan"), 1);
    assert!(
        line.ends_with(r#"`: uid: invalid type: string "root", expected u64"#),
        "{line}"
    );
    attrs["uid"] = json!(0);
    attrs["maxLayers"] = json!("100");
    let line = failure(&mut build.builder("plan", attrs, "plan"), 1);
    assert!(
        line.contains("`: maxLayers: invalid type: string"),
        "{line}"
    );
    let attrs = json!({
        "contents": [fixture("rootfs/hello"), 5],
        "extraCommands": "",
        "toolbox": "/nonexistent-toolbox",
        "mtime": "1970-01-01T00:00:01Z",
        "includeStorePaths": false,
    });
    let line = failure(&mut build.builder("customisation-layer", attrs, "bad"), 1);
    assert!(
        line.contains("`: contents[1]: invalid type: integer `5`"),
        "{line}"
    );
}

#[test]
fn a_plan_streams_and_archives_the_same_image_twice() {
    let build = Build::new();
    let custom = customisation_layer(&build);
    let record = json_of(&std::fs::read(custom.join("record.json")).unwrap());
    let layer = std::fs::read(custom.join("layer.tar")).unwrap();
    assert_eq!(record["size"], layer.len());
    let names: Vec<String> = members(&layer).into_keys().collect();
    assert_eq!(names, ["bin/", "bin/hello", "etc/", "etc/hello.conf"]);

    let plan = plan(&build, &custom, json!({}));
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(text.starts_with(&format!("#!{} stream\n", env!("CARGO_BIN_EXE_strata"))));
    let streamed = success(strata().arg("stream").arg(&plan).stdout(Stdio::piped()));
    assert_eq!(
        streamed,
        success(strata().arg("stream").arg(&plan)),
        "reproducible"
    );
    let m = members(&streamed);
    let manifest = json_of(&m["manifest.json"]);
    assert_eq!(manifest[0]["RepoTags"], json!(["fixture:1"]));
    let config = json_of(&m[manifest[0]["Config"].as_str().unwrap()]);
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["config"], json!({"Cmd": ["/bin/hello"]}));
    assert_eq!(config["rootfs"]["diff_ids"][0], record["diffId"]);
    assert!(m.contains_key("index.json") && m.contains_key("oci-layout"));
}

/// `strata archive --compressor NAME` writes an archive starting with `magic`.
fn a_plan_archives_compressed(compressor: &str, magic: &[u8]) {
    let build = Build::new();
    let custom = customisation_layer(&build);
    let plan = plan(&build, &custom, json!({}));
    let file = build.path("image.archive");
    success(
        strata()
            .args(["archive", "--compressor", compressor, "--plan"])
            .arg(&plan)
            .arg("--output")
            .arg(&file),
    );
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(magic), "{compressor}");
}

#[test]
fn a_plan_archives_gzipped() {
    a_plan_archives_compressed("gz", &[0x1f, 0x8b]);
}

#[test]
fn a_plan_archives_gzipped_by_the_long_name() {
    a_plan_archives_compressed("gzip", &[0x1f, 0x8b]);
}

#[test]
fn a_plan_archives_zstd() {
    a_plan_archives_compressed("zstd", &[0x28, 0xb5]);
}

#[test]
fn a_plan_with_zstd_chunked_layers_archives_them_with_their_annotations_and_imports_back() {
    let build = Build::new();
    let custom = customisation_layer(&build);
    let plan = plan(&build, &custom, json!({"layerCompressor": "zstd:chunked"}));
    let file = build.path("image.tar");
    let archive = |file: &Path| {
        success(
            strata()
                .args(["archive", "--compressor", "none", "--plan"])
                .arg(&plan)
                .arg("--output")
                .arg(file),
        );
        std::fs::read(file).unwrap()
    };
    let bytes = archive(&file);
    assert!(archive(&build.path("again.tar")) == bytes, "reproducible");
    let m = members(&bytes);
    let index = json_of(&m["index.json"]);
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let oci = json_of(&m[&format!("blobs/sha256/{}", &digest[7..])]);
    let layer = &oci["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let annotations = layer["annotations"].as_object().unwrap();
    let keys: Vec<&str> = annotations.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "io.github.containers.zstd-chunked.manifest-checksum",
            "io.github.containers.zstd-chunked.manifest-position",
            "io.github.containers.zstd-chunked.tarsplit-position",
        ]
    );
    let blob = &m[&format!("blobs/sha256/{}", &layer["digest"].as_str().unwrap()[7..])];
    let plain = zstd::decode_all(&blob[..]).unwrap();
    let config = json_of(&m[json_of(&m["manifest.json"])[0]["Config"].as_str().unwrap()]);
    let diff_id = format!("sha256:{}", strata::digest::Digest::of(&plain).hex());
    assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.as_str());
    let position = annotations["io.github.containers.zstd-chunked.manifest-position"]
        .as_str()
        .unwrap();
    let numbers: Vec<usize> = position.split(':').map(|n| n.parse().unwrap()).collect();
    let toc = zstd::decode_all(&blob[numbers[0]..numbers[0] + numbers[1]]).unwrap();
    assert_eq!(toc.len(), numbers[2]);
    assert!(json_of(&toc)["entries"].as_array().unwrap().len() == 4);
    // Read back as a parent: a zstd:chunked layer is zstd to every reader.
    success(&mut build.builder("import-parent", json!({ "fromImage": file }), "parent"));
    let parent = json_of(&std::fs::read(build.path("parent/parent.json")).unwrap());
    assert_eq!(parent["layers"].as_array().unwrap().len(), 1);
    // An archive is not a layer.
    let line = failure(
        strata()
            .args(["archive", "--compressor", "zstd:chunked", "--plan"])
            .arg(&plan)
            .arg("--output")
            .arg(build.path("no.tar.zst")),
        1,
    );
    assert!(line.contains("compresses layers, not archives"), "{line}");
}

#[test]
fn a_failed_archive_leaves_the_file_that_was_there() {
    // Regression: `--output` used to be truncated first and removed on failure.
    let build = Build::new();
    let custom = customisation_layer(&build);
    let plan = plan(&build, &custom, json!({}));
    std::fs::remove_file(custom.join("layer.tar")).unwrap();
    let file = build.path("image.tar.gz");
    std::fs::write(&file, b"the user's file").unwrap();
    let line = failure(
        strata()
            .args(["archive", "--compressor", "gz", "--plan"])
            .arg(&plan)
            .arg("--output")
            .arg(&file),
        1,
    );
    assert!(line.contains("layer.tar"), "{line}");
    assert_eq!(std::fs::read(&file).unwrap(), b"the user's file");
    let partial: Vec<_> = std::fs::read_dir(build.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("strata-partial"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
}

#[test]
fn a_plan_archives_uncompressed() {
    // A tar: its first member's name, then ustar's magic at 257.
    let build = Build::new();
    let custom = customisation_layer(&build);
    let plan = plan(&build, &custom, json!({}));
    let file = build.path("image.tar");
    success(
        strata()
            .args(["archive", "--compressor", "none", "--plan"])
            .arg(&plan)
            .arg("--output")
            .arg(&file),
    );
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(&bytes[257..262], b"ustar");
}

/// The fixture parent `archive` imports with `layers` layers, and exports with its upper
/// layers winning.
fn a_parent_archive_imports_and_exports(archive: &str, layers: usize) {
    let build = Build::new();
    let attrs = json!({ "fromImage": fixture(&format!("parents/{archive}.tar")) });
    success(&mut build.builder("import-parent", attrs, "parent"));
    let parent = json_of(&std::fs::read(build.path("parent/parent.json")).unwrap());
    assert_eq!(
        parent["layers"].as_array().unwrap().len(),
        layers,
        "{archive}"
    );
    let export = json!({ "parent": build.path("parent") });
    success(&mut build.builder("export-image", export, "rootfs.tar"));
    let rootfs = members(&std::fs::read(build.path("rootfs.tar")).unwrap());
    // nixpkgs' exportImage names: `./…`.
    let release = String::from_utf8_lossy(&rootfs["./etc/os-release"]).into_owned();
    let want = if layers == 2 {
        "ID=fixture-upper\n"
    } else {
        "ID=fixture\n"
    };
    assert_eq!(release, want, "{archive}: upper layers win");
    assert!(rootfs.contains_key("./bin/hello"), "{archive}");
}

#[test]
fn a_docker_archive_parent_imports_and_exports() {
    a_parent_archive_imports_and_exports("docker-archive", 2);
}

#[test]
fn an_oci_layout_parent_imports_and_exports() {
    a_parent_archive_imports_and_exports("oci-layout", 1);
}

/// The hostile fixture parent `archive` is refused, the line says `says`, nothing is left.
fn a_hostile_parent_is_refused(archive: &str, says: &str) {
    let build = Build::new();
    let attrs = json!({ "fromImage": fixture(&format!("parents/{archive}.tar")) });
    let line = failure(&mut build.builder("import-parent", attrs, "parent"), 1);
    assert!(
        line.contains(says) && line.contains("member `"),
        "{archive}: {line}"
    );
    let left: Vec<_> = std::fs::read_dir(build.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".attrs.json"))
        .collect();
    assert!(
        left.iter().all(|n| n == "parent" || n == "parent-members"),
        "{archive}: wrote {left:?}"
    );
}

#[test]
fn a_parent_climbing_out_by_dotdot_is_refused() {
    a_hostile_parent_is_refused("hostile-dotdot", "`..` component");
}

#[test]
fn a_parent_with_a_symlink_out_of_the_image_is_refused() {
    a_hostile_parent_is_refused("hostile-symlink-out", "points out of the image");
}

#[test]
fn a_parent_whose_layer_is_not_its_diff_id_is_refused() {
    a_hostile_parent_is_refused("hostile-wrong-diff-id", "diff_ids say");
}

#[test]
fn a_parent_under_a_plan_and_a_record_mismatch() {
    let build = Build::new();
    let custom = customisation_layer(&build);
    let attrs = json!({ "fromImage": fixture("parents/docker-archive.tar") });
    success(&mut build.builder("import-parent", attrs, "parent"));
    let plan = plan(
        &build,
        &custom,
        json!({ "parent": build.path("parent"), "config": {"Env": ["A=1"]} }),
    );
    let m = members(&success(strata().arg("stream").arg(&plan)));
    let manifest = json_of(&m["manifest.json"]);
    assert_eq!(manifest[0]["Layers"].as_array().unwrap().len(), 3);
    let config = json_of(&m[manifest[0]["Config"].as_str().unwrap()]);
    assert_eq!(
        config["config"]["Env"],
        json!(["PATH=/bin", "A=1"]),
        "Env inherited"
    );
    assert_eq!(config["history"].as_array().unwrap().len(), 3);

    // The customisation layer's bytes change after planning: streaming stops, naming it.
    let tar = custom.join("layer.tar");
    let mut bytes = std::fs::read(&tar).unwrap();
    let last = bytes.len() - 1100;
    bytes[last] ^= 1;
    std::fs::write(&tar, bytes).unwrap();
    let line = failure(strata().arg("stream").arg(&plan).stdout(Stdio::null()), 1);
    assert!(line.contains("layer 3 does not match its record"), "{line}");
}

#[test]
fn explain_reads_plans_and_archives_and_counts_what_a_change_moves() {
    let build = Build::new();
    let custom = customisation_layer(&build);
    let attrs = json!({ "fromImage": fixture("parents/docker-archive.tar") });
    success(&mut build.builder("import-parent", attrs, "parent"));
    let plan = plan(&build, &custom, json!({ "parent": build.path("parent") }));
    let e = json_of(&success(strata().args(["explain", "--json"]).arg(&plan)));
    assert_eq!(e["image"], "fixture:1");
    let whys: Vec<&str> = e["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["why"].as_str().unwrap())
        .collect();
    assert_eq!(
        whys,
        [
            "from fromImage",
            "from fromImage",
            "the customisation layer: contents, extraCommands, fakeRootCommands"
        ]
    );
    // Against the parent archive, its two layers are there and only the customisation layer
    // moves; its gzip bytes are not known before a push computes them.
    let e = json_of(&success(
        strata()
            .args(["explain", "--json", "--against"])
            .arg(fixture("parents/docker-archive.tar"))
            .arg(&plan),
    ));
    assert_eq!(
        (e["reusedLayers"].as_u64(), e["newLayers"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(e["layers"][2]["pushBytes"], Value::Null);
    assert_eq!(
        (e["newPushBytes"].as_u64(), e["pushBytesUnknown"].as_bool()),
        (Some(0), Some(true))
    );
    assert_eq!(e["newBytes"], e["layers"][2]["bytes"]);
    assert_eq!(e["layers"][2]["reused"], false);
    // A zstd:chunked partial pull of the new layer: its files with content (none here, as
    // none are in the parent), its TOC and tar-split.
    let pull = &e["chunkedPull"];
    assert_eq!(pull["bytes"], e["layers"][2]["chunkedPullBytes"]);
    assert_eq!(pull["files"], pull["filesMissing"]);
    assert!(pull["metadataBytes"].as_u64().unwrap() > 0, "{pull}");
    assert_eq!(
        pull["bytes"].as_u64(),
        Some(pull["fileBytes"].as_u64().unwrap() + pull["metadataBytes"].as_u64().unwrap())
    );
    assert_eq!(e["layers"][0].get("chunkedPullBytes"), None);
    // The zstd archive of the plan is the same image.
    let archive = build.path("image.zst");
    success(
        strata()
            .args(["archive", "--compressor", "zstd", "--plan"])
            .arg(&plan)
            .arg("--output")
            .arg(&archive),
    );
    let table = String::from_utf8(success(
        strata()
            .arg("explain")
            .arg(&archive)
            .arg("--against")
            .arg(&plan),
    ))
    .unwrap();
    assert!(
        table.starts_with("fixture:1: 3 layers")
            && table.contains("3 layers (")
            && table.ends_with("0 new (0 B): a push or pull moves 0 B\n"),
        "{table}"
    );
    let line = failure(
        strata()
            .arg("explain")
            .arg(fixture("closures/export-references-graph.json")),
        1,
    );
    assert!(
        line.contains("export-references-graph.json`: not a tar archive"),
        "{line}"
    );
}

#[test]
fn layers_measure_reports_excess_root_bumps_and_sharing() {
    let closure = fixture("closures/export-references-graph.json");
    let m = json_of(&success(
        strata()
            .args(["layers", "--measure", "--closure"])
            .arg(&closure)
            .arg("--shared-with")
            .arg(fixture("closures/path-info-object.json")),
    ));
    assert_eq!(
        (m["paths"].as_u64(), m["bumps"].as_u64()),
        (Some(7), Some(7))
    );
    assert!(m["excess"].as_f64().unwrap() >= 1.0, "{m}");
    assert_eq!(
        m["rootBumps"][0]["path"],
        "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-app-1.0"
    );
    assert_eq!(
        m["sharing"]["ratio"], 1.0,
        "the same closure shares everything"
    );
    let popularity = json_of(&success(
        strata()
            .args([
                "layers",
                "--measure",
                "--variant",
                "popularity",
                "--max-layers",
                "3",
                "--closure",
            ])
            .arg(&closure),
    ));
    assert_eq!(
        popularity["layers"], 2,
        "maxLayers 3 leaves 2 for store paths"
    );
}

/// How a measured run of the binary ended: exit code, stderr, peak resident memory in bytes.
struct Measured {
    code: Option<i32>,
    stderr: String,
    max_rss: u64,
}

/// Runs `cmd` to its end, `feed` writing its stdin from a thread (write errors, such as the
/// pipe closed by an early exit, end the feed), and measures the child's own peak memory
/// with `wait4`, which other tests' children running at the same time do not blur.
// std has no safe `wait4`; the child is ours and reaped by it exactly once (so clippy's
// zombie check, which looks for `wait()`, does not see it).
#[allow(unsafe_code, clippy::zombie_processes)]
fn run_measured(
    cmd: &mut Command,
    feed: impl FnOnce(&mut std::process::ChildStdin) -> std::io::Result<()> + Send + 'static,
) -> Measured {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata runs");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = feed(&mut stdin);
    });
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` has not been waited for; the pointers are to live locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    feeder.join().unwrap();
    Measured {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stderr,
        max_rss: usage.ru_maxrss as u64 * 1024,
    }
}

/// A raw ustar header for `name` of type `typeflag` declaring `size` bytes.
fn raw_header(name: &[u8], typeflag: u8, size: u64) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000001\0");
    h[156] = typeflag;
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A `.tar.gz` of `head` followed by `mib` MiB of `fill` bytes, written without compressing
/// them all: one gzip member of 1 MiB repeated (gzip readers read concatenated members as one
/// stream), so a file of a few megabytes expands to gigabytes.
fn expanding_gz(path: &Path, head: &[u8], fill: u8, mib: usize) {
    use std::io::Write;
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let chunk = gz(&vec![fill; 1 << 20]);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    file.write_all(&gz(head)).unwrap();
    for _ in 0..mib {
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
}

/// Most memory a refusal may take: far below the gigabytes the hostile inputs declare.
const RSS_BOUND: u64 = 500 << 20;

/// A hostile parent holding 2 GiB of `name` (typeflag `flag`), all really there in a 2 MB
/// `.tar.gz`: refused from its header, naming it and saying `says`, without holding or writing
/// the data.
fn issue_16_a_hostile_parent_is_refused_early_in_bounded_memory(name: &[u8], flag: u8, says: &str) {
    let build = Build::new();
    let archive = build.path("hostile.tar.gz");
    expanding_gz(&archive, &raw_header(name, flag, 2 << 30), b'a', 2048);
    let attrs = json!({ "fromImage": archive });
    let started = std::time::Instant::now();
    let run = run_measured(&mut build.builder("import-parent", attrs, "parent"), |_| {
        Ok(())
    });
    let shown = String::from_utf8_lossy(name);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("member `{shown}`")) && run.stderr.contains(says),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.max_rss < RSS_BOUND,
        "{shown}: {} bytes resident",
        run.max_rss
    );
    // A hang guard, not a speed target: refused from its header, the import takes well
    // under a second; one that read the 2 GiB would take minutes.
    assert!(
        started.elapsed().as_secs() < 60,
        "{shown}: {:?}",
        started.elapsed()
    );
    assert_build_dir_holds_only(&build, &["hostile.tar.gz"]);
}

#[test]
fn issue_16_a_2_gib_gnu_long_name_in_a_parent_is_refused() {
    issue_16_a_hostile_parent_is_refused_early_in_bounded_memory(
        b"././@LongLink",
        b'L',
        "a GNU long name of 2147483648 bytes",
    );
}

#[test]
fn issue_16_a_2_gib_pax_header_in_a_parent_is_refused() {
    issue_16_a_hostile_parent_is_refused_early_in_bounded_memory(
        b"././@PaxHeader",
        b'x',
        "a PAX header of 2147483648 bytes",
    );
}

#[test]
fn issue_16_a_2_gib_manifest_in_a_parent_is_refused() {
    issue_16_a_hostile_parent_is_refused_early_in_bounded_memory(
        b"manifest.json",
        b'0',
        "2147483648 bytes of JSON",
    );
}

/// Fails unless the build directory holds only `names` (and the attributes files).
fn assert_build_dir_holds_only(build: &Build, names: &[&str]) {
    let left: Vec<_> = std::fs::read_dir(build.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".attrs.json") && !names.contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn issue_16_a_decompression_bomb_stops_at_the_limit_and_the_default_takes_real_parents() {
    // A member declaring 8 GiB, 64 MiB of zeros there: with the limit lowered to 8 MiB the
    // import stops there, names the member and the override, and leaves nothing behind.
    let build = Build::new();
    let archive = build.path("bomb.tar.gz");
    expanding_gz(&archive, &raw_header(b"big", b'0', (8 << 30) - 1), 0, 64);
    let attrs = json!({ "fromImage": archive, "fromImageMaxBytes": 8 << 20 });
    let line = failure(&mut build.builder("import-parent", attrs, "parent"), 1);
    assert!(
        line.contains("member `big`: unpacking it passes 8388608 bytes")
            && line.contains("`fromImageMaxBytes` sets it"),
        "{line}"
    );
    assert_build_dir_holds_only(&build, &["bomb.tar.gz"]);

    // The fixtures, imported with the default limit, and with one set far above them.
    for max in [None, Some(1u64 << 40)] {
        let build = Build::new();
        let mut attrs = json!({ "fromImage": fixture("parents/oci-layout.tar") });
        if let Some(max) = max {
            attrs["fromImageMaxBytes"] = json!(max);
        }
        success(&mut build.builder("import-parent", attrs, "parent"));
        assert_build_dir_holds_only(&build, &["parent"]);
    }
}

#[test]
fn issue_16_tarsum_refuses_a_huge_pax_header_without_buffering_it() {
    // A 1 GiB PAX header fed on stdin: refused from its header; strata stops reading.
    let started = std::time::Instant::now();
    let run = run_measured(strata().arg("tarsum"), |stdin| {
        use std::io::Write;
        stdin.write_all(&raw_header(b"././@PaxHeader", b'x', 1 << 30))?;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..1024 {
            stdin.write_all(&chunk)?;
        }
        Ok(())
    });
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("an extension header of 1073741824 bytes, more than the 1048576"),
        "{}",
        run.stderr
    );
    assert!(run.max_rss < RSS_BOUND, "{} bytes resident", run.max_rss);
    // A hang guard, not a speed target: strata stops at the header; reading the 1 GiB would
    // take far longer.
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
}
