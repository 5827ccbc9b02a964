//! The figures a layering is judged by, measured as a registry would see them.
//!
//! - A *bump* of path P gives P and every path that refers to it, directly or not, a new
//!   store path of the same size; the closure is then layered again. *Upload(P)* is the bytes
//!   of the new layers whose exact set of store paths is not a layer of the old image (a
//!   registry holds those already); *Changed(P)* the bytes of the paths that changed, what no
//!   layering can avoid sending. The *excess* is Σ Upload / Σ Changed over the bumps.
//! - A root's bump (the application's) uploads its layer: [`Report::root_bumps`].
//! - *Sharing* between two images: the bytes of the second image's layers that are layers of
//!   the first, over the bytes of the store paths both hold.

use super::LayeringError;
use crate::store::closure::{Closure, ClosureEntry};
use crate::store::graph::ReferenceGraph;
use crate::store::path::STORE_DIR;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A layering to measure: the layers of a closure, bottom to top.
pub type Layering<'a> = dyn Fn(&Closure) -> Result<Vec<Vec<String>>, LayeringError> + 'a;

/// Most bumps simulated; a larger closure is sampled evenly.
pub const MAX_BUMPS: usize = 400;

/// What a layering does to a closure.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Store paths in the closure.
    pub paths: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Layers made.
    pub layers: usize,
    /// Bytes of the largest layer.
    pub largest_layer: u64,
    /// Layers under 100 kB.
    pub small_layers: usize,
    /// Bumps simulated (every path, or an even sample of [`MAX_BUMPS`]).
    pub bumps: usize,
    /// Σ Upload / Σ Changed over the bumps.
    pub excess: f64,
    /// Mean bytes uploaded per bump.
    pub mean_upload: f64,
    /// Mean bytes changed per bump.
    pub mean_changed: f64,
    /// Each root's bump: the path, its own bytes, and the bytes uploaded.
    pub root_bumps: Vec<RootBump>,
    /// Sharing with another image, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
}

/// What a change of a root (an application) uploads.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootBump {
    /// The root.
    pub path: String,
    /// Its bytes.
    pub own: u64,
    /// Bytes uploaded when it changes.
    pub uploaded: u64,
}

/// How much of what two images hold in common is in layers they share.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sharing {
    /// Bytes of the store paths both closures hold.
    pub common: u64,
    /// Bytes of the second image's layers that are layers of the first.
    pub shared: u64,
    /// `shared / common`.
    pub ratio: f64,
}

/// Measures `layering` on `closure` (and its sharing with `other`, when given).
pub fn measure(
    closure: &Closure,
    layering: &Layering<'_>,
    other: Option<&Closure>,
) -> Result<Report, LayeringError> {
    let layers = layering(closure)?;
    let size: HashMap<&str, u64> = closure
        .entries()
        .iter()
        .map(|e| (e.path.as_str(), e.nar_size))
        .collect();
    let layer_bytes = |layer: &[String]| layer.iter().map(|p| size[p.as_str()]).sum::<u64>();
    let old: HashSet<BTreeSet<&str>> = layers
        .iter()
        .map(|l| l.iter().map(String::as_str).collect())
        .collect();
    let graph = ReferenceGraph::new(closure, &BTreeSet::new())?;
    let n = graph.len();
    let step = n.div_ceil(MAX_BUMPS).max(1);
    let (mut uploaded, mut changed, mut bumps) = (0u128, 0u128, 0usize);
    let mut root_bumps = Vec::new();
    for p in 0..n {
        let root = graph.is_root(p);
        if p % step != 0 && !root {
            continue;
        }
        let touched = referrers_of(&graph, p);
        let bumped = bump(closure, &touched);
        let new_layers = layering(&bumped)?;
        let bumped_size: HashMap<&str, u64> = bumped
            .entries()
            .iter()
            .map(|e| (e.path.as_str(), e.nar_size))
            .collect();
        let upload: u64 = new_layers
            .iter()
            .filter(|l| !old.contains(&l.iter().map(String::as_str).collect::<BTreeSet<_>>()))
            .map(|l| l.iter().map(|p| bumped_size[p.as_str()]).sum::<u64>())
            .sum();
        if root {
            root_bumps.push(RootBump {
                path: graph.path(p).to_owned(),
                own: graph.entries[p].nar_size,
                uploaded: upload,
            });
        }
        if p % step == 0 {
            bumps += 1;
            uploaded += u128::from(upload);
            changed += touched
                .iter()
                .map(|&q| u128::from(graph.entries[q].nar_size))
                .sum::<u128>();
        }
    }
    let sharing = other
        .map(|other| sharing(closure, &layers, other, layering))
        .transpose()?;
    Ok(Report {
        paths: n,
        bytes: closure.entries().iter().map(|e| e.nar_size).sum(),
        layers: layers.len(),
        largest_layer: layers.iter().map(|l| layer_bytes(l)).max().unwrap_or(0),
        small_layers: layers.iter().filter(|l| layer_bytes(l) < 100_000).count(),
        bumps,
        excess: if changed == 0 {
            1.0
        } else {
            uploaded as f64 / changed as f64
        },
        mean_upload: uploaded as f64 / bumps.max(1) as f64,
        mean_changed: changed as f64 / bumps.max(1) as f64,
        root_bumps,
        sharing,
    })
}

/// `closure` with the paths of `changed` it holds, and every path referring to them, given
/// new store paths as a bump gives them: what a member of a family built from the same
/// package set becomes when another member's bump changes paths it holds too.
pub(super) fn bump_paths(closure: &Closure, changed: &BTreeSet<&str>) -> Closure {
    let Ok(graph) = ReferenceGraph::new(closure, &BTreeSet::new()) else {
        return closure.clone();
    };
    let mut touched: BTreeSet<usize> = BTreeSet::new();
    for p in (0..graph.len()).filter(|&p| changed.contains(graph.path(p))) {
        touched.extend(referrers_of(&graph, p));
    }
    bump(closure, &touched.into_iter().collect::<Vec<_>>())
}

/// Node `p` and every node that refers to it, directly or not.
fn referrers_of(graph: &ReferenceGraph, p: usize) -> Vec<usize> {
    let mut seen = vec![false; graph.len()];
    let mut stack = vec![p];
    seen[p] = true;
    let mut out = Vec::new();
    while let Some(i) = stack.pop() {
        out.push(i);
        for &q in &graph.parents[i] {
            if !seen[q] {
                seen[q] = true;
                stack.push(q);
            }
        }
    }
    out
}

/// `closure` with the paths `touched` (node indices of its graph, in closure order) given new
/// store paths: the same names and sizes, another hash.
fn bump(closure: &Closure, touched: &[usize]) -> Closure {
    let entries = closure.entries();
    let renamed: HashMap<&str, String> = touched
        .iter()
        .map(|&i| (entries[i].path.as_str(), rehash(&entries[i].path)))
        .collect();
    let rename = |p: &String| {
        renamed
            .get(p.as_str())
            .cloned()
            .unwrap_or_else(|| p.clone())
    };
    Closure::from_entries(entries.iter().map(|e| ClosureEntry {
        path: rename(&e.path),
        references: e.references.iter().map(rename).collect(),
        nar_size: e.nar_size,
        nar_hash: None,
    }))
}

/// The same store path name under another hash.
fn rehash(path: &str) -> String {
    let base = path
        .strip_prefix(STORE_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(path);
    let (hash, name) = base.split_once('-').unwrap_or((base, ""));
    let alphabet = b"0123456789abcdfghijklmnpqrsvwxyz";
    let next: String = hash
        .bytes()
        .map(|b| {
            let at = alphabet.iter().position(|&a| a == b).unwrap_or(0);
            alphabet[(at + 7) % alphabet.len()] as char
        })
        .collect();
    format!("{STORE_DIR}/{next}-{name}")
}

/// Sharing of `other`'s layers with `layers`, the layers of `closure`.
fn sharing(
    closure: &Closure,
    layers: &[Vec<String>],
    other: &Closure,
    layering: &Layering<'_>,
) -> Result<Sharing, LayeringError> {
    let first: HashSet<BTreeSet<&str>> = layers
        .iter()
        .map(|l| l.iter().map(String::as_str).collect())
        .collect();
    let mine: BTreeMap<&str, u64> = closure
        .entries()
        .iter()
        .map(|e| (e.path.as_str(), e.nar_size))
        .collect();
    let common: u64 = other
        .entries()
        .iter()
        .filter(|e| mine.contains_key(e.path.as_str()))
        .map(|e| e.nar_size)
        .sum();
    let shared: u64 = layering(other)?
        .iter()
        .filter(|l| first.contains(&l.iter().map(String::as_str).collect::<BTreeSet<_>>()))
        .map(|l| l.iter().map(|p| mine[p.as_str()]).sum::<u64>())
        .sum();
    Ok(Sharing {
        common,
        shared,
        ratio: if common == 0 {
            1.0
        } else {
            shared as f64 / common as f64
        },
    })
}
