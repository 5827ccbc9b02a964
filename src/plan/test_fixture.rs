//! A store-like directory and the settings of an image of it, for the plan's unit tests.

use crate::compress::Compression;
use crate::plan::record::RecordParts;
use crate::plan::settings::ImageSettings;
use crate::progress::Progress;
use crate::store::closure::{Closure, ClosureEntry};
use crate::tar::header::Stamp;
use crate::tar::layer::LayerSource;

/// A store-like directory with `n` paths and a customisation layer, referenced by it.
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    /// The paths and the customisation layer, which refers to them all.
    pub(crate) closure: Closure,
    /// The customisation layer (a directory with `layer.tar` and `record.json`).
    pub(crate) custom: String,
}

/// Makes a [`Fixture`] of `n` store paths.
pub(crate) fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = (0..n)
        .map(|i| {
            let p = dir.path().join(format!("{:032}-p{i}", i));
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("f"), format!("{i}")).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    let custom = dir.path().join("cccc-custom");
    std::fs::create_dir(&custom).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut tar = std::fs::File::create(custom.join("layer.tar")).unwrap();
    let record = crate::plan::record::compute_record(
        &LayerSource::Tree {
            root,
            store_dirs: true,
            store_dirs_owner: None,
            owners: None,
        },
        &Stamp::root(1),
        RecordParts::TARSUM,
        Some(&mut tar),
        &Progress::quiet(),
    )
    .unwrap();
    std::fs::write(
        custom.join("record.json"),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    let custom = custom.to_string_lossy().into_owned();
    let mut entries: Vec<ClosureEntry> = paths
        .iter()
        .map(|p| ClosureEntry {
            path: p.clone(),
            references: vec![],
            nar_size: 1,
            nar_hash: None,
        })
        .collect();
    entries.push(ClosureEntry {
        path: custom.clone(),
        references: paths,
        nar_size: 1,
        nar_hash: None,
    });
    Fixture {
        _dir: dir,
        closure: Closure::from_entries(entries),
        custom,
    }
}

/// The settings of an image of `f` within `max_layers`.
pub(crate) fn settings(max_layers: u64, f: &Fixture) -> ImageSettings {
    ImageSettings {
        image_name: "Hello".into(),
        tag: None,
        architecture: None,
        variant: None,
        image_system: "x86_64-linux".into(),
        created: "1970-01-01T00:00:01Z".into(),
        stamp: Stamp::root(1),
        max_layers,
        include_store_paths: true,
        config: None,
        config_file: None,
        customisation_layer: f.custom.clone(),
        layers: vec![],
        exclude: vec![],
        parent: None,
        legacy_layout: false,
        layering_pipeline: None,
        family: None,
        layer_compressor: Compression::None,
    }
}
