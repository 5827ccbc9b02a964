//! Deciding an image's plan: which layers it has (the parent's, the given ones, the
//! automatic layering of the rest of the closure within `maxLayers`), their records, and its
//! config, platform and tag.

use crate::image::config::{architecture_of_system, check_config, inherit_env};
use crate::parent::ParentImage;
use crate::plan::family_file::member_layers;
use crate::plan::record::{complete_record, compute_records, RecordParts, RECORD_VERSION};
use crate::plan::settings::ImageSettings;
use crate::plan::{
    tarball_layer, ImagePlan, LayerContent, LayerSet, PlanError, PlannedLayer, PLAN_VERSION,
};
use crate::progress::Progress;
use crate::store::closure::Closure;
use crate::store::layering::{explained_layering, LayerBudget, Layering};
use crate::store::path::{hash_part, STORE_DIR};
use crate::tar::header::Stamp;
use crate::tar::layer::LayerSource;
use crate::when::When;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The layers an image starts with and how the rest of its closure is grouped.
#[derive(Debug)]
pub struct Grouping {
    /// The parent's layers, then those of `layers`, bottom to top, with their records.
    pub given: Vec<PlannedLayer>,
    /// The automatic layers' store paths, bottom to top.
    pub groups: Vec<Vec<String>>,
    /// Why each automatic layer holds what it holds.
    pub whys: Vec<String>,
}

/// Makes the plan for an image whose plan file will be `out` (its hash is the default tag),
/// computing the records of its automatic layers; `report` shows progress.
pub fn plan_image(
    settings: &ImageSettings,
    config: Value,
    closure: &Closure,
    out: &Path,
    report: bool,
) -> Result<ImagePlan, PlanError> {
    check_config(&config)?;
    let (architecture, variant) = match &settings.architecture {
        Some(a) => (a.clone(), settings.variant.clone()),
        None => {
            let (a, derived) = architecture_of_system(&settings.image_system)?;
            (a, settings.variant.clone().or(derived))
        }
    };
    let created = When::parse("created", &settings.created)?;
    let tag = match &settings.tag {
        Some(t) => t.clone(),
        None => hash_part(&out.to_string_lossy()).to_owned(),
    };
    let parent = settings
        .parent
        .as_deref()
        .map(ParentImage::load)
        .transpose()?;
    let config = if config.is_null() {
        Value::Object(Default::default())
    } else {
        config
    };
    let config = match &parent {
        Some(p) => inherit_env(&p.runtime_config(), config),
        None => config,
    };
    let layers = plan_layers(settings, closure, parent.as_ref(), report)?;
    Ok(ImagePlan {
        strata_plan: PLAN_VERSION,
        repo_tag: format!("{}:{tag}", settings.image_name.to_ascii_lowercase()),
        architecture,
        variant,
        os: "linux".to_owned(),
        created,
        config,
        layers,
        parent_layers: parent.as_ref().map_or(0, |p| p.layers.len()),
        parent_history: parent.as_ref().map_or_else(Vec::new, ParentImage::history),
        legacy_layout: settings.legacy_layout,
        layer_compressor: settings.layer_compressor,
    })
}

/// Every layer of the image, bottom to top, with its record: the given ones, the automatic
/// ones (recorded now), the customisation layer.
fn plan_layers(
    settings: &ImageSettings,
    closure: &Closure,
    parent: Option<&ParentImage>,
    report: bool,
) -> Result<Vec<PlannedLayer>, PlanError> {
    let Grouping {
        mut given,
        groups,
        whys,
    } = automatic_groups(settings, closure, parent)?;
    let first = given.len();
    let progress = if report {
        Progress::start("records", None, groups.len())
    } else {
        Progress::quiet()
    };
    let parts = settings.record_parts();
    let automatic = plan_store_layers(
        groups.into_iter().zip(whys).collect(),
        &settings.stamp,
        first,
        parts,
        &progress,
    )?;
    progress.finish();
    given.extend(automatic);
    given.push(tarball_layer(Path::new(&settings.customisation_layer))?);
    complete_records(&mut given, parts, report)?;
    Ok(given)
}

/// What an image places before its automatic layers, and what that leaves them.
#[derive(Debug)]
pub struct Placed {
    /// The parent's layers, then those of `layers`, bottom to top, with their records.
    pub given: Vec<PlannedLayer>,
    /// Closure paths the automatic layers leave out: held by the given layers, the
    /// customisation layer, or not image content (all of them without
    /// `includeStorePaths`).
    pub exclude: BTreeSet<String>,
    /// How many closure paths the automatic layers hold.
    pub left: usize,
    /// The image's `maxLayers`.
    pub budget: LayerBudget,
}

/// The layers the parent and `layers` bring, and what they leave the automatic layers: the
/// one rule the plan and a family's layering share.
pub fn place_given(
    settings: &ImageSettings,
    closure: &Closure,
    parent: Option<&ParentImage>,
) -> Result<Placed, PlanError> {
    let budget = LayerBudget::image(settings.max_layers);
    if settings.layering_pipeline.is_none() {
        budget.check()?;
    }
    let mut given = Vec::new();
    let mut exclude: BTreeSet<String> = settings.exclude.iter().cloned().collect();
    exclude.insert(settings.customisation_layer.clone());
    if let Some(parent) = parent {
        given.extend(parent.layers.iter().cloned());
        // The parent's copy of a store path is the same path: no need to ship it twice.
        exclude.extend(
            parent
                .store_paths
                .iter()
                .map(|n| format!("{STORE_DIR}/{n}")),
        );
    }
    let parent_layers = given.len();
    for file in &settings.layers {
        given.extend(LayerSet::read(file)?.layers);
    }
    exclude.extend(paths_held_once(&given[parent_layers..], parent_layers)?);
    if !settings.include_store_paths {
        // The image holds none of its closure: every path is left out alike.
        exclude.extend(closure.entries().iter().map(|e| e.path.clone()));
    }
    let left = closure
        .entries()
        .iter()
        .filter(|e| !exclude.contains(&e.path))
        .count();
    Ok(Placed {
        given,
        exclude,
        left,
        budget,
    })
}

/// The layers the parent and `layers` bring, and how the rest of the closure is grouped into
/// layers within `maxLayers`: by the default layering, `layeringPipeline`, or the image's
/// family.
pub fn automatic_groups(
    settings: &ImageSettings,
    closure: &Closure,
    parent: Option<&ParentImage>,
) -> Result<Grouping, PlanError> {
    let Placed {
        given,
        exclude,
        left,
        budget,
    } = place_given(settings, closure, parent)?;
    let explained: Vec<(Vec<String>, String)> =
        match (&settings.family, &settings.layering_pipeline) {
            (Some(part), _) => {
                let room = budget.room(given.len(), left)?;
                let rest: BTreeSet<&str> = closure
                    .entries()
                    .iter()
                    .map(|e| e.path.as_str())
                    .filter(|p| !exclude.contains(*p))
                    .collect();
                member_layers(part, &rest, room)?
            }
            (None, Some(_)) if left == 0 => Vec::new(),
            (None, Some(pipeline)) => Layering::Pipeline(pipeline)
                .layers(closure, &exclude, usize::MAX)?
                .into_iter()
                .map(|paths| (paths, "from layeringPipeline".to_owned()))
                .collect(),
            (None, None) => {
                let room = budget.room(given.len(), left)?;
                if left == 0 {
                    Vec::new()
                } else {
                    explained_layering(closure, &exclude, room)?
                }
            }
        };
    let (groups, whys) = explained.into_iter().unzip();
    Ok(Grouping {
        given,
        groups,
        whys,
    })
}

/// The store paths of `layers` (which start at position `offset` of the image), refusing a
/// path two of them hold.
fn paths_held_once(layers: &[PlannedLayer], offset: usize) -> Result<Vec<String>, PlanError> {
    let mut holder: HashMap<&str, usize> = HashMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for path in layer.content.store_paths() {
            if let Some(first) = holder.insert(path, i) {
                return Err(PlanError::Overlap {
                    path: path.clone(),
                    first: offset + first + 1,
                    second: offset + i + 1,
                });
            }
        }
    }
    Ok(holder.into_keys().map(str::to_owned).collect())
}

/// Builds the layers of `groups` (store paths, bottom to top, each with why) with their
/// records, holding `parts`. `first_index` is the position of the first one in the image,
/// for errors.
pub fn plan_store_layers(
    groups: Vec<(Vec<String>, String)>,
    stamp: &Stamp,
    first_index: usize,
    parts: RecordParts,
    progress: &Progress,
) -> Result<Vec<PlannedLayer>, PlanError> {
    let (contents, whys): (Vec<LayerContent>, Vec<String>) = groups
        .into_iter()
        .map(|(paths, why)| {
            let content = LayerContent::StorePaths {
                paths,
                stamp: stamp.clone(),
            };
            (content, why)
        })
        .unzip();
    let sources: Vec<(LayerSource, Stamp)> =
        contents.iter().map(|c| (c.source(), c.stamp())).collect();
    let records =
        compute_records(&sources, parts, progress).map_err(|(i, source)| PlanError::Layer {
            index: first_index + i + 1,
            what: contents[i].describe_short(),
            source,
        })?;
    Ok(contents
        .into_iter()
        .zip(records)
        .zip(whys)
        .map(|((content, record), why)| PlannedLayer {
            content,
            record,
            why,
        })
        .collect())
}

/// The layers of a `buildLayer`: `exact` store paths as one layer, or the closure minus what
/// the `earlier` layer sets hold, layered within `budget`; then the contents' root layer, when
/// there is one. Records are computed now.
pub fn plan_layer_set(
    closure: &Closure,
    earlier: &[PathBuf],
    budget: LayerBudget,
    exact: Option<Vec<String>>,
    contents_layer: Option<&Path>,
    stamp: &Stamp,
    progress: &Progress,
) -> Result<LayerSet, PlanError> {
    let groups = match exact {
        Some(paths) => vec![(
            paths,
            "exactly the paths given (perLayerDerivations)".to_owned(),
        )],
        None => {
            let mut exclude = BTreeSet::new();
            for file in earlier {
                for layer in LayerSet::read(file)?.layers {
                    exclude.extend(layer.content.store_paths().iter().cloned());
                }
            }
            let left = closure
                .entries()
                .iter()
                .filter(|e| !exclude.contains(&e.path))
                .count();
            let room = budget.room(0, left)?;
            explained_layering(closure, &exclude, room)?
        }
    };
    // Bare records: the images using the set add what each needs.
    let mut layers = plan_store_layers(groups, stamp, 0, RecordParts::BARE, progress)?;
    if let Some(dir) = contents_layer {
        layers.push(tarball_layer(dir)?);
    }
    Ok(LayerSet {
        strata_layers: RECORD_VERSION,
        layers,
    })
}

/// Adds `parts` to the records of `layers` that lack them (a parent's, a `buildLayer`'s, the
/// customisation layer: recorded for no image in particular), tarring those layers once.
fn complete_records(
    layers: &mut [PlannedLayer],
    parts: RecordParts,
    report: bool,
) -> Result<(), PlanError> {
    let lacking = |l: &PlannedLayer| !parts.lacking_in(&l.record).is_bare();
    let missing = layers.iter().filter(|l| lacking(l)).count();
    if missing == 0 {
        return Ok(());
    }
    let progress = if report {
        Progress::start("records completed", None, missing)
    } else {
        Progress::quiet()
    };
    for (i, layer) in layers.iter_mut().enumerate() {
        if !lacking(layer) {
            continue;
        }
        let content = &layer.content;
        complete_record(
            &content.source(),
            &content.stamp(),
            &mut layer.record,
            parts,
            &progress,
        )
        .map_err(|source| PlanError::Layer {
            index: i + 1,
            what: content.describe_short(),
            source,
        })?;
        progress.layer_done();
    }
    progress.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::record::RECORD_VERSION;
    use crate::plan::test_fixture::{fixture, settings};
    use crate::store::layering::LayeringError;
    use serde_json::json;

    const OUT: &str = "/nix/store/abcdefghijklmnopqrstuvwxyz012345-stream-hello";

    #[test]
    fn plan_defaults_records_and_round_trip() {
        let f = fixture(3);
        let plan = plan_image(
            &settings(100, &f),
            json!({"Cmd": ["x"]}),
            &f.closure,
            Path::new(OUT),
            false,
        )
        .unwrap();
        assert_eq!(plan.repo_tag, "hello:abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(plan.architecture, "amd64");
        assert_eq!(plan.layers.len(), 4, "3 store paths + customisation");
        assert!(matches!(
            plan.layers[3].content,
            LayerContent::Tarball { .. }
        ));
        assert!(plan.layers.iter().all(|l| l.record.size > 0));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan");
        std::fs::write(
            &file,
            plan.to_script(Path::new("/nix/store/h-strata/bin/strata")),
        )
        .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("#!/nix/store/h-strata/bin/strata stream\n{"));
        assert_eq!(ImagePlan::read(&file).unwrap(), plan);
    }

    #[test]
    fn variant_given_goes_into_the_plan() {
        let f = fixture(1);
        let out = Path::new(OUT);
        let mut arm64 = settings(100, &f);
        arm64.architecture = Some("arm64".into());
        arm64.variant = Some("v8".into());
        let plan = plan_image(&arm64, Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(
            (plan.architecture.as_str(), plan.variant.as_deref()),
            ("arm64", Some("v8"))
        );
        // Without one, an explicit architecture has none and a system gives its own.
        arm64.variant = None;
        let plan = plan_image(&arm64, Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(plan.variant, None);
        let mut armv7 = settings(100, &f);
        armv7.image_system = "armv7l-linux".into();
        let plan = plan_image(&armv7, Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(plan.variant.as_deref(), Some("v7"));
        armv7.variant = Some("v6".into());
        let plan = plan_image(&armv7, Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(
            (plan.architecture.as_str(), plan.variant.as_deref()),
            ("arm", Some("v6"))
        );
    }

    #[test]
    fn max_layers_and_given_layers_are_respected() {
        let f = fixture(10);
        let out = Path::new(OUT);
        let q = Progress::quiet();
        let plan = plan_image(&settings(3, &f), Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(plan.layers.len(), 3);
        let err = plan_image(&settings(1, &f), Value::Null, &f.closure, out, false).unwrap_err();
        assert!(err.to_string().contains("`maxLayers`") && err.to_string().contains("got 1"));
        let mut no_store = settings(100, &f);
        no_store.include_store_paths = false;
        let plan = plan_image(&no_store, Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(plan.layers.len(), 1);

        // A layer set holding two of the paths: they go first and are not layered again.
        let given_paths: Vec<String> = f.closure.entries()[..2]
            .iter()
            .map(|e| e.path.clone())
            .collect();
        let set = LayerSet {
            strata_layers: RECORD_VERSION,
            layers: plan_store_layers(
                vec![(given_paths.clone(), String::new())],
                &settings(3, &f).stamp,
                0,
                RecordParts::BARE,
                &q,
            )
            .unwrap(),
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layers.json");
        std::fs::write(&file, serde_json::to_vec(&set).unwrap()).unwrap();
        let mut with_layers = settings(100, &f);
        with_layers.layers = vec![file.clone()];
        let plan = plan_image(&with_layers, Value::Null, &f.closure, out, false).unwrap();
        assert_eq!(plan.layers[0], set.layers[0]);
        assert_eq!(plan.layers.len(), 1 + 8 + 1);
        let held: Vec<&String> = plan
            .layers
            .iter()
            .flat_map(|l| l.content.store_paths())
            .collect();
        assert_eq!(held.len(), 10, "every path once");
        assert!(plan.layers[1..9].iter().all(|l| l.record.tarsum.is_none()));
        // With the legacy layout, every layer gets a tarsum, the given one's computed now.
        let mut legacy = with_layers.clone();
        legacy.legacy_layout = true;
        let plan = plan_image(&legacy, Value::Null, &f.closure, out, false).unwrap();
        for layer in &plan.layers {
            let bytes = crate::tar::layer::write_layer_to(
                &layer.content.source(),
                &layer.content.stamp(),
                Vec::new(),
            )
            .unwrap();
            let mut sum = crate::tar::tarsum::TarsumHasher::new();
            sum.update(&bytes);
            assert_eq!(layer.record.tarsum, Some(sum.finish().unwrap().v1));
        }
        with_layers.max_layers = 2;
        let err = plan_image(&with_layers, Value::Null, &f.closure, out, false).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::Layering(LayeringError::NoRoom {
                    given: 1,
                    left: 8,
                    ..
                })
            ),
            "{err}"
        );
        with_layers.max_layers = 100;
        with_layers.layers = vec![file.clone(), file];
        let err = plan_image(&with_layers, Value::Null, &f.closure, out, false).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::Overlap {
                    first: 1,
                    second: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("is in two of `layers`"), "{err}");
    }
}
