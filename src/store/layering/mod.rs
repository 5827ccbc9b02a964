//! How a closure becomes layers. The default ([`cost`]) merges store paths into layers so that
//! a change re-sends as few bytes as possible and images share what they have in common;
//! [`popularity`] is nixpkgs' old popularity contest; [`pipeline`] runs nixpkgs'
//! `layeringPipeline`; [`measure`] computes the figures a layering is judged by. The one
//! `maxLayers` rule, [`LayerBudget`], is here.

pub mod cohort;
pub mod cost;
pub mod family;
pub mod measure;
pub mod pipeline;
pub mod popularity;
#[cfg(test)]
pub(crate) mod test_closures;

pub use popularity::{limit_layers, popularity_order};

use crate::store::closure::Closure;
use crate::store::graph::{GraphError, ReferenceGraph};
use pipeline::{Pipeline, PipelineError};
use std::collections::BTreeSet;

/// Why a closure could not be layered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayeringError {
    /// `layeringPipeline` cannot run (the message names the operation).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The closure's references do not form a graph.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// `maxLayers` is below the least that can hold anything.
    #[error("`maxLayers` must be at least {least}{why}, got {max_layers}")]
    MaxLayers {
        /// The limit given.
        max_layers: u64,
        /// The least allowed.
        least: u64,
        /// What the least is made of, for images.
        why: &'static str,
    },
    /// The given layers and the reserved ones alone exceed the limit.
    #[error("`maxLayers` is {max_layers}, but `fromImage` and `layers` bring {given} layers and the customisation layer needs one more")]
    TooManyGiven {
        /// The limit.
        max_layers: u64,
        /// Layers `fromImage` and `layers` bring.
        given: usize,
    },
    /// The given layers and the reserved ones leave no room for the closure's other paths.
    #[error("`maxLayers` is {max_layers}, but `fromImage` and `layers` bring {given} layers and {left} store paths of the closure are in none of them; raise `maxLayers` or put those paths in `layers`")]
    NoRoom {
        /// The limit.
        max_layers: u64,
        /// Layers `fromImage` and `layers` bring.
        given: usize,
        /// Closure paths outside them.
        left: usize,
    },
}

/// Which layering decides the automatic layers: the one choice `strata layers` and the
/// planner make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layering<'p> {
    /// The default ([`cost`]).
    Default,
    /// nixpkgs' old popularity contest ([`popularity`]), for comparisons.
    Popularity,
    /// The idea of nixpkgs' dockerAutoLayer ([`cohort`]), for comparisons.
    SizeCohort,
    /// `layeringPipeline`, which decides the number of layers itself.
    Pipeline(&'p Pipeline),
}

impl Layering<'_> {
    /// The layers of `closure` without `exclude`, bottom first, each the store paths it holds;
    /// at most `room` of them, but for a pipeline.
    pub fn layers(
        &self,
        closure: &Closure,
        exclude: &BTreeSet<String>,
        room: usize,
    ) -> Result<Vec<Vec<String>>, LayeringError> {
        match self {
            Layering::Default => default_layering(closure, exclude, room),
            Layering::Popularity => Ok(limit_layers(popularity_order(closure, exclude)?, room)),
            Layering::SizeCohort => {
                let graph = ReferenceGraph::new(closure, exclude)?;
                Ok(paths_of(&graph, cohort::cohort_groups(&graph, room)))
            }
            Layering::Pipeline(pipeline) => {
                let graph = ReferenceGraph::new(closure, exclude)?;
                Ok(paths_of(&graph, pipeline.run(&graph)?))
            }
        }
    }
}

/// The default layering of `closure` without `exclude`, in at most `room` layers: the store
/// paths of each layer, bottom to top, sorted ([`cost`]).
pub fn default_layering(
    closure: &Closure,
    exclude: &BTreeSet<String>,
    room: usize,
) -> Result<Vec<Vec<String>>, LayeringError> {
    let graph = ReferenceGraph::new(closure, exclude)?;
    Ok(paths_of(&graph, cost::cost_groups(&graph, room)))
}

/// [`default_layering`] with why each layer holds what it holds.
pub fn explained_layering(
    closure: &Closure,
    exclude: &BTreeSet<String>,
    room: usize,
) -> Result<Vec<(Vec<String>, String)>, LayeringError> {
    let graph = ReferenceGraph::new(closure, exclude)?;
    Ok(cost::explained_groups(&graph, room)
        .into_iter()
        .map(|(g, why)| {
            let paths = g.into_iter().map(|i| graph.path(i).to_owned()).collect();
            (paths, why.to_string())
        })
        .collect())
}

/// Layers of node indices as layers of store paths.
pub(crate) fn paths_of(graph: &ReferenceGraph, groups: Vec<Vec<usize>>) -> Vec<Vec<String>> {
    groups
        .into_iter()
        .map(|g| g.into_iter().map(|i| graph.path(i).to_owned()).collect())
        .collect()
}

/// The one rule for `maxLayers`: it counts every layer of the result, of which `reserved`
/// are not store layers (an image's customisation layer) and some are given (`fromImage`,
/// `layers`); the automatic layering gets the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerBudget {
    /// `maxLayers` as given.
    pub max_layers: u64,
    /// Layers of the result that are not store layers.
    pub reserved: usize,
}

impl LayerBudget {
    /// An image's budget: its customisation layer is reserved.
    pub fn image(max_layers: u64) -> LayerBudget {
        LayerBudget {
            max_layers,
            reserved: 1,
        }
    }

    /// A `buildLayer`'s budget: every layer counted is a store layer (its contents' root layer
    /// is not counted).
    pub fn layer_set(max_layers: u64) -> LayerBudget {
        LayerBudget {
            max_layers,
            reserved: 0,
        }
    }

    /// Checks that `maxLayers` can hold anything at all.
    pub fn check(&self) -> Result<(), LayeringError> {
        let least = self.reserved as u64 + 1;
        if self.max_layers < least {
            return Err(LayeringError::MaxLayers {
                max_layers: self.max_layers,
                least,
                why: if self.reserved > 0 {
                    " (one store layer and the customisation layer)"
                } else {
                    ""
                },
            });
        }
        Ok(())
    }

    /// The store layers left for `paths` more store paths once `given` layers are placed.
    pub fn room(&self, given: usize, paths: usize) -> Result<usize, LayeringError> {
        self.check()?;
        let taken = given as u64 + self.reserved as u64;
        if taken > self.max_layers {
            return Err(LayeringError::TooManyGiven {
                max_layers: self.max_layers,
                given,
            });
        }
        let room = (self.max_layers - taken) as usize;
        if room == 0 && paths > 0 {
            return Err(LayeringError::NoRoom {
                max_layers: self.max_layers,
                given,
                left: paths,
            });
        }
        Ok(room)
    }
}
