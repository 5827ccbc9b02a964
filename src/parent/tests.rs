use super::*;
use crate::compress::Compression;
use crate::digest::Digest;
use crate::tar::reader::{pax_records, raw_header};

/// A tar entry: name, typeflag, link target, data.
type Raw<'a> = (&'a [u8], u8, &'a [u8], &'a [u8]);

/// A raw ustar header: tests need names and links the `tar` crate's builder refuses.
fn header(name: &[u8], typeflag: u8, link: &[u8], size: usize) -> Vec<u8> {
    raw_header(name, typeflag, size as u64, link, false)
}

/// A tar of `(name, typeflag, link, data)` entries.
fn tar_of(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, flag, link, data) in entries {
        out.extend(header(name, *flag, link, data.len()));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend([0u8; 1024]);
    out
}

fn good_layer() -> Vec<u8> {
    tar_of(&[
        (b"nix/", b'5', b"", b""),
        (b"nix/store/", b'5', b"", b""),
        (b"nix/store/aaaa-hello/", b'5', b"", b""),
        (b"nix/store/aaaa-hello/hi", b'0', b"", b"hello\n"),
        (
            b"nix/store/aaaa-hello/same",
            b'1',
            b"nix/store/aaaa-hello/hi",
            b"",
        ),
        (b"bin", b'2', b"/nix/store/aaaa-hello", b""),
        (b"etc/up", b'2', b"../bin", b""),
    ])
}

fn config_for(layers: &[&[u8]]) -> Vec<u8> {
    let ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "FROM_PARENT=true"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
        "history": [{"created": "1970-01-01T00:00:01Z"}],
    }))
    .unwrap()
}

/// A docker-archive holding `layers` (as `<i>/layer.tar`) and `extra` members.
fn docker_archive(layers: &[&[u8]], config: &[u8], extra: &[Raw<'_>]) -> Vec<u8> {
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("{i}/layer.tar"))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "config.json", "RepoTags": ["parent:1"], "Layers": names,
    }]))
    .unwrap();
    let mut entries: Vec<Raw<'_>> = Vec::new();
    for (name, layer) in names.iter().zip(layers) {
        entries.push((name.as_bytes(), b'0', b"", layer));
    }
    entries.push((b"config.json", b'0', b"", config));
    entries.extend_from_slice(extra);
    entries.push((b"manifest.json", b'0', b"", &manifest));
    tar_of(&entries)
}

fn import_bytes(
    archive: &[u8],
    pick: Option<&str>,
) -> (tempfile::TempDir, Result<ParentImage, ParentError>) {
    import_limited(archive, pick, Limits::for_archive(archive.len() as u64))
}

fn import_limited(
    archive: impl Read,
    pick: Option<&str>,
    limits: Limits,
) -> (tempfile::TempDir, Result<ParentImage, ParentError>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let result = import(
        archive,
        pick,
        &out,
        &dir.path().join("scratch"),
        limits,
        &Progress::quiet(),
    );
    // The scratch files go however the import ends; a failed import leaves no output.
    assert!(!dir.path().join("scratch").exists(), "scratch left behind");
    assert_eq!(out.exists(), result.is_ok(), "{:?}", result.as_ref().err());
    (dir, result)
}

fn error_of(archive: &[u8]) -> String {
    let (dir, result) = import_bytes(archive, None);
    let err = result.expect_err("the archive must be refused").to_string();
    // Nothing is ever written outside the output and scratch directories.
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| n == "out" || n == "scratch"),
        "{names:?}"
    );
    err
}

#[test]
fn docker_archive_imports_layers_as_they_are() {
    let layer = good_layer();
    let config = config_for(&[&layer]);
    for compressor in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut e = compressor.encoder(Vec::new());
        e.write_all(&docker_archive(&[&layer], &config, &[]))
            .unwrap();
        let archive = e.finish().unwrap();
        let (_dir, result) = import_bytes(&archive, None);
        let parent = result.unwrap();
        assert_eq!(parent.layers.len(), 1);
        assert_eq!(parent.layers[0].record.diff_id, Digest::of(&layer));
        let LayerContent::Tarball { path } = &parent.layers[0].content else {
            panic!()
        };
        assert_eq!(fs::read(path).unwrap(), layer, "{compressor:?}");
        assert_eq!(
            parent.store_paths.iter().collect::<Vec<_>>(),
            ["aaaa-hello"]
        );
        assert_eq!(parent.runtime_config()["Env"][1], "FROM_PARENT=true");
    }
}

#[test]
fn layers_with_absolute_names_as_nixpkgs_writes_them_import() {
    // nixpkgs' streamer names layer members `/nix/store/…`; docker reads `/` as the root.
    let layer = tar_of(&[
        (b"/nix", b'5', b"", b""),
        (b"/nix/store", b'5', b"", b""),
        (b"/nix/store/aaaa-hello", b'5', b"", b""),
        (b"/nix/store/aaaa-hello/hi", b'0', b"", b"hi\n"),
    ]);
    let config = config_for(&[&layer]);
    let (_dir, result) = import_bytes(&docker_archive(&[&layer], &config, &[]), None);
    let parent = result.unwrap();
    assert_eq!(
        parent.store_paths.iter().collect::<Vec<_>>(),
        ["aaaa-hello"]
    );
}

#[test]
fn images_are_picked_by_name_and_tag() {
    let layer = good_layer();
    let archive = docker_archive(&[&layer], &config_for(&[&layer]), &[]);
    assert!(import_bytes(&archive, Some("parent:1")).1.is_ok());
    assert!(import_bytes(&archive, Some("docker.io/library/parent:1"))
        .1
        .is_ok());
    let err = import_bytes(&archive, Some("parent:2"))
        .1
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("parent:2") && err.contains("parent:1"),
        "{err}"
    );
}

#[test]
fn oci_layout_with_compressed_layers_imports() {
    let layer = good_layer();
    let mut e = Compression::Gzip.encoder(Vec::new());
    e.write_all(&layer).unwrap();
    let gz = e.finish().unwrap();
    let config = config_for(&[&layer]);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": Digest::of(&gz).to_string(), "size": gz.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of(&manifest).to_string(), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "1"}}],
    }))
    .unwrap();
    let blob = |b: &[u8]| format!("blobs/sha256/{}", Digest::of(b).hex());
    let (m, c, l) = (blob(&manifest), blob(&config), blob(&gz));
    let archive = tar_of(&[
        (
            b"oci-layout",
            b'0',
            b"",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        ),
        (b"index.json", b'0', b"", &index),
        (m.as_bytes(), b'0', b"", &manifest),
        (c.as_bytes(), b'0', b"", &config),
        (l.as_bytes(), b'0', b"", &gz),
    ]);
    let parent = import_bytes(&archive, Some("parent:1")).1.unwrap();
    assert_eq!(parent.layers[0].record.diff_id, Digest::of(&layer));

    // A blob whose bytes do not match its digest.
    let mut bad = gz.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let archive = tar_of(&[
        (b"index.json", b'0', b"", &index),
        (m.as_bytes(), b'0', b"", &manifest),
        (c.as_bytes(), b'0', b"", &config),
        (l.as_bytes(), b'0', b"", &bad),
    ]);
    let err = error_of(&archive);
    assert!(err.contains(&l), "{err}");
}

#[test]
fn hostile_layers_are_refused_naming_the_member() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tar_of(&[(b"../evil", b'0', b"", b"x")]), "`..`"),
        (tar_of(&[(b"/../etc/passwd", b'0', b"", b"x")]), "`..`"),
        (
            tar_of(&[(b"/f", b'0', b"", b"1"), (b"f", b'0', b"", b"2")]),
            "twice",
        ),
        (
            tar_of(&[(b"a/b", b'2', b"../../../etc", b"")]),
            "points out",
        ),
        (tar_of(&[(b"h", b'1', b"../outside", b"")]), "hard link"),
        (tar_of(&[(b"h", b'1', b"nowhere", b"")]), "hard link"),
        (tar_of(&[(b"dev/sda", b'4', b"", b"")]), "device node"),
        (tar_of(&[(b"dev/null", b'3', b"", b"")]), "device node"),
        (
            tar_of(&[(b"f", b'0', b"", b"1"), (b"./f", b'0', b"", b"2")]),
            "twice",
        ),
    ];
    for (layer, why) in cases {
        let archive = docker_archive(&[&layer], &config_for(&[&layer]), &[]);
        let err = error_of(&archive);
        assert!(
            err.contains("0/layer.tar: ") && err.contains(why),
            "{why}: {err}"
        );
    }
}

#[test]
fn lying_archives_are_refused() {
    let layer = good_layer();
    let config = config_for(&[&layer]);

    // The manifest names a layer the archive lacks.
    let manifest = br#"[{"Config":"config.json","Layers":["missing.tar"]}]"#;
    let archive = tar_of(&[
        (b"config.json", b'0', b"", &config),
        (b"manifest.json", b'0', b"", manifest),
    ]);
    let err = error_of(&archive);
    assert!(
        err.contains("missing.tar") && err.contains("not in the archive"),
        "{err}"
    );

    // A diff_id that does not match.
    let other = tar_of(&[(b"f", b'0', b"", b"other")]);
    let err = error_of(&docker_archive(&[&layer], &config_for(&[&other]), &[]));
    assert!(
        err.contains("0/layer.tar") && err.contains("diff_ids"),
        "{err}"
    );

    // A member whose size says more than the archive holds.
    let mut archive = docker_archive(&[&layer], &config, &[]);
    archive.truncate(512 + 100);
    let err = error_of(&archive);
    assert!(!err.is_empty());

    // A layer entry whose size lies (truncated layer).
    let mut short = good_layer();
    short.truncate(512 * 4 + 3);
    let err = error_of(&docker_archive(&[&short], &config_for(&[&short]), &[]));
    assert!(err.contains("0/layer.tar"), "{err}");

    // Archive members with escaping names (a leading `/` is the root, as in layers).
    for name in [&b"../x"[..], b"/../x"] {
        let err = error_of(&docker_archive(
            &[&layer],
            &config,
            &[(name, b'0', b"", b"x")],
        ));
        assert!(err.contains(&*String::from_utf8_lossy(name)), "{err}");
    }
    let err = error_of(&docker_archive(
        &[&layer],
        &config,
        &[(b"l", b'2', b"../../x", b"")],
    ));
    assert!(err.contains("`l`"), "{err}");
    let err = error_of(&docker_archive(
        &[&layer],
        &config,
        &[(b"config.json", b'0', b"", b"{}")],
    ));
    assert!(err.contains("twice"), "{err}");
    let err = error_of(&docker_archive(
        &[&layer],
        &config,
        &[(b"null", b'3', b"", b"")],
    ));
    assert!(err.contains("`null`"), "{err}");
}

#[test]
fn layers_named_twice_through_links_import() {
    // nixpkgs #214434: a manifest listing one layer twice, via symlinked members.
    let layer = good_layer();
    let config = config_for(&[&layer, &layer]);
    let manifest = br#"[{"Config":"config.json","Layers":["a/layer.tar","b/layer.tar"]}]"#;
    let archive = tar_of(&[
        (b"a/layer.tar", b'0', b"", &layer),
        (b"b/layer.tar", b'2', b"../a/layer.tar", b""),
        (b"config.json", b'0', b"", &config),
        (b"manifest.json", b'0', b"", manifest),
    ]);
    let parent = import_bytes(&archive, None).1.unwrap();
    assert_eq!(parent.layers.len(), 2);
}

/// `bytes` gzipped, quickly.
fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Counts the bytes read through it, to show a refusal came early.
struct Counting<R>(R, std::rc::Rc<std::cell::Cell<u64>>);

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.set(self.1.get() + n as u64);
        Ok(n)
    }
}

/// Imports `head` followed by an endless stream of `fill` bytes: the error, and how many
/// bytes were read before it.
fn endless_import(head: Vec<u8>, fill: u8) -> (String, u64) {
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let source = Counting(io::Cursor::new(head).chain(io::repeat(fill)), read.clone());
    let (_dir, result) = import_limited(source, None, Limits::for_archive(1 << 20));
    (result.expect_err("refused").to_string(), read.get())
}

#[test]
fn issue_16_huge_extension_headers_and_json_are_refused_before_they_are_read() {
    // A 2 GiB GNU long name, PAX header or manifest.json whose bytes are really there: refused
    // from the header, after a few kilobytes read (the BufReader of decompression reads ahead
    // by 1 MiB), nothing held or written.
    for (name, flag, says) in [
        (
            &b"././@LongLink"[..],
            b'L',
            "GNU long name of 2147483648 bytes",
        ),
        (b"././@PaxHeader", b'x', "PAX header of 2147483648 bytes"),
        (b"manifest.json", b'0', "2147483648 bytes of JSON"),
    ] {
        let (err, read) = endless_import(header(name, flag, b"", 2 << 30), b'a');
        assert!(
            err.contains(&format!("member `{}`", String::from_utf8_lossy(name)))
                && err.contains(says),
            "{err}"
        );
        assert!(read <= 2 << 20, "{says}: read {read} bytes");
    }

    // The same inside a layer: refused naming the layer and the header.
    for (flag, says) in [(b'L', "GNU long name"), (b'x', "PAX header")] {
        let mut layer = header(b"././@LongLink", flag, b"", 2 << 30);
        layer.extend([b'a'; 4096]);
        let err = error_of(&docker_archive(&[&layer], &config_for(&[&layer]), &[]));
        assert!(
            err.contains("member `0/layer.tar: ././@LongLink`") && err.contains(says),
            "{err}"
        );
    }

    // A config over 8 MiB, in a docker-archive and an OCI layout's blob.
    let layer = good_layer();
    let big = serde_json::to_vec(&serde_json::json!({ "pad": "x".repeat(9 << 20) })).unwrap();
    let err = error_of(&docker_archive(&[&layer], &big, &[]));
    assert!(
        err.contains("member `config.json`") && err.contains("of JSON, more than the 8388608"),
        "{err}"
    );
    // A config named without `.json` is written out, then refused before it is read.
    let manifest = br#"[{"Config":"blobs/cfg","Layers":["0/layer.tar"]}]"#;
    let archive = tar_of(&[
        (b"0/layer.tar", b'0', b"", &layer),
        (b"blobs/cfg", b'0', b"", &big),
        (b"manifest.json", b'0', b"", manifest),
    ]);
    let err = error_of(&archive);
    assert!(
        err.contains("member `blobs/cfg`") && err.contains("of JSON"),
        "{err}"
    );
}

#[test]
fn issue_16_long_names_are_refused() {
    // 5000-byte names (a PAX `path`) and link targets: longer than Linux paths.
    let long = "d/".repeat(2500);
    let records = pax_records(&[("path", &long)]);
    let layer = tar_of(&[
        (b"././@PaxHeader", b'x', b"", &records),
        (b"short", b'0', b"", b"x"),
    ]);
    let err = error_of(&docker_archive(&[&layer], &config_for(&[&layer]), &[]));
    assert!(err.contains("a name of 5000 bytes"), "{err}");
    // The error quotes the start of the name only.
    assert!(
        err.contains("d/d/… (5000 bytes)`") && err.len() < 500,
        "{err}"
    );
    let records = pax_records(&[("linkpath", &long)]);
    let layer = tar_of(&[
        (b"././@PaxHeader", b'x', b"", &records),
        (b"l", b'2', b"", b""),
    ]);
    let err = error_of(&docker_archive(&[&layer], &config_for(&[&layer]), &[]));
    assert!(
        err.contains("0/layer.tar: l`: symlink target refused: a name of 5000 bytes"),
        "{err}"
    );
}

#[test]
fn issue_16_expansion_is_bounded_at_the_archive_and_in_layers() {
    let limit = Limits::at_most(1 << 20);
    // A gzipped archive whose member expands past the limit (it claims 1 GiB; 2 MiB of zeros
    // are there, the limit bites first).
    let mut tar = header(b"big", b'0', b"", 1 << 30);
    tar.extend(vec![0u8; 2 << 20]);
    let (dir, result) = import_limited(&gz(&tar)[..], None, limit);
    let err = result.unwrap_err().to_string();
    assert!(
        err.starts_with("member `big`: unpacking it passes 1048576 bytes"),
        "{err}"
    );
    assert!(err.contains("`fromImageMaxBytes`"), "{err}");
    drop(dir);

    // A plain archive whose gzipped layer expands past it.
    let mut inner = header(b"zeros", b'0', b"", 2 << 20);
    inner.extend(vec![0u8; 2 << 20]);
    inner.extend([0u8; 1024]);
    let layer = gz(&inner);
    let archive = docker_archive(&[&layer], &config_for(&[&inner]), &[]);
    let (_dir, result) = import_limited(&archive[..], None, limit);
    let err = result.unwrap_err().to_string();
    assert!(
        err.starts_with("member `0/layer.tar`: unpacking it passes"),
        "{err}"
    );

    // The default does not bite an ordinary parent, even one of zeros that compresses a
    // thousandfold: the 4 GiB floor holds it.
    let mut inner = header(b"zeros", b'0', b"", 3 << 20);
    inner.extend(vec![0u8; 3 << 20]);
    inner.extend([0u8; 1024]);
    let layer = gz(&inner);
    let archive = gz(&docker_archive(&[&layer], &config_for(&[&inner]), &[]));
    assert!(archive.len() * 100 < inner.len(), "{}", archive.len());
    let (_dir, result) = import_bytes(&archive, None);
    assert_eq!(result.unwrap().layers[0].record.size, inner.len() as u64);
}

#[test]
fn issue_16_a_layer_listed_many_times_is_imported_once() {
    // 5000 mentions of one layer: the parent has 5000 layers, in order, one stored tar.
    let layer = good_layer();
    let layers: Vec<&[u8]> = vec![&layer; 5000];
    let config = config_for(&layers);
    let names: Vec<&str> = vec!["0/layer.tar"; 5000];
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "config.json", "Layers": names,
    }]))
    .unwrap();
    let archive = tar_of(&[
        (b"0/layer.tar", b'0', b"", &layer),
        (b"config.json", b'0', b"", &config),
        (b"manifest.json", b'0', b"", &manifest),
    ]);
    let (dir, result) = import_bytes(&archive, None);
    let parent = result.unwrap();
    assert_eq!(parent.layers.len(), 5000);
    assert!(parent.layers.iter().all(|l| l == &parent.layers[0]));
    let stored = fs::read_dir(dir.path().join("out/layers")).unwrap().count();
    assert_eq!(stored, 1);

    // 300 images of one archive sharing the layer (mergeImages): stored once for them all.
    let config = config_for(&[&layer]);
    let entry = serde_json::json!({"Config": "config.json", "Layers": ["0/layer.tar"]});
    let manifest = serde_json::to_vec(&vec![entry; 300]).unwrap();
    let archive = tar_of(&[
        (b"0/layer.tar", b'0', b"", &layer),
        (b"config.json", b'0', b"", &config),
        (b"manifest.json", b'0', b"", &manifest),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let limits = Limits::for_archive(archive.len() as u64);
    let images = import_all(
        &archive[..],
        &out,
        &dir.path().join("s"),
        limits,
        &Progress::quiet(),
    )
    .unwrap();
    assert_eq!(images.len(), 300);
    assert_eq!(images[299].store_paths, images[0].store_paths);
    let stored: usize = (0..300)
        .filter_map(|k| fs::read_dir(out.join(format!("{k}/layers"))).ok())
        .map(|d| d.count())
        .sum();
    assert_eq!(stored, 1);

    // A repeated layer whose diff_ids differ at one place is still refused there.
    let other = tar_of(&[(b"f", b'0', b"", b"other")]);
    let config = config_for(&[&layer, &other]);
    let manifest = br#"[{"Config":"config.json","Layers":["0/layer.tar","0/layer.tar"]}]"#;
    let archive = tar_of(&[
        (b"0/layer.tar", b'0', b"", &layer),
        (b"config.json", b'0', b"", &config),
        (b"manifest.json", b'0', b"", manifest),
    ]);
    assert!(error_of(&archive).contains("diff_ids say"));
}

#[test]
fn issue_16_sparse_files_and_ambiguous_entries_are_refused() {
    // A PAX sparse file: strata would check `GNUSparseFile.0/x`, docker unpack `../evil`.
    let records = pax_records(&[
        ("GNU.sparse.major", "1"),
        ("GNU.sparse.minor", "0"),
        ("GNU.sparse.name", "../evil"),
        ("GNU.sparse.realsize", "0"),
    ]);
    let sparse = tar_of(&[
        (b"././@PaxHeader", b'x', b"", &records),
        (b"GNUSparseFile.0/x", b'0', b"", b"0\n"),
    ]);
    let old_sparse = tar_of(&[(b"s", b'S', b"", b"")]);
    // A directory whose header declares data: docker reads the block after it as a header
    // (`../hidden` here), the tar crate as data.
    let mut hiding = header(b"d/", b'5', b"", 512);
    hiding.extend(header(b"../hidden", b'0', b"", 0));
    hiding.extend([0u8; 1024]);
    for (layer, says) in [
        (
            sparse,
            "GNUSparseFile.0/x`: a GNU sparse file (PAX record `GNU.sparse.major`)",
        ),
        (old_sparse, "s`: an old GNU sparse file"),
        (hiding, "d/`: a `5` entry whose header declares 512 bytes"),
    ] {
        let err = error_of(&docker_archive(&[&layer], &config_for(&[&layer]), &[]));
        assert!(
            err.contains(&format!("member `0/layer.tar: {says}")),
            "{err}"
        );
    }
    // The same in the archive itself.
    let layer = good_layer();
    let err = error_of(&docker_archive(
        &[&layer],
        &config_for(&[&layer]),
        &[
            (b"././@PaxHeader", b'x', b"", &records),
            (b"GNUSparseFile.0/m", b'0', b"", b"0\n"),
        ],
    ));
    assert!(
        err.contains("member `GNUSparseFile.0/m`: a GNU sparse file"),
        "{err}"
    );
}
