//! The description as a CycloneDX 1.6 JSON document: the image as the `container` component
//! of `metadata`, each store path a `library` component (purl, NAR hash, licences, the store
//! path, NAR size and layer as properties), and the reference graph as `dependencies`.

use super::{strata_version, Component, Description, License};
use serde_json::{json, Value};

/// Media type of the document (what a registry artifact of it is typed as).
pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// The `bom-ref` of the image.
const IMAGE_REF: &str = "strata-image";

/// The document, as compact JSON bytes.
pub fn document(d: &Description) -> Vec<u8> {
    let mut image_properties = vec![
        property("strata:architecture", &d.image.architecture),
        property("strata:os", &d.image.os),
    ];
    if let Some(config) = d.image.config_digest {
        image_properties.push(property("strata:config-digest", &config.to_string()));
    }
    for (i, layer) in d.layers.iter().enumerate() {
        let origin = if layer.from_parent { " (parent)" } else { "" };
        image_properties.push(property(
            "strata:layer",
            &format!("{} {} {} bytes{origin}", i + 1, layer.diff_id, layer.size),
        ));
    }
    let mut image = json!({
        "type": "container",
        "bom-ref": IMAGE_REF,
        "name": d.image.name,
        "version": d.image.tag,
    });
    if let Some(config) = d.image.config_digest {
        image["hashes"] = json!([{"alg": "SHA-256", "content": config.hex()}]);
    }
    image["properties"] = Value::Array(image_properties);
    let mut metadata = json!({});
    if let Some(created) = &d.image.created {
        metadata["timestamp"] = json!(created);
    }
    metadata["tools"] = json!({"components": [{
        "type": "application",
        "name": "strata",
        "version": strata_version(),
    }]});
    metadata["component"] = image;
    let mut dependencies = vec![json!({
        "ref": IMAGE_REF,
        "dependsOn": d.components.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
    })];
    dependencies.extend(
        d.components
            .iter()
            .map(|c| json!({"ref": c.path, "dependsOn": c.references})),
    );
    let doc = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial_number(d),
        "version": 1,
        "metadata": metadata,
        "components": d.components.iter().map(|c| component(d, c)).collect::<Vec<_>>(),
        "dependencies": dependencies,
    });
    serde_json::to_vec(&doc).expect("JSON values serialise")
}

fn component(d: &Description, c: &Component) -> Value {
    let mut v = json!({
        "type": "library",
        "bom-ref": c.path,
        "name": c.package.name,
    });
    if !c.package.version.is_empty() {
        v["version"] = json!(c.package.version);
    }
    if let Some(purl) = c.package.purl() {
        v["purl"] = json!(purl);
    }
    if let Some(hash) = &c.nar_hash {
        v["hashes"] = json!([{"alg": "SHA-256", "content": hash}]);
    }
    if !c.licenses.is_empty() {
        v["licenses"] = Value::Array(c.licenses.iter().map(license).collect());
    }
    let mut properties = vec![property("nix:store-path", &c.path)];
    if c.nar_size > 0 {
        properties.push(property("nix:nar-size", &c.nar_size.to_string()));
    }
    if let Some(output) = &c.package.output {
        properties.push(property("nix:output", output));
    }
    if let Some(layer) = d.layers.get(c.layer) {
        properties.push(property("strata:layer-diff-id", &layer.diff_id.to_string()));
    }
    v["properties"] = Value::Array(properties);
    v
}

fn license(l: &License) -> Value {
    match (&l.spdx_id, &l.name) {
        (Some(id), _) => json!({"license": {"id": id}}),
        (None, Some(name)) => json!({"license": {"name": name}}),
        (None, None) => json!({"license": {"name": "unknown"}}),
    }
}

fn property(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// A UUID made of the description's fingerprint (RFC 4122 version 5 bits), so the serial
/// number is unique to the content and the same for the same inputs.
fn serial_number(d: &Description) -> String {
    let mut b = d.fingerprint().0;
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
