//! Time fields: the three spellings providers use for a Unix time in a URL.
//!
//! Parsing is strict (only digits of the format, bounded length) so that a
//! `+`, a sign, whitespace or an overflow is a clear `BAD_TIMESTAMP`, never a panic.

use chrono::{DateTime, NaiveDate};

/// How a rule spells its time field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeFormat {
    /// Unix seconds in hexadecimal, either case (Tencent `txTime`, type C).
    Hex,
    /// Unix seconds in decimal.
    Decimal,
    /// `YYYYMMDDHHMM` in UTC+8 (type B). Not selectable in configuration.
    #[serde(skip)]
    BeijingMinute,
}

const BEIJING_OFFSET: i64 = 8 * 3600;

/// A number of 1..=`max` digits in `radix` (no sign, no spaces); `max` keeps it
/// within `i64`, so the fold cannot overflow.
fn digits(b: &[u8], radix: u32, max: usize) -> Option<i64> {
    if b.is_empty() || b.len() > max {
        return None;
    }
    b.iter().try_fold(0i64, |n, &c| {
        Some(n * i64::from(radix) + i64::from(char::from(c).to_digit(radix)?))
    })
}

impl TimeFormat {
    /// Unix seconds from the literal field, or `None` if it is not a valid time.
    pub fn parse(self, s: &str) -> Option<i64> {
        let b = s.as_bytes();
        match self {
            TimeFormat::Hex => digits(b, 16, 15),
            TimeFormat::Decimal => digits(b, 10, 18),
            TimeFormat::BeijingMinute => {
                if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
                let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, num(6..8)?)?;
                let local = date.and_hms_opt(num(8..10)?, num(10..12)?, 0)?;
                Some(local.and_utc().timestamp() - BEIJING_OFFSET)
            }
        }
    }

    /// Seconds one step of the format spans: a time is written rounded to it.
    pub const fn granularity(self) -> i64 {
        match self {
            TimeFormat::BeijingMinute => 60,
            _ => 1,
        }
    }

    /// The field for a Unix time, as livegate emits it (hex in upper case, as the
    /// providers' own samples do). `None` when the time cannot be spelled.
    pub fn format(self, t: i64) -> Option<String> {
        if t < 0 {
            return None;
        }
        match self {
            TimeFormat::Hex => Some(format!("{t:X}")),
            TimeFormat::Decimal => Some(t.to_string()),
            TimeFormat::BeijingMinute => {
                let local = DateTime::from_timestamp(t.checked_add(BEIJING_OFFSET)?, 0)?;
                let s = local.format("%Y%m%d%H%M").to_string();
                (s.len() == 12).then_some(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TimeFormat::*;

    #[test]
    fn hex_either_case_strict() {
        assert_eq!(Hex.parse("5C271099"), Some(0x5C271099));
        assert_eq!(Hex.parse("5c271099"), Some(0x5C271099));
        for bad in ["", "+5c", "-5c", " 5c", "5g", "ffffffffffffffff"] {
            assert_eq!(Hex.parse(bad), None, "{bad:?}");
        }
        assert_eq!(Hex.format(0x55CE8100).as_deref(), Some("55CE8100"));
    }

    #[test]
    fn decimal_strict() {
        assert_eq!(Decimal.parse("1582791032"), Some(1582791032));
        for bad in ["", "+1", "-1", "1e9", "99999999999999999999", "12 "] {
            assert_eq!(Decimal.parse(bad), None, "{bad:?}");
        }
        assert_eq!(Decimal.format(-1), None);
    }

    #[test]
    fn beijing_minutes_round_trip() {
        // 2015-08-15 08:00 in UTC+8 is 2015-08-15 00:00 UTC.
        assert_eq!(BeijingMinute.parse("201508150800"), Some(1439596800));
        assert_eq!(
            BeijingMinute.format(1439596800).as_deref(),
            Some("201508150800")
        );
        for bad in [
            "20150815080",
            "201513150800",
            "201502300800",
            "2015081508a0",
            "201508152460",
        ] {
            assert_eq!(BeijingMinute.parse(bad), None, "{bad:?}");
        }
    }
}
