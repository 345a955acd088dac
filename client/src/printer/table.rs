//! Aligned columns, one row per object: `show` holds rows back and aligns
//! them to the widest value ([`Aligned`]: the first [`LOOK_AHEAD`] rows,
//! so that a table of any size costs bounded memory); `tail` prints each
//! row at once, under
//! a header whose column widths are fixed when it is printed: a longer
//! value shifts the rest of its own row, never the columns of the rows
//! after it.

use std::io::{self, Write};

use routewatch_proto::names::{self, PROTOCOLS, ROUTE_TYPES, SCOPES, TABLES};
use routewatch_proto::v1::{change, event, Action, Event, Nexthop, Route, Rule};

use super::text::{differences_marker, marker, notice_line};
use super::{ip_prefix, Mode, Notice, Origin, Paint, Printer, Tone};

/// The object's columns, after TIME, HOST and ACTION where they apply.
const OBJECT_COLUMNS: [&str; 9] = [
    "TABLE", "DST", "TYPE", "VIA", "DEV", "PROTO", "SCOPE", "METRIC", "SRC",
];
/// What an empty cell shows.
const NONE: &str = "-";
/// `tail`'s widths, wide enough for most values (a header wider than its
/// column widens it).
const TAIL_WIDTHS: &[(&str, usize)] = &[
    ("TIME", 12),
    ("HOST", 12),
    ("ACTION", 6),
    ("TABLE", 5),
    ("DST", 18),
    ("TYPE", 7),
    ("VIA", 15),
    ("DEV", 6),
    ("PROTO", 6),
    ("SCOPE", 6),
    ("METRIC", 6),
];

pub struct TablePrinter {
    mode: Mode,
    paint: Paint,
    /// Column widths (`tail`), fixed with the header.
    widths: Vec<usize>,
    /// Rows held back to be aligned (`show`), from the first row on.
    rows: Option<Aligned>,
}

impl TablePrinter {
    pub fn new(mode: Mode, paint: Paint) -> TablePrinter {
        TablePrinter {
            mode,
            paint,
            widths: Vec::new(),
            rows: None,
        }
    }

    fn header(&self, many: bool) -> Vec<String> {
        let mut h = Vec::new();
        if self.mode == Mode::Tail {
            h.push("TIME");
        }
        if many {
            h.push("HOST");
        }
        if self.mode == Mode::Tail {
            h.push("ACTION");
        }
        h.extend(OBJECT_COLUMNS);
        h.into_iter().map(str::to_owned).collect()
    }
}

impl Printer for TablePrinter {
    fn print(&mut self, out: &mut dyn Write, from: &Origin<'_>, event: &Event) -> io::Result<()> {
        let Some(event::Kind::Change(c)) = &event.kind else {
            marker(from.host, event, self.mode);
            return Ok(());
        };
        let delete = c.action == Action::Delete as i32;
        let mut row = Vec::new();
        if self.mode == Mode::Tail {
            row.push(time_of_day(event.time_unix_nano));
        }
        if from.many {
            row.push(from.host.to_owned());
        }
        if self.mode == Mode::Tail {
            row.push(if delete { "delete" } else { "add" }.to_owned());
        }
        match &c.object {
            Some(change::Object::Route(r)) => row.extend(route_cells(r)),
            Some(change::Object::Nexthop(n)) => row.extend(nexthop_cells(n)),
            Some(change::Object::Rule(r)) => row.extend(rule_cells(r)),
            None => return Ok(()),
        }
        if self.mode == Mode::Show {
            if self.rows.is_none() {
                self.rows = Some(Aligned::new(self.header(from.many)));
            }
            return self
                .rows
                .as_mut()
                .map_or(Ok(()), |rows| rows.push(out, row));
        }
        if self.widths.is_empty() {
            let header = self.header(from.many);
            self.widths = header
                .iter()
                .map(|h| {
                    let least = TAIL_WIDTHS.iter().find(|(name, _)| name == h);
                    least.map_or(h.len(), |(_, w)| (*w).max(h.len()))
                })
                .collect();
            out.write_all(render(&header, &self.widths).as_bytes())?;
        }
        let line = self
            .paint
            .line(render(&row, &self.widths).trim_end(), Tone::of(c));
        writeln!(out, "{line}")
    }

    fn resync_differences(
        &mut self,
        _out: &mut dyn Write,
        from: &Origin<'_>,
        event: &Event,
    ) -> io::Result<()> {
        differences_marker(from.host, event);
        Ok(())
    }

    fn notice(
        &mut self,
        _out: &mut dyn Write,
        from: &Origin<'_>,
        notice: &Notice<'_>,
        _time_unix_nano: i64,
    ) -> io::Result<()> {
        eprintln!("routewatch: {}", notice_line(from.host, notice));
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        match &mut self.rows {
            Some(rows) => rows.finish(out),
            None => Ok(()),
        }
    }
}

/// Rows [`Aligned`] holds back to measure their columns: a table up to
/// this many rows is aligned exactly as [`aligned`] aligns it.
pub const LOOK_AHEAD: usize = 4096;

/// Rows under a header, in columns as wide as the widest value of the
/// first [`LOOK_AHEAD`] rows; a longer value in a later row shifts the
/// rest of its own row, never the columns of the rows after it (as
/// `tail`'s columns do). Nothing is printed for no rows.
pub struct Aligned {
    header: Vec<String>,
    held: Vec<Vec<String>>,
    /// Fixed once the look-ahead is full.
    widths: Option<Vec<usize>>,
}

impl Aligned {
    pub fn new(header: Vec<String>) -> Aligned {
        Aligned {
            header,
            held: Vec::new(),
            widths: None,
        }
    }

    pub fn push(&mut self, out: &mut dyn Write, row: Vec<String>) -> io::Result<()> {
        if let Some(widths) = &self.widths {
            return out.write_all(render(&row, widths).as_bytes());
        }
        self.held.push(row);
        if self.held.len() < LOOK_AHEAD {
            return Ok(());
        }
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.held {
            grow(&mut widths, row);
        }
        out.write_all(render(&self.header, &widths).as_bytes())?;
        for row in std::mem::take(&mut self.held) {
            out.write_all(render(&row, &widths).as_bytes())?;
        }
        self.widths = Some(widths);
        Ok(())
    }

    /// Prints what is held back.
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        out.write_all(aligned(&self.header, &std::mem::take(&mut self.held)).as_bytes())
    }
}

/// `header` and `rows` in columns as wide as their widest value, two
/// spaces apart, the last column unpadded.
pub fn aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        grow(&mut widths, row);
    }
    let mut text = render(header, &widths);
    for row in rows {
        text.push_str(&render(row, &widths));
    }
    text
}

fn grow(widths: &mut Vec<usize>, row: &[String]) {
    for (i, cell) in row.iter().enumerate() {
        let len = cell.chars().count();
        match widths.get_mut(i) {
            Some(w) => *w = (*w).max(len),
            None => widths.push(len),
        }
    }
}

/// One line of cells, padded to `widths` (the last cell unpadded).
fn render(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            line.push_str(cell);
        } else {
            let width = widths.get(i).copied().unwrap_or(0);
            line.push_str(&format!("{cell:<width$}  "));
        }
    }
    line.push('\n');
    line
}

fn or_none(s: impl Into<String>) -> String {
    let s = s.into();
    if s.is_empty() {
        NONE.to_owned()
    } else {
        s
    }
}

fn route_cells(r: &Route) -> Vec<String> {
    let (via, dev) = if r.nexthops.is_empty() {
        (r.gateway.clone(), r.dev.clone())
    } else {
        let via: Vec<&str> = r.nexthops.iter().map(|h| h.gateway.as_str()).collect();
        let dev: Vec<&str> = r.nexthops.iter().map(|h| h.dev.as_str()).collect();
        (via.join(","), dev.join(","))
    };
    vec![
        names::given_or(&r.table_name, TABLES, r.table).into_owned(),
        ip_prefix(&r.dst).into_owned(),
        names::given_or(&r.type_name, ROUTE_TYPES, r.r#type).into_owned(),
        or_none(via),
        or_none(dev),
        names::given_or(&r.protocol_name, PROTOCOLS, r.protocol).into_owned(),
        names::given_or(&r.scope_name, SCOPES, r.scope).into_owned(),
        r.metric.to_string(),
        or_none(r.prefsrc.clone()),
    ]
}

fn nexthop_cells(n: &Nexthop) -> Vec<String> {
    let (kind, via) = if !n.group.is_empty() {
        ("group", super::text::group_spec(n))
    } else if n.blackhole {
        ("blackhole", String::new())
    } else {
        ("nexthop", n.gateway.clone())
    };
    vec![
        NONE.to_owned(),
        format!("nhid {}", n.id),
        kind.to_owned(),
        or_none(via),
        or_none(n.dev.clone()),
        names::given_or(&n.protocol_name, PROTOCOLS, n.protocol).into_owned(),
        names::given_or(&n.scope_name, SCOPES, n.scope).into_owned(),
        NONE.to_owned(),
        NONE.to_owned(),
    ]
}

/// A rule: its priority where a route has its destination, and the rest
/// of `ip rule`'s line (selector and action) where a route has its path.
fn rule_cells(r: &Rule) -> Vec<String> {
    let mut line = String::new();
    super::rule_line(r, &mut line);
    let rest = line.split_once('\t').map_or("", |(_, rest)| rest);
    vec![
        if r.table == 0 {
            NONE.to_owned()
        } else {
            names::given_or(&r.table_name, TABLES, r.table).into_owned()
        },
        format!("pref {}", r.priority),
        "rule".to_owned(),
        rest.to_owned(),
        NONE.to_owned(),
        names::given_or(&r.protocol_name, PROTOCOLS, r.protocol).into_owned(),
        NONE.to_owned(),
        NONE.to_owned(),
        NONE.to_owned(),
    ]
}

/// `HH:MM:SS.mmm`, UTC.
fn time_of_day(unix_nano: i64) -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second].[subsecond digits:3]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nano))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix_nano.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(a: &str, b: &str) -> Vec<String> {
        vec![a.to_owned(), b.to_owned()]
    }

    #[test]
    fn a_table_within_the_look_ahead_is_aligned_as_a_whole() {
        let header = row("A", "B");
        let rows = vec![row("x", "1"), row("longer", "2")];
        let mut out = Vec::new();
        let mut columns = Aligned::new(header.clone());
        for r in &rows {
            columns.push(&mut out, r.clone()).unwrap();
        }
        assert!(out.is_empty(), "held back until the end");
        columns.finish(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), aligned(&header, &rows));
    }

    #[test]
    fn past_the_look_ahead_rows_are_printed_as_they_come_in_fixed_columns() {
        let mut out = Vec::new();
        let mut columns = Aligned::new(row("A", "B"));
        for _ in 0..LOOK_AHEAD {
            columns.push(&mut out, row("x", "1")).unwrap();
        }
        let printed = out.len();
        assert!(printed > 0, "the look-ahead is full: printed");
        columns.push(&mut out, row("much-longer", "2")).unwrap();
        columns.push(&mut out, row("y", "3")).unwrap();
        columns.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), LOOK_AHEAD + 3);
        assert_eq!(lines[0], "A  B");
        assert_eq!(
            lines[LOOK_AHEAD + 1],
            "much-longer  2",
            "shifts its own row"
        );
        assert_eq!(lines[LOOK_AHEAD + 2], "y  3", "not the rows after it");
    }
}
