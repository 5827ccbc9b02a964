//! Layering a family of images together, so that a store path several of them hold sits in
//! an identical layer in each: a registry then stores it once and a node pulls it once,
//! whichever members it runs. Layered one by one, two images agree only where their separate
//! layerings happen to cut the same way.
//!
//! The rule: a path's *membership* is the set of members holding it, and a layer holds paths
//! of one membership only, so it is the same layer in every member holding it. The union of
//! the closures is layered as one image ([`super::cost`]), in the most layers that, each cut
//! into one piece per membership, leave every member within its room; pieces are then split
//! while all their holders have room left. A member's roots (its application) have a piece of
//! their own, so a change of them re-sends nothing else. A member holding more memberships
//! than its room gives up its smallest shared ones (their paths get pieces of their own,
//! apart from the application; only that sharing is lost).
//!
//! Experimental (issue 28): `strata layers --family` measures it; the Nix library does not
//! use it yet. It meets the pair targets at 100 layers but not tight budgets shared by many
//! members (docs/research/families.md).

use super::measure::{bump_paths, measure, Report, Sharing};
use super::{cost, paths_of, LayeringError};
use crate::store::closure::Closure;
use crate::store::graph::ReferenceGraph;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Members of a family, as sorted member positions.
type Membership = Vec<usize>;

/// Marks the class of the paths a member gave up sharing (`[member, GIVEN_UP]`).
const GIVEN_UP: usize = usize::MAX;

/// Marks the class of a member's own roots (`[member, ROOTS]`): its application, kept in a
/// layer of its own so that a change of it re-sends nothing else, as a single image's
/// layering keeps it.
const ROOTS: usize = usize::MAX - 1;

/// The members a class's layers are in.
fn holders(m: &Membership) -> impl Iterator<Item = usize> + '_ {
    m.iter().copied().filter(|&i| i != GIVEN_UP && i != ROOTS)
}

/// The layers of each member of a family: `members` are the members' closures, each with the
/// room its store layers have (`LayerBudget::room`); the result has, per member, its layers,
/// bottom first, each the store paths it holds.
pub fn family_layering(
    members: &[(&Closure, usize)],
) -> Result<Vec<Vec<Vec<String>>>, LayeringError> {
    let union = Closure::from_entries(
        members
            .iter()
            .flat_map(|(c, _)| c.entries().iter().cloned()),
    );
    let mut classes = Classes::new(members);
    let rooms: Vec<usize> = members.iter().map(|&(_, room)| room.max(1)).collect();
    classes.fit(&rooms);
    union_layering(&union, &classes, &rooms)
}

/// One union layer cut by membership: for each class, the layers its paths make.
type Cut = BTreeMap<Membership, Vec<Vec<String>>>;

/// The union of the members' closures layered as one image in the most layers that, cut by
/// membership, leave every member within its room; then, while every holder of a piece has
/// room left, the piece with the most bytes is split in two (the same way in each holder).
/// Each member's layers are the pieces it holds, in the union's order, the most shared first
/// within a union layer.
fn union_layering(
    union: &Closure,
    classes: &Classes,
    rooms: &[usize],
) -> Result<Vec<Vec<Vec<String>>>, LayeringError> {
    let graph = ReferenceGraph::new(union, &BTreeSet::new())?;
    let cut = |room: usize| -> Vec<Cut> {
        paths_of(&graph, cost::cost_groups(&graph, room))
            .into_iter()
            .map(|layer| classes.cut(&layer))
            .collect()
    };
    let used = |cuts: &[Cut], i: usize| -> usize {
        cuts.iter()
            .flat_map(|c| c.iter())
            .filter(|(m, _)| m.contains(&i))
            .map(|(_, pieces)| pieces.len())
            .sum()
    };
    let fits = |cuts: &[Cut]| (0..rooms.len()).all(|i| used(cuts, i) <= rooms[i]);
    let (mut lo, mut hi) = (1usize, graph.len().max(1));
    let mut best = cut(1);
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let tried = cut(mid);
        if fits(&tried) {
            best = tried;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    let mut spare: Vec<usize> = (0..rooms.len())
        .map(|i| rooms[i].saturating_sub(used(&best, i)))
        .collect();
    split_while_room(union, &mut best, &mut spare)?;
    Ok((0..rooms.len())
        .map(|i| {
            best.iter()
                .flat_map(|c| {
                    let mut mine: Vec<(&Membership, &Vec<Vec<String>>)> =
                        c.iter().filter(|(m, _)| m.contains(&i)).collect();
                    mine.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(b.0)));
                    mine.into_iter()
                        .flat_map(|(_, pieces)| pieces.iter().cloned())
                })
                .collect()
        })
        .collect())
}

/// Splits pieces in two, the piece with the most bytes first, while every holder of one has
/// room left (`spare`): the same split in each holder, so the pieces stay shared.
fn split_while_room(
    union: &Closure,
    best: &mut [Cut],
    spare: &mut [usize],
) -> Result<(), LayeringError> {
    let size: HashMap<&str, u64> = union
        .entries()
        .iter()
        .map(|e| (e.path.as_str(), e.nar_size))
        .collect();
    loop {
        let candidate = best
            .iter()
            .enumerate()
            .flat_map(|(l, c)| c.iter().map(move |(m, pieces)| (l, m, pieces)))
            .filter(|(_, m, _)| holders(m).all(|i| spare[i] > 0))
            .flat_map(|(l, m, pieces)| {
                pieces
                    .iter()
                    .enumerate()
                    .map(move |(k, piece)| (l, m, k, piece))
            })
            .filter(|(_, _, _, piece)| piece.len() > 1)
            .max_by_key(|(l, m, k, piece)| {
                let bytes: u64 = piece.iter().map(|p| size[p.as_str()]).sum();
                (bytes, std::cmp::Reverse((*l, (*m).clone(), *k)))
            })
            .map(|(l, m, k, piece)| (l, m.clone(), k, piece.clone()));
        let Some((l, m, k, piece)) = candidate else {
            break;
        };
        let keep: BTreeSet<&str> = piece.iter().map(String::as_str).collect();
        let exclude: BTreeSet<String> = union
            .entries()
            .iter()
            .filter(|e| !keep.contains(e.path.as_str()))
            .map(|e| e.path.clone())
            .collect();
        let sub = ReferenceGraph::new(union, &exclude)?;
        let halves = paths_of(&sub, cost::cost_groups(&sub, 2));
        let pieces = best[l].get_mut(&m).expect("the piece's class");
        pieces.splice(k..=k, halves);
        for i in holders(&m) {
            spare[i] -= 1;
        }
    }
    Ok(())
}

/// Which paths each member holds, and the membership each path's layer is shared by.
struct Classes {
    /// For each member, the paths it holds.
    held: Vec<BTreeSet<String>>,
    /// For each path, the members whose layers of it are the same layer.
    membership: BTreeMap<String, Membership>,
    /// Each path's NAR size.
    size: BTreeMap<String, u64>,
    /// For each member, the paths nothing else it holds refers to.
    roots: Vec<BTreeSet<String>>,
    /// For each member, which of its own paths have layers apart.
    apart: Vec<Apart>,
}

/// Which of a member's own paths are kept apart from the others, room permitting.
#[derive(Debug, Clone, Copy)]
struct Apart {
    /// Its roots (its application).
    roots: bool,
    /// The paths it gave up sharing.
    given_up: bool,
}

impl Classes {
    fn new(members: &[(&Closure, usize)]) -> Classes {
        let held: Vec<BTreeSet<String>> = members
            .iter()
            .map(|(c, _)| c.entries().iter().map(|e| e.path.clone()).collect())
            .collect();
        let mut membership: BTreeMap<String, Membership> = BTreeMap::new();
        for (i, paths) in held.iter().enumerate() {
            for p in paths {
                membership.entry(p.clone()).or_default().push(i);
            }
        }
        let size = members
            .iter()
            .flat_map(|(c, _)| c.entries().iter().map(|e| (e.path.clone(), e.nar_size)))
            .collect();
        let roots = members
            .iter()
            .map(|(c, _)| {
                let referred: BTreeSet<&str> = c
                    .entries()
                    .iter()
                    .flat_map(|e| {
                        e.references
                            .iter()
                            .filter(move |r| **r != e.path)
                            .map(String::as_str)
                    })
                    .collect();
                c.entries()
                    .iter()
                    .filter(|e| !referred.contains(e.path.as_str()))
                    .map(|e| e.path.clone())
                    .collect()
            })
            .collect();
        let apart = vec![
            Apart {
                roots: true,
                given_up: true,
            };
            held.len()
        ];
        Classes {
            held,
            membership,
            size,
            roots,
            apart,
        }
    }

    /// The membership of the layer member `i` keeps `path` in: the shared one, or its own.
    fn class_of(&self, i: usize, path: &str) -> Membership {
        match self.membership.get(path) {
            Some(m) if *m == [i] && self.apart[i].roots && self.roots[i].contains(path) => {
                vec![i, ROOTS]
            }
            Some(m) if m.contains(&i) => m.clone(),
            // Given up: with the member's other given-up paths, apart from its own paths, so
            // that a change of its application does not re-send libraries.
            _ if self.apart[i].given_up => vec![i, GIVEN_UP],
            _ => vec![i],
        }
    }

    /// `layer` cut by the class each of its paths is shared by, one piece per class.
    fn cut(&self, layer: &[String]) -> Cut {
        let mut cut = Cut::new();
        for p in layer {
            let holders: Vec<usize> = (0..self.held.len())
                .filter(|&i| self.held[i].contains(p))
                .collect();
            // A path a member gave up is in that member's own piece, and in the shared
            // piece of the others.
            let mut classes: BTreeSet<Membership> = BTreeSet::new();
            for &i in &holders {
                classes.insert(self.class_of(i, p));
            }
            for class in classes {
                let pieces = cut.entry(class).or_insert_with(|| vec![Vec::new()]);
                pieces[0].push(p.clone());
            }
        }
        cut
    }

    /// Every class, with its paths (a member's own class also holds the paths it gave up).
    fn by_membership(&self) -> BTreeMap<Membership, BTreeSet<String>> {
        let mut classes: BTreeMap<Membership, BTreeSet<String>> = BTreeMap::new();
        for (i, paths) in self.held.iter().enumerate() {
            for p in paths {
                classes
                    .entry(self.class_of(i, p))
                    .or_default()
                    .insert(p.clone());
            }
        }
        classes
    }

    /// The classes member `i` holds, with their bytes.
    fn classes_of(&self, i: usize, sizes: &BTreeMap<Membership, u64>) -> Vec<(Membership, u64)> {
        sizes
            .iter()
            .filter(|(m, _)| m.contains(&i))
            .map(|(m, &b)| (m.clone(), b))
            .collect()
    }

    /// Gives up shared classes until every member holds no more classes than its room: the
    /// member over its room first puts the paths it gave up with its own (which costs no
    /// sharing), else leaves its smallest shared class. A member still over its room
    /// (nothing shared left to give up) puts its roots with its own too. Its roots stay apart
    /// while there is room: an application's change then re-sends only its own layer.
    fn fit(&mut self, rooms: &[usize]) {
        loop {
            let sizes = self.sizes();
            let over = (0..self.held.len()).find(|&i| self.classes_of(i, &sizes).len() > rooms[i]);
            let Some(i) = over else { break };
            let classes = self.classes_of(i, &sizes);
            let has = |class: Membership| classes.iter().any(|(m, _)| *m == class);
            if self.apart[i].given_up && has(vec![i, GIVEN_UP]) && has(vec![i]) {
                self.apart[i].given_up = false;
                continue;
            }
            let smallest = self
                .classes_of(i, &sizes)
                .into_iter()
                .filter(|(m, _)| holders(m).count() > 1)
                .min_by_key(|(m, bytes)| (*bytes, m.clone()));
            let Some((class, _)) = smallest else {
                let apart = &mut self.apart[i];
                if apart.given_up {
                    apart.given_up = false;
                } else if apart.roots {
                    apart.roots = false;
                } else {
                    break; // one class left: within any room
                }
                continue;
            };
            for m in self.membership.values_mut() {
                if *m == class {
                    m.retain(|&j| j != i);
                }
            }
        }
    }

    /// Bytes of each class.
    fn sizes(&self) -> BTreeMap<Membership, u64> {
        self.by_membership()
            .into_iter()
            .map(|(m, paths)| (m, paths.iter().map(|p| self.size[p]).sum()))
            .collect()
    }
}

/// What a family layering does, as a registry and the members' users see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyReport {
    /// Each member's own figures ([`measure`]): a bump of one of its paths re-lays the family
    /// with that member changed.
    pub members: Vec<Report>,
    /// Each pair of members: how much of what both hold is in layers they share.
    pub pairs: Vec<PairSharing>,
    /// Bytes of the family's distinct store paths.
    pub distinct_bytes: u64,
    /// Bytes of the family's distinct layers: what a registry stores for all of them.
    pub stored_bytes: u64,
    /// `stored_bytes / distinct_bytes` (1 at best).
    pub stored_ratio: f64,
}

/// The sharing of two members.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PairSharing {
    /// The two members, by position.
    pub members: (usize, usize),
    /// Bytes both hold, and how many of them are in layers both have.
    pub sharing: Sharing,
}

/// Measures the family layering of `members` (closures with their rooms).
pub fn measure_family(members: &[(&Closure, usize)]) -> Result<FamilyReport, LayeringError> {
    let layers = family_layering(members)?;
    let reports = (0..members.len())
        .map(|i| measure_member(members, i))
        .collect::<Result<Vec<_>, _>>()?;
    let size: HashMap<&str, u64> = members
        .iter()
        .flat_map(|(c, _)| c.entries().iter().map(|e| (e.path.as_str(), e.nar_size)))
        .collect();
    let as_sets: Vec<HashSet<BTreeSet<&str>>> = layers
        .iter()
        .map(|ls| {
            ls.iter()
                .map(|l| l.iter().map(String::as_str).collect())
                .collect()
        })
        .collect();
    let distinct: BTreeSet<&BTreeSet<&str>> = as_sets.iter().flatten().collect();
    let stored_bytes: u64 = distinct
        .iter()
        .map(|l| l.iter().map(|p| size[*p]).sum::<u64>())
        .sum();
    let distinct_bytes: u64 = size.values().sum();
    Ok(FamilyReport {
        members: reports,
        pairs: pair_sharing(members, &as_sets, &size),
        distinct_bytes,
        stored_bytes,
        stored_ratio: ratio(stored_bytes, distinct_bytes),
    })
}

/// Member `i`'s own figures. A bump changes every member holding the path (members come from
/// one package set), so the family is laid again with all of them changed.
fn measure_member(members: &[(&Closure, usize)], i: usize) -> Result<Report, LayeringError> {
    let closure = members[i].0;
    let relaid = |changed: &Closure| -> Result<Vec<Vec<String>>, LayeringError> {
        let now: HashSet<&str> = changed.entries().iter().map(|e| e.path.as_str()).collect();
        let renamed: BTreeSet<&str> = closure
            .entries()
            .iter()
            .map(|e| e.path.as_str())
            .filter(|p| !now.contains(p))
            .collect();
        let others: Vec<Closure> = members
            .iter()
            .map(|(c, _)| bump_paths(c, &renamed))
            .collect();
        let family: Vec<(&Closure, usize)> = members
            .iter()
            .enumerate()
            .map(|(j, &(_, room))| (if j == i { changed } else { &others[j] }, room))
            .collect();
        Ok(family_layering(&family)?.swap_remove(i))
    };
    measure(closure, &relaid, None)
}

/// Every pair's sharing: of the bytes both hold, those in layers both have.
fn pair_sharing(
    members: &[(&Closure, usize)],
    layers: &[HashSet<BTreeSet<&str>>],
    size: &HashMap<&str, u64>,
) -> Vec<PairSharing> {
    let mut pairs = Vec::new();
    for a in 0..members.len() {
        for b in a + 1..members.len() {
            let held_by_a: HashSet<&str> = members[a]
                .0
                .entries()
                .iter()
                .map(|e| e.path.as_str())
                .collect();
            let common: u64 = members[b]
                .0
                .entries()
                .iter()
                .filter(|e| held_by_a.contains(e.path.as_str()))
                .map(|e| e.nar_size)
                .sum();
            let shared: u64 = layers[b]
                .intersection(&layers[a])
                .map(|l| l.iter().map(|p| size[*p]).sum::<u64>())
                .sum();
            pairs.push(PairSharing {
                members: (a, b),
                sharing: Sharing {
                    common,
                    shared,
                    ratio: ratio(shared, common),
                },
            });
        }
    }
    pairs
}

/// `part / whole`, 1 when there is no whole.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::closure::ClosureEntry;

    fn p(name: &str) -> String {
        format!("/nix/store/{}-{name}", "0".repeat(32))
    }

    /// A closure of `(path, size, references)`.
    fn closure(entries: &[(&str, u64, &[&str])]) -> Closure {
        Closure::from_entries(entries.iter().map(|(name, size, refs)| ClosureEntry {
            path: p(name),
            references: refs.iter().map(|r| p(r)).collect(),
            nar_size: *size,
            nar_hash: None,
        }))
    }

    fn family() -> (Closure, Closure) {
        let a = closure(&[
            ("libc", 30, &[]),
            ("ssl", 10, &["libc"]),
            ("python", 50, &["libc", "ssl"]),
            ("app-a", 5, &["python"]),
        ]);
        let b = closure(&[
            ("libc", 30, &[]),
            ("ssl", 10, &["libc"]),
            ("perl", 40, &["libc"]),
            ("app-b", 6, &["perl", "ssl"]),
        ]);
        (a, b)
    }

    #[test]
    fn a_path_both_hold_is_in_the_same_layer_in_both() {
        let (a, b) = family();
        // Below three layers (shared, own, the application) sharing gives way.
        for room in [3, 10] {
            let layers = family_layering(&[(&a, room), (&b, room)]).unwrap();
            for path in [p("libc"), p("ssl")] {
                let of = |m: &Vec<Vec<String>>| m.iter().find(|l| l.contains(&path)).cloned();
                assert_eq!(of(&layers[0]), of(&layers[1]), "room {room}: {path}");
            }
            assert!(
                layers.iter().all(|l| l.len() <= room),
                "room {room}: {layers:?}"
            );
        }
    }

    #[test]
    fn every_member_stays_within_its_room() {
        let (a, b) = family();
        for room in 1..=4 {
            let layers = family_layering(&[(&a, room), (&b, room)]).unwrap();
            assert!(
                layers.iter().all(|l| l.len() <= room),
                "room {room}: {layers:?}"
            );
        }
    }

    #[test]
    fn a_tight_member_keeps_the_largest_shared_layer() {
        // c holds what all three share (libc, big), what only b and c share (ssl), its own
        // tool and its application: four classes in a room of three. It gives up the
        // smaller shared class into its own layer and keeps libc shared with a and b.
        let a = closure(&[("libc", 100, &[]), ("app-a", 5, &["libc"])]);
        let b = closure(&[
            ("libc", 100, &[]),
            ("ssl", 10, &["libc"]),
            ("app-b", 5, &["ssl"]),
        ]);
        let c = closure(&[
            ("libc", 100, &[]),
            ("ssl", 10, &["libc"]),
            ("tool", 3, &[]),
            ("app-c", 5, &["ssl", "tool"]),
        ]);
        let layers = family_layering(&[(&a, 5), (&b, 5), (&c, 3)]).unwrap();
        let of =
            |m: &Vec<Vec<String>>, path: &str| m.iter().find(|l| l.contains(&p(path))).cloned();
        assert_eq!(of(&layers[2], "libc"), of(&layers[0], "libc"), "{layers:?}");
        assert_eq!(of(&layers[2], "libc"), Some(vec![p("libc")]));
        assert_eq!(
            of(&layers[2], "app-c"),
            Some(vec![p("app-c")]),
            "{layers:?}"
        );
        assert!(layers[2].len() <= 3, "{layers:?}");
    }

    #[test]
    fn every_path_once_and_the_same_answer_twice() {
        let (a, b) = family();
        let layers = family_layering(&[(&a, 3), (&b, 3)]).unwrap();
        for (closure, mine) in [(&a, &layers[0]), (&b, &layers[1])] {
            let mut held: Vec<&String> = mine.iter().flatten().collect();
            held.sort();
            let mut want: Vec<&String> = closure.entries().iter().map(|e| &e.path).collect();
            want.sort();
            assert_eq!(held, want);
        }
        assert_eq!(layers, family_layering(&[(&a, 3), (&b, 3)]).unwrap());
    }

    #[test]
    fn sharing_is_whole_and_a_registry_stores_each_path_once() {
        let (a, b) = family();
        let report = measure_family(&[(&a, 10), (&b, 10)]).unwrap();
        assert_eq!(report.pairs[0].sharing.common, 40);
        assert_eq!(report.pairs[0].sharing.ratio, 1.0);
        assert_eq!(report.stored_bytes, report.distinct_bytes);
    }
}
