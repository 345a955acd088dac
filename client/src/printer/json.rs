//! JSON lines. Route fields carry the names and value spellings of
//! `ip -j -d route show`, nexthop objects those of `ip -j -d nexthop show`,
//! so jq scripts written for iproute2 keep working; ours are added beside
//! them: time, host, netns, seq, action, origin, object, family, key.

use std::borrow::Cow;
use std::io::{self, Write};

use routewatch_proto::names::{self, PREFERENCES, PROTOCOLS, ROUTE_TYPES, SCOPES, TABLES};
use routewatch_proto::v1::{
    change, event, Action, Encap, Event, Family, Nexthop, Origin as ApiOrigin, ResyncCause, Route,
};

use super::changed_by::changed_by_json;
use super::encap::encap_json;
use super::json_writer::JsonObject;
use super::rule::rule_fields;
use super::unknown::unknown_json;
use super::{ip_prefix, Notice, Origin, Printer, TimeText};

/// Writes each line into a buffer of its own, then the line at once.
#[derive(Default)]
pub struct JsonPrinter {
    line: Vec<u8>,
    time: TimeText,
}

impl Printer for JsonPrinter {
    fn print(&mut self, out: &mut dyn Write, from: &Origin<'_>, event: &Event) -> io::Result<()> {
        self.line.clear();
        if !event_json(&mut self.line, &mut self.time, from.host, event) {
            return Ok(());
        }
        self.line.push(b'\n');
        out.write_all(&self.line)
    }

    fn resync_differences(
        &mut self,
        out: &mut dyn Write,
        from: &Origin<'_>,
        event: &Event,
    ) -> io::Result<()> {
        self.line.clear();
        if !resync_json(&mut self.line, &mut self.time, from.host, event, true) {
            return Ok(());
        }
        self.line.push(b'\n');
        out.write_all(&self.line)
    }

    fn notice(
        &mut self,
        out: &mut dyn Write,
        from: &Origin<'_>,
        notice: &Notice<'_>,
        time_unix_nano: i64,
    ) -> io::Result<()> {
        write_notice(out, from.host, notice, time_unix_nano)
    }
}

/// Writes a notice as one JSON line (both JSON formats print them alike):
/// a marker (no `object`) like `sync`.
pub fn write_notice(
    out: &mut dyn Write,
    host: &str,
    notice: &Notice<'_>,
    time_unix_nano: i64,
) -> io::Result<()> {
    let mut line = Vec::new();
    {
        let mut o = JsonObject::open(&mut line);
        o.str("time", TimeText::default().get(time_unix_nano));
        o.str("host", host);
        match notice {
            Notice::Connected { resume_from, .. } => {
                o.str("action", "connected");
                o.key("resumed").bool(resume_from.is_some());
                match resume_from {
                    Some(c) => {
                        o.u64("seq", c.seq);
                        o.str("stream_id", &c.stream_id);
                    }
                    None => {
                        o.null("seq");
                        o.null("stream_id");
                    }
                }
            }
            Notice::Disconnected { error, retry_in } => {
                o.str("action", "disconnected");
                o.str("error", error);
                o.u64(
                    "retry_in_ms",
                    u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
                );
            }
            Notice::Dropped { reason } => {
                o.str("action", "dropped");
                o.str("reason", reason);
            }
        }
    }
    line.push(b'\n');
    out.write_all(&line)
}

/// Writes the JSON object for one event into `line`; false, with nothing
/// written, for events that have no line (heartbeats).
pub fn event_json(line: &mut Vec<u8>, time: &mut TimeText, host: &str, event: &Event) -> bool {
    resync_json(line, time, host, event, false)
}

/// [`event_json`], saying of a resync whether the differences follow
/// (`"snapshot":"differences"`: keep what is held) or a full snapshot
/// (`"full"`: drop it).
fn resync_json(
    line: &mut Vec<u8>,
    time: &mut TimeText,
    host: &str,
    event: &Event,
    differences: bool,
) -> bool {
    let change = match &event.kind {
        Some(event::Kind::Change(c)) => match &c.object {
            Some(object) => Some((c, object)),
            None => return false,
        },
        Some(event::Kind::Sync(_) | event::Kind::Resync(_) | event::Kind::Replay(_)) => None,
        Some(event::Kind::Heartbeat(_) | event::Kind::Digest(_)) | None => return false,
    };
    let mut o = JsonObject::open(line);
    o.str("time", time.get(event.time_unix_nano));
    o.str("host", host);
    o.str("netns", &event.netns);
    o.u64("seq", event.seq);
    o.str("stream_id", &event.stream_id);
    match (change, &event.kind) {
        (Some((c, object)), _) => {
            let action = if c.action == Action::Delete as i32 {
                "delete"
            } else {
                "add"
            };
            o.str("action", action);
            o.str("origin", origin_name(c.origin));
            object_json(&c.key, object, &mut o);
            // After the object's fields: the line's head keeps its shape
            // for the readers that match it.
            if !c.reason.is_empty() {
                o.str("reason", &c.reason);
            }
            if let Some(by) = &c.changed_by {
                changed_by_json(by, &mut o);
            }
        }
        (None, Some(event::Kind::Resync(r))) => {
            o.str("action", "resync");
            o.str("reason", &r.reason);
            o.str("cause", cause_name(r.cause));
            o.str("snapshot", if differences { "differences" } else { "full" });
        }
        (None, Some(event::Kind::Replay(r))) => {
            o.str("action", "replay");
            o.key("complete").bool(r.complete);
            o.str("reason", &r.reason);
        }
        (None, _) => o.str("action", "sync"),
    }
    true
}

/// `object` (`route`, `nexthop` or `rule`), `family` and `key`, then the
/// fields `ip -j -d` prints for the object.
pub fn object_json(key: &str, object: &change::Object, o: &mut JsonObject<'_>) {
    let (name, family) = match object {
        change::Object::Route(r) => ("route", r.family),
        change::Object::Nexthop(n) => ("nexthop", n.family),
        change::Object::Rule(r) => ("rule", r.family),
    };
    o.str("object", name);
    o.str("family", family_name(family));
    o.str("key", key);
    object_fields(object, o);
}

/// The fields `ip -j -d` prints for the object.
pub fn object_fields(object: &change::Object, o: &mut JsonObject<'_>) {
    match object {
        change::Object::Route(r) => route_fields(r, o),
        change::Object::Nexthop(n) => nexthop_fields(n, o),
        change::Object::Rule(r) => rule_fields(r, o),
    }
}

/// The fields `ip -j -d route show` prints for `r`, in its order.
pub fn route_fields(r: &Route, o: &mut JsonObject<'_>) {
    let inet6 = r.family == Family::Inet6 as i32;
    o.str(
        "type",
        &names::given_or(&r.type_name, ROUTE_TYPES, r.r#type),
    );
    o.str("dst", &ip_prefix(&r.dst));
    if !r.src.is_empty() && !r.src.ends_with("/0") {
        o.str("from", &ip_prefix(&r.src));
    }
    if r.tos != 0 {
        o.str("tos", &format!("{:#x}", r.tos));
    }
    if r.nhid != 0 {
        o.u64("nhid", r.nhid);
    }
    path(r.encap.as_deref(), &r.gateway, &r.dev, o);
    o.str("table", &names::given_or(&r.table_name, TABLES, r.table));
    o.str(
        "protocol",
        &names::given_or(&r.protocol_name, PROTOCOLS, r.protocol),
    );
    o.str("scope", &names::given_or(&r.scope_name, SCOPES, r.scope));
    // The kernel sends RTA_PRIORITY for IPv4 only when it is not zero.
    if inet6 || r.metric != 0 {
        o.u64("metric", r.metric);
    }
    if !r.prefsrc.is_empty() {
        o.str("prefsrc", &r.prefsrc);
    }
    flags(r.flags, o);
    if let Some(nh) = &r.nh_info {
        nexthop_fields(nh, &mut o.object("nh_info"));
    }
    if r.realms != 0 {
        let mut flow = o.object("flow");
        if r.realms >> 16 != 0 {
            flow.str("from", &realm(r.realms >> 16));
        }
        flow.str("to", &realm(r.realms & 0xffff));
    }
    metrics(r, o);
    if r.expires != 0 {
        o.u64("expires", r.expires);
    }
    if let Some(pref) = r.pref {
        o.str("pref", &names::name(PREFERENCES, pref));
    }
    if !r.nexthops.is_empty() {
        let mut hops = o.array("nexthops");
        for h in &r.nexthops {
            let mut hop = hops.item().object();
            path(h.encap.as_deref(), &h.gateway, &h.dev, &mut hop);
            hop.u64("weight", h.weight);
            flags(h.flags, &mut hop);
        }
    }
    unknown_json(&r.other, o);
    // Ours: the VRF device bound to the route's table.
    if !r.vrf.is_empty() {
        o.str("vrf", &r.vrf);
    }
}

/// A path's `encap`, `gateway` and `dev`, each when it has one (a route's,
/// one of its nexthops', a nexthop object's).
fn path(encap: Option<&Encap>, gateway: &str, dev: &str, o: &mut JsonObject<'_>) {
    if let Some(e) = encap {
        encap_json(e, o.key("encap"));
    }
    if !gateway.is_empty() {
        o.str("gateway", gateway);
    }
    if !dev.is_empty() {
        o.str("dev", dev);
    }
}

/// One value of `metrics`.
enum Metric<'a> {
    Number(u32),
    Null,
    Str(Cow<'a, str>),
}

/// `"metrics":[{...}]` as `ip -j -d` prints RTA_METRICS, when there is any.
fn metrics<'r>(r: &'r Route, o: &mut JsonObject<'_>) {
    if r.metrics.is_empty() && r.congctl.is_empty() {
        return;
    }
    // A name appears once, where it first appeared, with its last value
    // (as a JSON object's field does when it is set again).
    let mut fields: Vec<(Cow<'static, str>, Metric<'r>)> = Vec::new();
    let mut set = |name: Cow<'static, str>, value: Metric<'r>| match fields
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some(field) => field.1 = value,
        None => fields.push((name, value)),
    };
    for x in &r.metrics {
        match x.kind {
            // The lock mask is not printed by `ip -j`.
            1 => {}
            // RTAX_RTT is kept in 1/8 ms, RTAX_RTTVAR in 1/4 ms.
            4 => set("rtt".into(), Metric::Number(x.value / 8)),
            5 => set("rttvar".into(), Metric::Number(x.value / 4)),
            // "no hop limit" (-1) is not printed.
            10 if x.value == u32::MAX => {}
            12 => {
                if x.value & 1 != 0 {
                    set("ecn".into(), Metric::Null);
                }
                if x.value & !1 != 0 {
                    set(
                        "features".into(),
                        Metric::Str(format!("{:#x}", x.value).into()),
                    );
                }
            }
            kind => set(names::name(names::METRICS, kind), Metric::Number(x.value)),
        }
    }
    if !r.congctl.is_empty() {
        set("congestion".into(), Metric::Str(r.congctl.as_str().into()));
    }
    if fields.is_empty() {
        return;
    }
    let mut list = o.array("metrics");
    let mut m = list.item().object();
    for (name, value) in &fields {
        let value_at = m.key(name);
        match value {
            Metric::Number(n) => value_at.u64(*n),
            Metric::Null => value_at.null(),
            Metric::Str(s) => value_at.str(s),
        }
    }
}

/// The fields `ip -j -d nexthop show` prints for `n`, in its order.
pub fn nexthop_fields(n: &Nexthop, o: &mut JsonObject<'_>) {
    o.u64("id", n.id);
    if !n.group.is_empty() {
        let mut group = o.array("group");
        for g in &n.group {
            let mut member = group.item().object();
            member.u64("id", g.id);
            if g.weight != 1 {
                member.u64("weight", g.weight);
            }
        }
    }
    path(n.encap.as_deref(), &n.gateway, &n.dev, o);
    o.str("scope", &names::given_or(&n.scope_name, SCOPES, n.scope));
    if n.blackhole {
        o.null("blackhole");
    }
    o.str(
        "protocol",
        &names::given_or(&n.protocol_name, PROTOCOLS, n.protocol),
    );
    flags(n.flags, o);
    if n.fdb {
        o.null("fdb");
    }
    unknown_json(&n.other, o);
}

/// A realm as `ip` names it with the built-in `rt_realms` (events carry
/// no realm names).
pub(super) fn realm(n: u32) -> Cow<'static, str> {
    names::name(names::REALMS, n)
}

/// `"flags":[...]`, the RTNH_F_* names.
fn flags(bits: u32, o: &mut JsonObject<'_>) {
    let mut list = o.array("flags");
    if bits != 0 {
        for name in names::flag_names(bits) {
            list.item().str(&name);
        }
    }
}

pub fn family_name(family: i32) -> &'static str {
    match Family::try_from(family) {
        Ok(Family::Inet) => "inet",
        Ok(Family::Inet6) => "inet6",
        _ => "unspec",
    }
}

pub fn cause_name(cause: i32) -> &'static str {
    match ResyncCause::try_from(cause) {
        Ok(ResyncCause::UnknownStream) => "unknown_stream",
        Ok(ResyncCause::CursorTooOld) => "cursor_too_old",
        Ok(ResyncCause::Lagged) => "lagged",
        Ok(ResyncCause::DigestMismatch) => "digest_mismatch",
        _ => "unspecified",
    }
}

pub fn origin_name(origin: i32) -> &'static str {
    match ApiOrigin::try_from(origin) {
        Ok(ApiOrigin::Notification) => "notification",
        Ok(ApiOrigin::Dump) => "dump",
        Ok(ApiOrigin::Reconcile) => "reconcile",
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::{Cursor, Resync};
    use serde_json::Value;
    use std::time::Duration;

    /// The line of `event`, read back.
    fn event_value(host: &str, event: &Event) -> Option<Value> {
        let mut line = Vec::new();
        event_json(&mut line, &mut TimeText::default(), host, event)
            .then(|| serde_json::from_slice(&line).unwrap())
    }

    /// The line of `notice`, read back.
    fn notice_value(host: &str, notice: &Notice<'_>, time_unix_nano: i64) -> Value {
        let mut line = Vec::new();
        write_notice(&mut line, host, notice, time_unix_nano).unwrap();
        serde_json::from_slice(&line).unwrap()
    }

    #[test]
    fn a_resync_line_says_why_in_words_and_as_a_cause() {
        let resync = Event {
            stream_id: "s2".into(),
            seq: 3,
            kind: Some(event::Kind::Resync(Resync {
                reason: "cursor s1:9 is not from this agent's stream".into(),
                cause: ResyncCause::UnknownStream as i32,
            })),
            ..Default::default()
        };
        let v = event_value("h:1", &resync).unwrap();
        assert_eq!(v["action"], "resync");
        assert_eq!(v["cause"], "unknown_stream");
        assert_eq!(v["reason"], "cursor s1:9 is not from this agent's stream");
        assert_eq!(v["host"], "h:1");
        assert!(v.get("object").is_none(), "a marker has no object");
        for (cause, name) in [
            (ResyncCause::CursorTooOld, "cursor_too_old"),
            (ResyncCause::Lagged, "lagged"),
            (ResyncCause::Unspecified, "unspecified"),
        ] {
            assert_eq!(cause_name(cause as i32), name);
        }
    }

    #[test]
    fn connection_notices_are_markers_with_host_and_time() {
        let cursor = Cursor {
            stream_id: "s".into(),
            seq: 41,
        };
        let resumed = Notice::Connected {
            again: true,
            resume_from: Some(&cursor),
        };
        let v = notice_value("h:1", &resumed, 0);
        assert_eq!(v["action"], "connected");
        assert_eq!(v["resumed"], true);
        assert_eq!(v["seq"], 41);
        assert_eq!(v["stream_id"], "s");
        assert_eq!(v["host"], "h:1");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert!(v.get("object").is_none());

        let fresh = Notice::Connected {
            again: true,
            resume_from: None,
        };
        let v = notice_value("h:1", &fresh, 0);
        assert_eq!(v["resumed"], false);
        assert!(v["seq"].is_null());

        let lost = Notice::Disconnected {
            error: "connection reset",
            retry_in: Duration::from_millis(1234),
        };
        let v = notice_value("h:1", &lost, 0);
        assert_eq!(v["action"], "disconnected");
        assert_eq!(v["error"], "connection reset");
        assert_eq!(v["retry_in_ms"], 1234);
    }
}
