//! Lines like `ip monitor route` / `ip route show`: `Deleted` in front of
//! deletes, then the route in iproute2's words. `tail` puts the time (and
//! the host, with several targets) in front; markers go to stderr.

use std::fmt::Write as _;
use std::io::{self, Write};

use routewatch_proto::names::{self, PREFERENCES, PROTOCOLS, ROUTE_TYPES, SCOPES, TABLES};
use routewatch_proto::v1::{change, event, Action, Event, Family, Nexthop, Route};

use super::changed_by::changed_by_text;
use super::encap::encap_text;
use super::rule::rule_line;
use super::unknown::unknown_text;
use super::{ip_prefix, Mode, Notice, Origin, Paint, Printer, TimeText, Tone};

const RTN_UNICAST: u32 = 1;
const RT_TABLE_MAIN: u32 = 254;
const RTPROT_BOOT: u32 = 3;
const RT_SCOPE_UNIVERSE: u32 = 0;

pub struct TextPrinter {
    mode: Mode,
    paint: Paint,
    /// The line being written, kept for the next one.
    line: String,
    time: TimeText,
}

impl TextPrinter {
    /// `paint` colours adds and deletes.
    pub fn new(mode: Mode, paint: Paint) -> TextPrinter {
        TextPrinter {
            mode,
            paint,
            line: String::new(),
            time: TimeText::default(),
        }
    }
}

impl Printer for TextPrinter {
    fn print(&mut self, out: &mut dyn Write, from: &Origin<'_>, event: &Event) -> io::Result<()> {
        let Some(event::Kind::Change(c)) = &event.kind else {
            marker(from.host, event, self.mode);
            return Ok(());
        };
        let Some(object) = &c.object else {
            return Ok(());
        };
        let delete = c.action == Action::Delete as i32;
        let (start, end) = self.paint.codes(Tone::of(c));
        let line = &mut self.line;
        line.clear();
        line.push_str(start);
        if self.mode == Mode::Tail {
            line.push_str(self.time.get(event.time_unix_nano));
            line.push(' ');
        }
        if from.many {
            line.push_str(from.host);
            line.push(' ');
        }
        if delete {
            line.push_str("Deleted ");
        }
        object_line(object, line);
        if let Some(by) = &c.changed_by {
            changed_by_text(by, line);
        }
        if !c.reason.is_empty() {
            line.push_str(" (");
            line.push_str(&c.reason);
            line.push(')');
        }
        line.push_str(end);
        line.push('\n');
        out.write_all(line.as_bytes())
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
}

/// The agent's markers are for people, not for scripts reading stdout:
/// they go to stderr in words.
pub fn marker(host: &str, event: &Event, mode: Mode) {
    match &event.kind {
        Some(event::Kind::Sync(_)) if mode == Mode::Tail => {
            eprintln!(
                "routewatch: {host} synced at seq {}; live changes follow",
                event.seq
            );
        }
        Some(event::Kind::Resync(r)) => {
            eprintln!(
                "routewatch: {host} resync ({}): a fresh snapshot follows",
                r.reason
            );
        }
        Some(event::Kind::Replay(r)) => {
            let incomplete = if r.complete { "" } else { "INCOMPLETE " };
            eprintln!(
                "routewatch: {host} {incomplete}replay of the journal after seq {}: {}",
                event.seq, r.reason
            );
        }
        _ => {}
    }
}

/// A resync after which `tail` prints only what changed.
pub fn differences_marker(host: &str, event: &Event) {
    if let Some(event::Kind::Resync(r)) = &event.kind {
        eprintln!(
            "routewatch: {host} resync ({}): the differences from the new snapshot follow",
            r.reason
        );
    }
}

/// A notice in words (stderr, like the agent's markers).
pub fn notice_line(host: &str, notice: &Notice<'_>) -> String {
    match notice {
        Notice::Connected { again, resume_from } => {
            let verb = if *again { "reconnected" } else { "connected" };
            match resume_from {
                Some(c) => format!("{host} {verb}; resumed after seq {}", c.seq),
                None => format!("{host} {verb}; a full snapshot follows"),
            }
        }
        Notice::Disconnected { error, retry_in } => format!(
            "{host} disconnected: {error}; retrying in {:.1}s",
            retry_in.as_secs_f64()
        ),
        Notice::Dropped { reason } => format!("{host} dropped: {reason}"),
    }
}

/// A route, nexthop object or rule in `ip` words.
pub fn object_line(object: &change::Object, s: &mut String) {
    match object {
        change::Object::Route(r) => route_line(r, s),
        change::Object::Nexthop(n) => nexthop_line(n, s),
        change::Object::Rule(r) => rule_line(r, s),
    }
}

/// One route in `ip route` words.
pub fn route_line(r: &Route, s: &mut String) {
    if r.r#type != RTN_UNICAST {
        s.push_str(&names::given_or(&r.type_name, ROUTE_TYPES, r.r#type));
        s.push(' ');
    }
    s.push_str(&ip_prefix(&r.dst));
    if !r.src.is_empty() && !r.src.ends_with("/0") {
        word(s, "from", &ip_prefix(&r.src));
    }
    if r.nhid != 0 {
        number(s, "nhid", r.nhid);
    }
    // iproute2's order: the encapsulation, then tos, before the gateway.
    if let Some(e) = &r.encap {
        encap_text(e, s);
    }
    if r.tos != 0 {
        let _ = write!(s, " tos {:#x}", r.tos);
    }
    if !r.gateway.is_empty() {
        word(s, "via", &r.gateway);
    }
    if !r.dev.is_empty() {
        word(s, "dev", &r.dev);
    }
    if r.table != RT_TABLE_MAIN {
        word(s, "table", &names::given_or(&r.table_name, TABLES, r.table));
    }
    if r.protocol != RTPROT_BOOT {
        word(
            s,
            "proto",
            &names::given_or(&r.protocol_name, PROTOCOLS, r.protocol),
        );
    }
    if r.scope != RT_SCOPE_UNIVERSE {
        word(s, "scope", &names::given_or(&r.scope_name, SCOPES, r.scope));
    }
    if !r.prefsrc.is_empty() {
        word(s, "src", &r.prefsrc);
    }
    if r.family == Family::Inet6 as i32 || r.metric != 0 {
        number(s, "metric", r.metric);
    }
    flags(s, r.flags);
    if r.realms != 0 {
        let (from, to) = (r.realms >> 16, r.realms & 0xffff);
        if from == 0 {
            number(s, "realm", to);
        } else {
            number(s, "realms", from);
            s.push('/');
            s.push_str(itoa::Buffer::new().format(to));
        }
    }
    for m in r.metrics.iter().filter(|m| m.kind != 1) {
        number(s, &names::name(names::METRICS, m.kind), m.value);
    }
    if !r.congctl.is_empty() {
        word(s, "congctl", &r.congctl);
    }
    if r.expires != 0 {
        number(s, "expires", r.expires);
        s.push_str("sec");
    }
    if let Some(pref) = r.pref {
        word(s, "pref", &names::name(PREFERENCES, pref));
    }
    for h in &r.nexthops {
        s.push_str(" nexthop");
        if let Some(e) = &h.encap {
            encap_text(e, s);
        }
        if !h.gateway.is_empty() {
            word(s, "via", &h.gateway);
        }
        if !h.dev.is_empty() {
            word(s, "dev", &h.dev);
        }
        number(s, "weight", h.weight);
        flags(s, h.flags);
    }
    unknown_text(&r.other, s);
    // Ours: `ip` shows no VRF on a route (only `table NAME`).
    if !r.vrf.is_empty() {
        word(s, "vrf", &r.vrf);
    }
}

/// ` WORD VALUE`.
fn word(s: &mut String, word: &str, value: &str) {
    s.push(' ');
    s.push_str(word);
    s.push(' ');
    s.push_str(value);
}

/// ` WORD N`.
fn number(s: &mut String, word: &str, n: impl itoa::Integer) {
    s.push(' ');
    s.push_str(word);
    s.push(' ');
    s.push_str(itoa::Buffer::new().format(n));
}

/// The RTNH_F_* names, each after a space.
fn flags(s: &mut String, bits: u32) {
    if bits != 0 {
        for flag in names::flag_names(bits) {
            s.push(' ');
            s.push_str(&flag);
        }
    }
}

/// A group's members as `ip nexthop` writes them: `1/2,3` (id, weight
/// when not 1).
pub fn group_spec(n: &Nexthop) -> String {
    let members: Vec<String> = n
        .group
        .iter()
        .map(|g| {
            if g.weight == 1 {
                g.id.to_string()
            } else {
                format!("{},{}", g.id, g.weight)
            }
        })
        .collect();
    members.join("/")
}

/// One nexthop object in `ip nexthop` words.
pub fn nexthop_line(n: &Nexthop, s: &mut String) {
    s.push_str("id ");
    s.push_str(itoa::Buffer::new().format(n.id));
    if !n.group.is_empty() {
        word(s, "group", &group_spec(n));
    }
    if let Some(e) = &n.encap {
        encap_text(e, s);
    }
    if !n.gateway.is_empty() {
        word(s, "via", &n.gateway);
    }
    if !n.dev.is_empty() {
        word(s, "dev", &n.dev);
    }
    if n.blackhole {
        s.push_str(" blackhole");
    }
    if n.scope != RT_SCOPE_UNIVERSE {
        word(s, "scope", &names::given_or(&n.scope_name, SCOPES, n.scope));
    }
    if n.protocol != 0 {
        word(
            s,
            "proto",
            &names::given_or(&n.protocol_name, PROTOCOLS, n.protocol),
        );
    }
    flags(s, n.flags);
    if n.fdb {
        s.push_str(" fdb");
    }
    unknown_text(&n.other, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::Cursor;
    use std::time::Duration;

    #[test]
    fn connection_notices_read_as_sentences() {
        let cursor = Cursor {
            stream_id: "s".into(),
            seq: 41,
        };
        let line = |n: Notice<'_>| notice_line("h:1", &n);
        assert_eq!(
            line(Notice::Connected {
                again: true,
                resume_from: Some(&cursor)
            }),
            "h:1 reconnected; resumed after seq 41"
        );
        assert_eq!(
            line(Notice::Connected {
                again: false,
                resume_from: Some(&cursor)
            }),
            "h:1 connected; resumed after seq 41"
        );
        assert_eq!(
            line(Notice::Connected {
                again: true,
                resume_from: None
            }),
            "h:1 reconnected; a full snapshot follows"
        );
        assert_eq!(
            line(Notice::Disconnected {
                error: "connection reset",
                retry_in: Duration::from_millis(1234)
            }),
            "h:1 disconnected: connection reset; retrying in 1.2s"
        );
    }
}
