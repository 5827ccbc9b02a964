//! The writer's tests: a blob read back as each kind of reader reads it.

use super::tar_split::{SplitEntry, FILE, SEGMENT};
use super::*;
use crate::tar::header::{encode_header, Kind, Stamp, END_OF_ARCHIVE};
use crate::tar::reader::{pax_records, raw_header};
use base64::Engine as _;
use serde_json::Value;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// A tar holding `entries` as strata writes them, then a hard link and a file with an
/// xattr written by hand, the end-of-archive blocks last; and each file's content.
fn sample_tar(big: usize) -> (Vec<u8>, HashMap<String, Vec<u8>>) {
    let stamp = Stamp::root(1_700_000_000);
    let long = format!("nix/store/{}/file", "x".repeat(200));
    let big_data: Vec<u8> = (0..big).map(|i| (i * 31 % 253) as u8).collect();
    let files: Vec<(&str, Kind, &[u8], Vec<u8>)> = vec![
        ("nix", Kind::Directory, b"", vec![]),
        ("nix/store", Kind::Directory, b"", vec![]),
        ("nix/store/empty", Kind::File(0), b"", vec![]),
        ("nix/store/hello", Kind::File(5), b"", b"hello".to_vec()),
        ("nix/store/link", Kind::Symlink, b"hello", vec![]),
        (&long, Kind::File(3), b"", b"abc".to_vec()),
        ("nix/store/a<b&c", Kind::File(1), b"", b"x".to_vec()),
        ("nix/store/big", Kind::File(big as u64), b"", big_data),
        ("nix/store/full", Kind::File(512), b"", vec![9; 512]),
    ];
    let mut tar = Vec::new();
    let mut contents = HashMap::new();
    for (name, kind, link, data) in files {
        encode_header(&mut tar, name.as_bytes(), kind, 0o755, link, &stamp);
        tar.extend_from_slice(&data);
        tar.resize(tar.len() + padding(data.len() as u64), 0);
        contents.insert(name.to_owned(), data);
    }
    tar.extend(raw_header(
        b"nix/store/hard",
        b'1',
        0,
        b"nix/store/hello",
        false,
    ));
    let pax = pax_records(&[("SCHILY.xattr.user.k", "v\0w")]);
    tar.extend(raw_header(
        b"././@PaxHeader",
        b'x',
        pax.len() as u64,
        b"",
        false,
    ));
    tar.extend_from_slice(&pax);
    tar.resize(tar.len() + padding(pax.len() as u64), 0);
    tar.extend(raw_header(b"nix/store/attr", b'0', 2, b"", false));
    tar.extend_from_slice(b"hi");
    tar.resize(tar.len() + padding(2), 0);
    contents.insert("nix/store/attr".into(), b"hi".to_vec());
    tar.extend_from_slice(&END_OF_ARCHIVE);
    (tar, contents)
}

/// `tar` written as zstd:chunked in writes of `step` bytes on a pool of `threads`.
fn chunked(tar: &[u8], step: usize, threads: usize) -> (Vec<u8>, ChunkedToc) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut w = ChunkedWriter::new(Vec::new(), Some(Arc::new(pool)));
    for part in tar.chunks(step.max(1)) {
        w.write_all(part).unwrap();
    }
    w.finish().unwrap()
}

/// The decompressed bytes of the part of `blob` at `p`, after checking its length.
fn part(blob: &[u8], p: &Position) -> Vec<u8> {
    let bytes = &blob[p.offset as usize..(p.offset + p.compressed) as usize];
    let plain = zstd::decode_all(bytes).unwrap();
    assert_eq!(plain.len() as u64, p.uncompressed);
    plain
}

#[test]
fn the_blob_is_the_tar_to_any_zstd_reader() {
    let (tar, _) = sample_tar(CHUNK * 2 + 1000);
    let (blob, _) = chunked(&tar, 1 << 20, 2);
    assert_eq!(
        &blob[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "a regular frame first"
    );
    assert!(zstd::decode_all(&blob[..]).unwrap() == tar);
    let mut back = Vec::new();
    crate::compress::decompressed(&blob[..])
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == tar);
}

#[test]
fn same_tar_same_bytes_whatever_the_writes_and_threads() {
    let (tar, _) = sample_tar(CHUNK + 7);
    let one = chunked(&tar, tar.len(), 1);
    for (step, threads) in [(1, 2), (511, 3), (4096, 1), (CHUNK + 3, 4)] {
        assert!(chunked(&tar, step, threads) == one, "{step} {threads}");
    }
}

#[test]
fn footer_and_annotations_point_at_the_toc_and_tar_split() {
    let (tar, _) = sample_tar(10);
    let (blob, toc) = chunked(&tar, 1000, 2);
    let n = blob.len();
    assert_eq!(
        &blob[n - 72..n - 64],
        &[0x50, 0x2a, 0x4d, 0x18, 64, 0, 0, 0]
    );
    assert_eq!(
        &blob[n - 64..],
        &frames::footer(&toc.toc, &toc.tar_split)[..]
    );
    assert_eq!(&blob[n - 8..], b"GNUlInUx");
    let t = &toc.toc;
    let toc_bytes = &blob[t.offset as usize..(t.offset + t.compressed) as usize];
    assert_eq!(Digest::of(toc_bytes), toc.toc_digest);
    assert_eq!(
        &blob[t.offset as usize - 8..t.offset as usize - 4],
        &frames::SKIPPABLE_MAGIC
    );
    let s = &toc.tar_split;
    assert_eq!(s.offset, t.offset + t.compressed + 8);
    let split_bytes = &blob[s.offset as usize..(s.offset + s.compressed) as usize];
    let json: Value = serde_json::from_slice(&part(&blob, t)).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["tarSplitDigest"], Digest::of(split_bytes).to_string());
    let a = toc.annotations();
    assert_eq!(a[MANIFEST_CHECKSUM], toc.toc_digest.to_string());
    assert_eq!(
        a[MANIFEST_POSITION],
        format!("{}:{}:{}:1", t.offset, t.compressed, t.uncompressed)
    );
    assert_eq!(
        a[TARSPLIT_POSITION],
        format!("{}:{}:{}", s.offset, s.compressed, s.uncompressed)
    );
    let back = ChunkedToc::from_annotations(&a.into_iter().collect()).unwrap();
    assert_eq!(back, toc);
}

/// The TOC's entries.
fn toc_entries(blob: &[u8], toc: &ChunkedToc) -> Vec<TocEntry> {
    let json: Value = serde_json::from_slice(&part(blob, &toc.toc)).unwrap();
    serde_json::from_value(json["entries"].clone()).unwrap()
}

#[test]
fn toc_entries_are_the_headers_and_point_at_their_content() {
    let big = 2 * CHUNK + 1000;
    let (tar, contents) = sample_tar(big);
    let (blob, toc) = chunked(&tar, 65536, 2);
    let entries = toc_entries(&blob, &toc);
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.kind.as_str(), e.name.as_str()))
        .collect();
    assert_eq!(
        kinds[..5].to_vec(),
        [
            ("dir", "nix/"),
            ("dir", "nix/store/"),
            ("reg", "nix/store/empty"),
            ("reg", "nix/store/hello"),
            ("symlink", "nix/store/link"),
        ]
    );
    let by_name = |n: &str| {
        entries
            .iter()
            .find(|e| e.name == n && e.kind != "chunk")
            .unwrap()
    };
    let hello = by_name("nix/store/hello");
    assert_eq!((hello.mode, hello.size, hello.uid), (0o755, 5, 0));
    assert_eq!(hello.modtime.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(hello.digest, Some(Digest::of(b"hello").to_string()));
    assert_eq!(by_name("nix/store/link").link_name, "hello");
    let hard = by_name("nix/store/hard");
    assert_eq!(
        (hard.kind.as_str(), hard.link_name.as_str()),
        ("hardlink", "nix/store/hello")
    );
    assert_eq!(by_name("nix/store/attr").xattrs["user.k"], b64(b"v\0w"));
    let empty = by_name("nix/store/empty");
    assert_eq!((empty.size, empty.offset, &empty.digest), (0, 0, &None));
    assert!(entries.iter().any(|e| e.name.len() > 200), "the PAX path");
    for e in entries.iter().filter(|e| e.kind == "reg" && e.size > 0) {
        let range = &blob[e.offset as usize..e.end_offset as usize];
        assert!(
            zstd::decode_all(range).unwrap() == contents[&e.name],
            "{}",
            e.name
        );
        assert_eq!(Some(Digest::of(&contents[&e.name]).to_string()), e.digest);
    }
    let chunks: Vec<&TocEntry> = entries.iter().filter(|e| e.kind == "chunk").collect();
    assert_eq!(chunks.len(), 2, "a file of three chunks");
    let first = by_name("nix/store/big");
    assert_eq!((first.chunk_size, first.chunk_offset), (CHUNK as u64, 0));
    let ends = [chunks[0].offset, chunks[1].offset, first.end_offset];
    let mut at = 0;
    for (k, e) in std::iter::once(first)
        .chain(chunks.iter().copied())
        .enumerate()
    {
        let plain = zstd::decode_all(&blob[e.offset as usize..ends[k] as usize]).unwrap();
        assert_eq!((e.chunk_offset, e.chunk_size), (at, plain.len() as u64));
        assert!(plain[..] == contents["nix/store/big"][at as usize..][..plain.len()]);
        assert_eq!(e.chunk_digest, Some(Digest::of(&plain).to_string()));
        at += plain.len() as u64;
    }
    assert_eq!(at, big as u64);
}

#[test]
fn tar_split_gives_the_tar_back_byte_for_byte() {
    let (tar, contents) = sample_tar(CHUNK + 1);
    let (blob, toc) = chunked(&tar, 3000, 2);
    let text = part(&blob, &toc.tar_split);
    let mut back = Vec::new();
    let mut segments = 0;
    for (k, line) in text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let e: SplitEntry = serde_json::from_slice(line).unwrap();
        assert_eq!(e.position, k as u64);
        match e.kind {
            SEGMENT => {
                segments += 1;
                back.extend(unb64(e.payload.as_deref().unwrap()));
            }
            FILE => {
                let data = contents.get(&e.name).cloned().unwrap_or_default();
                assert_eq!(e.size, data.len() as u64, "{}", e.name);
                let mut crc = crc64::Crc64::new();
                crc.update(&data);
                let want = (!data.is_empty()).then(|| b64(&crc.sum()));
                assert_eq!(e.payload, want, "{}", e.name);
                back.extend(data);
            }
            other => panic!("type {other}"),
        }
    }
    assert!(back == tar);
    assert_eq!(segments, 12, "one per header and the end");
    // The last segment: the last file's padding and the two zero blocks.
    let last = text
        .split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .unwrap();
    let last: SplitEntry = serde_json::from_slice(last).unwrap();
    assert_eq!(unb64(last.payload.as_deref().unwrap()).len(), 510 + 1024);
}

#[test]
fn batches_filling_anywhere_keep_every_entry_pointing_at_its_content() {
    // The first file's header and content fill a batch but for 100 bytes, so the batch
    // fills when the second file's header frame closes; then files of 0.3 MiB fill batches
    // anywhere.
    let stamp = Stamp::root(1);
    let mut tar = Vec::new();
    let mut contents = HashMap::new();
    let sizes = [BATCH as u32 - 612, 1000].into_iter().chain([300_000; 58]);
    for (i, size) in sizes.enumerate() {
        let i = i as u32;
        let data: Vec<u8> = (0..size).map(|j| (j * (i + 1) % 251) as u8).collect();
        let name = format!("f{i}");
        encode_header(
            &mut tar,
            name.as_bytes(),
            Kind::File(data.len() as u64),
            0o644,
            b"",
            &stamp,
        );
        tar.extend_from_slice(&data);
        tar.resize(tar.len() + padding(data.len() as u64), 0);
        contents.insert(name, data);
    }
    tar.extend_from_slice(&END_OF_ARCHIVE);
    let (blob, toc) = chunked(&tar, 100_000, 2);
    assert!(zstd::decode_all(&blob[..]).unwrap() == tar);
    let entries = toc_entries(&blob, &toc);
    assert_eq!(entries.iter().filter(|e| e.kind == "reg").count(), 60);
    for e in entries.iter().filter(|e| e.kind == "reg") {
        let range = &blob[e.offset as usize..e.end_offset as usize];
        assert!(
            zstd::decode_all(range).unwrap() == contents[&e.name],
            "{}",
            e.name
        );
    }
}

#[test]
fn empty_and_trailing_inputs() {
    for tar in [
        Vec::new(),
        END_OF_ARCHIVE.to_vec(),
        [&END_OF_ARCHIVE[..], &[0; 3000]].concat(),
    ] {
        let (blob, toc) = chunked(&tar, 100, 1);
        assert!(zstd::decode_all(&blob[..]).unwrap() == tar);
        assert!(toc_entries(&blob, &toc).is_empty());
        let split = part(&blob, &toc.tar_split);
        let pieces = split
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        assert_eq!(
            pieces,
            usize::from(!tar.is_empty()) + usize::from(tar.len() > 1024)
        );
    }
}

#[test]
fn refused_inputs() {
    let mut w = ChunkedWriter::new(Vec::new(), None);
    w.write_all(&raw_header(b"f", b'0', 10, b"", false))
        .unwrap();
    w.write_all(b"abc").unwrap();
    assert!(w
        .finish()
        .unwrap_err()
        .to_string()
        .contains("ends inside an entry"));
    let mut w = ChunkedWriter::new(Vec::new(), None);
    let err = w
        .write_all(&raw_header(b"g", b'g', 0, b"", false))
        .unwrap_err();
    assert!(err.to_string().contains("PAX global header"), "{err}");
    let mut w = ChunkedWriter::new(Vec::new(), None);
    let err = w
        .write_all(&raw_header(b"s", b'7', 0, b"", false))
        .unwrap_err();
    assert!(err.to_string().contains("type `7`"), "{err}");
    let mut bad = raw_header(b"f", b'0', 0, b"", false);
    bad[0] = b'g';
    let mut w = ChunkedWriter::new(Vec::new(), None);
    assert!(w
        .write_all(&bad)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
}

use std::io::Read;

/// Writes the tar `$STRATA_CHUNKED_IN` as zstd:chunked to `$STRATA_CHUNKED_OUT`, streamed,
/// and prints its size beside strata's plain zstd's: for checks against other tools
/// (`cargo test --lib write_a_given_tar -- --ignored --nocapture`).
#[test]
#[ignore]
fn write_a_given_tar() {
    let (Some(input), Some(output)) = (
        std::env::var_os("STRATA_CHUNKED_IN"),
        std::env::var_os("STRATA_CHUNKED_OUT"),
    ) else {
        return;
    };
    let start = std::time::Instant::now();
    let out = std::io::BufWriter::new(std::fs::File::create(output).unwrap());
    let mut w = ChunkedWriter::new(out, None);
    let size = std::io::copy(&mut std::fs::File::open(&input).unwrap(), &mut w).unwrap();
    let (out, toc) = w.finish().unwrap();
    let chunked = out.into_inner().unwrap().metadata().unwrap().len();
    let took = start.elapsed();
    let mut zstd = crate::compress::Compression::Zstd
        .encoder(crate::digest::HashingWriter::new(std::io::sink()));
    std::io::copy(&mut std::fs::File::open(&input).unwrap(), &mut zstd).unwrap();
    let plain_zstd = zstd.finish().unwrap().finish().1.size;
    println!(
        "tar {size} B; zstd:chunked {chunked} B in {took:?} (TOC {} B, tar-split {} B); strata zstd {plain_zstd} B",
        toc.toc.compressed, toc.tar_split.compressed
    );
}
