//! The consumers a run uses: Debian 12's generation on the host, or Debian 13's inside the
//! root `scripts/debian13` makes. Their versions, what a version is known not to do, and the
//! chart of what each did with strata's images in this run; `scripts/test` turns the charts
//! of both generations into docs/consumers.md.

use crate::util::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// A program that takes strata's images (or, for Nix, builds them): a row of the chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Consumer {
    Nix,
    Docker,
    Podman,
    Containerd,
    Skopeo,
    Buildah,
    Umoci,
    Cosign,
    Oras,
}

impl Consumer {
    /// Every consumer, in the chart's order.
    pub const ALL: [Consumer; 9] = [
        Consumer::Nix,
        Consumer::Docker,
        Consumer::Podman,
        Consumer::Containerd,
        Consumer::Skopeo,
        Consumer::Buildah,
        Consumer::Umoci,
        Consumer::Cosign,
        Consumer::Oras,
    ];

    /// The consumers of images, charted on [`Feature::IMAGE`].
    pub const IMAGE: [Consumer; 6] = [
        Consumer::Docker,
        Consumer::Podman,
        Consumer::Containerd,
        Consumer::Skopeo,
        Consumer::Buildah,
        Consumer::Umoci,
    ];

    /// The tools charted on [`Feature::SUPPLY_CHAIN`].
    pub const SUPPLY_CHAIN: [Consumer; 4] = [
        Consumer::Podman,
        Consumer::Skopeo,
        Consumer::Cosign,
        Consumer::Oras,
    ];

    /// The name the chart shows.
    pub fn name(self) -> &'static str {
        match self {
            Consumer::Nix => "Nix",
            Consumer::Docker => "Docker",
            Consumer::Podman => "podman",
            Consumer::Containerd => "containerd",
            Consumer::Skopeo => "skopeo",
            Consumer::Buildah => "buildah",
            Consumer::Umoci => "umoci",
            Consumer::Cosign => "cosign",
            Consumer::Oras => "oras",
        }
    }

    fn from_name(name: &str) -> Option<Consumer> {
        Consumer::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The command that prints the version (Docker's is the daemon's, asked separately;
    /// Debian's cosign calls itself `devel`, so its package says).
    fn version_command(self) -> &'static [&'static str] {
        match self {
            Consumer::Nix => &["nix", "--version"],
            Consumer::Docker => &["dockerd", "--version"],
            Consumer::Podman => &["podman", "--version"],
            Consumer::Containerd => &["containerd", "--version"],
            Consumer::Skopeo => &["skopeo", "--version"],
            Consumer::Buildah => &["buildah", "--version"],
            Consumer::Umoci => &["umoci", "--version"],
            Consumer::Cosign => &["dpkg-query", "-W", "-f=${Version}", "cosign"],
            Consumer::Oras => &["oras", "version"],
        }
    }
}

/// One thing done with an image (or, for Nix, with the library): a column of the chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    PlainArchive,
    GzipArchive,
    ZstdArchive,
    GzipLayers,
    ZstdLayers,
    ZstdChunkedLayers,
    OciLayout,
    MergedArchive,
    StrataLoad,
    PushPull,
    ChunkedPushPull,
    Index,
    NixShellImage,
    RunAsRootImage,
    SandboxedBuilds,
    CheckRebuild,
    Flake,
    PathInfo,
    SameOutputs,
    SignaturePolicy,
    Referrers,
}

impl Feature {
    /// What the image consumers are charted on.
    pub const IMAGE: [Feature; 14] = [
        Feature::PlainArchive,
        Feature::GzipArchive,
        Feature::ZstdArchive,
        Feature::GzipLayers,
        Feature::ZstdLayers,
        Feature::ZstdChunkedLayers,
        Feature::OciLayout,
        Feature::MergedArchive,
        Feature::StrataLoad,
        Feature::PushPull,
        Feature::ChunkedPushPull,
        Feature::Index,
        Feature::NixShellImage,
        Feature::RunAsRootImage,
    ];

    /// What Nix is charted on.
    pub const NIX: [Feature; 5] = [
        Feature::SandboxedBuilds,
        Feature::CheckRebuild,
        Feature::Flake,
        Feature::PathInfo,
        Feature::SameOutputs,
    ];

    /// What the supply-chain tools are charted on.
    pub const SUPPLY_CHAIN: [Feature; 2] = [Feature::SignaturePolicy, Feature::Referrers];

    /// The column heading.
    pub fn label(self) -> &'static str {
        match self {
            Feature::PlainArchive => "plain archive",
            Feature::GzipArchive => "gzip archive",
            Feature::ZstdArchive => "zstd archive",
            Feature::GzipLayers => "gzip layers",
            Feature::ZstdLayers => "zstd layers",
            Feature::ZstdChunkedLayers => "zstd:chunked layers",
            Feature::OciLayout => "OCI layout only",
            Feature::MergedArchive => "mergeImages archive (gzip)",
            Feature::StrataLoad => "strata load",
            Feature::PushPull => "push, pull",
            Feature::ChunkedPushPull => "push zstd:chunked, pull",
            Feature::Index => "multi-arch index",
            Feature::NixShellImage => "nix-shell image",
            Feature::RunAsRootImage => "runAsRoot image",
            Feature::SandboxedBuilds => "builds every test image (sandbox)",
            Feature::CheckRebuild => "`--check` reproduces",
            Feature::Flake => "flake `nix build`",
            Feature::PathInfo => "reads `nix path-info --json`",
            Feature::SameOutputs => "same bytes as the other Nix",
            Feature::SignaturePolicy => {
                "checks strata's signature (right key passes, wrong key fails)"
            }
            Feature::Referrers => "lists the attached SBOMs and provenance",
        }
    }

    fn from_label(label: &str) -> Option<Feature> {
        Feature::IMAGE
            .into_iter()
            .chain(Feature::NIX)
            .chain(Feature::SUPPLY_CHAIN)
            .find(|f| f.label() == label)
    }
}

/// What a consumer is known not to do, from some version on or below one: tried anyway, and
/// a failure then shows as a known limit, not a failed check.
struct Limit {
    consumer: Consumer,
    features: &'static [Feature],
    /// Versions below this one have the limit; `None`: every version seen has it.
    below: Option<(u32, u32)>,
    /// Why, and what a user does instead.
    why: &'static str,
}

const LIMITS: &[Limit] = &[
    Limit {
        consumer: Consumer::Docker,
        features: &[
            Feature::ZstdArchive,
            Feature::ZstdLayers,
            Feature::ZstdChunkedLayers,
            Feature::ChunkedPushPull,
        ],
        below: Some((23, 0)),
        why: "Docker reads zstd from version 23 on",
    },
    Limit {
        consumer: Consumer::Docker,
        features: &[Feature::OciLayout],
        below: None,
        why: "`docker load` with Docker's own image store needs `manifest.json`; strata's archives carry it beside `index.json`",
    },
    Limit {
        consumer: Consumer::Podman,
        features: &[Feature::MergedArchive],
        below: Some((5, 0)),
        why: "podman 4.3 reads a gzipped archive of one image through its OCI layout; with several it falls back to `docker-archive:`, which fails on gzip (`archive/tar: invalid tar header`, podman#15944): `gzip -dc merged.tar.gz | podman load`",
    },
    Limit {
        consumer: Consumer::Skopeo,
        features: &[Feature::GzipArchive, Feature::MergedArchive],
        below: Some((1, 18)),
        why: "skopeo 1.9's `docker-archive:` fails on gzipped archives (`archive/tar: invalid tar header`, the error of podman#15944): decompress first",
    },
    Limit {
        consumer: Consumer::Buildah,
        features: &[Feature::GzipArchive, Feature::MergedArchive],
        below: Some((1, 39)),
        why: "buildah 1.28's `docker-archive:` has skopeo 1.9's gzip failure: decompress first",
    },
    Limit {
        consumer: Consumer::Umoci,
        features: &[Feature::ZstdLayers, Feature::ZstdChunkedLayers],
        below: Some((0, 6)),
        why: "umoci 0.4 unpacks only gzip and uncompressed layers; 0.6 reads zstd",
    },
    Limit {
        consumer: Consumer::Skopeo,
        features: &[Feature::SignaturePolicy],
        below: Some((1, 18)),
        why: "Debian 12 builds containers/image without sigstore (`Debian-local change: sigstore disabled`)",
    },
    Limit {
        consumer: Consumer::Podman,
        features: &[Feature::SignaturePolicy],
        below: Some((5, 0)),
        why: "Debian 12 builds containers/image without sigstore (`Debian-local change: sigstore disabled`)",
    },
    Limit {
        consumer: Consumer::Containerd,
        features: &[Feature::GzipArchive, Feature::ZstdArchive, Feature::MergedArchive],
        below: None,
        why: "`ctr images import` reads only uncompressed archives: `gzip -dc image.tar.gz | ctr images import -`",
    },
];

/// The consumers of this run, with their versions.
pub struct Consumers {
    /// `Debian 12`, `Debian 13`: the distribution they come from.
    pub generation: String,
    versions: BTreeMap<Consumer, String>,
}

impl Consumers {
    /// Asks every consumer for its version (Docker: the running daemon).
    pub fn detect(docker: &Dockerd) -> Consumers {
        let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |key: &str| {
            os.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or("?")
                .trim_matches('"')
                .to_owned()
        };
        let name = field("NAME");
        let generation = format!(
            "{} {}",
            name.split_whitespace().next().unwrap_or("?"),
            field("VERSION_ID")
        );
        let mut versions = BTreeMap::new();
        for consumer in Consumer::ALL {
            let text = if consumer == Consumer::Docker {
                ok(docker
                    .cmd()
                    .args(["version", "--format", "{{.Server.Version}}"]))
            } else {
                let command = consumer.version_command();
                ok(Command::new(command[0]).args(&command[1..]))
            };
            let version = text.ok().and_then(|t| version_in(&t));
            versions.insert(consumer, version.unwrap_or_else(|| "?".to_owned()));
        }
        Consumers {
            generation,
            versions,
        }
    }

    /// `debian13`: the generation as a file name.
    pub fn slug(&self) -> String {
        self.generation.to_lowercase().replace(' ', "")
    }

    /// The version of `consumer`, `?` when it did not say.
    pub fn version(&self, consumer: Consumer) -> &str {
        self.versions.get(&consumer).map_or("?", String::as_str)
    }

    fn major_minor(&self, consumer: Consumer) -> (u32, u32) {
        let mut parts = self
            .version(consumer)
            .split('.')
            .map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// True when `consumer` is at least `version` (major, minor): for checks of something
    /// only newer versions do at all, which skip on older ones rather than chart a cell.
    pub fn at_least(&self, consumer: Consumer, version: (u32, u32)) -> bool {
        self.major_minor(consumer) >= version
    }

    /// Why this version of `consumer` is known not to do `feature`, if it is.
    pub fn known_limit(&self, consumer: Consumer, feature: Feature) -> Option<&'static str> {
        LIMITS
            .iter()
            .find(|l| {
                l.consumer == consumer
                    && l.features.contains(&feature)
                    && l.below.map_or(true, |b| self.major_minor(consumer) < b)
            })
            .map(|l| l.why)
    }

    /// One line naming every consumer with its version.
    pub fn describe(&self) -> String {
        let list: Vec<String> = Consumer::ALL
            .iter()
            .map(|c| format!("{} {}", c.name(), self.version(*c)))
            .collect();
        format!("{}: {}", self.generation, list.join(", "))
    }
}

/// The first version number in a `--version` line, without Debian's suffixes:
/// `containerd github.com/containerd/containerd 1.7.24~ds1 ...` gives `1.7.24`.
fn version_in(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| w.trim_start_matches('v').trim_end_matches(','))
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(|w| w.split(['+', '~', '-']).next().unwrap_or(w).to_owned())
}

/// How a cell of the chart came out.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It worked.
    Pass,
    /// It failed, though this version should do it: the message.
    Fail(String),
    /// It failed as this version is known to: why.
    Known(&'static str),
}

/// The cells this run filled.
#[derive(Default)]
pub struct Chart {
    cells: BTreeMap<(Consumer, Feature), Outcome>,
}

impl Chart {
    /// Records what `result` says of `consumer` doing `feature`.
    pub fn record(
        &mut self,
        consumers: &Consumers,
        consumer: Consumer,
        feature: Feature,
        result: Check,
    ) {
        let outcome = match (result, consumers.known_limit(consumer, feature)) {
            _ if consumers.version(consumer) == "?" => {
                Outcome::Known("not packaged in this Debian release")
            }
            (Ok(()), _) => Outcome::Pass,
            (Err(_), Some(why)) => Outcome::Known(why),
            (Err(e), None) => Outcome::Fail(e),
        };
        self.cells.insert((consumer, feature), outcome);
    }

    /// The cells that failed, with their messages.
    pub fn failures(&self) -> Vec<String> {
        self.cells
            .iter()
            .filter_map(|((c, f), o)| match o {
                Outcome::Fail(e) => Some(format!("{} / {}: {e}", c.name(), f.label())),
                _ => None,
            })
            .collect()
    }

    /// Writes `build/e2e/chart-<generation>.json`, then `build/e2e/consumers.md` from the charts
    /// of every generation there; returns the Markdown.
    pub fn write(&self, consumers: &Consumers) -> Result<String, String> {
        let dir = chart_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cells: Vec<Value> = self
            .cells
            .iter()
            .map(|((c, f), o)| {
                let (outcome, note) = match o {
                    Outcome::Pass => ("pass", String::new()),
                    Outcome::Fail(e) => ("fail", e.lines().next().unwrap_or_default().to_owned()),
                    Outcome::Known(why) => ("known", (*why).to_owned()),
                };
                json!({"consumer": c.name(), "feature": f.label(), "outcome": outcome, "note": note})
            })
            .collect();
        let versions: BTreeMap<&str, &str> = Consumer::ALL
            .iter()
            .map(|c| (c.name(), consumers.version(*c)))
            .collect();
        let date = ok(Command::new("date").args(["-u", "+%Y-%m-%d"]))?;
        let chart = json!({
            "generation": consumers.generation,
            "date": date.trim(),
            "versions": versions,
            "cells": cells,
        });
        let file = dir.join(format!("chart-{}.json", consumers.slug()));
        std::fs::write(
            &file,
            serde_json::to_string_pretty(&chart).unwrap_or_default(),
        )
        .map_err(|e| format!("{}: {e}", file.display()))?;
        let mut charts = Vec::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("chart-") && name.ends_with(".json") {
                let text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
                charts.push(
                    serde_json::from_str::<Value>(&text).map_err(|e| format!("{name}: {e}"))?,
                );
            }
        }
        charts.sort_by_key(|c| c["generation"].as_str().unwrap_or_default().to_owned());
        let markdown = render(&charts);
        let md = dir.join("consumers.md");
        std::fs::write(&md, &markdown).map_err(|e| format!("{}: {e}", md.display()))?;
        Ok(markdown)
    }
}

/// Where the charts and the outputs records of each generation go.
pub fn chart_dir() -> PathBuf {
    repo().join("build/e2e")
}

/// The chart as Markdown: one table of image consumers, one of Nix, then the notes.
fn render(charts: &[Value]) -> String {
    let mut notes: Vec<String> = Vec::new();
    let mut note_number = |text: &str| -> usize {
        match notes.iter().position(|n| n == text) {
            Some(i) => i + 1,
            None => {
                notes.push(text.to_owned());
                notes.len()
            }
        }
    };
    let dates: Vec<String> = charts
        .iter()
        .map(|c| {
            format!(
                "{} on {}",
                c["generation"].as_str().unwrap_or("?"),
                c["date"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let mut out = format!(
        "# Consumers, versions and what they do with strata's images\n\n\
         Generated by the end-to-end tests (`scripts/test` runs them against both generations \
         and writes this file; do not edit it by hand). Last runs: {}.\n\n\
         ✓ worked · ✗ failed · no (n) failed as that version is known to, note n below · \
         — not something that consumer does · blank: not run. Every cell is a real run that \
         starts from an empty image store (so no layer is skipped as already there): the \
         image loaded or pulled, then run (docker, podman, `ctr run`, `buildah run`) and its \
         output checked; skopeo copies every blob; umoci unpacks. \"Same bytes as the other \
         Nix\" is filled in by the generation that runs second, which compares the store paths \
         both built.\n",
        dates.join(", ")
    );
    let mut table =
        |title: &str, consumers: &[Consumer], features: &[Feature], out: &mut String| {
            out.push_str(&format!("\n## {title}\n\n| |"));
            for f in features {
                out.push_str(&format!(" {} |", f.label()));
            }
            out.push_str("\n|---|");
            out.push_str(&"---|".repeat(features.len()));
            out.push('\n');
            for consumer in consumers {
                for chart in charts {
                    let version = match chart["versions"][consumer.name()].as_str() {
                        Some("?") | None => "(none packaged)",
                        Some(v) => v,
                    };
                    out.push_str(&format!(
                        "| {} {version} ({}) |",
                        consumer.name(),
                        chart["generation"].as_str().unwrap_or("?")
                    ));
                    let cells = chart["cells"].as_array().cloned().unwrap_or_default();
                    for feature in features {
                        let cell = cells.iter().find(|c| {
                            Consumer::from_name(c["consumer"].as_str().unwrap_or_default())
                                == Some(*consumer)
                                && Feature::from_label(c["feature"].as_str().unwrap_or_default())
                                    == Some(*feature)
                        });
                        let text = match cell.map(|c| {
                            (
                                c["outcome"].as_str().unwrap_or(""),
                                c["note"].as_str().unwrap_or(""),
                            )
                        }) {
                            Some(("pass", _)) => "✓".to_owned(),
                            Some(("fail", _)) => "✗".to_owned(),
                            Some(("known", note)) => format!("no ({})", note_number(note)),
                            _ if not_applicable(*consumer, *feature) => "—".to_owned(),
                            _ => String::new(),
                        };
                        out.push_str(&format!(" {text} |"));
                    }
                    out.push('\n');
                }
            }
        };
    table(
        "Image consumers",
        &Consumer::IMAGE,
        &Feature::IMAGE,
        &mut out,
    );
    table("Nix", &[Consumer::Nix], &Feature::NIX, &mut out);
    table(
        "Signatures and attached documents",
        &Consumer::SUPPLY_CHAIN,
        &Feature::SUPPLY_CHAIN,
        &mut out,
    );
    if !notes.is_empty() {
        out.push_str("\nNotes:\n\n");
        for (i, n) in notes.iter().enumerate() {
            out.push_str(&format!("{}. {n}\n", i + 1));
        }
    }
    out
}

/// Cells no consumer of that kind has: skopeo and umoci run nothing, only engines take
/// `strata load`, umoci reads only OCI layouts.
pub fn not_applicable(consumer: Consumer, feature: Feature) -> bool {
    use Feature::*;
    match consumer {
        Consumer::Nix => false,
        Consumer::Docker => false,
        Consumer::Podman => feature == Referrers,
        Consumer::Containerd | Consumer::Buildah => feature == StrataLoad,
        Consumer::Skopeo => matches!(
            feature,
            StrataLoad | NixShellImage | RunAsRootImage | Referrers
        ),
        Consumer::Umoci => !matches!(
            feature,
            OciLayout | GzipLayers | ZstdLayers | ZstdChunkedLayers
        ),
        Consumer::Cosign => feature != SignaturePolicy,
        Consumer::Oras => feature != Referrers,
        // skopeo and buildah take one image of a merged archive (`docker-archive:FILE:NAME`).
    }
}
