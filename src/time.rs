//! The clock and unix-time formatting without a calendar dependency.
//!
//! [`unix_now`] is the only clock read; everything below the request entry
//! and the background services takes `now` as an argument.

/// Current unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Converts unix seconds to a UTC civil time `(year, month, day, hour, minute, second)`.
///
/// Uses Howard Hinnant's `civil_from_days`, exact for the proleptic Gregorian calendar.
pub fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // All casts below are of values bounded by the arithmetic above.
    let to_u32 = |v: i64| u32::try_from(v).unwrap_or(0);
    (
        y,
        to_u32(m),
        to_u32(d),
        to_u32(rem / 3600),
        to_u32(rem % 3600 / 60),
        to_u32(rem % 60),
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(0x5C27_1099), "2018-12-29T06:13:45Z");
        assert_eq!(rfc3339(1_539_084_154), "2018-10-09T11:22:34Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }
}

/// Unix seconds of a UTC civil time; `None` for an invalid date or time.
///
/// Inverse of [`civil`] (Howard Hinnant's `days_from_civil`).
pub fn from_civil(y: i64, m: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<u64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > days_in_month || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod civil_roundtrip {
    use super::*;

    #[test]
    fn from_civil_inverts_civil() {
        for t in [0u64, 951_782_400, 1_539_084_154, 0x5C27_1099, 4_102_444_800] {
            let (y, mo, d, h, mi, s) = civil(t);
            assert_eq!(from_civil(y, mo, d, h, mi, s), Some(t));
        }
        assert_eq!(from_civil(2023, 2, 29, 0, 0, 0), None);
        assert_eq!(
            from_civil(2024, 2, 29, 0, 0, 0).map(rfc3339).as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        assert_eq!(from_civil(2024, 13, 1, 0, 0, 0), None);
        assert_eq!(from_civil(2024, 1, 1, 24, 0, 0), None);
    }
}
