//! The reference graph of a closure: its paths as indices, each with the paths it refers to
//! (children) and the paths that refer to it (parents), and a topological order. Layering
//! works on this graph.

use crate::store::closure::{Closure, ClosureEntry};
use std::collections::{BTreeSet, HashMap};

/// Why a closure's references do not form a graph a Nix closure can have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphError {
    /// A path refers to a path that the closure does not list.
    #[error(
        "closure is not closed: `{path}` references `{reference}`, which the closure does not list"
    )]
    DanglingReference {
        /// The referring path.
        path: String,
        /// The missing path.
        reference: String,
    },
    /// References form a cycle, which a Nix closure cannot have.
    #[error("closure has a reference cycle through `{path}`")]
    Cycle {
        /// A path on the cycle.
        path: String,
    },
}

/// A closure's reference graph (self-references dropped).
#[derive(Debug)]
pub struct ReferenceGraph<'c> {
    /// The paths, in the closure's (sorted) order.
    pub entries: Vec<&'c ClosureEntry>,
    /// For each path, the paths it refers to, ascending.
    pub children: Vec<Vec<usize>>,
    /// For each path, the paths that refer to it, ascending.
    pub parents: Vec<Vec<usize>>,
    /// For each path, its position in an order where referrers come before what they refer
    /// to.
    pub topo: Vec<usize>,
}

impl<'c> ReferenceGraph<'c> {
    /// The graph of `closure` without `exclude` (references to excluded paths are dropped
    /// too, as nixpkgs' `exclude_paths` does).
    pub fn new(
        closure: &'c Closure,
        exclude: &BTreeSet<String>,
    ) -> Result<ReferenceGraph<'c>, GraphError> {
        let entries: Vec<&ClosureEntry> = closure
            .entries()
            .iter()
            .filter(|e| !exclude.contains(&e.path))
            .collect();
        let index: HashMap<&str, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.as_str(), i))
            .collect();
        let n = entries.len();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, e) in entries.iter().enumerate() {
            let mut refs = BTreeSet::new();
            for r in &e.references {
                if r == &e.path || exclude.contains(r) {
                    continue;
                }
                let j = index
                    .get(r.as_str())
                    .ok_or_else(|| GraphError::DanglingReference {
                        path: e.path.clone(),
                        reference: r.clone(),
                    })?;
                refs.insert(*j);
            }
            for &j in &refs {
                parents[j].push(i);
            }
            children[i] = refs.into_iter().collect();
        }
        let topo =
            topological_positions(&children, &parents).map_err(|on_cycle| GraphError::Cycle {
                path: entries[on_cycle].path.clone(),
            })?;
        Ok(ReferenceGraph {
            entries,
            children,
            parents,
            topo,
        })
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the graph has no path.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether path `i` is a root: nothing in the graph refers to it.
    pub fn is_root(&self, i: usize) -> bool {
        self.parents[i].is_empty()
    }

    /// The store path of node `i`.
    pub fn path(&self, i: usize) -> &'c str {
        &self.entries[i].path
    }
}

/// Kahn's algorithm: the position of each node in an order where parents precede children,
/// or a node on a cycle.
pub(crate) fn topological_positions(
    children: &[Vec<usize>],
    parents: &[Vec<usize>],
) -> Result<Vec<usize>, usize> {
    let n = children.len();
    let mut indegree: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut topo = vec![usize::MAX; n];
    let mut next = 0;
    while let Some(i) = ready.pop() {
        topo[i] = next;
        next += 1;
        for &c in &children[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(c);
            }
        }
    }
    if next < n {
        return Err((0..n).find(|&i| topo[i] == usize::MAX).unwrap_or(0));
    }
    Ok(topo)
}
