//! `strata explain`: an image's layers, their store paths, bytes and why each holds what it
//! holds, and, against an older image, which layers a push or pull would move (and, with
//! [`add_partial_pull`], what a zstd:chunked partial pull would move). An image is a
//! strata plan (a `streamLayeredImage` result, everything known) or an archive (a
//! docker-archive or OCI layout, plain or compressed: layers from its manifest and config,
//! store paths from the history strata writes).

use crate::compress::{decompressed, Compression};
use crate::digest::Digest;
use crate::file_error::FileError;
use crate::image::partial_pull::{predict, LayerTars, PartialPull, PartialPullError};
use crate::plan::file::is_script;
use crate::plan::index::AnyPlan;
use crate::plan::record_cache::RecordCache;
use crate::plan::{LayerContent, PlanError};
use crate::tar::reader::TarReader;
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

/// The most bytes of an archive member read to find the manifest and config.
const MAX_METADATA: u64 = 16 << 20;

/// Why an image cannot be explained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The plan cannot be read.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The archive cannot be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// What a partial pull moves cannot be predicted.
    #[error(transparent)]
    PartialPull(#[from] PartialPullError),
    /// The archive is not an image strata can read.
    #[error("`{path}`: {reason}")]
    Archive {
        /// The archive.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// One layer as an image holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerFacts {
    /// The uncompressed layer's digest.
    pub diff_id: Digest,
    /// Bytes of the layer, uncompressed when known (else as stored).
    pub bytes: u64,
    /// Bytes a push sends, when known: the gzip blob's (from a plan's record, when the image
    /// stores gzip layers, or from the digests an earlier push computed), or a compressed
    /// member's.
    pub push_bytes: Option<u64>,
    /// Its store paths, when known (and `/nix/store` for other contents).
    pub paths: Vec<String>,
    /// Why it holds what it holds, when the image says.
    pub why: String,
}

/// An image's layers, bottom to top.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageFacts {
    /// `name:tag`.
    pub name: String,
    /// The layers.
    pub layers: Vec<LayerFacts>,
    /// An archive's image config and its digest (`None` for a plan, whose config is made
    /// when the image is written).
    #[serde(skip)]
    pub config: Option<(Value, Digest)>,
    /// Where its layers' tars come from.
    #[serde(skip)]
    pub tars: LayerTars,
}

/// One line of the explanation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedLayer {
    /// Position from the bottom, from 1.
    pub index: usize,
    /// The layer.
    #[serde(flatten)]
    pub layer: LayerFacts,
    /// Against an older image: whether it has this layer already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused: Option<bool>,
    /// Against an older image, for a layer it lacks: the bytes a zstd:chunked partial pull
    /// of it moves ([`add_partial_pull`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunked_pull_bytes: Option<u64>,
}

/// What `strata explain` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The image.
    pub image: String,
    /// The older image, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    /// Its layers.
    pub layers: Vec<ExplainedLayer>,
    /// Bytes of all layers.
    pub bytes: u64,
    /// Against the older image: layers it has already.
    pub reused_layers: usize,
    /// ... and their bytes.
    pub reused_bytes: u64,
    /// Against the older image: layers it lacks.
    pub new_layers: usize,
    /// ... their bytes, uncompressed.
    pub new_bytes: u64,
    /// ... the bytes a push sends for them (a pull fetches the same), as far as known.
    pub new_push_bytes: u64,
    /// Whether some new layer's push bytes are unknown (an uncompressed archive).
    pub push_bytes_unknown: bool,
    /// Against the older image: what a zstd:chunked partial pull of the new layers moves,
    /// when predicted ([`add_partial_pull`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunked_pull: Option<PartialPull>,
}

/// The layers of the image in `path`: a plan, or an archive.
pub fn read_image(path: &Path) -> Result<ImageFacts, ExplainError> {
    if is_script(path) {
        let plan = AnyPlan::read(path).map_err(|e| match e {
            crate::plan::index::IndexError::Plan(p) => ExplainError::Plan(p),
            other => ExplainError::Archive {
                path: path.display().to_string(),
                reason: other.to_string(),
            },
        })?;
        let cache = RecordCache::user();
        let (plans, name) = plan.images();
        let plan = &plans[0];
        return Ok(ImageFacts {
            name: name.to_owned(),
            layers: plan
                .layers
                .iter()
                .map(|l| LayerFacts {
                    diff_id: l.record.diff_id,
                    bytes: l.record.size,
                    push_bytes: l
                        .record
                        .gzip
                        .or_else(|| {
                            cache
                                .get(&l.record.diff_id, Compression::Gzip)
                                .map(|l| l.blob)
                        })
                        .map(|b| b.size),
                    paths: match &l.content {
                        LayerContent::StorePaths { paths, .. } => paths.clone(),
                        LayerContent::Tarball { .. } => Vec::new(),
                    },
                    why: l.why.clone(),
                })
                .collect(),
            config: None,
            tars: LayerTars::Plan(plan.layers.iter().map(|l| l.content.clone()).collect()),
        });
    }
    read_archive(path)
}

/// The members of an archive that may be metadata (JSON), and every member's size.
struct Members {
    /// Each member's size.
    sizes: HashMap<String, u64>,
    /// The contents of members that start like JSON (`{` or `[`).
    json: HashMap<String, Vec<u8>>,
}

/// Reads the members of the archive `path`, keeping those that start like JSON, at most
/// [`MAX_METADATA`] bytes of them: layers are read past, never held. The archive is the
/// user's: read as Go's archive/tar reads it, extension headers bounded ([`TarReader`]).
fn read_members(
    path: &Path,
    bad: &dyn Fn(String) -> ExplainError,
) -> Result<Members, ExplainError> {
    let file = std::fs::File::open(path).map_err(FileError::on("open", path))?;
    let reader = decompressed(file).map_err(FileError::on("read", path))?;
    let mut tar = TarReader::new(reader);
    let mut members = Members {
        sizes: HashMap::new(),
        json: HashMap::new(),
    };
    let mut kept = 0u64;
    loop {
        // The reader's message names a byte offset: name the place in members instead.
        let entry = tar.next_entry().map_err(|_| match members.sizes.len() {
            0 => bad("not a tar archive (plain, gzip or zstd)".to_owned()),
            n => bad(format!("damaged archive after its {n} first members")),
        })?;
        let Some(entry) = entry else {
            break;
        };
        let name = String::from_utf8_lossy(&entry.name)
            .trim_start_matches("./")
            .to_owned();
        let size = entry.size;
        members.sizes.insert(name.clone(), size);
        let mut data = tar.data();
        let mut first = [0u8; 1];
        if size == 0 || data.read_exact(&mut first).is_err() || !matches!(first[0], b'{' | b'[') {
            continue;
        }
        kept += size;
        if kept > MAX_METADATA {
            return Err(bad(format!(
                "more than {MAX_METADATA} bytes of JSON members (at `{name}`)"
            )));
        }
        let mut bytes = first.to_vec();
        data.read_to_end(&mut bytes)
            .map_err(|e| bad(format!("member `{name}`: {e}")))?;
        members.json.insert(name, bytes);
    }
    Ok(members)
}

/// One layer as an archive's manifest names it.
struct ArchiveLayer {
    /// The member holding it.
    member: String,
    /// Whether the member is compressed (what a push sends as it is).
    compressed: bool,
}

/// What an archive's manifest says: the image's name, its config member and its layers.
type Manifest = (String, String, Vec<ArchiveLayer>);

impl Members {
    /// The JSON member `name`.
    fn json(
        &self,
        name: &str,
        bad: &dyn Fn(String) -> ExplainError,
    ) -> Result<Value, ExplainError> {
        let bytes = self
            .json
            .get(name)
            .ok_or_else(|| bad(format!("no JSON member `{name}`")))?;
        serde_json::from_slice(bytes).map_err(|e| bad(format!("`{name}` is not JSON: {e}")))
    }

    /// The first image of Docker's `manifest.json`.
    fn docker_manifest(
        &self,
        bad: &dyn Fn(String) -> ExplainError,
    ) -> Result<Manifest, ExplainError> {
        let manifest = self.json("manifest.json", bad)?;
        let entry = &manifest[0];
        let config = entry["Config"].as_str().unwrap_or_default().to_owned();
        let layers = entry["Layers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(|m| ArchiveLayer {
                        member: m.to_owned(),
                        compressed: false,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = entry["RepoTags"][0].as_str().unwrap_or_default().to_owned();
        Ok((name, config, layers))
    }

    /// The first image of an OCI layout's `index.json`.
    fn oci_manifest(&self, bad: &dyn Fn(String) -> ExplainError) -> Result<Manifest, ExplainError> {
        let blob = |digest: &Value| -> String {
            format!(
                "blobs/{}",
                digest.as_str().unwrap_or_default().replacen(':', "/", 1)
            )
        };
        let index = self.json("index.json", bad)?;
        let described = &index["manifests"][0];
        let manifest = self.json(&blob(&described["digest"]), bad)?;
        let config = blob(&manifest["config"]["digest"]);
        let layers = manifest["layers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|d| ArchiveLayer {
                        member: blob(&d["digest"]),
                        compressed: d["mediaType"]
                            .as_str()
                            .is_some_and(|t| t.ends_with("+gzip") || t.ends_with("+zstd")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = described["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((name, config, layers))
    }
}

/// The `comment`s of a config's history entries that made layers, in order.
fn layer_comments(config: &Value) -> Vec<String> {
    config["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
                .map(|e| e["comment"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The layers of a docker-archive or OCI layout archive: from `manifest.json` when there is
/// one, else from `index.json`'s first manifest.
fn read_archive(path: &Path) -> Result<ImageFacts, ExplainError> {
    let shown = path.display().to_string();
    let bad = |reason: String| ExplainError::Archive {
        path: shown.clone(),
        reason,
    };
    let members = read_members(path, &bad)?;
    let (name, config_member, layers) = if members.json.contains_key("manifest.json") {
        members.docker_manifest(&bad)?
    } else {
        members.oci_manifest(&bad)?
    };
    let config = members.json(&config_member, &bad)?;
    let config_digest = Digest::of(
        members
            .json
            .get(&config_member)
            .map_or(&[][..], Vec::as_slice),
    );
    let diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|d| d.as_str().and_then(Digest::parse))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(bad(format!(
            "{} layers in the manifest but {} diff_ids in its config",
            layers.len(),
            diff_ids.len()
        )));
    }
    let comments = layer_comments(&config);
    let tars = LayerTars::Archive {
        path: path.to_owned(),
        members: layers.iter().map(|l| l.member.clone()).collect(),
    };
    let layers = layers
        .iter()
        .zip(diff_ids)
        .enumerate()
        .map(|(i, (layer, diff_id))| {
            let stored = members.sizes.get(&layer.member).copied().unwrap_or(0);
            let comment = comments.get(i).map(String::as_str).unwrap_or_default();
            LayerFacts {
                diff_id,
                bytes: stored,
                push_bytes: layer.compressed.then_some(stored),
                paths: comment
                    .strip_prefix("store paths: ")
                    .map(|p| p.split(' ').map(str::to_owned).collect())
                    .unwrap_or_default(),
                why: String::new(),
            }
        })
        .collect();
    Ok(ImageFacts {
        name,
        layers,
        config: Some((config, config_digest)),
        tars,
    })
}

/// `image`'s layers, and against `older` which of them a push or pull would move.
pub fn explain(image: &ImageFacts, older: Option<&ImageFacts>) -> Explanation {
    let known: Option<HashSet<Digest>> =
        older.map(|o| o.layers.iter().map(|l| l.diff_id).collect());
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut explanation = Explanation {
        image: image.name.clone(),
        against: older.map(|o| o.name.clone()),
        layers: Vec::with_capacity(image.layers.len()),
        bytes: 0,
        reused_layers: 0,
        reused_bytes: 0,
        new_layers: 0,
        new_bytes: 0,
        new_push_bytes: 0,
        push_bytes_unknown: false,
        chunked_pull: None,
    };
    for (i, layer) in image.layers.iter().enumerate() {
        let reused = known.as_ref().map(|k| k.contains(&layer.diff_id));
        explanation.bytes += layer.bytes;
        // A layer listed twice moves once.
        if seen.insert(layer.diff_id) {
            match reused {
                Some(true) => {
                    explanation.reused_layers += 1;
                    explanation.reused_bytes += layer.bytes;
                }
                Some(false) => {
                    explanation.new_layers += 1;
                    explanation.new_bytes += layer.bytes;
                    match layer.push_bytes {
                        Some(b) => explanation.new_push_bytes += b,
                        None => explanation.push_bytes_unknown = true,
                    }
                }
                None => {}
            }
        }
        explanation.layers.push(ExplainedLayer {
            index: i + 1,
            layer: layer.clone(),
            reused,
            chunked_pull_bytes: None,
        });
    }
    explanation
}

/// Adds to `explanation` (of `image` against `older`) what a zstd:chunked partial pull of
/// the new layers moves when the puller holds `older`'s layers with their TOCs: each new
/// layer written as zstd:chunked, its files looked up in `older`'s
/// ([`crate::image::partial_pull`]). Nothing when either image's tars are unknown.
pub fn add_partial_pull(
    explanation: &mut Explanation,
    image: &ImageFacts,
    older: &ImageFacts,
) -> Result<(), ExplainError> {
    let first_of = |layers: &[LayerFacts], keep: &dyn Fn(&Digest) -> bool| -> Vec<usize> {
        let mut seen = HashSet::new();
        (0..layers.len())
            .filter(|&i| keep(&layers[i].diff_id) && seen.insert(layers[i].diff_id))
            .collect()
    };
    if image.tars == LayerTars::Unknown || older.tars == LayerTars::Unknown {
        return Ok(());
    }
    let known: HashSet<Digest> = older.layers.iter().map(|l| l.diff_id).collect();
    let new = first_of(&image.layers, &|d| !known.contains(d));
    let old = first_of(&older.layers, &|_| true);
    let pulls = predict(&image.tars, &new, &older.tars, &old)?;
    let mut total = PartialPull::default();
    for (&i, pull) in new.iter().zip(pulls) {
        explanation.layers[i].chunked_pull_bytes = Some(pull.bytes);
        total += pull;
    }
    explanation.chunked_pull = Some(total);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(byte: u8, bytes: u64) -> LayerFacts {
        LayerFacts {
            diff_id: Digest([byte; 32]),
            bytes,
            push_bytes: Some(bytes / 2),
            paths: vec![format!("/nix/store/{byte}")],
            why: String::new(),
        }
    }

    #[test]
    fn against_an_older_image_counts_what_moves() {
        let old = ImageFacts {
            name: "app:1".into(),
            layers: vec![layer(1, 1000), layer(2, 500), layer(3, 10)],
            config: None,
            tars: LayerTars::Unknown,
        };
        let new = ImageFacts {
            name: "app:2".into(),
            layers: vec![layer(1, 1000), layer(2, 500), layer(4, 12), layer(4, 12)],
            config: None,
            tars: LayerTars::Unknown,
        };
        let e = explain(&new, Some(&old));
        assert_eq!((e.reused_layers, e.reused_bytes), (2, 1500));
        assert_eq!((e.new_layers, e.new_push_bytes), (1, 6));
        assert_eq!(e.layers[2].reused, Some(false));
        assert_eq!(explain(&new, None).layers[0].reused, None);
    }

    /// A plan-like image of one layer: the store path `dir` holding `files`.
    fn image_of(dir: &Path, files: &[(&str, Vec<u8>)]) -> ImageFacts {
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let content = LayerContent::StorePaths {
            paths: vec![dir.display().to_string()],
            stamp: crate::tar::header::Stamp::root(1),
        };
        let tar =
            crate::tar::layer::write_layer_to(&content.source(), &content.stamp(), Vec::new())
                .unwrap();
        ImageFacts {
            name: dir.display().to_string(),
            layers: vec![LayerFacts {
                diff_id: Digest::of(&tar),
                bytes: tar.len() as u64,
                push_bytes: None,
                paths: Vec::new(),
                why: String::new(),
            }],
            config: None,
            tars: LayerTars::Plan(vec![content]),
        }
    }

    /// The bytes of `file`'s frames in the zstd:chunked form of `image`'s layer, and of its
    /// TOC and tar-split.
    fn frames_of(image: &ImageFacts, file: &str) -> (u64, u64) {
        let LayerTars::Plan(layers) = &image.tars else {
            unreachable!()
        };
        let writer = crate::compress::chunked::ChunkedWriter::new(Vec::new(), None);
        let writer =
            crate::tar::layer::write_layer_to(&layers[0].source(), &layers[0].stamp(), writer)
                .unwrap();
        let (blob, toc) = writer.finish().unwrap();
        let t = &toc.toc;
        let plain =
            zstd::decode_all(&blob[t.offset as usize..(t.offset + t.compressed) as usize]).unwrap();
        let json: Value = serde_json::from_slice(&plain).unwrap();
        let entry = json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str().unwrap().ends_with(file))
            .unwrap();
        let range = entry["endOffset"].as_u64().unwrap() - entry["offset"].as_u64().unwrap();
        (range, toc.toc.compressed + toc.tar_split.compressed)
    }

    #[test]
    fn a_partial_pull_moves_the_changed_file_and_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let noise = |seed: u8, n: usize| -> Vec<u8> {
            (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
        };
        let old = image_of(
            &dir.path().join("aaa-app-1"),
            &[
                ("a", noise(1, 5000)),
                ("b", noise(2, 7000)),
                ("e", Vec::new()),
            ],
        );
        let new = image_of(
            &dir.path().join("bbb-app-2"),
            &[
                ("a", noise(1, 5000)),
                ("b", noise(3, 7000)),
                ("e", Vec::new()),
            ],
        );
        let mut e = explain(&new, Some(&old));
        add_partial_pull(&mut e, &new, &old).unwrap();
        let (b, tables) = frames_of(&new, "/b");
        let pull = e.chunked_pull.unwrap();
        assert_eq!(
            pull,
            PartialPull {
                files: 2,
                files_missing: 1,
                file_bytes: b,
                metadata_bytes: tables,
                bytes: b + tables,
            }
        );
        assert_eq!(e.layers[0].chunked_pull_bytes, Some(b + tables));
        // The older image as an archive of its layer tar: the same answer.
        let LayerTars::Plan(layers) = &old.tars else {
            unreachable!()
        };
        let tar = dir.path().join("old.tar");
        let file = std::fs::File::create(&tar).unwrap();
        crate::tar::layer::write_layer_to(&layers[0].source(), &layers[0].stamp(), file).unwrap();
        let old = ImageFacts {
            tars: LayerTars::Plan(vec![LayerContent::Tarball {
                path: tar.display().to_string(),
            }]),
            ..old
        };
        let mut again = explain(&new, Some(&old));
        add_partial_pull(&mut again, &new, &old).unwrap();
        assert_eq!(again.chunked_pull, Some(pull));
        // Against itself, nothing is new and nothing moves.
        let mut same = explain(&new, Some(&new));
        add_partial_pull(&mut same, &new, &new).unwrap();
        assert_eq!(same.chunked_pull, Some(PartialPull::default()));
    }

    #[test]
    fn json_members_past_the_bound_are_refused_naming_the_member() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
        let mut body = vec![b' '; (MAX_METADATA as usize) / 2 + 1];
        body[0] = b'{';
        for name in ["a.json", "b.json"] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, body.as_slice()).unwrap();
        }
        tar.finish().unwrap();
        let err = read_image(&path).unwrap_err().to_string();
        assert!(err.contains("JSON members (at `b.json`)"), "{err}");
    }
}
