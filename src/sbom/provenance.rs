//! The description as an in-toto Statement (v1) with a SLSA Provenance v1 predicate: what was
//! built (the image config, or its layers when the config is only fixed when written), by
//! what (Nix and strata, their versions), from which derivation, and from which materials
//! (every store path, with its NAR hash). No start or finish time: the same inputs give the
//! same statement.

use super::{strata_version, Description};
use serde_json::{json, Value};

/// Media type of the statement (what a registry artifact of it is typed as).
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";

/// The build type: an image built by strata's Nix library.
pub const BUILD_TYPE: &str = "urn:strata:nix-image:v1";

/// The statement, as compact JSON bytes.
pub fn document(d: &Description) -> Vec<u8> {
    let image = format!("{}:{}", d.image.name, d.image.tag);
    let subject: Vec<Value> = match d.image.config_digest {
        Some(config) => vec![json!({"name": image, "digest": {"sha256": config.hex()}})],
        None => d
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                json!({"name": format!("{image} layer {}", i + 1), "digest": {"sha256": l.diff_id.hex()}})
            })
            .collect(),
    };
    let mut external = json!({"image": image});
    if let Some(drv) = &d.build.derivation {
        external["derivation"] = json!(drv);
    }
    let mut internal = json!({
        "architecture": d.image.architecture,
        "os": d.image.os,
    });
    if let Some(system) = &d.build.system {
        internal["system"] = json!(system);
    }
    if let Some(created) = &d.image.created {
        internal["created"] = json!(created);
    }
    let dependencies: Vec<Value> = d
        .components
        .iter()
        .map(|c| {
            let mut m = json!({"uri": format!("file://{}", c.path), "name": c.package.name});
            if let Some(hash) = &c.nar_hash {
                m["digest"] = json!({"sha256": hash});
            }
            m
        })
        .collect();
    let mut version = json!({"strata": strata_version()});
    if let Some(nix) = &d.build.nix_version {
        version["nix"] = json!(nix);
    }
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subject,
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": "https://nixos.org/nix", "version": version},
                "metadata": {},
            },
        },
    });
    serde_json::to_vec(&statement).expect("JSON values serialise")
}
