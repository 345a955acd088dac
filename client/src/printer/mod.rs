//! Printers: one per output format, all fed the same labelled events.

mod changed_by;
mod color;
mod encap;
mod json;
mod json_array;
mod json_writer;
mod jsonpb;
mod rule;
mod table;
mod text;
mod unknown;

#[cfg(test)]
mod tests;

pub use changed_by::{changed_by_json, changed_by_text, how_name};
pub use color::{Color, Paint, Tone};
pub use encap::{encap_json, encap_text};
pub use json::{
    cause_name, event_json, family_name, nexthop_fields, object_fields, object_json, origin_name,
    route_fields, JsonPrinter,
};
pub use json_array::JsonArrayPrinter;
pub use json_writer::{json_map, JsonArray, JsonObject, JsonValue};
pub use jsonpb::JsonPbPrinter;
pub use rule::{rule_fields, rule_line};
pub use table::{aligned, Aligned, TablePrinter, LOOK_AHEAD};
pub use text::{object_line, TextPrinter};
pub use unknown::{unknown_json, unknown_text};

use std::io::{self, Write};
use std::time::Duration;

use routewatch_proto::v1::{Cursor, Event};

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines like `ip monitor route`, with the time (and host) in front.
    Text,
    /// One JSON object per line, with `ip -j -d route show` field names.
    Json,
    /// One JSON object per line: `{"host":…,"event":…}` with the event in
    /// protobuf's canonical JSON mapping of the API (routewatch.v1.Event).
    Jsonpb,
    /// `show` only: one JSON array of the routes, exactly as `ip -j -d
    /// route show table all` prints it (IPv4, then IPv6; no nexthop
    /// objects or rules), for jq scripts written for iproute2.
    #[value(name = "json-array")]
    JsonArray,
    /// Aligned columns (`show` aligns to the widest value; `tail` fixes
    /// the widths with its header: a longer value shifts only its own row).
    Table,
}

/// Whether lines carry the observation time (tail) or not (show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tail,
    Show,
}

/// Where an event came from.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub host: &'a str,
    /// More than one host is being printed: label every line.
    pub many: bool,
}

/// What the client itself has to say about a target's connection (the
/// agent's own markers are events).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice<'a> {
    /// Subscribed after a disconnect or a failed attempt, or for the first
    /// time from a stored cursor.
    Connected {
        /// Whether an earlier subscription of this run worked (and was lost).
        again: bool,
        /// The cursor sent: the stream continues after it, unless the agent
        /// answers with a resync.
        resume_from: Option<&'a Cursor>,
    },
    /// The subscription failed or ended; the next attempt is `retry_in`
    /// from now.
    Disconnected { error: &'a str, retry_in: Duration },
    /// A `dns:///` target stopped following this host (`reason` says why);
    /// no more lines come from it.
    Dropped { reason: &'a str },
}

/// Turns events into output lines.
pub trait Printer {
    fn print(&mut self, out: &mut dyn Write, from: &Origin<'_>, event: &Event) -> io::Result<()>;

    /// Reports a notice, observed at `time_unix_nano`.
    fn notice(
        &mut self,
        out: &mut dyn Write,
        from: &Origin<'_>,
        notice: &Notice<'_>,
        time_unix_nano: i64,
    ) -> io::Result<()>;

    /// Prints a resync after which only the differences between the
    /// picture held and the new snapshot follow (`tail` without `--raw`),
    /// not the whole snapshot.
    fn resync_differences(
        &mut self,
        out: &mut dyn Write,
        from: &Origin<'_>,
        event: &Event,
    ) -> io::Result<()> {
        self.print(out, from, event)
    }

    /// Prints what is held back until the end (`show`'s aligned table).
    fn finish(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}

/// The printer for `format`; `paint` colours adds and deletes (`tail`'s
/// text and table lines).
pub fn printer(format: Format, mode: Mode, paint: Paint) -> Box<dyn Printer + Send> {
    // Colour tells adds from deletes; `show` has only adds.
    let paint = if mode == Mode::Tail {
        paint
    } else {
        Paint::NONE
    };
    match format {
        Format::Text => Box::new(TextPrinter::new(mode, paint)),
        Format::Json => Box::<JsonPrinter>::default(),
        Format::Jsonpb => Box::new(JsonPbPrinter),
        Format::JsonArray => Box::<JsonArrayPrinter>::default(),
        Format::Table => Box::new(TablePrinter::new(mode, paint)),
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_unix_nano() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

/// RFC 3339 with nanoseconds, UTC.
pub fn rfc3339(unix_nano: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nano))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix_nano.to_string())
}

/// RFC 3339 in UTC to the millisecond (`2026-11-28T10:00:00.123Z`): times
/// people read in columns.
pub fn rfc3339_millis(unix_nano: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nano))
        .ok()
        .and_then(|t| {
            let format = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&format).ok()
        })
        .unwrap_or_else(|| unix_nano.to_string())
}

/// [`rfc3339`] of the last time asked for, kept: a snapshot's events all
/// carry one time.
#[derive(Default)]
pub struct TimeText {
    unix_nano: Option<i64>,
    text: String,
}

impl TimeText {
    /// `unix_nano` in RFC 3339.
    pub fn get(&mut self, unix_nano: i64) -> &str {
        if self.unix_nano != Some(unix_nano) {
            self.text = rfc3339(unix_nano);
            self.unix_nano = Some(unix_nano);
        }
        &self.text
    }
}

/// A prefix as `ip` prints it: `default` for /0, no length for a host route.
pub fn ip_prefix(prefix: &str) -> std::borrow::Cow<'_, str> {
    let Some((addr, len)) = prefix.split_once('/') else {
        return prefix.into();
    };
    let host_len = if addr.contains(':') { "128" } else { "32" };
    if len == "0" {
        "default".into()
    } else if len == host_len {
        addr.into()
    } else {
        prefix.into()
    }
}
