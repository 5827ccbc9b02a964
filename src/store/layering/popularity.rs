//! Popularity layering: which store paths get a layer of their own, as nixpkgs'
//! `referencesByPopularity` / `popularity_contest` followed by `limit_layers` decide it: paths
//! that more of the closure depends on come first (they are the most likely to be shared
//! between images), ties are broken by package name then hash, the most popular paths each
//! get their own layer and the rest share one. strata's default until the cost layering
//! ([`super::cost`]); kept for `layeringPipeline = [["popularity_contest"] ["limit_layers" N]]`.
//!
//! nixpkgs scores a path by walking every root's dependency tree: a node's score for a path
//! below it is one plus the sum of its children's scores for that path, and a path's
//! popularity is the sum over the roots. That is computed here per path over its ancestors in
//! topological order, in O(paths × edges) time and O(paths) memory, instead of materialising
//! the trees.

use super::LayeringError;
use crate::store::closure::Closure;
use crate::store::graph::{topological_positions, ReferenceGraph};
use crate::store::path::package_name_key;
use std::collections::BTreeSet;

/// Orders the closure's paths by popularity, most popular first, leaving out `exclude`
/// (references to excluded paths are dropped too, as nixpkgs' `exclude_paths` does).
pub fn popularity_order(
    closure: &Closure,
    exclude: &BTreeSet<String>,
) -> Result<Vec<String>, LayeringError> {
    let graph = ReferenceGraph::new(closure, exclude)?;
    let popularity = popularity(&graph);
    let mut order: Vec<usize> = (0..graph.len()).collect();
    let keys: Vec<String> = (0..graph.len())
        .map(|i| package_name_key(graph.path(i)))
        .collect();
    order.sort_by(|&a, &b| {
        popularity[b]
            .cmp(&popularity[a])
            .then_with(|| keys[a].cmp(&keys[b]))
    });
    Ok(order
        .into_iter()
        .map(|i| graph.path(i).to_owned())
        .collect())
}

/// Each path's popularity: the sum over roots of the nixpkgs tree score.
pub(super) fn popularity(graph: &ReferenceGraph) -> Vec<u128> {
    popularity_of(&graph.children, &graph.parents)
}

/// The popularity of each node of the DAG given by `children` and `parents` (roots: no
/// parents): the sum over roots of the nixpkgs tree score, computed over the node's ancestors
/// with children scored before parents. Scores can grow like path counts in a DAG, so they
/// saturate rather than overflow.
pub(super) fn popularity_of(children: &[Vec<usize>], parents: &[Vec<usize>]) -> Vec<u128> {
    let n = children.len();
    // Every graph scored here is the closure's or a subgraph of it, which
    // `ReferenceGraph::new` has checked is acyclic.
    let topo =
        topological_positions(children, parents).expect("a closure's reference graph has no cycle");
    let mut score = vec![0u128; n];
    let mut mark = vec![usize::MAX; n];
    let mut popularity = vec![0u128; n];
    let mut ancestors = Vec::new();
    for target in 0..n {
        ancestors.clear();
        ancestors.push(target);
        mark[target] = target;
        let mut k = 0;
        while k < ancestors.len() {
            let node = ancestors[k];
            k += 1;
            for &p in &parents[node] {
                if mark[p] != target {
                    mark[p] = target;
                    ancestors.push(p);
                }
            }
        }
        ancestors.sort_unstable_by_key(|&a| std::cmp::Reverse(topo[a]));
        let mut total: u128 = 0;
        for &a in &ancestors {
            let s = if a == target {
                1
            } else {
                children[a]
                    .iter()
                    .filter(|&&c| mark[c] == target)
                    .fold(1u128, |acc, &c| acc.saturating_add(score[c]))
            };
            score[a] = s;
            if parents[a].is_empty() {
                total = total.saturating_add(s);
            }
        }
        popularity[target] = total;
    }
    popularity
}

/// Splits popularity-ordered paths into at most `store_layers` layers: the first
/// `store_layers - 1` paths get a layer each and the rest share the last one.
/// `store_layers` of 0 gives no layers (the paths are left out, as with
/// `includeStorePaths = false`).
pub fn limit_layers(ordered: Vec<String>, store_layers: usize) -> Vec<Vec<String>> {
    if store_layers == 0 || ordered.is_empty() {
        return Vec::new();
    }
    let mut layers: Vec<Vec<String>> = Vec::new();
    let mut rest = ordered.into_iter();
    for path in rest.by_ref().take(store_layers - 1) {
        layers.push(vec![path]);
    }
    let bulk: Vec<String> = rest.collect();
    if !bulk.is_empty() {
        layers.push(bulk);
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::closure::ClosureEntry;
    use crate::store::graph::GraphError;

    fn p(name: &str) -> String {
        // A fixed fake hash per name keeps the tie-break on the name.
        format!("/nix/store/{}-{name}", "0".repeat(32))
    }

    fn closure(edges: &[(&str, &[&str])]) -> Closure {
        Closure::from_entries(edges.iter().map(|(path, refs)| ClosureEntry {
            path: p(path),
            references: refs.iter().map(|r| p(r)).collect(),
            nar_size: 1,
            nar_hash: None,
        }))
    }

    fn names(order: &[String]) -> Vec<String> {
        order
            .iter()
            .map(|s| s.rsplit('-').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn nixpkgs_docstring_example() {
        // A→B→C→D→F, C→E→F, B→E, A→G gives A1 B2 C3 D4 E5 F9 G2, ordered F,E,D,C,B,G,A.
        let c = closure(&[
            ("A", &["B", "G"]),
            ("B", &["C", "E"]),
            ("C", &["D", "E"]),
            ("D", &["F"]),
            ("E", &["F"]),
            ("F", &[]),
            ("G", &[]),
        ]);
        let order = popularity_order(&c, &BTreeSet::new()).unwrap();
        assert_eq!(names(&order), ["F", "E", "D", "C", "B", "G", "A"]);
    }

    #[test]
    fn ties_break_by_name_then_hash() {
        let c = Closure::from_entries(
            [
                "/nix/store/bbbb-zlib",
                "/nix/store/aaaa-zlib",
                "/nix/store/cccc-bash",
            ]
            .map(|path| ClosureEntry {
                path: path.into(),
                references: vec![],
                nar_size: 1,
                nar_hash: None,
            }),
        );
        let order = popularity_order(&c, &BTreeSet::new()).unwrap();
        assert_eq!(
            order,
            [
                "/nix/store/cccc-bash",
                "/nix/store/aaaa-zlib",
                "/nix/store/bbbb-zlib"
            ]
        );
    }

    #[test]
    fn excluded_paths_and_their_references_are_dropped() {
        let c = closure(&[("root", &["app", "lib"]), ("app", &["lib"]), ("lib", &[])]);
        let order = popularity_order(&c, &BTreeSet::from([p("root")])).unwrap();
        assert_eq!(names(&order), ["lib", "app"]);
    }

    #[test]
    fn self_references_are_ignored_and_cycles_rejected() {
        let c = closure(&[("a", &["a"])]);
        assert_eq!(popularity_order(&c, &BTreeSet::new()).unwrap().len(), 1);
        let c = closure(&[("a", &["b"]), ("b", &["a"])]);
        assert!(matches!(
            popularity_order(&c, &BTreeSet::new()),
            Err(LayeringError::Graph(GraphError::Cycle { .. }))
        ));
    }

    #[test]
    fn dangling_reference_is_named() {
        let c = closure(&[("a", &["missing"])]);
        let err = popularity_order(&c, &BTreeSet::new()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    /// With maxLayers = N there are N - 1 store layers (the customisation layer is the Nth).
    fn layer_count(paths: usize, max_layers: usize) -> (usize, usize) {
        let ordered: Vec<String> = (0..paths).map(|i| p(&format!("p{i:03}"))).collect();
        let layers = limit_layers(ordered, max_layers - 1);
        let held: usize = layers.iter().map(Vec::len).sum();
        assert_eq!(held, paths, "every path is in exactly one layer");
        (layers.len() + 1, layers.last().map_or(0, Vec::len))
    }

    #[test]
    fn layer_counts_around_max_layers() {
        let n = 10;
        // N - 1 paths: each its own layer, plus customisation = N layers.
        assert_eq!(layer_count(n - 1, n), (n, 1));
        // N paths: N - 2 alone, 2 share layer N - 1.
        assert_eq!(layer_count(n, n), (n, 2));
        // N + 1 paths: N - 2 alone, 3 share layer N - 1.
        assert_eq!(layer_count(n + 1, n), (n, 3));
        // Fewer paths give fewer layers.
        assert_eq!(layer_count(3, n), (4, 1));
        // No store paths: only the customisation layer.
        assert_eq!(layer_count(0, n), (1, 0));
        // maxLayers = 2: one bulk store layer.
        assert_eq!(layer_count(5, 2), (2, 5));
    }

    #[test]
    fn bulk_layer_keeps_popularity_order() {
        let ordered: Vec<String> = ["x", "y", "z"].iter().map(|s| p(s)).collect();
        assert_eq!(
            limit_layers(ordered.clone(), 2),
            vec![vec![p("x")], vec![p("y"), p("z")]]
        );
        assert!(limit_layers(ordered, 0).is_empty());
    }

    #[test]
    fn large_diamond_chain_saturates_instead_of_overflowing() {
        // 200 stacked diamonds: path counts reach 2^200.
        let mut entries = Vec::new();
        for i in 0..200 {
            let next = format!("top{}", i + 1);
            entries.push((format!("top{i}"), vec![format!("l{i}"), format!("r{i}")]));
            entries.push((format!("l{i}"), vec![next.clone()]));
            entries.push((format!("r{i}"), vec![next]));
        }
        entries.push(("top200".into(), vec![]));
        let c = Closure::from_entries(entries.iter().map(|(path, refs)| ClosureEntry {
            path: p(path),
            references: refs.iter().map(|r| p(r)).collect(),
            nar_size: 1,
            nar_hash: None,
        }));
        let order = popularity_order(&c, &BTreeSet::new()).unwrap();
        assert_eq!(order.len(), 601);
        assert_eq!(
            order.last(),
            Some(&p("top0")),
            "the only root is least popular"
        );
    }
}
