//! Times as people write and read them: `--since` / `--until` values
//! (a duration before now, or an RFC 3339 instant) and the instants the
//! commands print, through `jiff` — so an impossible date such as
//! February 31 is refused rather than rolled over into March.

use jiff::Timestamp;

/// Parses `--since`/`--until`: `30s`, `30m`, `2h`, `7d`, `2w` (before
/// `now_us`), or an RFC 3339 time (`2026-11-21T10:00:00Z`, `…+02:00`).
/// Returns µs since the epoch.
pub fn parse_time(text: &str, now_us: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = |why: &str| {
        format!(
            "invalid time {text:?}{why}: use a duration like 30m, 2h or 7d, \
             or an RFC 3339 time like 2026-11-21T10:00:00Z"
        )
    };
    match duration_us(t) {
        Some(Ok(us)) => return now_us.checked_sub(us).ok_or_else(|| bad(" (too far back)")),
        Some(Err(())) => return Err(bad(" (too far back)")),
        None if looks_like_duration(t) => return Err(bad("")),
        None => {}
    }
    let instant: Timestamp = t
        .parse()
        .map_err(|e: jiff::Error| bad(&format!(" ({e})")))?;
    Ok(instant.as_microsecond())
}

/// Parses a duration such as `--older-than` and `--retention` take:
/// `30s`, `30m`, `2h`, `7d`, `2w`, more than zero. Returns µs.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad =
        |why: &str| format!("invalid duration {text:?}{why}: use one like 30m, 12h, 30d or 4w");
    match duration_us(text.trim()) {
        Some(Ok(0)) => Err(bad(" (it must be more than zero)")),
        Some(Ok(us)) => Ok(us),
        Some(Err(())) => Err(bad(" (too long)")),
        None => Err(bad("")),
    }
}

/// `<digits><unit>` in µs; `None` if the text is not of that form,
/// `Some(Err)` if it overflows.
fn duration_us(t: &str) -> Option<Result<i64, ()>> {
    let (at, unit) = t.char_indices().last()?;
    let number = &t[..at];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    Some(
        number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds * 1_000_000))
            .ok_or(()),
    )
}

/// Digits and a letter: meant as a duration, with a unit we do not know.
fn looks_like_duration(t: &str) -> bool {
    t.char_indices().last().is_some_and(|(at, c)| {
        c.is_ascii_alphabetic() && at > 0 && t[..at].bytes().all(|b| b.is_ascii_digit())
    })
}

/// `2026-11-21T10:00:00.500Z`: UTC, milliseconds (truncated).
pub fn format_time(us: i64) -> String {
    match Timestamp::from_microsecond(us) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // Outside jiff's range (years -9999..=9999): say what it is.
        Err(_) => format!("{us} µs since the epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times_parse() {
        let now = 1_800_000_000_000_000;
        assert_eq!(parse_time("30m", now), Ok(now - 1_800_000_000));
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000_000));
        assert_eq!(parse_time("7d", now), Ok(now - 604_800_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z", now), Ok(0));
        assert_eq!(
            parse_time("2026-11-21T10:00:00.5+02:00", now),
            Ok(1_795_248_000_500_000)
        );
        for bad in [
            "",
            "yesterday",
            "5y",
            "2026-13-01T00:00:00Z",
            "2026-11-21",
            "-3h",
            "99999999999999999999d",
        ] {
            let err = parse_time(bad, now).unwrap_err();
            assert!(err.contains("invalid time"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_parse_and_zero_or_garbage_is_refused() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400_000_000));
        assert_eq!(parse_duration(" 90m "), Ok(90 * 60_000_000));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000_000));
        for bad in [
            "",
            "0d",
            "30",
            "d",
            "30y",
            "-3d",
            "3.5d",
            "2026-11-21T10:00:00Z",
            "99999999999999999999d",
            "9999999999999w",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn times_format_and_parse_back() {
        for us in [0, 1_795_248_000_500_000, 951_782_400_000_000] {
            assert_eq!(parse_time(&format_time(us), 0), Ok(us - us % 1000));
        }
        assert_eq!(format_time(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn impossible_dates_are_refused_not_rolled_over() {
        for bad in [
            "2026-02-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T12:00:00Z",
            "2026-11-21T24:00:01Z",
            "2026-11-21T10:61:00Z",
        ] {
            let err = parse_time(bad, 0).unwrap_err();
            assert!(err.contains("invalid time"), "{bad}: {err}");
        }
        assert_eq!(
            parse_time("2028-02-29T00:00:00Z", 0),
            Ok(1_835_395_200_000_000),
            "a real leap day"
        );
    }

    #[test]
    fn times_outside_the_calendar_are_printed_as_numbers() {
        assert_eq!(
            format_time(i64::MAX),
            format!("{} µs since the epoch", i64::MAX)
        );
    }
}
