//! Time arguments (`created`, `mtime`): "now" or a date, as nixpkgs' dockerTools takes them.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The default of `created` and `mtime`, as in nixpkgs: one second after the epoch, so that
/// tools that treat 0 as "unset" still show a date.
pub const DEFAULT_TIME: &str = "1970-01-01T00:00:01Z";

/// A time argument that is neither "now" nor a date.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{field}` must be \"now\" or an RFC 3339 date such as 1970-01-01T00:00:01Z, got {value:?}"
)]
pub struct BadTime {
    /// The argument (`created` or `mtime`).
    pub field: &'static str,
    /// The value given.
    pub value: String,
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
    pub fn parse(field: &'static str, value: &str) -> Result<When, BadTime> {
        if value == "now" {
            return Ok(When::Now);
        }
        parse_instant(value)
            .map(|t| When::At(t.to_offset(time::UtcOffset::UTC)))
            .ok_or_else(|| BadTime {
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
pub fn mtime_seconds(t: OffsetDateTime, value: &str) -> Result<u64, BadTime> {
    u64::try_from(t.unix_timestamp()).map_err(|_| BadTime {
        field: "mtime",
        value: value.to_owned(),
    })
}

/// A layer built once takes a fixed `mtime`: "now" would make it differ on every rebuild.
/// `layer` names the layer in the error.
pub fn fixed_mtime(layer: &str, value: &str) -> Result<u64, String> {
    match When::parse("mtime", value).map_err(|e| e.to_string())? {
        When::At(t) => mtime_seconds(t, value).map_err(|e| e.to_string()),
        When::Now => Err(format!("the {layer} needs a fixed `mtime`, got \"now\"")),
    }
}

/// Deserialises an `mtime` given as seconds since the epoch (plans) or as a time argument
/// (the Nix builders' settings), "now" being the time it is read: records fix the layer bytes
/// when they are computed.
pub fn deserialize_mtime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Given {
        Seconds(u64),
        Text(String),
    }
    match <Given as serde::Deserialize>::deserialize(d)? {
        Given::Seconds(s) => Ok(s),
        Given::Text(text) => {
            let t = When::parse("mtime", &text)
                .map_err(serde::de::Error::custom)?
                .resolve(OffsetDateTime::now_utc());
            mtime_seconds(t, &text).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
