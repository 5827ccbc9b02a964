//! nixpkgs' experimental `layeringPipeline` (its flatten-references-graph), run on the
//! closure's reference graph: a list of operations `[name, arg…]` applied left to right, each
//! taking the previous result (a graph, a list of them, or a dictionary of named ones) as its
//! last argument; the result, flattened, is the list of layers, bottom first.
//!
//! The graph's vertices start in ascending `narSize` order (the closure's path order between
//! equal sizes), and every subgraph keeps that order, which is the order of a layer's paths
//! and what `split_every` cuts. The operations and their rules are nixpkgs' (see
//! docs/API.md): `popularity_contest`, `limit_layers`, `subcomponent_in`, `subcomponent_out`,
//! `split_paths`, `split_every`, `remove_paths`, `reverse`, `flatten`, `over`, `map`, `pipe`.

use super::popularity::popularity_of;
use crate::store::graph::ReferenceGraph;
use crate::store::path::package_name_key;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// The names of the operations, as a pipeline writes them.
pub const OPERATIONS: &[&str] = &[
    "popularity_contest",
    "limit_layers",
    "subcomponent_in",
    "subcomponent_out",
    "split_paths",
    "split_every",
    "remove_paths",
    "reverse",
    "flatten",
    "over",
    "map",
    "pipe",
];

/// Why a pipeline cannot run.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("`layeringPipeline`: {0}")]
pub struct PipelineError(String);

fn bad(message: impl Into<String>) -> PipelineError {
    PipelineError(message.into())
}

/// A subgraph: vertices (nodes of the closure's graph) in order, and the edges it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Graph {
    vertices: Vec<usize>,
    edges: BTreeSet<(usize, usize)>,
}

/// What operations take and give.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    Graph(Graph),
    List(Vec<Data>),
    Dict(Vec<(String, Data)>),
}

/// Runs `pipeline` (the JSON of `layeringPipeline`) on `graph`: the layers, bottom first, each
/// a list of node indices; empty layers are left out.
pub fn run_pipeline(
    graph: &ReferenceGraph,
    pipeline: &Value,
) -> Result<Vec<Vec<usize>>, PipelineError> {
    let mut vertices: Vec<usize> = (0..graph.len()).collect();
    vertices.sort_by_key(|&i| graph.entries[i].nar_size);
    let edges = (0..graph.len())
        .flat_map(|i| graph.children[i].iter().map(move |&c| (i, c)))
        .collect();
    let world = World::new(graph);
    let calls = pipeline
        .as_array()
        .ok_or_else(|| bad(format!("must be a list of operations, got {pipeline}")))?;
    let result = world.pipe(calls, Data::Graph(Graph { vertices, edges }))?;
    let mut layers = Vec::new();
    flatten_into(result, &mut layers);
    Ok(layers
        .into_iter()
        .map(|g| g.vertices)
        .filter(|v| !v.is_empty())
        .collect())
}

/// Checks that `pipeline` is a list of known operations with arguments of the right kinds,
/// without running it.
pub fn check_pipeline(pipeline: &Value) -> Result<(), PipelineError> {
    let calls = pipeline
        .as_array()
        .ok_or_else(|| bad(format!("must be a list of operations, got {pipeline}")))?;
    for call in calls {
        check_call(call)?;
    }
    Ok(())
}

fn check_call(call: &Value) -> Result<(), PipelineError> {
    let (name, args) = split_call(call)?;
    let arity = |n: usize| -> Result<(), PipelineError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(bad(format!(
                "`{name}` takes {n} argument{}, got {}: {call}",
                if n == 1 { "" } else { "s" },
                args.len()
            )))
        }
    };
    match name {
        "popularity_contest" | "reverse" | "flatten" => arity(0),
        "limit_layers" | "split_every" => {
            arity(1)?;
            positive(name, &args[0]).map(|_| ())
        }
        "subcomponent_in" | "subcomponent_out" | "split_paths" | "remove_paths" => arity(1),
        "over" => {
            arity(2)?;
            args[0].as_str().ok_or_else(|| {
                bad(format!(
                    "`over` takes a key (a string) first, got {}",
                    args[0]
                ))
            })?;
            check_call(&args[1])
        }
        "map" => {
            arity(1)?;
            check_call(&args[0])
        }
        "pipe" => {
            arity(1)?;
            let inner = args[0].as_array().ok_or_else(|| {
                bad(format!(
                    "`pipe` takes a list of operations, got {}",
                    args[0]
                ))
            })?;
            inner.iter().try_for_each(check_call)
        }
        _ => unreachable!("split_call knows the names"),
    }
}

/// An operation's name and arguments.
fn split_call(call: &Value) -> Result<(&str, &[Value]), PipelineError> {
    let items = call
        .as_array()
        .filter(|items| !items.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "each operation is a list `[name, argument…]`, got {call}"
            ))
        })?;
    let name = items[0]
        .as_str()
        .ok_or_else(|| bad(format!("an operation's name is a string, got {}", items[0])))?;
    if !OPERATIONS.contains(&name) {
        return Err(bad(format!(
            "unknown operation `{name}` (known: {})",
            OPERATIONS.join(", ")
        )));
    }
    Ok((name, &items[1..]))
}

fn positive(name: &str, arg: &Value) -> Result<usize, PipelineError> {
    arg.as_u64()
        .filter(|&n| n > 0)
        .map(|n| n as usize)
        .ok_or_else(|| bad(format!("`{name}` takes a positive whole number, got {arg}")))
}

/// The closure's graph, as the operations look it up.
struct World<'g> {
    by_path: HashMap<&'g str, usize>,
    keys: Vec<String>,
}

impl<'g> World<'g> {
    fn new(graph: &'g ReferenceGraph<'g>) -> World<'g> {
        World {
            by_path: (0..graph.len()).map(|i| (graph.path(i), i)).collect(),
            keys: (0..graph.len())
                .map(|i| package_name_key(graph.path(i)))
                .collect(),
        }
    }

    fn pipe(&self, calls: &[Value], mut data: Data) -> Result<Data, PipelineError> {
        for call in calls {
            data = self.call(call, data)?;
        }
        Ok(data)
    }

    fn call(&self, call: &Value, data: Data) -> Result<Data, PipelineError> {
        check_call(call)?;
        let (name, args) = split_call(call)?;
        let graph_of = |data: Data| match data {
            Data::Graph(g) => Ok(g),
            other => Err(bad(format!("`{name}` takes a graph, got {}", other.kind()))),
        };
        let list_of = |data: Data| match data {
            Data::List(items) => Ok(items),
            Data::Graph(g) => Ok(vec![Data::Graph(g)]),
            other => Err(bad(format!("`{name}` takes a list, got {}", other.kind()))),
        };
        Ok(match name {
            "popularity_contest" => {
                let g = graph_of(data)?;
                Data::List(
                    self.popularity_contest(&g)
                        .into_iter()
                        .map(Data::Graph)
                        .collect(),
                )
            }
            "limit_layers" => Data::List(limit_layers(positive(name, &args[0])?, list_of(data)?)),
            "subcomponent_in" | "subcomponent_out" => {
                let g = graph_of(data)?;
                let starts = self.paths(&args[0], &g);
                let main = reachable(&g, &starts, name == "subcomponent_out");
                Data::Dict(vec![
                    (
                        "main".to_owned(),
                        Data::Graph(g.induced(|v| main.contains(&v))),
                    ),
                    (
                        "rest".to_owned(),
                        Data::Graph(g.induced(|v| !main.contains(&v))),
                    ),
                ])
            }
            "split_paths" => self.split_paths(&args[0], graph_of(data)?),
            "split_every" => {
                let g = graph_of(data)?;
                let count = positive(name, &args[0])?;
                Data::List(
                    g.vertices
                        .chunks(count)
                        .map(|chunk| Data::Graph(g.induced(|v| chunk.contains(&v))))
                        .collect(),
                )
            }
            "remove_paths" => {
                let g = graph_of(data)?;
                let gone = self.paths(&args[0], &g);
                Data::Graph(g.induced(|v| !gone.contains(&v)))
            }
            "reverse" => {
                let mut items = list_of(data)?;
                items.reverse();
                Data::List(items)
            }
            "flatten" => {
                let mut graphs = Vec::new();
                flatten_into(data, &mut graphs);
                Data::List(graphs.into_iter().map(Data::Graph).collect())
            }
            "over" => {
                let key = args[0].as_str().unwrap_or_default();
                let Data::Dict(mut entries) = data else {
                    return Err(bad(format!(
                        "`over` takes a dictionary, got {}",
                        data.kind()
                    )));
                };
                let at = entries.iter().position(|(k, _)| k == key).ok_or_else(|| {
                    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
                    bad(format!(
                        "`over`: no key `{key}` (there are: {})",
                        keys.join(", ")
                    ))
                })?;
                let value = std::mem::replace(&mut entries[at].1, Data::List(Vec::new()));
                entries[at].1 = self.call(&args[1], value)?;
                Data::Dict(entries)
            }
            "map" => Data::List(
                list_of(data)?
                    .into_iter()
                    .map(|item| self.call(&args[0], item))
                    .collect::<Result<_, _>>()?,
            ),
            "pipe" => self.pipe(args[0].as_array().map_or(&[][..], Vec::as_slice), data)?,
            _ => unreachable!("check_call knows the names"),
        })
    }

    /// The vertices of `g` that `arg` (a store path, or a list of them) names; others are
    /// ignored.
    fn paths(&self, arg: &Value, g: &Graph) -> BTreeSet<usize> {
        let names: Vec<&str> = match arg {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        names
            .into_iter()
            .filter_map(|p| self.by_path.get(p).copied())
            .filter(|v| g.vertices.contains(v))
            .collect()
    }

    /// One single-vertex graph per vertex, most popular first (nixpkgs' scores), ties by
    /// package name then hash.
    fn popularity_contest(&self, g: &Graph) -> Vec<Graph> {
        let local: HashMap<usize, usize> = g
            .vertices
            .iter()
            .enumerate()
            .map(|(k, &v)| (v, k))
            .collect();
        let n = g.vertices.len();
        let mut children = vec![Vec::new(); n];
        let mut parents = vec![Vec::new(); n];
        for &(a, b) in &g.edges {
            children[local[&a]].push(local[&b]);
            parents[local[&b]].push(local[&a]);
        }
        let popularity = popularity_of(&children, &parents);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            popularity[b]
                .cmp(&popularity[a])
                .then_with(|| self.keys[g.vertices[a]].cmp(&self.keys[g.vertices[b]]))
        });
        order
            .into_iter()
            .map(|k| g.induced(|v| v == g.vertices[k]))
            .collect()
    }

    /// nixpkgs' `split_paths`: the split paths and what only they reach (`main`), what they
    /// reach that the rest reaches too (`common`), and the rest; empty parts left out.
    fn split_paths(&self, specs: &Value, g: Graph) -> Data {
        let specs: Vec<&Value> = match specs {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let mut split = BTreeSet::new();
        for spec in specs {
            match spec {
                Value::Object(o) => {
                    let of = o
                        .get("children_of")
                        .map_or(BTreeSet::new(), |p| self.paths(p, &g));
                    split.extend(
                        g.edges
                            .iter()
                            .filter(|(a, _)| of.contains(a))
                            .map(|&(_, b)| b),
                    );
                }
                other => split.extend(self.paths(other, &g)),
            }
        }
        if split.is_empty() {
            return Data::Dict(vec![("rest".to_owned(), Data::Graph(g))]);
        }
        let roots: Vec<usize> = g
            .vertices
            .iter()
            .copied()
            .filter(|v| !g.edges.iter().any(|&(_, b)| b == *v))
            .collect();
        if roots.len() == 1 && split.contains(&roots[0]) {
            return Data::Dict(vec![("main".to_owned(), Data::Graph(g))]);
        }
        let split_off = reachable(&g, &split, true);
        let cut = Graph {
            vertices: g.vertices.clone(),
            edges: g
                .edges
                .iter()
                .copied()
                .filter(|(_, b)| !split.contains(b))
                .collect(),
        };
        // From every root but the split ones: nixpkgs joins the roots under one added root
        // whose edges to split paths are cut with the others.
        let roots: BTreeSet<usize> = roots.into_iter().filter(|r| !split.contains(r)).collect();
        let rest_with_common = reachable(&cut, &roots, true);
        let common: BTreeSet<usize> = split_off.intersection(&rest_with_common).copied().collect();
        let parts = [
            (
                "main",
                split_off
                    .difference(&common)
                    .copied()
                    .collect::<BTreeSet<_>>(),
            ),
            ("common", common.clone()),
            (
                "rest",
                rest_with_common.difference(&common).copied().collect(),
            ),
        ];
        Data::Dict(
            parts
                .into_iter()
                .filter(|(_, part)| !part.is_empty())
                .map(|(key, part)| {
                    (
                        key.to_owned(),
                        Data::Graph(cut.induced(|v| part.contains(&v))),
                    )
                })
                .collect(),
        )
    }
}

impl Graph {
    /// The subgraph of the vertices `keep` selects, in order, with the edges among them.
    fn induced(&self, keep: impl Fn(usize) -> bool) -> Graph {
        let vertices: Vec<usize> = self.vertices.iter().copied().filter(|&v| keep(v)).collect();
        let set: BTreeSet<usize> = vertices.iter().copied().collect();
        Graph {
            edges: self
                .edges
                .iter()
                .copied()
                .filter(|(a, b)| set.contains(a) && set.contains(b))
                .collect(),
            vertices,
        }
    }
}

impl Data {
    fn kind(&self) -> &'static str {
        match self {
            Data::Graph(_) => "a graph",
            Data::List(_) => "a list",
            Data::Dict(_) => "a dictionary",
        }
    }
}

/// The vertices of `g` reachable from `starts` (themselves included), along references when
/// `forward`, along referrers otherwise.
fn reachable(g: &Graph, starts: &BTreeSet<usize>, forward: bool) -> BTreeSet<usize> {
    let mut seen: BTreeSet<usize> = starts.clone();
    let mut stack: Vec<usize> = starts.iter().copied().collect();
    while let Some(v) = stack.pop() {
        for &(a, b) in &g.edges {
            let next = match forward {
                true if a == v => b,
                false if b == v => a,
                _ => continue,
            };
            if seen.insert(next) {
                stack.push(next);
            }
        }
    }
    seen
}

/// The first `n - 1` graphs, then one graph of all the others (empty when there are none).
fn limit_layers(n: usize, items: Vec<Data>) -> Vec<Data> {
    let mut graphs = Vec::new();
    flatten_into(Data::List(items), &mut graphs);
    let rest = graphs.split_off((n - 1).min(graphs.len()));
    let mut merged = Graph {
        vertices: Vec::new(),
        edges: BTreeSet::new(),
    };
    for g in rest {
        merged.vertices.extend(g.vertices);
        merged.edges.extend(g.edges);
    }
    graphs.push(merged);
    graphs.into_iter().map(Data::Graph).collect()
}

/// Every graph in `data`, in order (a dictionary's values in its order).
fn flatten_into(data: Data, out: &mut Vec<Graph>) {
    match data {
        Data::Graph(g) => out.push(g),
        Data::List(items) => items.into_iter().for_each(|i| flatten_into(i, out)),
        Data::Dict(entries) => entries.into_iter().for_each(|(_, v)| flatten_into(v, out)),
    }
}

#[cfg(test)]
mod tests;
