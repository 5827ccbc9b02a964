//! nixpkgs' flatten-references-graph test cases (its `*_test.py`), as data: the same graphs
//! and pipelines must give the same layers.

use super::*;
use crate::store::closure::{Closure, ClosureEntry};
use serde_json::json;
use std::collections::BTreeSet;

fn p(name: &str) -> String {
    format!("/nix/store/{name}")
}

/// A closure of `edges` (and `alone`, vertices without edges), each path of `size`.
fn closure(edges: &[(&str, &str)], alone: &[&str], size: &dyn Fn(&str) -> u64) -> Closure {
    let mut names: BTreeSet<&str> = alone.iter().copied().collect();
    for (a, b) in edges {
        names.insert(a);
        names.insert(b);
    }
    Closure::from_entries(names.into_iter().map(|n| {
        ClosureEntry {
            path: p(n),
            references: edges
                .iter()
                .filter(|(a, _)| *a == n)
                .map(|(_, b)| p(b))
                .collect(),
            nar_size: size(n),
            nar_hash: None,
        }
    }))
}

/// The layers of `pipeline` on `c`, each as the set of its names.
fn layers(c: &Closure, pipeline: Value) -> Vec<BTreeSet<String>> {
    layers_without(c, &BTreeSet::new(), pipeline)
}

/// [`layers`] of `c` without the paths of `exclude`.
fn layers_without(
    c: &Closure,
    exclude: &BTreeSet<String>,
    pipeline: Value,
) -> Vec<BTreeSet<String>> {
    let graph = ReferenceGraph::new(c, exclude).unwrap();
    Pipeline::parse(&pipeline)
        .unwrap()
        .run(&graph)
        .unwrap()
        .into_iter()
        .map(|l| {
            l.into_iter()
                .map(|i| graph.path(i).trim_start_matches("/nix/store/").to_owned())
                .collect()
        })
        .collect()
}

fn sets(names: &[&[&str]]) -> Vec<BTreeSet<String>> {
    names
        .iter()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .collect()
}

fn one(_: &str) -> u64 {
    1
}

const POPULARITY: &[(&str, &str)] = &[
    ("Root1", "A"),
    ("A", "B"),
    ("A", "D"),
    ("D", "E"),
    ("B", "D"),
    ("B", "F"),
    ("Root2", "B"),
    ("Root3", "C"),
];

#[test]
fn popularity_contest_orders_like_nixpkgs() {
    let c = closure(POPULARITY, &["X"], &one);
    let got = layers(&c, json!([["popularity_contest"]]));
    let want: Vec<&[&str]> = ["E", "D", "F", "B", "A", "C", "Root1", "Root2", "Root3", "X"]
        .iter()
        .map(std::slice::from_ref)
        .collect();
    assert_eq!(got, sets(&want));
}

const SUBCOMPONENT: &[(&str, &str)] = &[
    ("Root1", "A"),
    ("A", "B"),
    ("A", "C"),
    ("B", "D"),
    ("B", "E"),
    ("Root2", "B"),
    ("Root3", "C"),
];

#[test]
fn subcomponent_out_and_in_split_main_from_rest() {
    let c = closure(SUBCOMPONENT, &["X"], &one);
    let cases: [(&str, Value, &[&[&str]]); 4] = [
        (
            "subcomponent_out",
            json!([p("B")]),
            &[
                &["B", "D", "E"],
                &["Root1", "A", "C", "Root3", "Root2", "X"],
            ],
        ),
        (
            "subcomponent_out",
            json!([p("B"), p("Root3")]),
            &[
                &["B", "D", "E", "Root3", "C"],
                &["Root1", "A", "Root2", "X"],
            ],
        ),
        (
            "subcomponent_in",
            json!([p("B")]),
            &[
                &["Root1", "A", "B", "Root2"],
                &["Root3", "C", "D", "E", "X"],
            ],
        ),
        (
            "subcomponent_in",
            json!([p("B"), p("Root3")]),
            &[
                &["Root1", "A", "B", "Root2", "Root3"],
                &["C", "D", "E", "X"],
            ],
        ),
    ];
    for (op, paths, want) in cases {
        assert_eq!(layers(&c, json!([[op, paths]])), sets(want), "{op} {paths}");
    }
    // An empty list of paths: everything is `rest`.
    let all = ["A", "B", "C", "D", "E", "Root1", "Root2", "Root3", "X"];
    assert_eq!(layers(&c, json!([["subcomponent_out", []]])), sets(&[&all]));
}

#[test]
fn split_paths_gives_main_common_rest() {
    let c = closure(POPULARITY, &["X"], &one);
    let cases: [(Value, &[&[&str]]); 3] = [
        (
            json!([p("B")]),
            &[
                &["B", "F"],
                &["D", "E"],
                &["Root1", "A", "Root3", "C", "Root2", "X"],
            ],
        ),
        (
            json!([p("B"), p("Root3")]),
            &[
                &["B", "F", "Root3", "C"],
                &["D", "E"],
                &["Root1", "A", "Root2", "X"],
            ],
        ),
        (
            json!([p("D")]),
            &[
                &["D", "E"],
                &["Root1", "A", "B", "F", "Root2", "Root3", "C", "X"],
            ],
        ),
    ];
    for (paths, want) in cases {
        assert_eq!(
            layers(&c, json!([["split_paths", paths]])),
            sets(want),
            "{paths}"
        );
    }
}

#[test]
fn pipe_tests_of_nixpkgs() {
    // pipe_test.py test_1.
    let edges = &[
        ("Root1", "A"),
        ("A", "B"),
        ("A", "C"),
        ("B", "D"),
        ("B", "E"),
        ("E", "F"),
        ("B", "G"),
        ("Root2", "B"),
        ("Root3", "C"),
    ];
    let c = closure(edges, &[], &one);
    let pipeline = json!([
        ["split_paths", [p("B")]],
        [
            "over",
            "main",
            [
                "pipe",
                [
                    ["subcomponent_in", [p("B")]],
                    ["over", "rest", ["popularity_contest"]]
                ]
            ]
        ],
        ["flatten"],
        ["map", ["remove_paths", p("Root3")]],
        ["limit_layers", 5]
    ]);
    assert_eq!(
        layers(&c, pipeline),
        sets(&[
            &["B"],
            &["F"],
            &["D"],
            &["E"],
            &["Root1", "A", "C", "Root2", "G"]
        ])
    );
    // pipe_test.py test_2.
    let c = closure(&[("Root1", "A"), ("A", "B")], &["Root2"], &one);
    assert_eq!(
        layers(&c, json!([["popularity_contest"]])),
        sets(&[&["B"], &["A"], &["Root1"], &["Root2"]])
    );
    assert_eq!(
        layers(&c, json!([["popularity_contest"], ["limit_layers", 3]])),
        sets(&[&["B"], &["A"], &["Root1", "Root2"]])
    );
    assert_eq!(
        layers(
            &c,
            json!([["popularity_contest"], ["reverse"], ["limit_layers", 3]])
        ),
        sets(&[&["Root2"], &["Root1"], &["A", "B"]])
    );
}

#[test]
fn flatten_references_graph_tests_of_nixpkgs() {
    // flatten_references_graph_test.py: narSize A 2, B 4, C 6, D 8; A → C, B → C, D.
    let size = |n: &str| match n {
        "A" => 2,
        "B" => 4,
        "C" => 6,
        _ => 8,
    };
    let c = closure(&[("A", "C"), ("B", "C"), ("B", "D")], &[], &size);
    assert_eq!(
        layers(&c, json!([["split_paths", [p("B")]]])),
        sets(&[&["B", "D"], &["C"], &["A"]])
    );
    assert_eq!(
        layers(
            &c,
            json!([
                ["split_paths", [p("B")]],
                ["over", "main", ["subcomponent_in", [p("B")]]]
            ])
        ),
        sets(&[&["B"], &["D"], &["C"], &["A"]])
    );
    let without = |gone: &str| {
        layers_without(
            &c,
            &BTreeSet::from([p(gone)]),
            json!([["split_paths", [p("B")]]]),
        )
    };
    assert_eq!(without("A"), sets(&[&["B", "C", "D"]]));
    assert_eq!(without("D"), sets(&[&["B"], &["C"], &["A"]]));
}

/// The cases `lib.isPipeline` is checked on too (checks/eval.nix): the helper and the Nix
/// library take and refuse the same pipelines.
const CASES: &str = include_str!("../../../../tests/fixtures/pipelines/cases.json");

#[test]
fn pipelines_are_taken_or_refused_as_the_shared_cases_say() {
    let cases: Vec<Value> = serde_json::from_str(CASES).unwrap();
    for case in cases {
        let parsed = Pipeline::parse(&case["pipeline"]);
        match case["says"].as_str() {
            None => assert!(parsed.is_ok(), "{case}: {parsed:?}"),
            Some(says) => {
                let err = parsed.unwrap_err().to_string();
                assert!(
                    err.contains(says) && err.starts_with("`layeringPipeline`"),
                    "{case}: {err}"
                );
            }
        }
        assert_eq!(
            case["valid"].as_bool(),
            Some(case["says"].is_null()),
            "{case}"
        );
    }
}

#[test]
fn run_time_errors_name_the_operation_and_what_it_got() {
    let c = closure(POPULARITY, &[], &one);
    let graph = ReferenceGraph::new(&c, &BTreeSet::new()).unwrap();
    let run = |pipeline: Value| Pipeline::parse(&pipeline).unwrap().run(&graph);
    let err = run(json!([
        ["split_paths", [p("B")]],
        ["over", "nope", ["flatten"]]
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("no key `nope`"), "{err}");
    let err = run(json!([["popularity_contest"], ["split_every", 2]]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`split_every` takes a graph, got a list"),
        "{err}"
    );
}
