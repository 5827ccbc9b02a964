//! Layering a family of images together, so that a store path several of them hold sits in
//! an identical layer in each: a registry then stores it once and a node pulls it once,
//! whichever members it runs. Layered one by one, two images agree only where their separate
//! layerings happen to cut the same way.
//!
//! The rule: a path's *membership* is the set of members holding it, and a layer holds paths
//! of one membership only, so it is the same layer in every member holding it. The union of
//! the closures is layered as one image ([`super::cost`]) in as many layers as the largest
//! room, each layer cut into one piece per membership. Pieces of one membership are then
//! merged, the merge adding least to its members' excess first (cost's re-sent bytes over each
//! member's least), until every member is within its room; then pieces are split while all
//! their holders have room left, the split saving most first. A member's roots (its
//! application) have a piece of their own, so a change of them re-sends nothing else. A
//! member holding more memberships than its room gives up its smallest shared ones (their
//! paths get pieces of their own, apart from the application; only that sharing is lost).
//!
//! Experimental (issue 28): `strata layers --family` measures it; the Nix library does not
//! use it yet. It meets issue 28's targets at 100 layers but not tight budgets shared by
//! many members (docs/research/families.md).

use super::cost::{self, Bits};
use super::measure::{bump_paths, measure, Report, Sharing};
use super::{paths_of, LayeringError};
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

/// A layer of the family: paths of one class, the same layer in every member of the class.
struct Piece {
    /// The class its paths are in.
    class: Membership,
    /// Its store paths.
    paths: Vec<String>,
    /// The union of its paths' closures: a change of any of them re-sends the piece.
    closure: Bits,
    /// Its bytes.
    size: u64,
}

impl Piece {
    /// Bytes it is re-sent over every single-path change, as [`super::cost`] counts them.
    fn cost(&self) -> u128 {
        u128::from(self.size) * u128::from(self.closure.count())
    }
}

/// The union's graph, with what the pieces are weighed by.
struct Union<'c> {
    /// The union of the members' closures.
    closure: &'c Closure,
    /// Its graph.
    graph: ReferenceGraph<'c>,
    /// Each node's closure.
    closures: Vec<Bits>,
    /// Each path's node.
    index: HashMap<&'c str, usize>,
}

impl<'c> Union<'c> {
    fn new(closure: &'c Closure) -> Result<Union<'c>, LayeringError> {
        let graph = ReferenceGraph::new(closure, &BTreeSet::new())?;
        let closures = cost::closures(&graph);
        let index = (0..graph.len()).map(|i| (graph.path(i), i)).collect();
        Ok(Union {
            closure,
            graph,
            closures,
            index,
        })
    }

    fn piece(&self, class: Membership, paths: Vec<String>) -> Piece {
        let mut closure = self.closures[self.index[paths[0].as_str()]].clone();
        for p in &paths[1..] {
            closure.or(&self.closures[self.index[p.as_str()]]);
        }
        let size = paths
            .iter()
            .map(|p| self.graph.entries[self.index[p.as_str()]].nar_size)
            .sum();
        Piece {
            class,
            paths,
            closure,
            size,
        }
    }

    /// The least bytes any layering re-sends over every single-path change of `held`: what a
    /// member's excess is measured against, so a piece's cost weighs by each holder's share.
    fn least(&self, held: &BTreeSet<String>) -> f64 {
        held.iter()
            .map(|p| {
                let i = self.index[p.as_str()];
                self.graph.entries[i].nar_size as f64 * self.closures[i].count() as f64
            })
            .sum::<f64>()
            .max(1.0)
    }

    /// `piece` in two by the cost layering of its paths alone, when it has several.
    fn halves(&self, piece: &Piece) -> Result<Option<(Piece, Piece)>, LayeringError> {
        if piece.paths.len() < 2 {
            return Ok(None);
        }
        let keep: BTreeSet<&str> = piece.paths.iter().map(String::as_str).collect();
        let exclude: BTreeSet<String> = self
            .closure
            .entries()
            .iter()
            .filter(|e| !keep.contains(e.path.as_str()))
            .map(|e| e.path.clone())
            .collect();
        let sub = ReferenceGraph::new(self.closure, &exclude)?;
        let mut halves = paths_of(&sub, cost::cost_groups(&sub, 2)).into_iter();
        Ok(match (halves.next(), halves.next()) {
            (Some(a), Some(b)) => Some((
                self.piece(piece.class.clone(), a),
                self.piece(piece.class.clone(), b),
            )),
            _ => None,
        })
    }
}

/// How much `bytes` more re-sent over every change adds to the excess of the holders of
/// `class`, summed: what a merge costs and a split saves the members it touches.
fn weigh(bytes: u128, class: &Membership, least: &[f64]) -> f64 {
    holders(class).map(|i| bytes as f64 / least[i]).sum()
}

/// The union of the closures layered as one image in as many layers as the largest room, each
/// layer cut by membership; then pieces of one class merged, the merge adding least to the
/// excess of the class's members first, until every member is within its room; then pieces
/// split while their holders have room left, the split saving most first. Each member's
/// layers are the pieces it holds, in the union's order, the most shared first within a union
/// layer. Merging and splitting by each member's excess, rather than cutting a coarser union,
/// spends a member's room where its bumps re-send most (docs/research/families.md).
fn union_layering(
    union: &Closure,
    classes: &Classes,
    rooms: &[usize],
) -> Result<Vec<Vec<Vec<String>>>, LayeringError> {
    let union = Union::new(union)?;
    let start = rooms.iter().copied().max().unwrap_or(1);
    let mut pieces: Vec<Piece> = Vec::new();
    for layer in paths_of(&union.graph, cost::cost_groups(&union.graph, start)) {
        let mut cut: Vec<(Membership, Vec<Vec<String>>)> =
            classes.cut(&layer).into_iter().collect();
        cut.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        for (class, layers) in cut {
            pieces.extend(layers.into_iter().map(|l| union.piece(class.clone(), l)));
        }
    }
    let least: Vec<f64> = classes.held.iter().map(|h| union.least(h)).collect();
    merge_to_rooms(&mut pieces, rooms, &least);
    let mut spare: Vec<usize> = (0..rooms.len())
        .map(|i| rooms[i].saturating_sub(held_count(&pieces, i)))
        .collect();
    split_while_room(&union, &mut pieces, &mut spare, &least)?;
    Ok((0..rooms.len())
        .map(|i| {
            pieces
                .iter()
                .filter(|p| p.class.contains(&i))
                .map(|p| p.paths.clone())
                .collect()
        })
        .collect())
}

/// How many of `pieces` member `i` holds.
fn held_count(pieces: &[Piece], i: usize) -> usize {
    pieces.iter().filter(|p| p.class.contains(&i)).count()
}

/// Merges two pieces of one class, the merge adding least to its members' excess first
/// ([`weigh`]), among the classes held by a member over its room, until none is.
fn merge_to_rooms(pieces: &mut Vec<Piece>, rooms: &[usize], least: &[f64]) {
    loop {
        let over: Vec<bool> = (0..rooms.len())
            .map(|i| held_count(pieces, i) > rooms[i])
            .collect();
        let mut by_class: BTreeMap<&Membership, Vec<usize>> = BTreeMap::new();
        for (k, p) in pieces.iter().enumerate() {
            if holders(&p.class).any(|i| over[i]) {
                by_class.entry(&p.class).or_default().push(k);
            }
        }
        let mut best: Option<(f64, usize, usize)> = None;
        for (class, at) in &by_class {
            for (n, &a) in at.iter().enumerate() {
                for &b in &at[n + 1..] {
                    let (x, y) = (&pieces[a], &pieces[b]);
                    let together =
                        u128::from(x.size + y.size) * u128::from(x.closure.union_count(&y.closure));
                    let w = weigh(together - x.cost() - y.cost(), class, least);
                    if best.map_or(true, |(bw, _, _)| w < bw) {
                        best = Some((w, a, b));
                    }
                }
            }
        }
        let Some((_, a, b)) = best else { break };
        let taken = pieces.remove(b);
        let into = &mut pieces[a];
        into.paths.extend(taken.paths);
        into.closure.or(&taken.closure);
        into.size += taken.size;
    }
}

/// Splits pieces in two while every holder of one has room left (`spare`), the split saving
/// most of its holders' excess ([`weigh`]) first: the same split in each holder, so the
/// pieces stay shared.
fn split_while_room(
    union: &Union<'_>,
    pieces: &mut Vec<Piece>,
    spare: &mut [usize],
    least: &[f64],
) -> Result<(), LayeringError> {
    let mut halves: Vec<Option<Option<(Piece, Piece)>>> = (0..pieces.len()).map(|_| None).collect();
    loop {
        let mut best: Option<(f64, usize)> = None;
        for k in 0..pieces.len() {
            if !holders(&pieces[k].class).all(|i| spare[i] > 0) {
                continue;
            }
            if halves[k].is_none() {
                halves[k] = Some(union.halves(&pieces[k])?);
            }
            let Some(Some((a, b))) = &halves[k] else {
                continue;
            };
            let saved = pieces[k].cost() - (a.cost() + b.cost()).min(pieces[k].cost());
            let w = weigh(saved, &pieces[k].class, least);
            if w > 0.0 && best.map_or(true, |(bw, _)| w > bw) {
                best = Some((w, k));
            }
        }
        let Some((_, k)) = best else { break };
        let Some(Some((a, b))) = halves[k].take() else {
            break;
        };
        for i in holders(&pieces[k].class) {
            spare[i] -= 1;
        }
        pieces.splice(k..=k, [a, b]);
        halves.splice(k..=k, [None, None]);
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
    use crate::store::layering::test_closures::{closure, p};

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

    /// A member whose room is the tightest (as the desktop pair's sibling): the one merge it
    /// needs goes where a change re-sends least, a library with the only path using it, and
    /// not two shared paths that change apart (merging those would re-send each for the
    /// other's changes, in both members).
    #[test]
    fn a_merge_goes_where_it_costs_the_members_least() {
        let a = closure(&[
            ("s1", 100, &[]),
            ("s2", 100, &[]),
            ("app-a", 1, &["s1", "s2"]),
        ]);
        let b = closure(&[
            ("s1", 100, &[]),
            ("s2", 100, &[]),
            ("lib", 50, &[]),
            ("tool", 50, &["lib"]),
            ("app-b", 1, &["s1", "s2", "tool"]),
        ]);
        let layers = family_layering(&[(&a, 4), (&b, 4)]).unwrap();
        let has = |m: &Vec<Vec<String>>, want: &[&str]| {
            let want: BTreeSet<String> = want.iter().map(|n| p(n)).collect();
            m.iter()
                .any(|l| l.iter().cloned().collect::<BTreeSet<_>>() == want)
        };
        for (m, room) in [(&layers[0], 4), (&layers[1], 4)] {
            assert!(has(m, &["s1"]) && has(m, &["s2"]), "{layers:?}");
            assert!(m.len() <= room, "{layers:?}");
        }
        assert!(has(&layers[1], &["lib", "tool"]), "{layers:?}");
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
