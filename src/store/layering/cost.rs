//! The default layering: store paths merged into layers by what a change would re-send.
//!
//! A layer is sent again whenever any of its paths changes, and a path changes whenever
//! anything in its closure does (a new dependency gives it a new store path). So a layer `L`
//! is re-sent by `|C(L)|` of the closure's possible single-path changes, where `C(L)` is the
//! union of its paths' closures; over every such change it costs `size(L) × |C(L)|` bytes,
//! while its paths on their own would cost `Σ size(p) × |C(p)|`, the least any layering can
//! send. Merging two layers therefore costs
//!
//! ```text
//! (size(a) + size(b)) × |C(a) ∪ C(b)| − size(a) × |C(a)| − size(b) × |C(b)|
//! ```
//!
//! bytes over all changes: little when the two change together (a library and the only
//! package using it), much when a large path would be re-sent for changes that do not touch
//! it. Starting from a layer per path, the cheapest merges are made until the budget holds,
//! then merges that remove layers under [`SMALL_LAYER`] while they cost a negligible share of
//! the total ([`SMALL_MERGE_SHARE`]). A layer holding a root of the closure (the application)
//! is re-sent on every change, so it never takes more than [`ROOT_COMPANY`] bytes of other
//! paths, unless the budget cannot be met otherwise.
//!
//! Every number the merges compare depends only on the paths merged, their sizes and their
//! closures, which a store path fixes: the same paths are layered the same way in every image
//! that holds them, so images share layers, and a change re-sends the layers of what changed.
//! Ties are broken by package name, never by the order of the closure's entries.

use crate::store::graph::ReferenceGraph;
use crate::store::path::package_name_key;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The size from which a path keeps a layer of its own, when the budget allows
/// ([`big_threshold`]).
pub const BIG_PATH: u64 = 1 << 20;

/// One in this many layers of the budget is kept for the layers of paths under the
/// [`big_threshold`]. Half: fewer leaves the smaller paths of a closure of hundreds of paths
/// in layers so coarse that a change re-sends too much beside it (measured: a quarter gives
/// 1.032 times the least on a 437-path closure, a half 1.018); more leaves fewer mid-sized
/// paths a layer of their own, which is what images share (bench/layering.sh).
pub const SMALL_SHARE: usize = 2;

/// Bytes of other paths a layer holding a root may carry: every change of the root re-sends
/// them (the target: a change of the application sends at most its own bytes and 1 MiB).
pub const ROOT_COMPANY: u64 = 1 << 20;

/// Layers smaller than this are merged further when that costs little: each layer costs a
/// request and an overlay mount, and layers of a few kilobytes are most of the layers of a
/// closure of small packages (NixOS/nix#13155).
pub const SMALL_LAYER: u64 = 100_000;

/// The share of the least possible re-sent bytes (over every single-path change) that merging
/// small layers, beyond what the budget needs, may add.
pub const SMALL_MERGE_SHARE: f64 = 0.002;

/// Why a layer of the cost layering holds what it holds, for `strata explain`.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// A path of `threshold` bytes or more keeps a layer of its own.
    Large {
        /// The threshold.
        threshold: u64,
    },
    /// A smaller path the budget let keep a layer of its own.
    Alone,
    /// Paths merged because their changes mostly go together.
    Merged {
        /// Over every single-path change, the bytes it is re-sent beyond its paths' own, as a
        /// share of the least bytes any layering re-sends.
        added: f64,
        /// Whether it holds a root of the closure (an application).
        root: bool,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Large { threshold } => write!(
                f,
                "alone: paths of {} or more keep a layer of their own",
                crate::progress::human(*threshold)
            ),
            Why::Alone => f.write_str("alone: the layer budget allows it"),
            Why::Merged { added, root } => write!(
                f,
                "{}; merging adds {:.3} % to the bytes all single-path changes re-send",
                if *root {
                    "an application (a root of the closure) with small paths that change with it"
                } else {
                    "merged: paths whose changes mostly go together"
                },
                added * 100.0
            ),
        }
    }
}

/// Sets of node indices as bit words.
#[derive(Debug, Clone)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// Whether `i` is in the set.
    pub(super) fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds `other`'s members.
    pub(super) fn or(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    /// How many members.
    pub(super) fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// How many members it and `other` have together.
    pub(super) fn union_count(&self, other: &Bits) -> u64 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| u64::from((a | b).count_ones()))
            .sum()
    }
}

/// Each node's closure (itself and everything it refers to, transitively).
pub(super) fn closures(graph: &ReferenceGraph) -> Vec<Bits> {
    let n = graph.len();
    let mut order: Vec<usize> = (0..n).collect();
    // Referrers come first in topological order: children are done before their parents.
    order.sort_unstable_by_key(|&i| Reverse(graph.topo[i]));
    let mut closures: Vec<Bits> = (0..n).map(|_| Bits::new(n)).collect();
    for &i in &order {
        let mut c = Bits::new(n);
        c.set(i);
        for &child in &graph.children[i] {
            c.or(&closures[child]);
        }
        closures[i] = c;
    }
    closures
}

/// A layer being built: its paths, bytes, closure, and (when it holds roots) the size of its
/// smallest root.
#[derive(Debug)]
struct Cluster {
    members: Vec<usize>,
    size: u64,
    closure: Bits,
    count: u64,
    /// Changes each time the cluster grows, so queued merges know they are stale.
    version: u32,
    smallest_root: Option<u64>,
    /// The smallest package-name rank among its members: the tie-break.
    key: usize,
    /// Whether it holds a path of [`big_threshold`] bytes or more, which stays alone.
    big: bool,
    /// Each member's own closure size, for the explanation.
    member_counts: Vec<(usize, u64)>,
}

impl Cluster {
    /// Bytes re-sent over every single-path change.
    fn cost(&self) -> u128 {
        u128::from(self.size) * u128::from(self.count)
    }
}

/// A merge waiting in the queue: its cost when queued, the tie-break (the two clusters' keys,
/// smaller first: package names, so that renaming paths leaves the order as it was), the two
/// clusters and their versions then.
type Candidate = Reverse<(u128, (usize, usize), usize, usize, u32, u32)>;

/// The state of the merging.
struct Merger {
    clusters: Vec<Option<Cluster>>,
    /// Union-find: the cluster each node (or merged cluster) now belongs to.
    parent: Vec<usize>,
    live: usize,
    queue: BinaryHeap<Candidate>,
}

impl Merger {
    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn cluster(&self, i: usize) -> &Cluster {
        self.clusters[i].as_ref().expect("a live cluster")
    }

    /// What merging clusters `a` and `b` adds to the bytes re-sent over every change.
    fn delta(&self, a: usize, b: usize) -> u128 {
        let (x, y) = (self.cluster(a), self.cluster(b));
        let union = x.closure.union_count(&y.closure);
        (u128::from(x.size) + u128::from(y.size)) * u128::from(union) - x.cost() - y.cost()
    }

    fn push(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        let (ka, kb) = (self.cluster(a).key, self.cluster(b).key);
        let key = (ka.min(kb), ka.max(kb));
        let versions = (self.cluster(a).version, self.cluster(b).version);
        self.queue.push(Reverse((
            self.delta(a, b),
            key,
            a,
            b,
            versions.0,
            versions.1,
        )));
    }

    /// The cheapest current merge: stale entries are brought up to date on the way.
    fn pop(&mut self) -> Option<(u128, usize, usize)> {
        while let Some(Reverse((delta, _, a, b, va, vb))) = self.queue.pop() {
            let (ra, rb) = (self.find(a), self.find(b));
            if ra == rb {
                continue;
            }
            if ra != a || rb != b || self.cluster(a).version != va || self.cluster(b).version != vb
            {
                self.push(ra, rb);
                continue;
            }
            return Some((delta, a, b));
        }
        None
    }

    /// Whether merging `a` and `b` would load a root's layer with more than
    /// [`ROOT_COMPANY`] bytes of other paths.
    fn overloads_a_root(&self, a: usize, b: usize) -> bool {
        let (x, y) = (self.cluster(a), self.cluster(b));
        if x.big || y.big {
            return true;
        }
        let smallest_root = match (x.smallest_root, y.smallest_root) {
            (Some(p), Some(q)) => Some(p.min(q)),
            (p, q) => p.or(q),
        };
        smallest_root.is_some_and(|root| x.size + y.size - root > ROOT_COMPANY)
    }

    fn merge(&mut self, a: usize, b: usize) {
        let (big, small) = if self.cluster(a).members.len() >= self.cluster(b).members.len() {
            (a, b)
        } else {
            (b, a)
        };
        let taken = self.clusters[small].take().expect("a live cluster");
        let into = self.clusters[big].as_mut().expect("a live cluster");
        into.members.extend(taken.members);
        into.size += taken.size;
        into.closure.or(&taken.closure);
        into.count = into.closure.count();
        into.version += 1;
        into.key = into.key.min(taken.key);
        into.big |= taken.big;
        into.member_counts.extend(taken.member_counts);
        into.smallest_root = match (into.smallest_root, taken.smallest_root) {
            (Some(p), Some(q)) => Some(p.min(q)),
            (p, q) => p.or(q),
        };
        self.parent[small] = big;
        self.live -= 1;
    }
}

/// The layers of `graph` in at most `room` layers (when `room` is at least 1), each a list
/// of node indices, bottom to top: the layers whose changes re-send them least come first.
pub fn cost_groups(graph: &ReferenceGraph, room: usize) -> Vec<Vec<usize>> {
    explained_groups(graph, room)
        .into_iter()
        .map(|(members, _)| members)
        .collect()
}

/// [`cost_groups`] with why each layer holds what it holds.
pub fn explained_groups(graph: &ReferenceGraph, room: usize) -> Vec<(Vec<usize>, Why)> {
    let n = graph.len();
    if n == 0 || room == 0 {
        return Vec::new();
    }
    let sizes: Vec<u64> = graph.entries.iter().map(|e| e.nar_size).collect();
    let mut ranks: Vec<usize> = (0..n).collect();
    let keys: Vec<String> = (0..n).map(|i| package_name_key(graph.path(i))).collect();
    ranks.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    let mut rank = vec![0; n];
    for (r, &i) in ranks.iter().enumerate() {
        rank[i] = r;
    }
    let closures = closures(graph);
    let counts: Vec<u64> = closures.iter().map(Bits::count).collect();
    let big_at = big_threshold(&sizes, room);
    let pairs = candidate_pairs(graph, &counts, &sizes, &rank);
    let clusters: Vec<Option<Cluster>> = closures
        .into_iter()
        .enumerate()
        .map(|(i, closure)| {
            Some(Cluster {
                members: vec![i],
                size: sizes[i],
                count: counts[i],
                closure,
                version: 0,
                smallest_root: graph.is_root(i).then_some(sizes[i]),
                key: rank[i],
                big: sizes[i] >= big_at,
                member_counts: vec![(i, counts[i])],
            })
        })
        .collect();
    let least: u128 = clusters.iter().flatten().map(Cluster::cost).sum();
    let mut merger = Merger {
        clusters,
        parent: (0..n).collect(),
        live: n,
        queue: BinaryHeap::new(),
    };
    for (a, b) in pairs {
        merger.push(a, b);
    }
    merge_to_budget(&mut merger, room);
    merge_small_layers(&mut merger, least);
    layers_of(merger, graph, big_at, least)
}

/// The size from which a path keeps a layer of its own: [`BIG_PATH`], or more when there are
/// more such paths than the budget allows beside [`SMALL_SHARE`] of it for the layers of
/// smaller paths. A path of that size has a layer of its own in every image whose budget
/// allows, so its layer is shared; smaller paths, merged among themselves, are few bytes.
fn big_threshold(sizes: &[u64], room: usize) -> u64 {
    let singles = room.saturating_sub((room / SMALL_SHARE).max(1));
    let mut by_size: Vec<u64> = sizes.to_vec();
    by_size.sort_unstable_by(|a, b| b.cmp(a));
    match by_size.get(singles) {
        // More paths of BIG_PATH or more than singles: only those larger than the first
        // one left out keep a layer of their own.
        Some(&first_out) if first_out >= BIG_PATH => first_out + 1,
        _ => BIG_PATH,
    }
}

/// Pairs of paths worth trying to merge: a path and what it refers to, paths referred to by
/// the same path (or roots) next to each other in closure size, and every path next to the
/// one of closest closure size.
fn candidate_pairs(
    graph: &ReferenceGraph,
    counts: &[u64],
    sizes: &[u64],
    rank: &[usize],
) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let weight = |i: usize| (counts[i], sizes[i], rank[i]);
    let siblings = |mut group: Vec<usize>, pairs: &mut Vec<(usize, usize)>| {
        group.sort_by_key(|&i| weight(i));
        pairs.extend(group.windows(2).map(|w| (w[0], w[1])));
    };
    for i in 0..graph.len() {
        pairs.extend(graph.children[i].iter().map(|&c| (i, c)));
        siblings(graph.children[i].clone(), &mut pairs);
    }
    siblings(
        (0..graph.len()).filter(|&i| graph.is_root(i)).collect(),
        &mut pairs,
    );
    siblings((0..graph.len()).collect(), &mut pairs);
    pairs
}

/// Merges the cheapest pairs until at most `room` layers are left. Merges that would put a
/// big path with others, or load a root's layer with more than [`ROOT_COMPANY`] bytes of
/// other paths, are made only when nothing else is left to merge.
fn merge_to_budget(merger: &mut Merger, room: usize) {
    let mut refused = Vec::new();
    while merger.live > room {
        let Some((_, a, b)) = merger.pop() else {
            break;
        };
        if merger.overloads_a_root(a, b) {
            refused.push((a, b));
        } else {
            merger.merge(a, b);
        }
    }
    // Over budget still: the refused merges, cheapest first, whatever they load.
    for (a, b) in refused {
        merger.push(a, b);
    }
    while merger.live > room {
        let Some((_, a, b)) = merger.pop() else {
            break;
        };
        merger.merge(a, b);
    }
}

/// Merges layers under [`SMALL_LAYER`] while the merges, cheapest first, add at most
/// [`SMALL_MERGE_SHARE`] of `least` (the least possible re-sent bytes) in all.
fn merge_small_layers(merger: &mut Merger, least: u128) {
    let mut allowance = (least as f64 * SMALL_MERGE_SHARE) as u128;
    while let Some((delta, a, b)) = merger.pop() {
        let small = merger.cluster(a).size < SMALL_LAYER || merger.cluster(b).size < SMALL_LAYER;
        if !small || delta > allowance || merger.overloads_a_root(a, b) {
            continue;
        }
        allowance -= delta;
        merger.merge(a, b);
    }
}

/// The clusters as layers, bottom to top: least re-sent first (smallest closure), then by
/// size, then by package name; with why each holds what it holds.
fn layers_of(
    merger: Merger,
    graph: &ReferenceGraph,
    big_at: u64,
    least: u128,
) -> Vec<(Vec<usize>, Why)> {
    let mut layers: Vec<Cluster> = merger.clusters.into_iter().flatten().collect();
    layers.sort_by_key(|c| (c.count, c.size, c.key));
    layers
        .into_iter()
        .map(|mut c| {
            c.members.sort_unstable();
            let why = match c.members.len() {
                1 if c.size >= big_at => Why::Large { threshold: big_at },
                1 => Why::Alone,
                _ => {
                    let own: u128 = c
                        .member_counts
                        .iter()
                        .map(|&(i, count)| {
                            u128::from(graph.entries[i].nar_size) * u128::from(count)
                        })
                        .sum();
                    Why::Merged {
                        added: (c.cost() - own.min(c.cost())) as f64 / least.max(1) as f64,
                        root: c.smallest_root.is_some(),
                    }
                }
            };
            (c.members, why)
        })
        .collect()
}

#[cfg(test)]
mod tests;
