//! What an image is made of, as supply-chain documents describe it: every store path its
//! layers hold (name and version read from the store name, NAR hash, references, licences,
//! the layer holding it), the layers by digest, and the config.
//!
//! One [`Description`] is made from the plan, the closure Nix hands the builder and the
//! licences known at evaluation; [`cyclonedx`], [`spdx`] and [`provenance`] each write it as
//! their format wants. Nothing in it depends on when or where it is made: no clock, no random
//! serial number, every list sorted, so the same inputs give the same bytes.

pub mod cyclonedx;
pub mod in_image;
pub mod names;
pub mod provenance;
pub mod spdx;
pub mod tarball;

use crate::digest::Digest;
use crate::image::archive::image_config;
use crate::plan::{ImagePlan, LayerContent};
use crate::store::closure::Closure;
use crate::store::nix_db::nar_hash_base16;
use crate::when::When;
use names::PackageName;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The creation time documents give an image created "now" (its real time is only known
/// when it is written): the Unix epoch plus one second, the date Nix images default to.
pub const UNKNOWN_TIME: &str = "1970-01-01T00:00:01Z";

/// The CycloneDX document's file name in an image's `sbom` output.
pub const CYCLONEDX_FILE: &str = "cyclonedx.json";
/// The SPDX document's file name.
pub const SPDX_FILE: &str = "spdx.json";
/// The provenance statement's file name.
pub const PROVENANCE_FILE: &str = "provenance.json";

/// A licence, as a derivation's `meta.license` gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct License {
    /// Its SPDX identifier (`MIT`, `GPL-3.0-or-later`), when it has one.
    #[serde(default)]
    pub spdx_id: Option<String>,
    /// Its name otherwise (`fullName` or `shortName`).
    #[serde(default)]
    pub name: Option<String>,
}

/// The licences of one store path, as the Nix library collects them at evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PathLicenses {
    /// The store path (an output of a derivation with `meta.license`).
    pub path: String,
    /// Its licences.
    pub licenses: Vec<License>,
}

/// The image as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// The image name (`repo_tag` without the tag).
    pub name: String,
    /// Its tag.
    pub tag: String,
    /// GOARCH name.
    pub architecture: String,
    /// Always `linux`.
    pub os: String,
    /// Creation time, RFC 3339, when fixed at build time (not "now").
    pub created: Option<String>,
    /// The config's digest, when the config is fixed at build time.
    pub config_digest: Option<Digest>,
}

/// One layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFacts {
    /// Its `diff_id` (sha256 of the uncompressed tar).
    pub diff_id: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it comes from the parent image (`fromImage`).
    pub from_parent: bool,
}

/// One store path in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The store path.
    pub path: String,
    /// Name, version and output read from its store name.
    pub package: PackageName,
    /// sha256 of its NAR serialisation, hex, when Nix gave it.
    pub nar_hash: Option<String>,
    /// Size of its NAR serialisation (0 when not known).
    pub nar_size: u64,
    /// The other store paths of the image it refers to, sorted.
    pub references: Vec<String>,
    /// Its licences, when known at evaluation.
    pub licenses: Vec<License>,
    /// Position of the layer that holds it, from 0 at the bottom.
    pub layer: usize,
}

/// What made the image, for provenance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildFacts {
    /// The Nix version that evaluated the image (`builtins.nixVersion`), when known.
    pub nix_version: Option<String>,
    /// The plan's derivation, when known.
    pub derivation: Option<String>,
    /// The Nix system the image was built for.
    pub system: Option<String>,
}

/// Everything the documents say of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The image as a whole.
    pub image: ImageFacts,
    /// Its layers, bottom to top.
    pub layers: Vec<LayerFacts>,
    /// Every store path its layers hold, each once, sorted by path.
    pub components: Vec<Component>,
    /// What made it.
    pub build: BuildFacts,
}

/// One document of an image's `sbom` output, read back for attaching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// Its file name.
    pub file: &'static str,
    /// Its media type.
    pub media_type: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The documents in `dir` (an image's `sbom` output, or one platform's directory of an
/// index's), in the order [`Description::documents`] writes them.
pub fn read_documents(
    dir: &std::path::Path,
) -> Result<Vec<StoredDocument>, crate::file_error::FileError> {
    [
        (CYCLONEDX_FILE, cyclonedx::MEDIA_TYPE),
        (SPDX_FILE, spdx::MEDIA_TYPE),
        (PROVENANCE_FILE, provenance::MEDIA_TYPE),
    ]
    .into_iter()
    .map(|(file, media_type)| {
        let path = dir.join(file);
        std::fs::read(&path)
            .map(|bytes| StoredDocument {
                file,
                media_type,
                bytes,
            })
            .map_err(crate::file_error::FileError::on("read", &path))
    })
    .collect()
}

/// The directory of an index's `sbom` output holding the documents of the image of `plan`:
/// its architecture, and variant when it has one (`amd64`, `arm-v7`).
pub fn platform_dir(plan: &ImagePlan) -> String {
    match &plan.variant {
        Some(v) => format!("{}-{v}", plan.architecture),
        None => plan.architecture.clone(),
    }
}

/// `name:tag` split (the tag `latest` when there is none).
fn split_repo_tag(repo_tag: &str) -> (String, String) {
    match repo_tag.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((n, t)) => (n.to_owned(), t.to_owned()),
        None => (repo_tag.to_owned(), "latest".to_owned()),
    }
}

/// The version of strata writing the documents.
pub fn strata_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

impl Description {
    /// Describes the image of `plan`. `held` gives, for each tarball layer (by position), the
    /// store paths it holds (see [`tarball::store_paths_in`]); `closure` the Nix metadata of
    /// the store paths (paths outside it get no hash or references); `licenses` what
    /// evaluation knew.
    pub fn new(
        plan: &ImagePlan,
        held: &BTreeMap<usize, Vec<String>>,
        closure: &Closure,
        licenses: &[PathLicenses],
        build: BuildFacts,
    ) -> Description {
        let (name, tag) = split_repo_tag(&plan.repo_tag);
        let created = match plan.created {
            When::Now => None,
            When::At(_) => Some(plan.created_at(time::OffsetDateTime::UNIX_EPOCH)),
        };
        let config_digest = created
            .as_deref()
            .map(|c| Digest::of(&image_config(plan, c, &plan.plain_blobs())));
        let image = ImageFacts {
            name,
            tag,
            architecture: plan.architecture.clone(),
            os: plan.os.clone(),
            created,
            config_digest,
        };
        let layers = plan
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let paths = match &l.content {
                    LayerContent::StorePaths { paths, .. } => paths.clone(),
                    LayerContent::Tarball { .. } => held.get(&i).cloned().unwrap_or_default(),
                };
                let facts = LayerFacts {
                    diff_id: l.record.diff_id,
                    size: l.record.size,
                    from_parent: i < plan.parent_layers,
                };
                (facts, paths)
            })
            .collect();
        Description::assemble(image, layers, closure, licenses, build)
    }

    /// Describes an image read from an archive ([`crate::image::explain::read_image`]): its
    /// layers, and the store paths strata's history entries name (no NAR hash, no
    /// references: an archive does not carry them).
    pub fn of_archive(facts: &crate::image::explain::ImageFacts) -> Description {
        let (name, tag) = split_repo_tag(&facts.name);
        let (config, digest) = facts
            .config
            .clone()
            .map_or((serde_json::Value::Null, None), |(c, d)| (c, Some(d)));
        let text = |key: &str| config[key].as_str().unwrap_or("unknown").to_owned();
        let image = ImageFacts {
            name,
            tag,
            architecture: text("architecture"),
            os: text("os"),
            created: config["created"].as_str().map(str::to_owned),
            config_digest: digest,
        };
        let layers = facts
            .layers
            .iter()
            .map(|l| {
                let paths = l
                    .paths
                    .iter()
                    .filter(|p| crate::store::path::is_store_path(p))
                    .cloned()
                    .collect();
                let facts = LayerFacts {
                    diff_id: l.diff_id,
                    size: l.bytes,
                    from_parent: false,
                };
                (facts, paths)
            })
            .collect();
        Description::assemble(
            image,
            layers,
            &Closure::default(),
            &[],
            BuildFacts::default(),
        )
    }

    /// The description of `image` whose layers (bottom to top) hold the given store paths.
    fn assemble(
        image: ImageFacts,
        layers: Vec<(LayerFacts, Vec<String>)>,
        closure: &Closure,
        licenses: &[PathLicenses],
        build: BuildFacts,
    ) -> Description {
        let mut layer_of: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, (_, paths)) in layers.iter().enumerate() {
            for p in paths {
                layer_of.entry(p.as_str()).or_insert(i);
            }
        }
        let meta: BTreeMap<&str, _> = closure
            .entries()
            .iter()
            .map(|e| (e.path.as_str(), e))
            .collect();
        let mut licensed: BTreeMap<&str, BTreeSet<License>> = BTreeMap::new();
        for l in licenses {
            licensed
                .entry(l.path.as_str())
                .or_default()
                .extend(l.licenses.iter().cloned());
        }
        let components = layer_of
            .iter()
            .map(|(&path, &layer)| {
                let entry = meta.get(path);
                Component {
                    path: path.to_owned(),
                    package: PackageName::of_store_path(path),
                    nar_hash: entry
                        .and_then(|e| e.nar_hash.as_deref())
                        .and_then(|h| nar_hash_base16(h).ok())
                        .map(|h| h.trim_start_matches("sha256:").to_owned()),
                    nar_size: entry.map_or(0, |e| e.nar_size),
                    references: entry.map_or_else(Vec::new, |e| {
                        let mut refs: Vec<String> = e
                            .references
                            .iter()
                            .filter(|r| r.as_str() != path && layer_of.contains_key(r.as_str()))
                            .cloned()
                            .collect();
                        refs.sort();
                        refs.dedup();
                        refs
                    }),
                    licenses: licensed
                        .get(path)
                        .map_or_else(Vec::new, |s| s.iter().cloned().collect()),
                    layer,
                }
            })
            .collect();
        Description {
            image,
            layers: layers.into_iter().map(|(facts, _)| facts).collect(),
            components,
            build,
        }
    }

    /// Describes the image of `plan`, listing the store paths of its tarball layers from
    /// their tars.
    pub fn of_plan(
        plan: &ImagePlan,
        closure: &Closure,
        licenses: &[PathLicenses],
        build: BuildFacts,
    ) -> Result<Description, tarball::TarballError> {
        let mut held = BTreeMap::new();
        for (i, layer) in plan.layers.iter().enumerate() {
            if let LayerContent::Tarball { path } = &layer.content {
                held.insert(i, tarball::store_paths_in(std::path::Path::new(path))?);
            }
        }
        Ok(Description::new(plan, &held, closure, licenses, build))
    }

    /// The three documents: (file name, media type, bytes).
    pub fn documents(&self) -> [(&'static str, &'static str, Vec<u8>); 3] {
        [
            (
                CYCLONEDX_FILE,
                cyclonedx::MEDIA_TYPE,
                cyclonedx::document(self),
            ),
            (SPDX_FILE, spdx::MEDIA_TYPE, spdx::document(self)),
            (
                PROVENANCE_FILE,
                provenance::MEDIA_TYPE,
                provenance::document(self),
            ),
        ]
    }

    /// The creation time documents give: the image's, or [`UNKNOWN_TIME`] for "now".
    pub fn document_time(&self) -> &str {
        self.image.created.as_deref().unwrap_or(UNKNOWN_TIME)
    }

    /// A digest of everything the documents say, for identifiers that must be unique to the
    /// content (serial numbers, namespaces) yet the same for the same inputs.
    pub fn fingerprint(&self) -> Digest {
        let mut text = format!(
            "{}:{}:{}:{:?}:{:?}",
            self.image.name,
            self.image.tag,
            self.image.architecture,
            self.image.created,
            self.image.config_digest.map(|d| d.to_string())
        );
        for l in &self.layers {
            text.push_str(&format!("|{}", l.diff_id));
        }
        for c in &self.components {
            text.push_str(&format!("|{}:{:?}", c.path, c.nar_hash));
        }
        Digest::of(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::record::LayerRecord;
    use crate::plan::{PlannedLayer, PLAN_VERSION};
    use crate::store::closure::ClosureEntry;
    use crate::tar::header::Stamp;

    fn path(name: &str) -> String {
        format!("/nix/store/{}-{name}", name.len().to_string().repeat(32))
    }

    fn plan(created: When) -> ImagePlan {
        let layer = |paths: Vec<String>, n: u8| PlannedLayer {
            content: LayerContent::StorePaths {
                paths,
                stamp: Stamp::root(1),
            },
            record: LayerRecord {
                size: 1024,
                diff_id: Digest([n; 32]),
                gzip: None,
                zstd: None,
                zstd_chunked: None,
                tarsum: None,
            },
            why: String::new(),
        };
        let tarball = PlannedLayer {
            content: LayerContent::Tarball {
                path: "/nonexistent/layer.tar".into(),
            },
            ..layer(vec![], 3)
        };
        ImagePlan {
            strata_plan: PLAN_VERSION,
            repo_tag: "registry.example/app:v1".into(),
            architecture: "amd64".into(),
            variant: None,
            os: "linux".into(),
            created,
            config: serde_json::json!({"Cmd": ["/bin/app"]}),
            layers: vec![
                layer(vec![path("app-1.0"), path("lib-2.1")], 1),
                layer(vec![path("data")], 2),
                tarball,
            ],
            parent_layers: 1,
            parent_history: vec![],
            legacy_layout: false,
            layer_compressor: crate::compress::Compression::None,
        }
    }

    fn closure() -> Closure {
        let entry = |name: &str, refs: &[&str]| ClosureEntry {
            path: path(name),
            references: refs.iter().map(|r| path(r)).collect(),
            nar_size: 100,
            nar_hash: Some("sha256:1r3v22qkypccqifzbww5lrn6hf1chi23m6zzkyvb8bvg457nxslq".into()),
        };
        Closure::from_entries([
            entry("app-1.0", &["app-1.0", "lib-2.1", "outside"]),
            entry("lib-2.1", &[]),
            entry("outside", &[]),
        ])
    }

    #[test]
    fn every_store_path_the_layers_hold_once_with_its_references_inside() {
        let held = BTreeMap::from([(2, vec![path("data"), path("extra-0.1")])]);
        let d = Description::new(
            &plan(When::parse("created", "2024-01-01T00:00:00Z").unwrap()),
            &held,
            &closure(),
            &[PathLicenses {
                path: path("lib-2.1"),
                licenses: vec![License {
                    spdx_id: Some("MIT".into()),
                    name: None,
                }],
            }],
            BuildFacts::default(),
        );
        let paths: Vec<&str> = d.components.iter().map(|c| c.path.as_str()).collect();
        let mut want = vec![
            path("app-1.0"),
            path("lib-2.1"),
            path("data"),
            path("extra-0.1"),
        ];
        want.sort();
        assert_eq!(paths, want);
        let app = d
            .components
            .iter()
            .find(|c| c.package.name == "app")
            .unwrap();
        assert_eq!(
            app.references,
            [path("lib-2.1")],
            "self and outside dropped"
        );
        assert_eq!(app.package.version, "1.0");
        assert_eq!(
            app.nar_hash.as_deref(),
            Some("98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4")
        );
        let data = d
            .components
            .iter()
            .find(|c| c.package.name == "data")
            .unwrap();
        assert_eq!(data.layer, 1, "the lowest layer holding it");
        assert!(d.layers[0].from_parent && !d.layers[1].from_parent);
        let lib = d
            .components
            .iter()
            .find(|c| c.package.name == "lib")
            .unwrap();
        assert_eq!(lib.licenses[0].spdx_id.as_deref(), Some("MIT"));
        assert!(d.image.config_digest.is_some());
        assert_eq!(
            (d.image.name.as_str(), d.image.tag.as_str()),
            ("registry.example/app", "v1")
        );
        // The same inputs, the same bytes.
        let again = Description::new(
            &plan(When::parse("created", "2024-01-01T00:00:00Z").unwrap()),
            &held,
            &closure(),
            &[PathLicenses {
                path: path("lib-2.1"),
                licenses: vec![License {
                    spdx_id: Some("MIT".into()),
                    name: None,
                }],
            }],
            BuildFacts::default(),
        );
        assert_eq!(again.documents(), d.documents());
    }

    #[test]
    fn an_image_created_now_names_no_config() {
        let d = Description::new(
            &plan(When::Now),
            &BTreeMap::new(),
            &closure(),
            &[],
            BuildFacts::default(),
        );
        assert_eq!(d.image.config_digest, None);
        assert_eq!(d.document_time(), UNKNOWN_TIME);
        let statement: serde_json::Value =
            serde_json::from_slice(&provenance::document(&d)).unwrap();
        assert_eq!(
            statement["subject"].as_array().unwrap().len(),
            3,
            "one per layer"
        );
    }
}
