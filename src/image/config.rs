//! The image config and the values that go into it: architecture, creation time, history.

use crate::digest::Digest;
pub use crate::when::BadTime;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// Why an image setting was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingError {
    /// The Nix system has no known image architecture.
    #[error("system `{system}` has no known image architecture: set `architecture` (for example \"amd64\" or \"arm64\")")]
    UnknownSystem {
        /// The Nix system string.
        system: String,
    },
    /// A time argument is neither "now" nor a date.
    #[error(transparent)]
    BadTime(#[from] BadTime),
    /// `config` is not a JSON object.
    #[error("`config` must be an attribute set (a JSON object), got {0}")]
    ConfigNotObject(String),
}

/// The architecture (GOARCH) and variant an image built for a Nix system runs on.
///
/// Follows the names of the OCI image index `platform` field, which are Go's GOARCH values.
pub fn architecture_of_system(system: &str) -> Result<(String, Option<String>), SettingError> {
    let cpu = system.split('-').next().unwrap_or(system);
    let (arch, variant) = match cpu {
        "x86_64" => ("amd64", None),
        "i686" | "i586" | "i486" | "i386" => ("386", None),
        "aarch64" => ("arm64", None),
        "armv7l" | "armv7a" => ("arm", Some("v7")),
        "armv6l" => ("arm", Some("v6")),
        "armv5tel" => ("arm", Some("v5")),
        "powerpc64le" => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "mips64el" => ("mips64le", None),
        "mipsel" => ("mipsle", None),
        "loongarch64" => ("loong64", None),
        _ => {
            return Err(SettingError::UnknownSystem {
                system: system.to_owned(),
            })
        }
    };
    Ok((arch.to_owned(), variant.map(str::to_owned)))
}

/// Checks that the user's `config` is an object (or null, meaning empty).
pub fn check_config(config: &Value) -> Result<(), SettingError> {
    match config {
        Value::Object(_) | Value::Null => Ok(()),
        other => Err(SettingError::ConfigNotObject(other.to_string())),
    }
}

/// `config` on top of the parent's runtime config `base`, as nixpkgs does it: only `Env` is
/// inherited, parent entries first, and a variable both set keeps the child's value once.
pub fn inherit_env(base: &Value, config: Value) -> Value {
    let Some(base_env) = base.get("Env").and_then(Value::as_array) else {
        return config;
    };
    let mut config = match config {
        Value::Object(o) => o,
        _ => Default::default(),
    };
    let key = |v: &Value| {
        let text = v.as_str().unwrap_or_default();
        text.split_once('=').map_or(text, |(k, _)| k).to_owned()
    };
    let child: Vec<Value> = config
        .get("Env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let child_keys: BTreeSet<String> = child.iter().map(key).collect();
    let mut env: Vec<Value> = Vec::new();
    let mut seen = BTreeSet::new();
    for v in base_env {
        let k = key(v);
        if !child_keys.contains(&k) && seen.insert(k) {
            env.push(v.clone());
        }
    }
    env.extend(child);
    config.insert("Env".to_owned(), Value::Array(env));
    Value::Object(config)
}

/// An image's `history`: the parent's own entries, then one entry per layer comment of
/// `own`, all created at `created` by strata.
pub fn history(
    parent: &[Value],
    own: impl IntoIterator<Item = String>,
    created: &str,
) -> Vec<Value> {
    let mut history = parent.to_vec();
    history.extend(own.into_iter().map(|comment| {
        serde_json::to_value(History {
            created: created.to_owned(),
            created_by: "strata".to_owned(),
            comment,
        })
        .expect("history serialisation cannot fail")
    }));
    history
}

/// One `history` entry: when and what made a layer.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// Creation time.
    pub created: String,
    /// The tool that made the layer.
    pub created_by: String,
    /// What the layer holds (its store paths).
    pub comment: String,
}

/// The fields of an image config, in the order they are serialised.
#[derive(Debug, Serialize)]
pub struct ImageConfig<'a> {
    /// Creation time, RFC 3339.
    pub created: &'a str,
    /// GOARCH name.
    pub architecture: &'a str,
    /// CPU variant (`v7` for 32-bit arm), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'a str>,
    /// Always `linux`.
    pub os: &'a str,
    /// The runtime config (`Cmd`, `Env`, ...), as the user gave it.
    pub config: &'a Value,
    /// Layer digests, bottom to top.
    pub rootfs: RootFs,
    /// One entry per layer (a parent's entries may also describe empty layers).
    pub history: Vec<Value>,
}

/// `rootfs` of an image config.
#[derive(Debug, Serialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// sha256 of each uncompressed layer, bottom to top.
    pub diff_ids: Vec<String>,
}

impl RootFs {
    /// `rootfs` for these layer digests.
    pub fn new(diff_ids: &[Digest]) -> RootFs {
        RootFs {
            kind: "layers",
            diff_ids: diff_ids.iter().map(Digest::to_string).collect(),
        }
    }
}

impl ImageConfig<'_> {
    /// Serialises the config. The bytes are what the config digest and image ID are taken of.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serialisation cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_is_inherited_parent_first_child_wins() {
        let base = json!({"Env": ["PATH=/bin", "A=parent", "B=1"], "Cmd": ["parent"]});
        let merged = inherit_env(&base, json!({"Env": ["A=child", "C=2"]}));
        assert_eq!(
            merged,
            json!({"Env": ["PATH=/bin", "B=1", "A=child", "C=2"]})
        );
        let merged = inherit_env(&base, json!({}));
        assert_eq!(merged, json!({"Env": ["PATH=/bin", "A=parent", "B=1"]}));
        assert_eq!(
            inherit_env(&json!({}), json!({"Cmd": ["x"]})),
            json!({"Cmd": ["x"]})
        );
    }

    #[test]
    fn systems_map_to_goarch() {
        assert_eq!(
            architecture_of_system("x86_64-linux").unwrap(),
            ("amd64".into(), None)
        );
        assert_eq!(
            architecture_of_system("aarch64-linux").unwrap(),
            ("arm64".into(), None)
        );
        assert_eq!(
            architecture_of_system("armv7l-linux").unwrap(),
            ("arm".into(), Some("v7".into()))
        );
        assert_eq!(architecture_of_system("aarch64-darwin").unwrap().0, "arm64");
        let err = architecture_of_system("vax-linux").unwrap_err();
        assert!(err.to_string().contains("`architecture`"), "{err}");
    }

    #[test]
    fn config_serialises_in_fixed_order() {
        let cfg = json!({"Cmd": ["/bin/hello"]});
        let c = ImageConfig {
            created: "1970-01-01T00:00:01Z",
            architecture: "amd64",
            variant: None,
            os: "linux",
            config: &cfg,
            rootfs: RootFs::new(&[Digest::of(b"")]),
            history: vec![],
        };
        let text = String::from_utf8(c.to_bytes()).unwrap();
        assert!(text.starts_with(r#"{"created":"1970-01-01T00:00:01Z","architecture":"amd64","os":"linux","config":{"Cmd":["/bin/hello"]},"rootfs":{"type":"layers","diff_ids":["sha256:e3b0"#), "{text}");
        assert!(check_config(&json!([1])).is_err());
    }
}
