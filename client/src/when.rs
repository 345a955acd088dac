//! Times and durations on the command line: `--at 2026-11-28T10:00:00Z`,
//! `--since -1h`, `--retain 30d`.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A duration: a number and a unit, `s`, `m`, `h`, `d` or `w` (`90s`,
/// `30m`, `12h`, `30d`, `2w`); several may follow each other (`1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{text:?} is not a duration: use a number and a unit (s, m, h, d, w), e.g. 30d, 12h, 1h30m")
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        digits.clear();
        any = true;
    }
    if !any || !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// A moment, in nanoseconds since the Unix epoch: `now`, an RFC 3339 time
/// (`2026-11-28T10:00:00Z`, `2026-11-28T11:00:00+01:00`), or a duration
/// before `now_unix_nano` (`-1h`, or just `1h`; `30m`).
pub fn parse_time(text: &str, now_unix_nano: i64) -> Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_unix_nano);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos())
            .map_err(|_| format!("{text:?} is out of range"));
    }
    let ago = text.strip_prefix('-').unwrap_or(text);
    match parse_duration(ago) {
        Ok(d) => Ok(now_unix_nano.saturating_sub(d.as_nanos() as i64)),
        Err(_) => Err(format!(
            "{text:?} is not a time: use now, an RFC 3339 time (2026-11-28T10:00:00Z) or a time ago (-1h, 30m, 2d)"
        )),
    }
}

/// A moment to stop at, in nanoseconds since the Unix epoch: an RFC 3339
/// time, or a duration after `now_unix_nano` (`90s`, `10m`, `+1h`).
pub fn parse_deadline(text: &str, now_unix_nano: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos())
            .map_err(|_| format!("{text:?} is out of range"));
    }
    let ahead = text.strip_prefix('+').unwrap_or(text);
    match parse_duration(ahead) {
        Ok(d) => Ok(now_unix_nano.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))),
        Err(_) => Err(format!(
            "{text:?} is not a time to stop at: use an RFC 3339 time (2026-11-28T10:00:00Z) or a duration from now (90s, 10m, +1h)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("30").is_err(), "a unit is needed");
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3x").unwrap_err().contains("30d"));
    }

    #[test]
    fn deadlines_are_ahead() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(parse_deadline("90s", now).unwrap(), now + 90_000_000_000);
        assert_eq!(parse_deadline("+1h", now).unwrap(), now + 3_600_000_000_000);
        assert_eq!(
            parse_deadline("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_deadline("-1h", now).unwrap_err().contains("from now"));
    }

    #[test]
    fn times() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("-1h", now).unwrap(), now - 3_600_000_000_000);
        assert_eq!(parse_time("30m", now).unwrap(), now - 1_800_000_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_time("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
    }
}
