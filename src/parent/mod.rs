//! Parent images (`fromImage`): a docker-archive or an OCI image layout archive (plain, gzip
//! or zstd), read without trusting it.
//!
//! The archive is read once: its members go to numbered scratch files (never to paths the
//! archive names), then the chosen image's layers are read once each, decompressed, checked
//! entry by entry, hashed and copied into the output as plain tars with their records. A
//! layer whose entries could escape a root they are unpacked into (`..`, absolute names,
//! links pointing out, device nodes, duplicates), whose bytes do not match the digests the
//! archive claims, or that the manifest names but the archive lacks, is refused with an
//! error naming the member.

use crate::digest::{Blob, Digest};
use crate::image::oci_layout::WireDescriptor as Descriptor;
use crate::plan::record::{RecordSink, RECORD_VERSION};
use crate::plan::{LayerContent, PlannedLayer};
use crate::progress::Progress;
use crate::tar::layer::LayerSink;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Why a parent image cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParentError {
    /// Reading the archive or writing the import failed.
    #[error("cannot {what} `{path}`: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A member of the archive (or an entry of one of its layers) is refused.
    #[error("member `{member}`: {reason}")]
    Member {
        /// The archive member, with the layer entry after `: ` when it is one.
        member: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The archive as a whole does not describe a usable image.
    #[error("{0}")]
    Image(String),
}

fn member_error(member: impl Into<String>, reason: impl Into<String>) -> ParentError {
    ParentError::Member {
        member: member.into(),
        reason: reason.into(),
    }
}

/// Version of the imported-parent file format: its own version and that of its records.
pub const PARENT_FORMAT: u32 = 1000 + RECORD_VERSION;

/// A parent image imported for building on: its config and its layers as plain tars with
/// their records, bottom to top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentImage {
    /// [`PARENT_FORMAT`].
    pub strata_parent: u32,
    /// The parent's whole image config (`config`, `history`, `rootfs`, ...).
    pub config: Value,
    /// The parent's layers, bottom to top.
    pub layers: Vec<PlannedLayer>,
    /// Names (`<hash>-<name>`) of the store paths the parent's layers hold.
    pub store_paths: BTreeSet<String>,
    /// The image's `name:tag` references in the archive it came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_tags: Vec<String>,
}

impl ParentImage {
    /// Reads an imported parent (`parent.json`), refusing other formats.
    pub fn read(path: &Path) -> Result<ParentImage, crate::plan::PlanError> {
        let parent: ParentImage = crate::plan::read_json(path, "strata parent image")?;
        if parent.strata_parent != PARENT_FORMAT {
            return Err(crate::plan::PlanError::Malformed {
                path: path.to_owned(),
                what: "strata parent image",
                message: "imported by another strata version; rebuild it".to_owned(),
            });
        }
        Ok(parent)
    }

    /// The parent's runtime config (`Env`, ...): an object, empty when it has none.
    pub fn runtime_config(&self) -> Value {
        match self.config.get("config") {
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => Value::Object(Default::default()),
        }
    }

    /// The parent's `history` entries.
    pub fn history(&self) -> Vec<Value> {
        match self.config.get("history") {
            Some(Value::Array(h)) => h.clone(),
            _ => Vec::new(),
        }
    }
}

/// Normalises a member or entry name: leading `./` and `/`-runs and a trailing `/` go, `.`
/// components go. The root itself gives `""`. Absolute names and `..` components are refused.
pub fn clean_name(raw: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8".to_owned())?;
    if text.starts_with('/') {
        return Err("absolute name".to_owned());
    }
    if text.contains('\0') {
        return Err("the name holds a NUL byte".to_owned());
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("the name has a `..` component".to_owned()),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Whether the symlink target `target`, found at `name`, stays inside the tree when
/// resolved lexically. Absolute targets do: a container resolves them in its own root.
fn link_stays_inside(name: &str, target: &[u8]) -> bool {
    if target.starts_with(b"/") {
        return true;
    }
    let mut depth = name.split('/').count() as i64 - 1;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

/// Reads `reader`, gunzipping or unzstding it when its first bytes say so.
pub fn decompressed<'r, R: Read + 'r>(reader: R) -> io::Result<Box<dyn Read + 'r>> {
    let mut buf = BufReader::with_capacity(1 << 20, reader);
    let head = buf.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
    } else {
        Box::new(buf)
    })
}

/// What the layer entries checked so far hold.
#[derive(Debug, Default)]
pub struct LayerFacts {
    /// Store path names (`<hash>-<name>`) with entries below `nix/store/`.
    pub store_paths: BTreeSet<String>,
    /// Entries checked.
    pub entries: u64,
}

/// Reads the layer tar `reader` to its end, refusing any entry that could escape the root it
/// is unpacked into. `member` names the layer in errors. Returns the reader, with everything
/// read (so a tee around it saw every byte), and what the layer holds.
pub fn check_layer<R: Read>(reader: R, member: &str) -> Result<(R, LayerFacts), ParentError> {
    let mut archive = tar::Archive::new(reader);
    let mut facts = LayerFacts::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut files: HashSet<String> = HashSet::new();
    let bad = |entry: &str, reason: String| member_error(format!("{member}: {entry}"), reason);
    {
        let entries = archive
            .entries()
            .map_err(|e| member_error(member, format!("not a tar: {e}")))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| member_error(member, format!("malformed layer tar: {e}")))?;
            let raw = entry.path_bytes();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let name = clean_name(&raw).map_err(|r| bad(&shown, r))?;
            let kind = entry.header().entry_type();
            use tar::EntryType as T;
            match kind {
                T::Regular | T::Continuous => {
                    files.insert(name.clone());
                }
                T::Directory | T::Fifo => {}
                T::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    if target.is_empty() {
                        return Err(bad(&shown, "symlink without a target".to_owned()));
                    }
                    if !link_stays_inside(&name, &target) {
                        return Err(bad(
                            &shown,
                            format!(
                                "symlink to `{}` points out of the image",
                                String::from_utf8_lossy(&target)
                            ),
                        ));
                    }
                }
                T::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let target = clean_name(&target)
                        .map_err(|r| bad(&shown, format!("hard link target refused: {r}")))?;
                    if !files.contains(&target) {
                        return Err(bad(
                            &shown,
                            format!(
                                "hard link to `{target}`, which is not a file earlier in this layer"
                            ),
                        ));
                    }
                }
                T::Char | T::Block => {
                    return Err(bad(&shown, "device node".to_owned()));
                }
                T::XGlobalHeader => continue,
                other => {
                    return Err(bad(&shown, format!("unsupported entry type {other:?}")));
                }
            }
            if name.is_empty() {
                continue;
            }
            if !seen.insert(name.clone()) {
                return Err(bad(&shown, "appears twice in the layer".to_owned()));
            }
            if let Some(rest) = name.strip_prefix("nix/store/") {
                let base = rest.split('/').next().unwrap_or(rest);
                if !base.starts_with(".wh.") {
                    facts.store_paths.insert(base.to_owned());
                }
            }
            facts.entries += 1;
        }
    }
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink())
        .map_err(|e| member_error(member, format!("cannot read the layer to its end: {e}")))?;
    Ok((reader, facts))
}

/// Names of the store paths a layer tar written by strata holds, from its headers alone
/// (the reader seeks over file data).
pub fn store_paths_of_tar(path: &Path) -> io::Result<BTreeSet<String>> {
    let mut archive = tar::Archive::new(File::open(path)?);
    let mut names = BTreeSet::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let raw = entry.path_bytes();
        if let Some(rest) = raw.strip_prefix(b"nix/store/") {
            let base = rest.split(|&b| b == b'/').next().unwrap_or(rest);
            if !base.is_empty() {
                names.insert(String::from_utf8_lossy(base).into_owned());
            }
        }
    }
    Ok(names)
}

/// A member of the archive: a scratch file, or a link to another member.
#[derive(Debug)]
enum Member {
    File { index: usize, size: u64 },
    Link(String),
}

/// The archive's members, in scratch files under `dir`.
#[derive(Debug)]
struct Members {
    dir: PathBuf,
    members: HashMap<String, Member>,
}

impl Members {
    /// Reads every member of `reader` (the whole archive) into scratch files in `dir`.
    fn read(reader: impl Read, dir: &Path) -> Result<Members, ParentError> {
        let mut archive = tar::Archive::new(reader);
        let mut members = HashMap::new();
        let mut count = 0usize;
        let entries = archive
            .entries()
            .map_err(|e| ParentError::Image(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| ParentError::Image(format!("malformed archive: {e}")))?;
            let raw = entry.path_bytes();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let name = clean_name(&raw).map_err(|r| member_error(&shown, r))?;
            use tar::EntryType as T;
            let member = match entry.header().entry_type() {
                T::Directory | T::XGlobalHeader => continue,
                T::Regular | T::Continuous => {
                    let path = dir.join(count.to_string());
                    count += 1;
                    let mut file = File::create(&path).map_err(|source| ParentError::Io {
                        what: "create",
                        path: path.clone(),
                        source,
                    })?;
                    let size = io::copy(&mut entry, &mut file)
                        .map_err(|e| member_error(&shown, format!("cannot read it: {e}")))?;
                    Member::File {
                        index: count - 1,
                        size,
                    }
                }
                T::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let (dir_part, _) = name.rsplit_once('/').unwrap_or(("", ""));
                    let mut joined = dir_part.as_bytes().to_vec();
                    if !target.starts_with(b"/") && !link_stays_inside(&name, &target) {
                        return Err(member_error(&shown, "symlink points out of the archive"));
                    }
                    if target.starts_with(b"/") {
                        return Err(member_error(&shown, "symlink to an absolute path"));
                    }
                    joined.push(b'/');
                    joined.extend_from_slice(&target);
                    Member::Link(resolve_dots(&joined))
                }
                T::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let target = clean_name(&target).map_err(|r| {
                        member_error(&shown, format!("hard link target refused: {r}"))
                    })?;
                    Member::Link(target)
                }
                other => {
                    return Err(member_error(
                        &shown,
                        format!("unsupported member type {other:?}"),
                    ))
                }
            };
            if members.insert(name, member).is_some() {
                return Err(member_error(&shown, "appears twice in the archive"));
            }
        }
        Ok(Members {
            dir: dir.to_owned(),
            members,
        })
    }

    /// The scratch file and size of member `name`, following links.
    fn file(&self, name: &str) -> Result<(PathBuf, u64), ParentError> {
        let mut current = clean_name(name.as_bytes()).map_err(|r| member_error(name, r))?;
        for _ in 0..32 {
            match self.members.get(&current) {
                Some(Member::File { index, size }) => {
                    return Ok((self.dir.join(index.to_string()), *size))
                }
                Some(Member::Link(target)) => current = target.clone(),
                None => {
                    return Err(member_error(
                        name,
                        "named by the manifest but not in the archive",
                    ))
                }
            }
        }
        Err(member_error(name, "too many links"))
    }

    fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// Member `name`'s bytes.
    fn bytes(&self, name: &str) -> Result<Vec<u8>, ParentError> {
        let (path, _) = self.file(name)?;
        fs::read(&path).map_err(|source| ParentError::Io {
            what: "read",
            path,
            source,
        })
    }

    /// Member `name` parsed as JSON.
    fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, ParentError> {
        serde_json::from_slice(&self.bytes(name)?)
            .map_err(|e| member_error(name, format!("malformed: {e}")))
    }

    /// Member `name`'s bytes, checked against `digest`.
    fn verified(&self, name: &str, digest: &Digest) -> Result<Vec<u8>, ParentError> {
        let bytes = self.bytes(name)?;
        let found = Digest::of(&bytes);
        if found != *digest {
            return Err(member_error(
                name,
                format!("its content hashes to {found}, not {digest}"),
            ));
        }
        Ok(bytes)
    }
}

/// Removes `.` and `..` components lexically (the caller made sure `..` cannot go above the
/// top).
fn resolve_dots(path: &[u8]) -> String {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    String::from_utf8_lossy(&parts.join(&b'/')).into_owned()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// One layer to import: the member holding it, what its config says its content hashes to,
/// and (OCI) the digest and size of the member itself.
struct LayerToImport {
    member: String,
    diff_id: Digest,
    blob: Option<Blob>,
}

/// `name:tag` without the default registry prefixes, for comparing references.
fn normal_reference(reference: &str) -> &str {
    ["docker.io/library/", "docker.io/", "localhost/"]
        .iter()
        .find_map(|p| reference.strip_prefix(p))
        .unwrap_or(reference)
}

fn parse_digest(member: &str, field: &str, text: &str) -> Result<Digest, ParentError> {
    Digest::parse(text).ok_or_else(|| {
        member_error(
            member,
            format!("`{field}` is not a sha256 digest: {text:?}"),
        )
    })
}

fn blob_member(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// Imports the image `pick` (`name:tag`; the first image when `None`) of the archive read
/// from `reader` into `out` (which must not exist): `layers/<i>.tar` and the returned
/// description. `scratch` is a directory for the archive's members, emptied afterwards.
pub fn import(
    reader: impl Read,
    pick: Option<&str>,
    out: &Path,
    scratch: &Path,
    progress: &Progress,
) -> Result<ParentImage, ParentError> {
    let members = read_members(reader, scratch)?;
    let image = import_image(&members, pick, 0, out, progress)?;
    let _ = fs::remove_dir_all(scratch);
    Ok(image)
}

/// Imports every image of the archive read from `reader` (`mergeImages`): image `k` into
/// `out/<k>/`, as [`import`] does for one.
pub fn import_all(
    reader: impl Read,
    out: &Path,
    scratch: &Path,
    progress: &Progress,
) -> Result<Vec<ParentImage>, ParentError> {
    let members = read_members(reader, scratch)?;
    let count = if members.has("manifest.json") {
        members.json::<Vec<Value>>("manifest.json")?.len()
    } else if members.has("index.json") {
        members.json::<OciIndex>("index.json")?.manifests.len()
    } else {
        0
    };
    let mut images = Vec::with_capacity(count);
    for k in 0..count.max(1) {
        images.push(import_image(
            &members,
            None,
            k,
            &out.join(k.to_string()),
            progress,
        )?);
    }
    let _ = fs::remove_dir_all(scratch);
    Ok(images)
}

/// Reads the (possibly compressed) archive from `reader` into scratch files under `scratch`.
fn read_members(reader: impl Read, scratch: &Path) -> Result<Members, ParentError> {
    fs::create_dir_all(scratch).map_err(io_err("create", scratch))?;
    let reader = decompressed(reader).map_err(io_err("read", Path::new("the archive")))?;
    Members::read(reader, scratch)
}

/// An I/O error doing `what` on `path`.
fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ParentError {
    let path = path.to_owned();
    move |source| ParentError::Io { what, path, source }
}

/// Imports image `pick` (or the `at`th image) of the archive's `members` into `out`.
fn import_image(
    members: &Members,
    pick: Option<&str>,
    at: usize,
    out: &Path,
    progress: &Progress,
) -> Result<ParentImage, ParentError> {
    let (config, to_import, repo_tags) = if members.has("manifest.json") {
        docker_layers(members, pick, at)?
    } else if members.has("index.json") {
        oci_layers(members, pick, at)?
    } else {
        return Err(ParentError::Image(
            "neither `manifest.json` (docker-archive) nor `index.json` (OCI layout) is in the archive"
                .to_owned(),
        ));
    };

    let layer_dir = out.join("layers");
    fs::create_dir_all(&layer_dir).map_err(io_err("create", &layer_dir))?;
    let mut layers = Vec::with_capacity(to_import.len());
    let mut store_paths = BTreeSet::new();
    for (i, layer) in to_import.iter().enumerate() {
        let (scratch_file, size) = members.file(&layer.member)?;
        if let Some(blob) = &layer.blob {
            if blob.size != size {
                return Err(member_error(
                    &layer.member,
                    format!("{size} bytes, but the manifest says {}", blob.size),
                ));
            }
        }
        let tar_path = layer_dir.join(format!("{i}.tar"));
        let (record, facts, raw) = import_layer(&scratch_file, &layer.member, &tar_path, progress)?;
        if let Some(blob) = &layer.blob {
            if raw.digest != blob.digest {
                return Err(member_error(
                    &layer.member,
                    format!(
                        "its content hashes to {}, but the manifest says {}",
                        raw.digest, blob.digest
                    ),
                ));
            }
        }
        if record.diff_id != layer.diff_id {
            return Err(member_error(
                &layer.member,
                format!(
                    "the layer hashes to {}, but the config's diff_ids say {}",
                    record.diff_id, layer.diff_id
                ),
            ));
        }
        progress.layer_done();
        store_paths.extend(facts.store_paths);
        layers.push(PlannedLayer {
            content: LayerContent::Tarball {
                path: tar_path.to_string_lossy().into_owned(),
            },
            record,
        });
    }
    Ok(ParentImage {
        strata_parent: PARENT_FORMAT,
        config,
        layers,
        store_paths,
        repo_tags,
    })
}

/// Reads one layer member once: hashes it as stored, decompresses it, checks its entries,
/// and writes it to `tar_path` while computing its record.
fn import_layer(
    scratch_file: &Path,
    member: &str,
    tar_path: &Path,
    progress: &Progress,
) -> Result<(crate::plan::record::LayerRecord, LayerFacts, Blob), ParentError> {
    let file = File::open(scratch_file).map_err(|source| ParentError::Io {
        what: "open",
        path: scratch_file.to_owned(),
        source,
    })?;
    let out = File::create(tar_path).map_err(|source| ParentError::Io {
        what: "create",
        path: tar_path.to_owned(),
        source,
    })?;
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut raw = HashingReader::new(file);
    let (record, facts) = {
        let mut sink = RecordSink::new(true, Some(&mut out), progress);
        let layer = decompressed(&mut raw)
            .map_err(|e| member_error(member, format!("cannot read it: {e}")))?;
        let tee = Tee {
            inner: layer,
            sink: &mut sink,
        };
        let (_, facts) = check_layer(tee, member)?;
        let record = sink
            .finish()
            .map_err(|e| member_error(member, format!("cannot write the layer: {e}")))?;
        (record, facts)
    };
    out.flush().map_err(|source| ParentError::Io {
        what: "write",
        path: tar_path.to_owned(),
        source,
    })?;
    Ok((record, facts, raw.finish()))
}

/// An image's config, its layers to import and its `name:tag` references.
type Chosen = (Value, Vec<LayerToImport>, Vec<String>);

fn docker_layers(members: &Members, pick: Option<&str>, at: usize) -> Result<Chosen, ParentError> {
    let manifest: Vec<DockerManifestEntry> = members.json("manifest.json")?;
    let entry = match pick {
        None => manifest.get(at),
        Some(reference) => manifest.iter().find(|e| {
            e.repo_tags
                .iter()
                .flatten()
                .any(|t| normal_reference(t) == normal_reference(reference))
        }),
    };
    let entry = entry.ok_or_else(|| {
        let tags: Vec<&str> = manifest
            .iter()
            .flat_map(|e| e.repo_tags.iter().flatten().map(String::as_str))
            .collect();
        match pick {
            None => ParentError::Image("`manifest.json` lists no image".to_owned()),
            Some(r) => ParentError::Image(format!(
                "no image `{r}` in the archive (it has: {})",
                tags.join(", ")
            )),
        }
    })?;
    let config: Value = members.json(&entry.config)?;
    let diff_ids = diff_ids(&entry.config, &config)?;
    if diff_ids.len() != entry.layers.len() {
        return Err(member_error(
            &entry.config,
            format!(
                "{} diff_ids, but `manifest.json` lists {} layers",
                diff_ids.len(),
                entry.layers.len()
            ),
        ));
    }
    let layers = entry
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(member, diff_id)| LayerToImport {
            member: member.clone(),
            diff_id,
            blob: None,
        })
        .collect();
    Ok((config, layers, entry.repo_tags.clone().unwrap_or_default()))
}

fn diff_ids(member: &str, config: &Value) -> Result<Vec<Digest>, ParentError> {
    let ids = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| member_error(member, "no `rootfs.diff_ids`"))?;
    ids.iter()
        .map(|v| parse_digest(member, "rootfs.diff_ids", v.as_str().unwrap_or_default()))
        .collect()
}

fn oci_layers(members: &Members, pick: Option<&str>, at: usize) -> Result<Chosen, ParentError> {
    let index: OciIndex = members.json("index.json")?;
    let wanted = pick.map(normal_reference);
    let chosen = match wanted {
        None => index.manifests.get(at),
        Some(reference) => index.manifests.iter().find(|d| {
            let tag = reference.rsplit_once(':').map_or(reference, |(_, t)| t);
            d.annotations.iter().any(|(k, v)| match k.as_str() {
                "org.opencontainers.image.ref.name" => v == tag || normal_reference(v) == reference,
                "io.containerd.image.name" => normal_reference(v) == reference,
                _ => false,
            })
        }),
    }
    .ok_or_else(|| {
        ParentError::Image(match pick {
            None => "`index.json` lists no image".to_owned(),
            Some(r) => format!("no image `{r}` in the OCI layout's `index.json`"),
        })
    })?;
    if chosen.media_type.contains("index") || chosen.media_type.contains("manifest.list") {
        return Err(member_error(
            "index.json",
            "the image is a multi-platform index; give a single-platform image",
        ));
    }
    let manifest_member = blob_member(&chosen.digest);
    let digest = parse_digest("index.json", "digest", &chosen.digest)?;
    let manifest: OciManifest =
        serde_json::from_slice(&members.verified(&manifest_member, &digest)?)
            .map_err(|e| member_error(&manifest_member, format!("malformed manifest: {e}")))?;
    let config_member = blob_member(&manifest.config.digest);
    let config_digest = parse_digest(&manifest_member, "config.digest", &manifest.config.digest)?;
    let config: Value = serde_json::from_slice(&members.verified(&config_member, &config_digest)?)
        .map_err(|e| member_error(&config_member, format!("malformed config: {e}")))?;
    let diff_ids = diff_ids(&config_member, &config)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(member_error(
            &config_member,
            format!(
                "{} diff_ids, but the manifest lists {} layers",
                diff_ids.len(),
                manifest.layers.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
        layers.push(LayerToImport {
            member: blob_member(&desc.digest),
            diff_id,
            blob: Some(Blob {
                digest: parse_digest(&manifest_member, "layers[].digest", &desc.digest)?,
                size: desc.size,
            }),
        });
    }
    let repo_tags = chosen
        .annotations
        .get("io.containerd.image.name")
        .cloned()
        .into_iter()
        .collect();
    Ok((config, layers, repo_tags))
}

/// Hashes and counts what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> Blob {
        Blob {
            digest: Digest(self.hasher.finalize().into()),
            size: self.size,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Hands everything read through it to a layer sink.
struct Tee<'s, R> {
    inner: R,
    sink: &'s mut dyn LayerSink,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.put(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
