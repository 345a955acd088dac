//! `show --summary`: how many routes each host has, per table and
//! protocol, as `text`/`table` columns or JSON lines.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

use routewatch_proto::names::{self, PROTOCOLS, TABLES};
use routewatch_proto::v1::{change, event, Event, Family, Route};
use serde_json::json;

use crate::printer::{aligned, Format};

/// Route counts of one (host, table, protocol).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub inet: u64,
    pub inet6: u64,
}

/// (host, table in `show`'s order, protocol).
pub type Group = (Arc<str>, (u32, u32), u32);

/// Route counts of a snapshot, taken as its events arrive.
#[derive(Default)]
pub struct Summary {
    counts: BTreeMap<Group, Counts>,
    named: Named,
}

impl Summary {
    /// Counts `e` when it is a route.
    pub fn add(&mut self, host: &Arc<str>, e: &Event) {
        let Some(event::Kind::Change(c)) = &e.kind else {
            return;
        };
        let Some(change::Object::Route(r)) = &c.object else {
            return;
        };
        let entry = self
            .counts
            .entry((host.clone(), (r.table & 255, r.table), r.protocol))
            .or_default();
        if r.family == Family::Inet6 as i32 {
            entry.inet6 += 1;
        } else {
            entry.inet += 1;
        }
        self.named.note(host, r);
    }

    /// Prints the counts in `format`.
    pub fn print(&self, out: &mut dyn Write, format: Format) -> io::Result<()> {
        let named = &self.named;
        match format {
            Format::Json | Format::Jsonpb | Format::JsonArray => {
                let array = format == Format::JsonArray;
                for (n, ((host, (_, table), protocol), c)) in self.counts.iter().enumerate() {
                    let line = json!({
                        "host": &**host,
                        "table": named.table(host, *table),
                        "protocol": named.protocol(host, *protocol),
                        "inet": c.inet,
                        "inet6": c.inet6,
                        "routes": c.inet + c.inet6,
                    });
                    if array {
                        out.write_all(if n == 0 { b"[" } else { b"," })?;
                    }
                    serde_json::to_writer(&mut *out, &line)?;
                    if !array {
                        out.write_all(b"\n")?;
                    }
                }
                if array {
                    out.write_all(if self.counts.is_empty() {
                        b"[]\n"
                    } else {
                        b"]\n"
                    })?;
                }
                Ok(())
            }
            Format::Text | Format::Table => {
                let header: Vec<String> = ["HOST", "TABLE", "PROTO", "INET", "INET6", "ROUTES"]
                    .map(str::to_owned)
                    .to_vec();
                let rows: Vec<Vec<String>> = self
                    .counts
                    .iter()
                    .map(|((host, (_, table), protocol), c)| {
                        vec![
                            host.to_string(),
                            named.table(host, *table),
                            named.protocol(host, *protocol),
                            c.inet.to_string(),
                            c.inet6.to_string(),
                            (c.inet + c.inet6).to_string(),
                        ]
                    })
                    .collect();
                out.write_all(aligned(&header, &rows).as_bytes())
            }
        }
    }
}

/// The names each host's agent gave its tables and protocols.
#[derive(Default)]
struct Named {
    tables: BTreeMap<(Arc<str>, u32), String>,
    protocols: BTreeMap<(Arc<str>, u32), String>,
}

impl Named {
    /// The first names a host gave the route's table and protocol.
    fn note(&mut self, host: &Arc<str>, r: &Route) {
        if !r.table_name.is_empty() {
            self.tables
                .entry((host.clone(), r.table))
                .or_insert_with(|| r.table_name.clone());
        }
        if !r.protocol_name.is_empty() {
            self.protocols
                .entry((host.clone(), r.protocol))
                .or_insert_with(|| r.protocol_name.clone());
        }
    }

    fn table(&self, host: &Arc<str>, table: u32) -> String {
        let given = self.tables.get(&(host.clone(), table));
        names::given_or(given.map_or("", |n| n), TABLES, table).into_owned()
    }

    fn protocol(&self, host: &Arc<str>, protocol: u32) -> String {
        let given = self.protocols.get(&(host.clone(), protocol));
        names::given_or(given.map_or("", |n| n), PROTOCOLS, protocol).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use routewatch_proto::v1::{Action, Change, Origin};

    use super::*;

    fn add(host: &str, family: Family, table: u32, protocol: u32) -> (Arc<str>, Event) {
        let route = Route {
            family: family as i32,
            table,
            protocol,
            ..Default::default()
        };
        let change = Change {
            action: Action::Add as i32,
            origin: Origin::Dump as i32,
            key: "k".into(),
            object: Some(change::Object::Route(route)),
            ..Default::default()
        };
        let event = Event {
            kind: Some(event::Kind::Change(change)),
            ..Default::default()
        };
        (host.into(), event)
    }

    fn print(out: &mut Vec<u8>, format: Format, events: &[(Arc<str>, Event)]) -> io::Result<()> {
        let mut summary = Summary::default();
        for (host, e) in events {
            summary.add(host, e);
        }
        summary.print(out, format)
    }

    fn events() -> Vec<(Arc<str>, Event)> {
        vec![
            add("h1", Family::Inet, 254, 186),
            add("h1", Family::Inet, 254, 186),
            add("h1", Family::Inet6, 254, 186),
            add("h1", Family::Inet, 255, 2),
            add("h1", Family::Inet, 1000, 4),
            add("h2", Family::Inet6, 254, 2),
        ]
    }

    #[test]
    fn json_array_holds_the_json_lines() {
        let mut lines = Vec::new();
        print(&mut lines, Format::Json, &events()).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(lines)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut array = Vec::new();
        print(&mut array, Format::JsonArray, &events()).unwrap();
        let text = String::from_utf8(array).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let array: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(array, serde_json::Value::Array(lines));
        let mut empty = Vec::new();
        print(&mut empty, Format::JsonArray, &[]).unwrap();
        assert_eq!(empty, b"[]\n");
    }

    #[test]
    fn counts_per_host_table_and_protocol_as_columns() {
        let mut out = Vec::new();
        print(&mut out, Format::Table, &events()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
HOST  TABLE  PROTO   INET  INET6  ROUTES
h1    1000   static  1     0      1
h1    main   bgp     2     1      3
h1    local  kernel  1     0      1
h2    main   kernel  0     1      1
"
        );
    }

    #[test]
    fn counts_as_json_lines() {
        let mut out = Vec::new();
        print(&mut out, Format::Json, &events()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().nth(1).unwrap();
        assert_eq!(
            first,
            r#"{"host":"h1","table":"main","protocol":"bgp","inet":2,"inet6":1,"routes":3}"#
        );
    }
}
