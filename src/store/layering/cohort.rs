//! Size cohorts, the idea of nixpkgs' `dockerAutoLayer` (NixOS/nixpkgs#355189), written from
//! its description for comparison in the benchmarks (`strata layers --variant size-cohort`):
//! the largest remaining path becomes the primary of a layer of its own; every path is
//! grouped with the paths that the same primaries use; this repeats, largest first, until one
//! more primary would pass the budget.

use super::cost::closures;
use crate::store::graph::ReferenceGraph;
use crate::store::path::package_name_key;
use std::collections::{BTreeMap, BTreeSet};

/// The size-cohort layers of `graph` in at most `room` layers, bottom to top (smallest
/// closure first).
pub fn cohort_groups(graph: &ReferenceGraph, room: usize) -> Vec<Vec<usize>> {
    let n = graph.len();
    if n == 0 || room == 0 {
        return Vec::new();
    }
    let deps = closures(graph);
    let sizes: Vec<u64> = graph.entries.iter().map(|e| e.nar_size).collect();
    // Users (transitive referrers) of each path, as a list: what a primary's arrival removes.
    let users: Vec<Vec<usize>> = (0..n)
        .map(|p| (0..n).filter(|&q| q != p && deps[q].has(p)).collect())
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    let keys: Vec<String> = (0..n).map(|i| package_name_key(graph.path(i))).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then_with(|| keys[a].cmp(&keys[b])));
    let mut ids: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for &p in &order {
        let mut next = ids.clone();
        next[p] = BTreeSet::from([p]);
        let user_set: BTreeSet<usize> = users[p].iter().copied().collect();
        for d in (0..n).filter(|&d| d != p && deps[p].has(d)) {
            next[d].retain(|q| !user_set.contains(q));
            if !next[d].iter().any(|&q| deps[p].has(q) && q != p) {
                next[d].insert(p);
            }
        }
        let distinct: BTreeSet<&BTreeSet<usize>> = next.iter().collect();
        if distinct.len() > room {
            break;
        }
        ids = next;
    }
    let mut layers: BTreeMap<&BTreeSet<usize>, Vec<usize>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        layers.entry(id).or_default().push(i);
    }
    let mut layers: Vec<Vec<usize>> = layers.into_values().collect();
    let closure_size = |layer: &Vec<usize>| {
        let mut all = BTreeSet::new();
        for &i in layer {
            all.extend((0..n).filter(|&d| deps[i].has(d)));
        }
        all.iter().map(|&d| sizes[d]).sum::<u64>()
    };
    layers.sort_by_cached_key(|l| (closure_size(l), keys[l[0]].clone()));
    layers
}
