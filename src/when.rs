//! Time arguments (`created`, `mtime`): "now" or a date, as nixpkgs' dockerTools takes them.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The default of `created` and `mtime`, as in nixpkgs: one second after the epoch, so that
/// tools that treat 0 as "unset" still show a date.
pub const DEFAULT_TIME: &str = "1970-01-01T00:00:01Z";

/// A time argument that is neither "now" nor a date.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{field}` must be \"now\", @SECONDS or a date such as 1970-01-01T00:00:01Z (the time, seconds and offset may be left out; offsets as Z, +HH:MM, +HHMM or +HH), got {value:?}"
)]
pub struct BadTime {
    /// The argument (`created` or `mtime`).
    pub field: &'static str,
    /// The value given.
    pub value: String,
}

/// Why a layer built once cannot take the `mtime` given.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FixedMtimeError {
    /// Not a time, or one before 1970.
    #[error(transparent)]
    Time(#[from] BadTime),
    /// "now", which would make the layer differ on every rebuild.
    #[error("the {layer} needs a fixed `mtime`, got \"now\"")]
    Now {
        /// The layer, as the message names it.
        layer: String,
    },
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
    /// Parses "now", RFC 3339, or the other forms nixpkgs' `date -Iseconds -d` takes for
    /// dates (see [`parse_instant`]).
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

/// RFC 3339, and the forms `date -Iseconds -d` (nixpkgs' normaliser) takes for dates: a date
/// alone, `T` or a space before the time, seconds and fractions optional, an offset as `Z`,
/// `+HH:MM`, `+HHMM` or `+HH` (none: UTC), and `@SECONDS` since the epoch.
fn parse_instant(value: &str) -> Option<OffsetDateTime> {
    use time::macros::format_description;
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(t);
    }
    if let Some(seconds) = value.strip_prefix('@') {
        return OffsetDateTime::from_unix_timestamp(seconds.parse().ok()?).ok();
    }
    let date = time::Date::parse(
        value.get(..10)?,
        format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    let rest = &value[10..];
    if rest.is_empty() {
        return Some(date.midnight().assume_utc());
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    // The offset: a trailing Z, or a sign after the time.
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, time::UtcOffset::UTC)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        (&rest[..at], parse_offset(&rest[at..])?)
    } else {
        (rest, time::UtcOffset::UTC)
    };
    let clock = match clock.len() {
        5 => format!("{clock}:00"),
        _ => clock.to_owned(),
    };
    let full = format_description!("[hour]:[minute]:[second]");
    let fraction = format_description!("[hour]:[minute]:[second].[subsecond]");
    let t = time::Time::parse(&clock, full)
        .or_else(|_| time::Time::parse(&clock, fraction))
        .ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_offset(offset))
}

/// `+HH:MM`, `+HHMM` or `+HH` (or `-`).
fn parse_offset(text: &str) -> Option<time::UtcOffset> {
    let sign: i8 = if text.starts_with('-') { -1 } else { 1 };
    let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i8 = digits[..2].parse().ok()?;
    let minutes: i8 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
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
pub fn fixed_mtime(layer: &str, value: &str) -> Result<u64, FixedMtimeError> {
    match When::parse("mtime", value)? {
        When::At(t) => Ok(mtime_seconds(t, value)?),
        When::Now => Err(FixedMtimeError::Now {
            layer: layer.to_owned(),
        }),
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
        // What `date -Iseconds -d` takes and nixpkgs therefore accepts.
        assert_eq!(at("2024-05-01T12:00:00+0200"), "2024-05-01T10:00:00Z");
        assert_eq!(at("2024-05-01T12:00:00+0000"), "2024-05-01T12:00:00Z");
        assert_eq!(at("2024-05-01T12:00:00-05"), "2024-05-01T17:00:00Z");
        assert_eq!(at("2024-05-01 12:00"), "2024-05-01T12:00:00Z");
        assert_eq!(at("2024-05-01T12:00+01:00"), "2024-05-01T11:00:00Z");
        assert_eq!(at("@1"), "1970-01-01T00:00:01Z");
        for bad in [
            "2024-05-01T12",
            "2024-05-01T12:00:00+2",
            "2024-13-01",
            "@x",
            "2024-05-01X",
        ] {
            assert!(When::parse("created", bad).is_err(), "{bad}");
        }
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
