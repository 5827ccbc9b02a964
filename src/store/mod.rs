//! What Nix hands the helper: store paths, the closure `exportReferencesGraph` gives, the
//! structured attributes of a builder, how a closure is layered, and the Nix database an
//! image can carry.

pub mod attrs;
pub mod closure;
pub mod graph;
pub mod layering;
pub mod nix_db;
pub mod path;
