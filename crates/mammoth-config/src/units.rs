//! Durations (`"500ms"`, `"7d"`) and byte sizes (`"1MiB"`, `4096`) as the file writes them.
//!
//! Used through `#[serde(with = "…")]` so typed fields stay plain `Duration` and `u64`; both
//! serialize back to text that parses to the same value.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

/// Parses a duration such as `"500ms"`, `"2s"`, `"10m"`, `"7d"` or `"1h 30m"`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration \"{}\" ({e}); write a number and a unit, such as \"500ms\", \"2s\", \"10m\" or \"7d\"", text.escape_debug())
    })
}

/// Formats a duration so that [`parse_duration`] reads it back: `"100ms"`, `"1h 30m"`.
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        "0s".to_owned()
    } else {
        humantime::format_duration(duration).to_string()
    }
}

const UNITS: [(&str, u64); 7] = [
    ("gib", 1 << 30),
    ("mib", 1 << 20),
    ("kib", 1 << 10),
    ("gb", 1_000_000_000),
    ("mb", 1_000_000),
    ("kb", 1_000),
    ("b", 1),
];

/// Parses a byte size: `"1MiB"`, `"512 KiB"`, `"10MB"`, `"300B"` (units are case-insensitive).
///
/// # Errors
/// A message naming the accepted units.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid size \"{}\"; write a whole number and a unit: B, KiB, MiB, GiB, KB, MB or GB (such as \"1MiB\")",
            text.escape_debug()
        )
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = (
        t.get(..split).unwrap_or(""),
        t.get(split..).unwrap_or("").trim(),
    );
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_lowercase();
    let factor = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, f)| *f)
            .ok_or_else(bad)?
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("size \"{}\" is too large", text.escape_debug()))
}

/// Formats a byte size in the largest binary unit that divides it: `"1MiB"`, `"1500B"`.
pub fn format_byte_size(bytes: u64) -> String {
    for (name, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes != 0 && bytes.checked_rem(factor) == Some(0) {
            return format!("{}{name}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// `#[serde(with)]` for a [`Duration`] written as text.
pub mod duration {
    use super::*;

    /// Writes the duration as text.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    /// Reads a duration from text.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// `#[serde(with)]` for an optional [`Duration`]; `null` is `None`.
pub mod opt_duration {
    use super::*;

    /// Writes the duration as text, or `null`.
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_str(&format_duration(*d)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::duration")] Duration);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(d)| d))
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"500ms\", \"2s\" or \"10m\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }
}

/// `#[serde(with)]` for a byte size written as an integer or as text with a unit.
pub mod byte_size {
    use super::*;

    /// Writes the size as text with a unit.
    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_byte_size(*value))
    }

    /// Reads a size from an integer (bytes) or from text.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"1MiB\" or a number of bytes")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_byte_size(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format_back_to_the_same_value() {
        for text in ["500ms", "2s", "10m", "7d", "1h 30m", "0s"] {
            let d = parse_duration(text).unwrap_or_default();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text}");
        }
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn byte_sizes_accept_binary_and_decimal_units_and_refuse_overflow() {
        assert_eq!(parse_byte_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_byte_size("512 kib"), Ok(512 << 10));
        assert_eq!(parse_byte_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_byte_size("300B"), Ok(300));
        assert!(parse_byte_size("1.5MiB").is_err());
        assert!(parse_byte_size("99999999999999GiB").is_err());
        assert_eq!(format_byte_size(1 << 20), "1MiB");
        assert_eq!(format_byte_size(1500), "1500B");
    }
}
