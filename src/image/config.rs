//! The image config and the values that go into it: architecture, creation time, history.

use crate::digest::Digest;
use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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
    /// A time argument is neither "now" nor an RFC 3339 date.
    #[error(
        "`{field}` must be \"now\" or an RFC 3339 date such as 1970-01-01T00:00:01Z, got {value:?}"
    )]
    BadTime {
        /// The argument (`created` or `mtime`).
        field: &'static str,
        /// The value given.
        value: String,
    },
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

/// A time argument (`created`, `mtime`): a fixed instant, or "now", which is resolved when
/// the image is written (so a plan with "now" is itself reproducible, as in nixpkgs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The moment the image is written.
    Now,
    /// A fixed instant, in UTC.
    At(OffsetDateTime),
}

impl When {
    /// Parses "now", RFC 3339, or the shorter ISO 8601 forms nixpkgs accepts
    /// (`2024-01-01`, `2024-01-01T12:00:00` and `2024-01-01 12:00:00`, read as UTC).
    pub fn parse(field: &'static str, value: &str) -> Result<When, SettingError> {
        if value == "now" {
            return Ok(When::Now);
        }
        parse_instant(value)
            .map(|t| When::At(t.to_offset(time::UtcOffset::UTC)))
            .ok_or_else(|| SettingError::BadTime {
                field,
                value: value.to_owned(),
            })
    }

    /// The instant, with `now` standing for [`When::Now`].
    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            When::Now => now,
            When::At(t) => t,
        }
    }

    /// "now" or the RFC 3339 form, as plans store it.
    pub fn to_text(self) -> String {
        match self {
            When::Now => "now".to_owned(),
            When::At(t) => format_time(t),
        }
    }
}

fn parse_instant(value: &str) -> Option<OffsetDateTime> {
    use time::macros::format_description;
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(t);
    }
    // ISO 8601 without an offset: nixpkgs (Python's fromisoformat) reads these too.
    let value = match value.as_bytes().get(10) {
        Some(b' ') => format!("{}T{}", &value[..10], &value[11..]),
        _ => value.to_owned(),
    };
    let full = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let fraction = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let date = format_description!("[year]-[month]-[day]");
    time::PrimitiveDateTime::parse(&value, full)
        .or_else(|_| time::PrimitiveDateTime::parse(&value, fraction))
        .map(|t| t.assume_utc())
        .ok()
        .or_else(|| {
            time::Date::parse(&value, date)
                .ok()
                .map(|d| d.midnight().assume_utc())
        })
}

impl serde::Serialize for When {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> serde::Deserialize<'de> for When {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        When::parse("time", &text).map_err(serde::de::Error::custom)
    }
}

/// Formats a time as RFC 3339 in UTC (`1970-01-01T00:00:01Z`).
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:01Z".to_owned())
}

/// Seconds since the epoch for a layer mtime; times before 1970 are refused.
pub fn mtime_seconds(t: OffsetDateTime, value: &str) -> Result<u64, SettingError> {
    u64::try_from(t.unix_timestamp()).map_err(|_| SettingError::BadTime {
        field: "mtime",
        value: value.to_owned(),
    })
}

/// Checks that the user's `config` is an object (or null, meaning empty).
pub fn check_config(config: &Value) -> Result<(), SettingError> {
    match config {
        Value::Object(_) | Value::Null => Ok(()),
        other => Err(SettingError::ConfigNotObject(other.to_string())),
    }
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

    fn at(value: &str) -> String {
        match When::parse("created", value).unwrap() {
            When::At(t) => format_time(t),
            When::Now => "now".into(),
        }
    }

    #[test]
    fn times_parse_and_normalise() {
        assert_eq!(at("1970-01-01T00:00:01Z"), "1970-01-01T00:00:01Z");
        assert_eq!(at("2024-05-01T12:00:00+02:00"), "2024-05-01T10:00:00Z");
        assert_eq!(at("2024-05-01"), "2024-05-01T00:00:00Z");
        assert_eq!(at("2024-05-01T12:30:00"), "2024-05-01T12:30:00Z");
        assert_eq!(at("2024-05-01 12:30:00.5"), "2024-05-01T12:30:00.5Z");
        assert_eq!(at("now"), "now");
        let now = OffsetDateTime::now_utc();
        assert_eq!(When::Now.resolve(now), now);
        let err = When::parse("mtime", "yesterday").unwrap_err();
        assert!(err.to_string().contains("`mtime`"), "{err}");
        let old = When::parse("mtime", "1960-01-01T00:00:00Z")
            .unwrap()
            .resolve(now);
        assert!(mtime_seconds(old, "1960").is_err());
        assert_eq!(
            mtime_seconds(
                When::parse("mtime", "1970-01-01T00:00:01Z")
                    .unwrap()
                    .resolve(now),
                ""
            )
            .unwrap(),
            1
        );
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
