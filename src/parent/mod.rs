//! Parent images (`fromImage`): a docker-archive or an OCI image layout archive (plain, gzip
//! or zstd), read without trusting it.
//!
//! The archive is read once: its members go to numbered scratch files (never to paths the
//! archive names), then the chosen image's layers are read once each, decompressed, checked
//! entry by entry, hashed and copied into the output as plain tars with their records. A
//! layer whose entries could escape a root they are unpacked into (`..`, links pointing out, device nodes, duplicates), whose bytes do not match the digests the
//! archive claims, or that the manifest names but the archive lacks, is refused with an
//! error naming the member. What an import may unpack and hold is bounded ([`limits`]); a
//! layer the manifest lists several times is imported once; scratch files go however the
//! import ends ([`scratch`]).

mod check;
mod choose;
pub mod export;
pub mod input;
pub mod limits;
mod members;
pub mod of_plan;
pub mod scratch;

pub use check::{check_layer, store_paths_of_tar, LayerFacts};
pub use limits::Limits;

use crate::compress::decompressed;
use crate::digest::{Blob, HashingReader};
use crate::file_error::FileError;
use crate::plan::record::{LayerRecord, RecordParts, RecordSink, RECORD_VERSION};
use crate::plan::{LayerContent, PlannedLayer};
use crate::progress::Progress;
use crate::tar::layer::LayerSink;
use choose::{docker_layers, oci_layers, LayerToImport, OciIndex};
use limits::Budget;
use members::Members;
use scratch::ScratchDir;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why a parent image cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParentError {
    /// Reading the archive or writing the import failed.
    #[error(transparent)]
    Io(#[from] FileError),
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

pub(crate) fn member_error(member: impl Into<String>, reason: impl Into<String>) -> ParentError {
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

/// The file an import writes the parent's description to, in its output directory.
pub const PARENT_FILE: &str = "parent.json";

impl ParentImage {
    /// Reads the imported parent in `dir` (an `internalParentImage` output).
    pub fn load(dir: &Path) -> Result<ParentImage, crate::plan::PlanError> {
        ParentImage::read(&dir.join(PARENT_FILE))
    }

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

/// Imports the image `pick` (`name:tag`; the first image when `None`) of the archive read
/// from `reader` into `out` (which must not exist): `layers/<i>.tar` and the returned
/// description. `scratch` is a directory for the archive's members, removed afterwards;
/// `out` is removed too when the import fails. `limits` bounds what the import unpacks.
pub fn import(
    reader: impl Read,
    pick: Option<&str>,
    out: &Path,
    scratch: &Path,
    limits: Limits,
    progress: &Progress,
) -> Result<ParentImage, ParentError> {
    let _scratch = ScratchDir::new(scratch);
    let unfinished = ScratchDir::fresh(out);
    let budget = Budget::new(limits);
    let members = read_members(reader, scratch, &budget)?;
    let mut imported = Imported::default();
    let image = import_image(&members, pick, 0, out, &budget, &mut imported, progress)?;
    unfinished.keep();
    Ok(image)
}

/// Imports every image of the archive read from `reader` (`mergeImages`): image `k` into
/// `out/<k>/`, as [`import`] does for one; a layer several images share is imported once,
/// into the directory of the first.
pub fn import_all(
    reader: impl Read,
    out: &Path,
    scratch: &Path,
    limits: Limits,
    progress: &Progress,
) -> Result<Vec<ParentImage>, ParentError> {
    let _scratch = ScratchDir::new(scratch);
    let unfinished = ScratchDir::fresh(out);
    let budget = Budget::new(limits);
    let members = read_members(reader, scratch, &budget)?;
    let count = if members.has("manifest.json") {
        members.json::<Vec<Value>>("manifest.json")?.len()
    } else if members.has("index.json") {
        members.json::<OciIndex>("index.json")?.manifests.len()
    } else {
        0
    };
    let mut images = Vec::with_capacity(count);
    let mut imported = Imported::default();
    for k in 0..count.max(1) {
        images.push(import_image(
            &members,
            None,
            k,
            &out.join(k.to_string()),
            &budget,
            &mut imported,
            progress,
        )?);
    }
    unfinished.keep();
    Ok(images)
}

/// Reads the (possibly compressed) archive from `reader` into scratch files under `scratch`.
fn read_members(
    reader: impl Read,
    scratch: &Path,
    budget: &Budget,
) -> Result<Members, ParentError> {
    fs::create_dir_all(scratch).map_err(FileError::on("create", scratch))?;
    let reader = decompressed(reader).map_err(FileError::on("read", Path::new("the archive")))?;
    Members::read(reader, scratch, budget)
}

/// A layer member imported: its tar, record, the digest of the member itself, and the store
/// paths it holds.
type Import = (PathBuf, LayerRecord, Blob, BTreeSet<String>);

/// The layer members imported so far, by scratch file: each is read and stored once, however
/// many times (and by however many images) it is listed.
type Imported = HashMap<PathBuf, Import>;

/// Imports image `pick` (or the `at`th image) of the archive's `members` into `out`. A member
/// the manifest lists several times is read and stored once, and appears at each place.
fn import_image(
    members: &Members,
    pick: Option<&str>,
    at: usize,
    out: &Path,
    budget: &Budget,
    imported: &mut Imported,
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
    fs::create_dir_all(&layer_dir).map_err(FileError::on("create", &layer_dir))?;
    let mut layers = Vec::with_capacity(to_import.len());
    let mut store_paths = BTreeSet::new();
    let mut counted = HashSet::new();
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
        if !imported.contains_key(&scratch_file) {
            let tar_path = layer_dir.join(format!("{i}.tar"));
            let (record, facts, raw) =
                import_layer(&scratch_file, &layer.member, &tar_path, budget, progress)?;
            let done = (tar_path, record, raw, facts.store_paths);
            imported.insert(scratch_file.clone(), done);
        }
        let (tar_path, record, raw, paths) = &imported[&scratch_file];
        if counted.insert(scratch_file.clone()) {
            store_paths.extend(paths.iter().cloned());
        }
        check_digests(layer, raw, record)?;
        progress.layer_done();
        layers.push(PlannedLayer {
            why: "from fromImage".to_owned(),
            content: LayerContent::Tarball {
                path: tar_path.to_string_lossy().into_owned(),
            },
            record: record.clone(),
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

/// Refuses `layer` when what it hashes to (`raw` as stored, `record` as a tar) is not what
/// the manifest (OCI) and the config's `diff_ids` claim.
fn check_digests(
    layer: &LayerToImport,
    raw: &Blob,
    record: &LayerRecord,
) -> Result<(), ParentError> {
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
    Ok(())
}

/// Reads one layer member once: hashes it as stored, decompresses it (the bytes counted
/// against `budget`), checks its entries, and writes it to `tar_path` while computing its
/// record.
fn import_layer(
    scratch_file: &Path,
    member: &str,
    tar_path: &Path,
    budget: &Budget,
    progress: &Progress,
) -> Result<(LayerRecord, LayerFacts, Blob), ParentError> {
    let file = File::open(scratch_file).map_err(FileError::on("open", scratch_file))?;
    let out = File::create(tar_path).map_err(FileError::on("create", tar_path))?;
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut raw = HashingReader::new(file);
    let (record, facts) = {
        let mut sink = RecordSink::new(RecordParts::TARSUM, Some(&mut out), progress);
        let layer = decompressed(&mut raw)
            .map_err(|e| member_error(member, format!("cannot read it: {e}")))?;
        let tee = Tee {
            inner: budget.reader(layer),
            sink: &mut sink,
        };
        let (_, facts) = check_layer(tee, member)?;
        let record = sink
            .finish()
            .map_err(|e| member_error(member, format!("cannot write the layer: {e}")))?;
        (record, facts)
    };
    out.flush().map_err(FileError::on("write", tar_path))?;
    Ok((record, facts, raw.finish()))
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
