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

/// The operations, as a pipeline writes them, with the number of arguments each takes.
pub const OPERATIONS: &[(&str, usize)] = &[
    ("popularity_contest", 0),
    ("limit_layers", 1),
    ("subcomponent_in", 1),
    ("subcomponent_out", 1),
    ("split_paths", 1),
    ("split_every", 1),
    ("remove_paths", 1),
    ("reverse", 0),
    ("flatten", 0),
    ("over", 2),
    ("map", 1),
    ("pipe", 1),
];

/// Why a pipeline cannot be read or run.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("`layeringPipeline`: {0}")]
pub struct PipelineError(String);

fn bad(message: impl Into<String>) -> PipelineError {
    PipelineError(message.into())
}

/// A pipeline, read once: its operations, applied left to right.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "Value")]
pub struct Pipeline(Vec<Op>);

impl TryFrom<Value> for Pipeline {
    type Error = PipelineError;

    fn try_from(value: Value) -> Result<Pipeline, PipelineError> {
        Pipeline::parse(&value)
    }
}

/// One operation with its arguments, as nixpkgs' flatten-references-graph names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// One graph per path, most popular first.
    PopularityContest,
    /// The first n - 1 graphs, then one of all the others.
    LimitLayers(usize),
    /// `main`: the paths given and what refers to them; `rest`: the others.
    SubcomponentIn(Vec<String>),
    /// `main`: the paths given and what they refer to; `rest`: the others.
    SubcomponentOut(Vec<String>),
    /// `main`, `common` and `rest` around the paths the specs name.
    SplitPaths(Vec<SplitSpec>),
    /// Graphs of n paths each, in order.
    SplitEvery(usize),
    /// The graph without the paths given.
    RemovePaths(Vec<String>),
    /// A list, last first.
    Reverse,
    /// Every graph of a nested value, in order.
    Flatten,
    /// The operation applied to one entry of a dictionary.
    Over(String, Box<Op>),
    /// The operation applied to every item of a list.
    Map(Box<Op>),
    /// Operations applied in turn.
    Pipe(Vec<Op>),
}

/// What `split_paths` splits at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitSpec {
    /// These paths.
    Paths(Vec<String>),
    /// What these paths refer to directly (`{ children_of = ...; }`).
    ChildrenOf(Vec<String>),
}

impl Pipeline {
    /// Reads `value` (the JSON of `layeringPipeline`): a list of operations `[name, arg...]`
    /// with arguments of the kinds each takes.
    pub fn parse(value: &Value) -> Result<Pipeline, PipelineError> {
        Op::parse_list(value, "must be a list of operations").map(Pipeline)
    }

    /// Runs the pipeline on `graph`: the layers, bottom first, each a list of node indices;
    /// empty layers are left out.
    pub fn run(&self, graph: &ReferenceGraph) -> Result<Vec<Vec<usize>>, PipelineError> {
        let mut vertices: Vec<usize> = (0..graph.len()).collect();
        vertices.sort_by_key(|&i| graph.entries[i].nar_size);
        let edges = (0..graph.len())
            .flat_map(|i| graph.children[i].iter().map(move |&c| (i, c)))
            .collect();
        let world = World::new(graph);
        let result = world.pipe(&self.0, Data::Graph(Graph { vertices, edges }))?;
        let mut layers = Vec::new();
        flatten_into(result, &mut layers);
        Ok(layers
            .into_iter()
            .map(|g| g.vertices)
            .filter(|v| !v.is_empty())
            .collect())
    }
}

impl Op {
    /// A list of operations; `not_a_list` says what it must be otherwise.
    fn parse_list(value: &Value, not_a_list: &str) -> Result<Vec<Op>, PipelineError> {
        value
            .as_array()
            .ok_or_else(|| bad(format!("{not_a_list}, got {value}")))?
            .iter()
            .map(Op::parse)
            .collect()
    }

    /// One operation `[name, arg...]`.
    fn parse(call: &Value) -> Result<Op, PipelineError> {
        let (name, args) = split_call(call)?;
        Ok(match name {
            "popularity_contest" => Op::PopularityContest,
            "reverse" => Op::Reverse,
            "flatten" => Op::Flatten,
            "limit_layers" => Op::LimitLayers(positive(name, &args[0])?),
            "split_every" => Op::SplitEvery(positive(name, &args[0])?),
            "subcomponent_in" => Op::SubcomponentIn(store_paths(name, &args[0])?),
            "subcomponent_out" => Op::SubcomponentOut(store_paths(name, &args[0])?),
            "remove_paths" => Op::RemovePaths(store_paths(name, &args[0])?),
            "split_paths" => Op::SplitPaths(split_specs(&args[0])?),
            "over" => {
                let key = args[0].as_str().ok_or_else(|| {
                    bad(format!(
                        "`over` takes a key (a string) first, got {}",
                        args[0]
                    ))
                })?;
                Op::Over(key.to_owned(), Box::new(Op::parse(&args[1])?))
            }
            "map" => Op::Map(Box::new(Op::parse(&args[0])?)),
            "pipe" => Op::Pipe(Op::parse_list(
                &args[0],
                "`pipe` takes a list of operations",
            )?),
            _ => return Err(unknown(name)),
        })
    }

    /// The operation's name, as a pipeline writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::PopularityContest => "popularity_contest",
            Op::LimitLayers(_) => "limit_layers",
            Op::SubcomponentIn(_) => "subcomponent_in",
            Op::SubcomponentOut(_) => "subcomponent_out",
            Op::SplitPaths(_) => "split_paths",
            Op::SplitEvery(_) => "split_every",
            Op::RemovePaths(_) => "remove_paths",
            Op::Reverse => "reverse",
            Op::Flatten => "flatten",
            Op::Over(..) => "over",
            Op::Map(_) => "map",
            Op::Pipe(_) => "pipe",
        }
    }
}

/// An operation's name and arguments, once the name is known and the count right.
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
    let args = &items[1..];
    let &(_, n) = OPERATIONS
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| unknown(name))?;
    if args.len() != n {
        let s = if n == 1 { "" } else { "s" };
        return Err(bad(format!(
            "`{name}` takes {n} argument{s}, got {}: {call}",
            args.len()
        )));
    }
    Ok((name, args))
}

/// An operation no one knows.
fn unknown(name: &str) -> PipelineError {
    let known: Vec<&str> = OPERATIONS.iter().map(|(name, _)| *name).collect();
    bad(format!(
        "unknown operation `{name}` (known: {})",
        known.join(", ")
    ))
}

/// A count argument of `name`: a whole number above 0.
fn positive(name: &str, arg: &Value) -> Result<usize, PipelineError> {
    arg.as_u64()
        .filter(|&n| n > 0)
        .map(|n| n as usize)
        .ok_or_else(|| bad(format!("`{name}` takes a positive whole number, got {arg}")))
}

/// A path argument: one store path, or a list of them.
fn store_paths(name: &str, arg: &Value) -> Result<Vec<String>, PipelineError> {
    let wrong = || {
        bad(format!(
            "`{name}` takes a store path or a list of them, got {arg}"
        ))
    };
    match arg {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(wrong))
            .collect(),
        _ => Err(wrong()),
    }
}

/// `split_paths`' argument: a spec, or a list of them; a spec is a path, a list of paths, or
/// `{ children_of = paths; }`.
fn split_specs(arg: &Value) -> Result<Vec<SplitSpec>, PipelineError> {
    let spec = |v: &Value| match v {
        Value::Object(o) => {
            let of = o.get("children_of").ok_or_else(|| {
                bad(format!(
                    "`split_paths` takes paths or {{\"children_of\": paths}}, got {v}"
                ))
            })?;
            store_paths("split_paths", of).map(SplitSpec::ChildrenOf)
        }
        other => store_paths("split_paths", other).map(SplitSpec::Paths),
    };
    match arg {
        Value::Array(items) => items.iter().map(spec).collect(),
        other => Ok(vec![spec(other)?]),
    }
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

    fn pipe(&self, ops: &[Op], mut data: Data) -> Result<Data, PipelineError> {
        for op in ops {
            data = self.apply(op, data)?;
        }
        Ok(data)
    }

    /// `op` applied to `data`; the kind of `data` is checked here, where it is known.
    fn apply(&self, op: &Op, data: Data) -> Result<Data, PipelineError> {
        let name = op.name();
        let graph_of = |data: Data| match data {
            Data::Graph(g) => Ok(g),
            other => Err(bad(format!("`{name}` takes a graph, got {}", other.kind()))),
        };
        let list_of = |data: Data| match data {
            Data::List(items) => Ok(items),
            Data::Graph(g) => Ok(vec![Data::Graph(g)]),
            other => Err(bad(format!("`{name}` takes a list, got {}", other.kind()))),
        };
        let graphs = |gs: Vec<Graph>| Data::List(gs.into_iter().map(Data::Graph).collect());
        Ok(match op {
            Op::PopularityContest => graphs(self.popularity_contest(&graph_of(data)?)),
            Op::LimitLayers(n) => Data::List(limit_layers(*n, list_of(data)?)),
            Op::SubcomponentIn(paths) => self.subcomponent(paths, graph_of(data)?, false),
            Op::SubcomponentOut(paths) => self.subcomponent(paths, graph_of(data)?, true),
            Op::SplitPaths(specs) => self.split_paths(specs, graph_of(data)?),
            Op::SplitEvery(n) => {
                let g = graph_of(data)?;
                graphs(
                    g.vertices
                        .chunks(*n)
                        .map(|c| g.induced(|v| c.contains(&v)))
                        .collect(),
                )
            }
            Op::RemovePaths(paths) => {
                let g = graph_of(data)?;
                let gone = self.paths(paths, &g);
                Data::Graph(g.induced(|v| !gone.contains(&v)))
            }
            Op::Reverse => {
                let mut items = list_of(data)?;
                items.reverse();
                Data::List(items)
            }
            Op::Flatten => {
                let mut all = Vec::new();
                flatten_into(data, &mut all);
                graphs(all)
            }
            Op::Over(key, inner) => self.over(key, inner, data)?,
            Op::Map(inner) => Data::List(
                list_of(data)?
                    .into_iter()
                    .map(|item| self.apply(inner, item))
                    .collect::<Result<_, _>>()?,
            ),
            Op::Pipe(ops) => self.pipe(ops, data)?,
        })
    }

    /// `subcomponent_in` / `_out`: what reaches (or is reached from) `paths`, and the rest.
    fn subcomponent(&self, paths: &[String], g: Graph, forward: bool) -> Data {
        let starts = self.paths(paths, &g);
        let main = reachable(&g, &starts, forward);
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

    /// `over`: `inner` applied to the entry `key` of a dictionary.
    fn over(&self, key: &str, inner: &Op, data: Data) -> Result<Data, PipelineError> {
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
        entries[at].1 = self.apply(inner, value)?;
        Ok(Data::Dict(entries))
    }

    /// The vertices of `g` that `paths` names; paths outside it are ignored.
    fn paths(&self, paths: &[String], g: &Graph) -> BTreeSet<usize> {
        paths
            .iter()
            .filter_map(|p| self.by_path.get(p.as_str()).copied())
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
    fn split_paths(&self, specs: &[SplitSpec], g: Graph) -> Data {
        let mut split = BTreeSet::new();
        for spec in specs {
            match spec {
                SplitSpec::ChildrenOf(paths) => {
                    let of = self.paths(paths, &g);
                    split.extend(
                        g.edges
                            .iter()
                            .filter(|(a, _)| of.contains(a))
                            .map(|&(_, b)| b),
                    );
                }
                SplitSpec::Paths(paths) => split.extend(self.paths(paths, &g)),
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
