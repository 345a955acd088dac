//! `show -o json-array`: one JSON array of routes, as `ip -j -d route show
//! table all` prints it (IPv4, then IPv6), so that jq scripts written for
//! iproute2 run unchanged.
//!
//! `ip route show` lists routes only: nexthop objects and rules are left
//! out (`-o json` has them). Each element carries exactly iproute2's fields;
//! `host` is added only when several hosts are printed, `netns` only for a
//! namespace other than the agent's own.

use std::io::{self, Write};

use routewatch_proto::v1::{change, event, Event};

use super::json_writer::JsonObject;
use super::{route_fields, Notice, Origin, Printer};

#[derive(Default)]
pub struct JsonArrayPrinter {
    /// Elements written so far.
    written: usize,
    line: Vec<u8>,
}

impl Printer for JsonArrayPrinter {
    fn print(&mut self, out: &mut dyn Write, from: &Origin<'_>, event: &Event) -> io::Result<()> {
        let Some(event::Kind::Change(c)) = &event.kind else {
            return Ok(());
        };
        let Some(change::Object::Route(route)) = &c.object else {
            return Ok(());
        };
        self.line.clear();
        self.line
            .extend_from_slice(if self.written == 0 { b"[" } else { b"," });
        {
            let mut o = JsonObject::open(&mut self.line);
            if from.many {
                o.str("host", from.host);
            }
            if !event.netns.is_empty() {
                o.str("netns", &event.netns);
            }
            route_fields(route, &mut o);
        }
        self.written += 1;
        out.write_all(&self.line)
    }

    fn notice(
        &mut self,
        _out: &mut dyn Write,
        _from: &Origin<'_>,
        _notice: &Notice<'_>,
        _time_unix_nano: i64,
    ) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.written == 0 {
            out.write_all(b"[]\n")
        } else {
            out.write_all(b"]\n")
        }
    }
}
