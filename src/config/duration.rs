//! Go-style durations (`30m`, `3h`, `1h30m`, `1.5h`, `250ms`), as Stoke's config files write them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration written the way Go's `time.ParseDuration` reads it. A bare integer is taken as seconds,
/// so Stoke's `search_timeout: 0` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub const fn from_secs(secs: u64) -> Self {
        GoDuration(Duration::from_secs(secs))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

/// A duration whose bare integers are milliseconds: Stoke's `server.timeout: 1000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Millis(pub Duration);

/// Parses a Go duration string. Negative durations are refused: no setting here means anything by them.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {input:?}"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {input:?}: expected a number"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {input:?}: bad number {:?}", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "invalid duration {input:?}: missing unit (use ns, us, ms, s, m or h, e.g. \"30m\")"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {input:?}: unknown unit {other:?} (use ns, us, ms, s, m or h)"
                ));
            }
        };
        total_nanos += number * scale;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(format!("invalid duration {input:?}: too large"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats a duration the short way Go users write it: `3h`, `1h30m`, `10s`, `250ms`.
pub fn format(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d.subsec_nanos() != 0 && d.as_secs() == 0 {
        let nanos = d.as_nanos();
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let millis = d.subsec_millis();
    if s > 0 || millis > 0 {
        if millis > 0 {
            out.push_str(&format!("{s}.{millis:03}s"));
        } else {
            out.push_str(&format!("{s}s"));
        }
    }
    out
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(DurationVisitor {
                bare_unit: 1_000_000_000,
            })
            .map(GoDuration)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0.as_millis() as u64)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(DurationVisitor { bare_unit: 1_000_000 })
            .map(Millis)
    }
}

/// Reads a Go duration string, or a bare non-negative integer counted in `bare_unit` nanoseconds.
struct DurationVisitor {
    bare_unit: u64,
}

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30m\", \"3h\" or \"1h30m\"")
    }

    /// A Go duration, or digits alone as a bare integer: how an environment variable writes `45`, and how the
    /// configuration reader hands on a YAML `45` for a key whose default is a duration string, so both read the
    /// same as the integer would.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let trimmed = v.trim();
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return trimmed
                .parse::<u64>()
                .map_err(|_| E::custom(format!("duration {trimmed} is too large")))
                .and_then(|n| self.visit_u64(n));
        }
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        v.checked_mul(self.bare_unit)
            .map(Duration::from_nanos)
            .ok_or_else(|| E::custom("duration too large"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("negative duration {v}")))
            .and_then(|v| self.visit_u64(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("3h"), Ok(Duration::from_secs(3 * 3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2h45m10s"), Ok(Duration::from_secs(9910)));
        assert_eq!(parse("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in ["", "3x", "h", "10", "-5m", "1..5h", "5m3"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["3h", "1h30m", "10s", "250ms", "30m", "0s", "1m0.500s"] {
            let d = parse(s).unwrap_or_default();
            assert_eq!(parse(&format(d)), Ok(d), "{s}");
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }
}
