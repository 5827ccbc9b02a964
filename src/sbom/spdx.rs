//! The description as an SPDX 2.3 JSON document: the image a `CONTAINER` package the document
//! describes, each store path a package it `CONTAINS` (purl, NAR hash, declared licences),
//! and the reference graph as `DEPENDS_ON` relationships.

use super::{strata_version, Component, Description, License};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Media type of the document (what a registry artifact of it is typed as).
pub const MEDIA_TYPE: &str = "application/spdx+json";

const IMAGE_ID: &str = "SPDXRef-Image";

/// The document, as compact JSON bytes.
pub fn document(d: &Description) -> Vec<u8> {
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    let mut packages = vec![image_package(d)];
    packages.extend(d.components.iter().map(|c| package(d, c, &mut extracted)));
    let relationships = relationships(d);
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}:{}", d.image.name, d.image.tag),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/strata/{}-{}",
            id_chars(&d.image.name),
            d.fingerprint().hex()
        ),
        "creationInfo": {
            "created": spdx_time(d.document_time()),
            "creators": [format!("Tool: strata-{}", strata_version())],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(
            extracted
                .iter()
                .map(|(id, name)| json!({"licenseId": id, "extractedText": name, "name": name}))
                .collect(),
        );
    }
    serde_json::to_vec(&doc).expect("JSON values serialise")
}

/// The image, as the package the document describes.
fn image_package(d: &Description) -> Value {
    let mut image = json!({
        "SPDXID": IMAGE_ID,
        "name": d.image.name,
        "versionInfo": d.image.tag,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
    });
    if let Some(config) = d.image.config_digest {
        image["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": config.hex()}]);
    }
    image["licenseConcluded"] = json!("NOASSERTION");
    image["licenseDeclared"] = json!("NOASSERTION");
    image["copyrightText"] = json!("NOASSERTION");
    let layers: Vec<String> = d
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let origin = if l.from_parent { " (parent)" } else { "" };
            format!("layer {} {} {} bytes{origin}", i + 1, l.diff_id, l.size)
        })
        .collect();
    image["comment"] = json!(format!(
        "{}/{} image; config {}; {}",
        d.image.os,
        d.image.architecture,
        d.image
            .config_digest
            .map_or("fixed when written".to_owned(), |c| c.to_string()),
        layers.join("; ")
    ));
    image["primaryPackagePurpose"] = json!("CONTAINER");
    image
}

/// The document's relationships: it describes the image, the image contains every store
/// path, and each path depends on its references.
fn relationships(d: &Description) -> Vec<Value> {
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": IMAGE_ID,
    })];
    for c in &d.components {
        relationships.push(json!({
            "spdxElementId": IMAGE_ID,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": spdx_id(&c.path),
        }));
    }
    for c in &d.components {
        for r in &c.references {
            relationships.push(json!({
                "spdxElementId": spdx_id(&c.path),
                "relationshipType": "DEPENDS_ON",
                "relatedSpdxElement": spdx_id(r),
            }));
        }
    }
    relationships
}

fn package(d: &Description, c: &Component, extracted: &mut BTreeMap<String, String>) -> Value {
    let mut p = json!({
        "SPDXID": spdx_id(&c.path),
        "name": c.package.name,
    });
    if !c.package.version.is_empty() {
        p["versionInfo"] = json!(c.package.version);
    }
    p["downloadLocation"] = json!("NOASSERTION");
    p["filesAnalyzed"] = json!(false);
    if let Some(hash) = &c.nar_hash {
        p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": hash}]);
    }
    p["licenseConcluded"] = json!("NOASSERTION");
    p["licenseDeclared"] = json!(license_expression(&c.licenses, extracted));
    p["copyrightText"] = json!("NOASSERTION");
    if let Some(purl) = c.package.purl() {
        p["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }]);
    }
    let layer = d.layers.get(c.layer).map_or(String::new(), |l| {
        format!("; in layer {} {}", c.layer + 1, l.diff_id)
    });
    let hash = if c.nar_hash.is_some() {
        "; checksum: sha256 of its NAR serialisation"
    } else {
        ""
    };
    p["comment"] = json!(format!("Nix store path {}{layer}{hash}", c.path));
    p["primaryPackagePurpose"] = json!("LIBRARY");
    p
}

/// The licences as one SPDX expression (`AND`: nixpkgs lists a licence per part);
/// licences without an SPDX identifier become `LicenseRef-` entries of `extracted`.
fn license_expression(licenses: &[License], extracted: &mut BTreeMap<String, String>) -> String {
    if licenses.is_empty() {
        return "NOASSERTION".to_owned();
    }
    let ids: Vec<String> = licenses
        .iter()
        .map(|l| match (&l.spdx_id, &l.name) {
            (Some(id), _) => id.clone(),
            (None, name) => {
                let name = name.clone().unwrap_or_else(|| "unknown".to_owned());
                let id = format!("LicenseRef-{}", id_chars(&name));
                extracted.insert(id.clone(), name);
                id
            }
        })
        .collect();
    match ids.len() {
        1 => ids[0].clone(),
        _ => format!("({})", ids.join(" AND ")),
    }
}

/// The SPDX identifier of a store path's package: its hash part, unique in the image.
fn spdx_id(path: &str) -> String {
    format!(
        "SPDXRef-Package-{}",
        id_chars(crate::store::path::hash_part(path))
    )
}

/// `s` with every character an SPDX identifier may not hold replaced by `-`.
fn id_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// An RFC 3339 time in the form SPDX requires (`YYYY-MM-DDThh:mm:ssZ`, UTC, whole seconds).
fn spdx_time(rfc3339: &str) -> String {
    let at = OffsetDateTime::parse(rfc3339, &Rfc3339)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}
