//! Timestamps and durations with CEL's ranges (years 1 to 9999; ±10000 years of
//! duration), parsing, formatting and time-zone-aware field access.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, TimeZone, Timelike, Utc};

use crate::error::EvalError;

const NANOS: i128 = 1_000_000_000;
/// 0001-01-01T00:00:00Z in Unix seconds.
pub const MIN_TIMESTAMP_SECS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z in Unix seconds.
pub const MAX_TIMESTAMP_SECS: i64 = 253_402_300_799;
/// The largest duration CEL allows, in seconds (about 10000 years).
pub const MAX_DURATION_SECS: i64 = 315_576_000_000;

/// An instant: seconds since the Unix epoch and nanoseconds within the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// A signed span of time. Normalised: `nanos` has the sign of `secs` and `|nanos| < 1e9`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    pub secs: i64,
    pub nanos: i32,
}

impl Timestamp {
    pub fn from_nanos(total: i128) -> Result<Timestamp, EvalError> {
        let secs = total.div_euclid(NANOS);
        let nanos = total.rem_euclid(NANOS);
        let secs = i64::try_from(secs).map_err(|_| range())?;
        if !(MIN_TIMESTAMP_SECS..=MAX_TIMESTAMP_SECS).contains(&secs) {
            return Err(range());
        }
        Ok(Timestamp {
            secs,
            nanos: nanos as u32,
        })
    }

    pub fn as_nanos(self) -> i128 {
        i128::from(self.secs) * NANOS + i128::from(self.nanos)
    }

    pub fn from_unix_seconds(secs: i64) -> Result<Timestamp, EvalError> {
        Timestamp::from_nanos(i128::from(secs) * NANOS)
    }

    /// The current time from the system clock.
    pub fn now() -> Timestamp {
        let now = Utc::now();
        Timestamp {
            secs: now.timestamp(),
            nanos: now.timestamp_subsec_nanos(),
        }
    }

    /// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00Z`, `...+02:00`, fractions).
    pub fn parse(text: &str) -> Result<Timestamp, EvalError> {
        let dt = DateTime::parse_from_rfc3339(text)
            .map_err(|e| EvalError::invalid_argument(format!("invalid timestamp {text:?}: {e}")))?;
        let ts = Timestamp {
            secs: dt.timestamp(),
            nanos: dt.timestamp_subsec_nanos(),
        };
        Timestamp::from_nanos(ts.as_nanos())
    }

    fn utc(self) -> Result<DateTime<Utc>, EvalError> {
        Utc.timestamp_opt(self.secs, self.nanos)
            .single()
            .ok_or_else(range)
    }

    /// RFC 3339 in UTC with as many fractional digits as needed.
    pub fn to_rfc3339(self) -> String {
        match self.utc() {
            Ok(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            Err(_) => format!("{}s", self.secs),
        }
    }

    /// The local date and time in a time zone: an IANA name (`Europe/Paris`) or an
    /// offset (`+05:30`, `-02:00`, `02:00`); UTC when `None`.
    pub fn local(self, zone: Option<&str>) -> Result<NaiveDateTime, EvalError> {
        let utc = self.utc()?;
        let Some(zone) = zone else {
            return Ok(utc.naive_utc());
        };
        if let Some(offset) = parse_offset(zone) {
            return Ok(utc.with_timezone(&offset).naive_local());
        }
        match zone.parse::<chrono_tz::Tz>() {
            Ok(tz) => Ok(utc.with_timezone(&tz).naive_local()),
            Err(_) => Err(EvalError::invalid_argument(format!(
                "unknown time zone {zone:?}"
            ))),
        }
    }

    /// A calendar field of the local time (the `getX` functions).
    pub fn field(self, field: TimeField, zone: Option<&str>) -> Result<i64, EvalError> {
        let t = self.local(zone)?;
        Ok(match field {
            TimeField::FullYear => i64::from(t.year()),
            TimeField::Month => i64::from(t.month0()),
            TimeField::DayOfYear => i64::from(t.ordinal0()),
            TimeField::DayOfMonth => i64::from(t.day0()),
            TimeField::Date => i64::from(t.day()),
            TimeField::DayOfWeek => i64::from(t.weekday().num_days_from_sunday()),
            TimeField::Hours => i64::from(t.hour()),
            TimeField::Minutes => i64::from(t.minute()),
            TimeField::Seconds => i64::from(t.second()),
            TimeField::Milliseconds => i64::from(t.nanosecond() / 1_000_000),
        })
    }
}

/// The calendar fields of a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeField {
    FullYear,
    Month,
    DayOfYear,
    DayOfMonth,
    Date,
    DayOfWeek,
    Hours,
    Minutes,
    Seconds,
    Milliseconds,
}

fn parse_offset(zone: &str) -> Option<FixedOffset> {
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        b'0'..=b'9' => (1, zone),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

fn range() -> EvalError {
    EvalError::range("timestamp out of range (years 1 to 9999)")
}

impl Duration {
    pub fn from_nanos(total: i128) -> Result<Duration, EvalError> {
        let secs = total / NANOS;
        let nanos = total % NANOS;
        if secs.abs() > i128::from(MAX_DURATION_SECS) {
            return Err(EvalError::range("duration out of range (±10000 years)"));
        }
        Ok(Duration {
            secs: secs as i64,
            nanos: nanos as i32,
        })
    }

    pub fn as_nanos(self) -> i128 {
        i128::from(self.secs) * NANOS + i128::from(self.nanos)
    }

    pub fn is_zero(self) -> bool {
        self.secs == 0 && self.nanos == 0
    }

    /// Parses CEL's duration text: signed decimal numbers with units `h`, `m`, `s`,
    /// `ms`, `us` (`µs`), `ns`, e.g. `1h30m`, `1.5s`, `-20ms`.
    pub fn parse(text: &str) -> Result<Duration, EvalError> {
        let bad = || EvalError::invalid_argument(format!("invalid duration {text:?}"));
        let (negative, mut rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if rest == "0" {
            return Ok(Duration::default());
        }
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: i128 = 0;
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let number = &rest[..end];
            rest = &rest[end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            rest = &rest[unit_end..];
            let scale: i128 = match unit {
                "h" => 3600 * NANOS,
                "m" => 60 * NANOS,
                "s" => NANOS,
                "ms" => 1_000_000,
                "us" | "µs" | "μs" => 1_000,
                "ns" => 1,
                _ => return Err(bad()),
            };
            let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
            if whole.is_empty() && frac.is_empty() {
                return Err(bad());
            }
            let whole: i128 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| bad())?
            };
            let mut part = whole.checked_mul(scale).ok_or_else(bad)?;
            let mut div = 1i128;
            let mut frac_value = 0i128;
            for c in frac.chars().take(18) {
                frac_value = frac_value * 10 + i128::from(c.to_digit(10).ok_or_else(bad)?);
                div *= 10;
            }
            part += frac_value * scale / div;
            total = total.checked_add(part).ok_or_else(bad)?;
        }
        Duration::from_nanos(if negative { -total } else { total })
    }

    /// Whole hours, minutes, seconds or milliseconds (the `getX` functions).
    pub fn field(self, field: TimeField) -> i64 {
        let n = self.as_nanos();
        let v = match field {
            TimeField::Hours => n / (3600 * NANOS),
            TimeField::Minutes => n / (60 * NANOS),
            TimeField::Seconds => n / NANOS,
            _ => (n % NANOS) / 1_000_000,
        };
        v as i64
    }
}

impl fmt::Display for Duration {
    /// Seconds with the fraction needed, as CEL prints durations: `90s`, `1.5s`, `-0.001s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.as_nanos();
        let sign = if n < 0 { "-" } else { "" };
        let n = n.abs();
        let secs = n / NANOS;
        let frac = n % NANOS;
        if frac == 0 {
            write!(f, "{sign}{secs}s")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{sign}{secs}.{}s", digits.trim_end_matches('0'))
        }
    }
}

/// Converts a chrono naive date-time at UTC back to a timestamp (for tests).
pub fn timestamp_of(dt: NaiveDateTime) -> Result<Timestamp, EvalError> {
    let utc = dt.and_utc();
    Timestamp::from_nanos(
        i128::from(utc.timestamp()) * NANOS + i128::from(utc.timestamp_subsec_nanos()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(Duration::parse("1h45m47s").unwrap().to_string(), "6347s");
        assert_eq!(Duration::parse("1.5s").unwrap().to_string(), "1.5s");
        assert_eq!(Duration::parse("-20ms").unwrap().to_string(), "-0.02s");
        assert!(Duration::parse("-320000000000s").is_err());
        assert!(Duration::parse("1x").is_err());
        assert!(Duration::parse("").is_err());
    }

    #[test]
    fn timestamps_parse_print_and_range() {
        let t = Timestamp::parse("2009-02-13T23:31:30Z").unwrap();
        assert_eq!(t.secs, 1_234_567_890);
        assert_eq!(t.to_rfc3339(), "2009-02-13T23:31:30Z");
        assert_eq!(
            Timestamp::parse("9999-12-31T23:59:59.999999999Z")
                .unwrap()
                .to_rfc3339(),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert!(Timestamp::parse("0000-01-01T00:00:00Z").is_err());
        assert_eq!(t.field(TimeField::Hours, Some("02:00")).unwrap(), 1);
        assert_eq!(
            t.field(TimeField::Date, Some("Australia/Sydney")).unwrap(),
            14
        );
    }
}
