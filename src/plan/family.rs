//! A family's layers: the automatic layers of several images chosen together
//! ([`crate::store::layering::family`]), so that a store path several of them hold sits in the
//! same layer, byte for byte, in each.
//!
//! `imageFamily`'s family builder writes every member's layers to one file
//! ([`super::family_file`]), and each member's plan reads its own part of it instead of laying
//! its closure alone. The builder decides what each member has left to lay exactly as the
//! member's plan does ([`place_given`]).

use crate::image::config::architecture_of_system;
use crate::parent::ParentImage;
use crate::plan::family_file::{FamilyError, FamilyLayer, FamilyLayers, FAMILY_VERSION};
use crate::plan::planner::{place_given, Placed};
use crate::plan::settings::ImageSettings;
use crate::plan::PlanError;
use crate::store::closure::Closure;
use crate::store::layering::family::family_layering;
use std::collections::HashMap;

/// One member as the family builder receives it.
#[derive(Debug)]
pub struct FamilyMember {
    /// Its name in `imageFamily`'s `images`.
    pub name: String,
    /// Its image's settings, as its plan gets them.
    pub settings: ImageSettings,
    /// Its closure.
    pub closure: Closure,
}

/// Lays the family's members together: each member's automatic layers, within the room its
/// own `maxLayers` leaves once its parent, `layers` and customisation layer are placed.
pub fn plan_family(members: &[FamilyMember]) -> Result<FamilyLayers, FamilyError> {
    check_one_platform(members)?;
    let mut left = Vec::with_capacity(members.len());
    for m in members {
        let fail = |source: PlanError| FamilyError::Member {
            member: m.name.clone(),
            source: Box::new(source),
        };
        let parent = m
            .settings
            .parent
            .as_deref()
            .map(ParentImage::load)
            .transpose()
            .map_err(fail)?;
        let Placed {
            given,
            exclude,
            left: paths,
            budget,
        } = place_given(&m.settings, &m.closure, parent.as_ref()).map_err(fail)?;
        let room = budget
            .room(given.len(), paths)
            .map_err(|e| fail(e.into()))?;
        let rest = m.closure.without(&exclude);
        left.push((rest, room));
    }
    let laid =
        family_layering(&left.iter().map(|(c, r)| (c, *r)).collect::<Vec<_>>()).map_err(|e| {
            FamilyError::Member {
                member: members.first().map_or_else(String::new, |m| m.name.clone()),
                source: Box::new(e.into()),
            }
        })?;
    Ok(name_holders(members, laid))
}

/// Refuses members of different platforms (architecture and variant).
fn check_one_platform(members: &[FamilyMember]) -> Result<(), FamilyError> {
    let mut first: Option<(&str, String)> = None;
    for m in members {
        let platform = platform_of(&m.settings).map_err(|source| FamilyError::Member {
            member: m.name.clone(),
            source: Box::new(source),
        })?;
        match &first {
            None => first = Some((&m.name, platform)),
            Some((name, p)) if *p != platform => {
                return Err(FamilyError::Platforms {
                    first: (*name).to_owned(),
                    first_platform: p.clone(),
                    other: m.name.clone(),
                    other_platform: platform,
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `architecture[/variant]` of an image, as its plan derives them.
fn platform_of(settings: &ImageSettings) -> Result<String, PlanError> {
    let (architecture, variant) = match &settings.architecture {
        Some(a) => (a.clone(), settings.variant.clone()),
        None => {
            let (a, derived) = architecture_of_system(&settings.image_system)?;
            (a, settings.variant.clone().or(derived))
        }
    };
    Ok(match variant {
        Some(v) => format!("{architecture}/{v}"),
        None => architecture,
    })
}

/// The family file for `laid` (each member's layers, in member order): each layer with the
/// members that have it too.
fn name_holders(members: &[FamilyMember], laid: Vec<Vec<Vec<String>>>) -> FamilyLayers {
    let key = |paths: &[String]| -> Vec<String> {
        let mut k = paths.to_vec();
        k.sort();
        k
    };
    let mut holders: HashMap<Vec<String>, Vec<String>> = HashMap::new();
    for (m, layers) in members.iter().zip(&laid) {
        for layer in layers {
            holders.entry(key(layer)).or_default().push(m.name.clone());
        }
    }
    let members = members
        .iter()
        .zip(laid)
        .map(|(m, layers)| {
            let layers = layers
                .into_iter()
                .map(|paths| {
                    let mut held_by = holders[&key(&paths)].clone();
                    held_by.sort();
                    FamilyLayer { paths, held_by }
                })
                .collect();
            (m.name.clone(), layers)
        })
        .collect();
    FamilyLayers {
        strata_family: FAMILY_VERSION,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::family_file::FamilyPart;
    use crate::plan::planner::plan_image;
    use crate::plan::test_fixture::{fixture, settings, Fixture};
    use crate::plan::LayerContent;
    use crate::store::closure::ClosureEntry;
    use serde_json::Value;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// `f`'s closure without its store path `p<k>` (nor the customisation layer's reference
    /// to it): a second image of the same package set.
    fn without_path(f: &Fixture, k: usize) -> Closure {
        let gone = f
            .closure
            .entries()
            .iter()
            .find(|e| e.path.ends_with(&format!("-p{k}")))
            .unwrap()
            .path
            .clone();
        Closure::from_entries(
            f.closure
                .entries()
                .iter()
                .filter(|e| e.path != gone)
                .map(|e| ClosureEntry {
                    references: e
                        .references
                        .iter()
                        .filter(|r| **r != gone)
                        .cloned()
                        .collect(),
                    ..e.clone()
                }),
        )
    }

    fn member(name: &str, settings: ImageSettings, closure: Closure) -> FamilyMember {
        FamilyMember {
            name: name.into(),
            settings,
            closure,
        }
    }

    #[test]
    fn members_share_identical_layers_and_their_plans_use_them() {
        let f = fixture(6);
        let members = [
            member("a", settings(100, &f), f.closure.clone()),
            member("b", settings(4, &f), without_path(&f, 5)),
        ];
        let family = plan_family(&members).unwrap();
        let (a, b) = (&family.members["a"], &family.members["b"]);
        assert!(b.len() <= 3, "b's room is 3: {b:?}");
        // Every path both hold is in a layer both have.
        for layer in a.iter().chain(b) {
            let shared = layer.paths.iter().any(|p| !p.ends_with("-p5"));
            if shared && layer.held_by.len() == 2 {
                assert!(a.contains(layer) && b.contains(layer), "{layer:?}");
            }
        }
        let held: BTreeSet<&String> = b.iter().flat_map(|l| &l.paths).collect();
        assert_eq!(held.len(), 5);
        // b's plan takes exactly those layers.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("family.json");
        std::fs::write(&file, serde_json::to_vec(&family).unwrap()).unwrap();
        let mut with = settings(4, &f);
        with.family = Some(FamilyPart {
            layers: file.clone(),
            member: "b".into(),
        });
        let out = Path::new("/nix/store/abcdefghijklmnopqrstuvwxyz012345-stream-b");
        let plan = plan_image(&with, Value::Null, &without_path(&f, 5), out, false).unwrap();
        let automatic: Vec<&Vec<String>> = plan.layers[..plan.layers.len() - 1]
            .iter()
            .map(|l| match &l.content {
                LayerContent::StorePaths { paths, .. } => paths,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(automatic, b.iter().map(|l| &l.paths).collect::<Vec<_>>());
        // a's closure with b's part is refused, naming the path b's part lacks.
        let err = plan_image(&with, Value::Null, &f.closure, out, false).unwrap_err();
        assert!(
            err.to_string()
                .contains("do not match its closure: they lack `")
                && err.to_string().contains("-p5`"),
            "{err}"
        );
        with.family = Some(FamilyPart {
            layers: file,
            member: "c".into(),
        });
        let err = plan_image(&with, Value::Null, &f.closure, out, false).unwrap_err();
        assert!(
            err.to_string().contains("no layers for member `c`"),
            "{err}"
        );
    }

    #[test]
    fn members_of_other_platforms_or_without_room_are_refused_by_name() {
        let f = fixture(3);
        let mut arm = settings(100, &f);
        arm.architecture = Some("arm64".into());
        let err = plan_family(&[
            member("web", settings(100, &f), f.closure.clone()),
            member("arm", arm, f.closure.clone()),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "members `web` (amd64) and `arm` (arm64) are for different platforms: a family shares layers between images of one platform (make one family per platform, and an imageIndex of their members)"
        );
        let mut bad = settings(100, &f);
        bad.max_layers = 1;
        let err = plan_family(&[member("tiny", bad, f.closure.clone())]).unwrap_err();
        assert!(
            err.to_string().starts_with("member `tiny`: `maxLayers`"),
            "{err}"
        );
    }
}
