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

/// How to write a moment, for error messages and `--help`.
pub const TIME_FORMS: &str = "now; an RFC 3339 time (2026-11-28T10:00:00Z, or with a space: \
     2026-11-28 10:00:00+01:00; without an offset it is local time); a local time of day \
     (14:05, today); epoch seconds (1764323400, or @1764323400.5); or a time ago \
     (-5m, 1h30m, 2d, 5 minutes ago, yesterday)";

/// A moment, in nanoseconds since the Unix epoch: see [`TIME_FORMS`]. A
/// bare duration (`-1h`, `1h`, `30m`) is that long before `now_unix_nano`;
/// words (`5 minutes ago`, `yesterday 14:00`, a time of day) are read by
/// `parse_datetime`, in the local time zone.
pub fn parse_time(text: &str, now_unix_nano: i64) -> Result<i64, String> {
    let text = text.trim();
    let out_of_range = || format!("{text:?} is out of range");
    if text == "now" {
        return Ok(now_unix_nano);
    }
    // RFC 3339, also with a space for the T (as SQL prints times).
    let t_form = match text.as_bytes().get(10) {
        Some(b' ') if text.len() > 11 => format!("{}T{}", &text[..10], &text[11..]),
        _ => text.to_owned(),
    };
    if let Ok(t) = OffsetDateTime::parse(&t_form, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos()).map_err(|_| out_of_range());
    }
    // Epoch seconds, with a fraction at any precision.
    let epoch = text.strip_prefix('@').unwrap_or(text);
    if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (whole, fraction) = epoch.split_once('.').unwrap_or((epoch, ""));
        if !fraction.contains('.') && !whole.is_empty() && fraction.len() <= 9 {
            let seconds: i64 = whole.parse().map_err(|_| out_of_range())?;
            let nanos: i64 = format!("{fraction:0<9}").parse().unwrap_or(0);
            return seconds
                .checked_mul(1_000_000_000)
                .and_then(|n| n.checked_add(nanos))
                .ok_or_else(out_of_range);
        }
    }
    let ago = text.strip_prefix('-').unwrap_or(text);
    if let Ok(d) = parse_duration(ago) {
        let nanos = i64::try_from(d.as_nanos()).map_err(|_| out_of_range())?;
        return Ok(now_unix_nano.saturating_sub(nanos));
    }
    let bad = || format!("{text:?} is not a time: use {TIME_FORMS}");
    let now = jiff::Timestamp::from_nanosecond(i128::from(now_unix_nano))
        .map_err(|_| out_of_range())?
        .to_zoned(jiff::tz::TimeZone::system());
    match parse_datetime::parse_datetime_at_date(now, text) {
        Ok(parse_datetime::ParsedDateTime::InRange(z)) => {
            i64::try_from(z.timestamp().as_nanosecond()).map_err(|_| out_of_range())
        }
        Ok(_) => Err(out_of_range()),
        Err(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn the_forms_people_write() {
        let now = 1_700_000_000 * SECOND;
        // SQL's way of printing a time, and precision to the nanosecond.
        assert_eq!(parse_time("2023-11-14 22:13:20Z", now).unwrap(), now);
        assert_eq!(parse_time("2023-11-14 23:13:20+01:00", now).unwrap(), now);
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123456789Z", now).unwrap(),
            now + 123_456_789
        );
        assert_eq!(
            parse_time("2023-11-14 22:13:20.5+00", now).unwrap(),
            now + SECOND / 2
        );
        // Epoch seconds.
        assert_eq!(parse_time("1700000000", now).unwrap(), now);
        assert_eq!(parse_time("@1700000000.25", now).unwrap(), now + SECOND / 4);
        // Relative forms.
        assert_eq!(parse_time("-5m", now).unwrap(), now - 300 * SECOND);
        assert_eq!(
            parse_time("5 minutes ago", now).unwrap(),
            now - 300 * SECOND
        );
        assert_eq!(parse_time("yesterday", now).unwrap(), now - 86_400 * SECOND);
        // A time of day is today's, in the local time zone.
        let local = jiff::Timestamp::from_second(1_700_000_000)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::system());
        let want = local
            .with()
            .time(jiff::civil::time(14, 5, 0, 0))
            .build()
            .unwrap()
            .timestamp()
            .as_nanosecond() as i64;
        assert_eq!(parse_time("14:05", now).unwrap(), want);
        assert_eq!(parse_time("2023-11-14 14:05:00", now).unwrap(), {
            let day = jiff::civil::date(2023, 11, 14).at(14, 5, 0, 0);
            day.to_zoned(jiff::tz::TimeZone::system())
                .unwrap()
                .timestamp()
                .as_nanosecond() as i64
        });
    }

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
        assert!(parse_time("the day before", now)
            .unwrap_err()
            .contains("RFC 3339"));
    }
}
