//! The family file `imageFamily`'s layering writes ([`super::family`]) and a member's plan
//! reads its part of: each member's automatic layers, bottom to top, each with the members
//! that have the very same layer. A part is used only if it holds exactly the paths the
//! member has left to lay, within its room, so a file made for other images is refused
//! rather than half used.

use crate::plan::file::read_json;
use crate::plan::PlanError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Version of the family file; a helper refuses files of another version.
pub const FAMILY_VERSION: u32 = 1;

/// The family file: each member's automatic layers, bottom to top.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyLayers {
    /// [`FAMILY_VERSION`].
    pub strata_family: u32,
    /// Each member's layers, by member name.
    pub members: BTreeMap<String, Vec<FamilyLayer>>,
}

/// One automatic layer of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyLayer {
    /// The store paths it holds.
    pub paths: Vec<String>,
    /// The members that have this very layer, this one included.
    pub held_by: Vec<String>,
}

/// Where a member's plan finds its layers (`imageFamily` passes it as `family`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyPart {
    /// The family file.
    pub layers: PathBuf,
    /// The member's name in it.
    pub member: String,
}

/// Why a family's layers could not be decided or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FamilyError {
    /// A member's own settings fail, as they would in its plan.
    #[error("member `{member}`: {source}")]
    Member {
        /// The member.
        member: String,
        /// The cause.
        source: Box<PlanError>,
    },
    /// Two members are for different platforms, whose store paths cannot be shared.
    #[error("members `{first}` ({first_platform}) and `{other}` ({other_platform}) are for different platforms: a family shares layers between images of one platform (make one family per platform, and an imageIndex of their members)")]
    Platforms {
        /// The first member.
        first: String,
        /// Its platform.
        first_platform: String,
        /// A member of another platform.
        other: String,
        /// That platform.
        other_platform: String,
    },
    /// The family file has no part for the member.
    #[error("`{file}` has no layers for member `{member}`")]
    NoPart {
        /// The family file.
        file: PathBuf,
        /// The member.
        member: String,
    },
    /// The member's part has more layers than its `maxLayers` leaves room for.
    #[error("`{file}` gives member `{member}` {layers} automatic layers, but its `maxLayers` leaves room for {room}")]
    Room {
        /// The family file.
        file: PathBuf,
        /// The member.
        member: String,
        /// Layers the file gives it.
        layers: usize,
        /// Its room.
        room: usize,
    },
    /// The member's part does not hold exactly the paths the member has left to lay.
    #[error(
        "the layers `{file}` has for member `{member}` do not match its closure: {what} `{path}`"
    )]
    Mismatch {
        /// The family file.
        file: PathBuf,
        /// The member.
        member: String,
        /// Which way it differs.
        what: &'static str,
        /// A path that differs.
        path: String,
    },
}

/// The automatic layers `part` gives a member whose paths left to lay are `left`, in at most
/// `room` layers, each with why it holds what it holds; refused unless they hold exactly
/// `left` within `room`.
pub fn member_layers(
    part: &FamilyPart,
    left: &BTreeSet<&str>,
    room: usize,
) -> Result<Vec<(Vec<String>, String)>, PlanError> {
    let file: FamilyLayers = read_json(&part.layers, "strata family file")?;
    if file.strata_family != FAMILY_VERSION {
        return Err(PlanError::Malformed {
            path: part.layers.clone(),
            what: "strata family file",
            message: format!(
                "version {} (this helper writes {FAMILY_VERSION})",
                file.strata_family
            ),
        });
    }
    let layers = file
        .members
        .get(&part.member)
        .ok_or_else(|| FamilyError::NoPart {
            file: part.layers.clone(),
            member: part.member.clone(),
        })?;
    check_part(part, &part.layers, layers, left)?;
    if layers.len() > room {
        return Err(FamilyError::Room {
            file: part.layers.clone(),
            member: part.member.clone(),
            layers: layers.len(),
            room,
        }
        .into());
    }
    Ok(layers
        .iter()
        .map(|l| (l.paths.clone(), why(&part.member, &l.held_by)))
        .collect())
}

/// Checks that `layers` hold exactly the paths of `left`.
fn check_part(
    part: &FamilyPart,
    file: &Path,
    layers: &[FamilyLayer],
    left: &BTreeSet<&str>,
) -> Result<(), FamilyError> {
    let held: BTreeSet<&str> = layers
        .iter()
        .flat_map(|l| l.paths.iter().map(String::as_str))
        .collect();
    let mismatch = |what, path: &str| FamilyError::Mismatch {
        file: file.to_owned(),
        member: part.member.clone(),
        what,
        path: path.to_owned(),
    };
    if let Some(p) = held.difference(left).next() {
        return Err(mismatch("it lacks", p));
    }
    if let Some(p) = left.difference(&held).next() {
        return Err(mismatch("they lack", p));
    }
    Ok(())
}

/// Why a family layer holds what it holds (the image's history and `explain` show it).
fn why(member: &str, held_by: &[String]) -> String {
    let others: Vec<&str> = held_by
        .iter()
        .map(String::as_str)
        .filter(|m| *m != member)
        .collect();
    if others.is_empty() {
        "family layering: this image's own paths".to_owned()
    } else {
        format!("family layering: shared with {}", others.join(", "))
    }
}
