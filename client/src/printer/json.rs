//! JSON lines. Route fields carry the names and value spellings of
//! `ip -j -d route show`, nexthop objects those of `ip -j -d nexthop show`,
//! so jq scripts written for iproute2 keep working; ours are added beside
//! them: time, host, netns, seq, action, origin, object, family, key.

use std::io::{self, Write};

use routewatch_proto::names::{self, PREFERENCES, PROTOCOLS, ROUTE_TYPES, SCOPES, TABLES};
use routewatch_proto::v1::{
    change, event, Action, Event, Family, Nexthop, Origin as ApiOrigin, ResyncCause, Route,
};
use serde_json::{json, Map, Value};

use super::encap::encap_json;
use super::rule::rule_fields;
use super::unknown::unknown_json;
use super::{ip_prefix, rfc3339, Notice, Origin, Printer};

pub struct JsonPrinter;

impl Printer for JsonPrinter {
    fn print(&mut self, out: &mut dyn Write, from: &Origin<'_>, event: &Event) -> io::Result<()> {
        let Some(line) = event_json(from.host, event) else {
            return Ok(());
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")
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

/// Writes a notice as one JSON line (both JSON formats print them alike).
pub fn write_notice(
    out: &mut dyn Write,
    host: &str,
    notice: &Notice<'_>,
    time_unix_nano: i64,
) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &notice_json(host, notice, time_unix_nano))?;
    out.write_all(b"\n")
}

/// The JSON line for a notice: a marker (no `object`) like `sync`.
pub fn notice_json(host: &str, notice: &Notice<'_>, time_unix_nano: i64) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), rfc3339(time_unix_nano).into());
    m.insert("host".into(), host.into());
    match notice {
        Notice::Connected { resume_from, .. } => {
            m.insert("action".into(), "connected".into());
            m.insert("resumed".into(), resume_from.is_some().into());
            m.insert("seq".into(), resume_from.map(|c| c.seq).into());
            m.insert(
                "stream_id".into(),
                resume_from.map(|c| c.stream_id.clone()).into(),
            );
        }
        Notice::Disconnected { error, retry_in } => {
            m.insert("action".into(), "disconnected".into());
            m.insert("error".into(), (*error).into());
            let retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
            m.insert("retry_in_ms".into(), retry_in_ms.into());
        }
        Notice::Dropped { reason } => {
            m.insert("action".into(), "dropped".into());
            m.insert("reason".into(), (*reason).into());
        }
    }
    Value::Object(m)
}

/// The JSON line for one event; heartbeats have none.
pub fn event_json(host: &str, event: &Event) -> Option<Value> {
    let mut m = Map::new();
    m.insert("time".into(), rfc3339(event.time_unix_nano).into());
    m.insert("host".into(), host.into());
    m.insert("netns".into(), event.netns.clone().into());
    m.insert("seq".into(), event.seq.into());
    m.insert("stream_id".into(), event.stream_id.clone().into());
    match event.kind.as_ref()? {
        event::Kind::Change(c) => {
            let action = if c.action == Action::Delete as i32 {
                "delete"
            } else {
                "add"
            };
            m.insert("action".into(), action.into());
            m.insert("origin".into(), origin_name(c.origin).into());
            object_json(&c.key, c.object.as_ref()?, &mut m);
        }
        event::Kind::Sync(_) => {
            m.insert("action".into(), "sync".into());
        }
        event::Kind::Resync(r) => {
            m.insert("action".into(), "resync".into());
            m.insert("reason".into(), r.reason.clone().into());
            m.insert("cause".into(), cause_name(r.cause).into());
        }
        event::Kind::Heartbeat(_) => return None,
    }
    Some(Value::Object(m))
}

/// `object` (`route` or `nexthop`), `family` and `key`, then the fields
/// `ip -j -d` prints for the object.
pub fn object_json(key: &str, object: &change::Object, m: &mut Map<String, Value>) {
    match object {
        change::Object::Route(r) => {
            m.insert("object".into(), "route".into());
            m.insert("family".into(), family_name(r.family).into());
            m.insert("key".into(), key.into());
            route_fields(r, m);
        }
        change::Object::Nexthop(n) => {
            m.insert("object".into(), "nexthop".into());
            m.insert("family".into(), family_name(n.family).into());
            m.insert("key".into(), key.into());
            nexthop_fields(n, m);
        }
        change::Object::Rule(r) => {
            m.insert("object".into(), "rule".into());
            m.insert("family".into(), family_name(r.family).into());
            m.insert("key".into(), key.into());
            rule_fields(r, m);
        }
    }
}

/// The fields `ip -j -d route show` prints for `r`, in its order.
pub fn route_fields(r: &Route, m: &mut Map<String, Value>) {
    let inet6 = r.family == Family::Inet6 as i32;
    m.insert(
        "type".into(),
        names::given_or(&r.type_name, ROUTE_TYPES, r.r#type).into(),
    );
    m.insert("dst".into(), ip_prefix(&r.dst).into());
    if !r.src.is_empty() && !r.src.ends_with("/0") {
        m.insert("from".into(), ip_prefix(&r.src).into());
    }
    if r.tos != 0 {
        m.insert("tos".into(), format!("{:#x}", r.tos).into());
    }
    if r.nhid != 0 {
        m.insert("nhid".into(), r.nhid.into());
    }
    if let Some(e) = &r.encap {
        m.insert("encap".into(), encap_json(e));
    }
    if !r.gateway.is_empty() {
        m.insert("gateway".into(), r.gateway.clone().into());
    }
    if !r.dev.is_empty() {
        m.insert("dev".into(), r.dev.clone().into());
    }
    m.insert(
        "table".into(),
        names::given_or(&r.table_name, TABLES, r.table).into(),
    );
    m.insert(
        "protocol".into(),
        names::given_or(&r.protocol_name, PROTOCOLS, r.protocol).into(),
    );
    m.insert(
        "scope".into(),
        names::given_or(&r.scope_name, SCOPES, r.scope).into(),
    );
    // The kernel sends RTA_PRIORITY for IPv4 only when it is not zero.
    if inet6 || r.metric != 0 {
        m.insert("metric".into(), r.metric.into());
    }
    if !r.prefsrc.is_empty() {
        m.insert("prefsrc".into(), r.prefsrc.clone().into());
    }
    m.insert("flags".into(), flags(r.flags));
    if let Some(nh) = &r.nh_info {
        let mut info = Map::new();
        nexthop_fields(nh, &mut info);
        m.insert("nh_info".into(), Value::Object(info));
    }
    if r.realms != 0 {
        let mut flow = Map::new();
        if r.realms >> 16 != 0 {
            flow.insert("from".into(), realm(r.realms >> 16).into());
        }
        flow.insert("to".into(), realm(r.realms & 0xffff).into());
        m.insert("flow".into(), Value::Object(flow));
    }
    let mut metrics = Map::new();
    for x in &r.metrics {
        match x.kind {
            // The lock mask is not printed by `ip -j`.
            1 => {}
            // RTAX_RTT is kept in 1/8 ms, RTAX_RTTVAR in 1/4 ms.
            4 => {
                metrics.insert("rtt".into(), (x.value / 8).into());
            }
            5 => {
                metrics.insert("rttvar".into(), (x.value / 4).into());
            }
            // "no hop limit" (-1) is not printed.
            10 if x.value == u32::MAX => {}
            12 => {
                if x.value & 1 != 0 {
                    metrics.insert("ecn".into(), Value::Null);
                }
                if x.value & !1 != 0 {
                    metrics.insert("features".into(), format!("{:#x}", x.value).into());
                }
            }
            kind => {
                metrics.insert(
                    names::name(names::METRICS, kind).into_owned(),
                    x.value.into(),
                );
            }
        }
    }
    if !r.congctl.is_empty() {
        metrics.insert("congestion".into(), r.congctl.clone().into());
    }
    if !metrics.is_empty() {
        m.insert("metrics".into(), json!([metrics]));
    }
    if r.expires != 0 {
        m.insert("expires".into(), r.expires.into());
    }
    if let Some(pref) = r.pref {
        m.insert("pref".into(), names::name(PREFERENCES, pref).into());
    }
    if !r.nexthops.is_empty() {
        let hops: Vec<Value> = r
            .nexthops
            .iter()
            .map(|h| {
                let mut hop = Map::new();
                if let Some(e) = &h.encap {
                    hop.insert("encap".into(), encap_json(e));
                }
                if !h.gateway.is_empty() {
                    hop.insert("gateway".into(), h.gateway.clone().into());
                }
                if !h.dev.is_empty() {
                    hop.insert("dev".into(), h.dev.clone().into());
                }
                hop.insert("weight".into(), h.weight.into());
                hop.insert("flags".into(), flags(h.flags));
                Value::Object(hop)
            })
            .collect();
        m.insert("nexthops".into(), hops.into());
    }
    unknown_json(&r.other, m);
    // Ours: the VRF device bound to the route's table.
    if !r.vrf.is_empty() {
        m.insert("vrf".into(), r.vrf.clone().into());
    }
}

/// The fields `ip -j -d nexthop show` prints for `n`, in its order.
pub fn nexthop_fields(n: &Nexthop, m: &mut Map<String, Value>) {
    m.insert("id".into(), n.id.into());
    if !n.group.is_empty() {
        let group: Vec<Value> = n
            .group
            .iter()
            .map(|g| {
                if g.weight == 1 {
                    json!({ "id": g.id })
                } else {
                    json!({ "id": g.id, "weight": g.weight })
                }
            })
            .collect();
        m.insert("group".into(), group.into());
    }
    if let Some(e) = &n.encap {
        m.insert("encap".into(), encap_json(e));
    }
    if !n.gateway.is_empty() {
        m.insert("gateway".into(), n.gateway.clone().into());
    }
    if !n.dev.is_empty() {
        m.insert("dev".into(), n.dev.clone().into());
    }
    m.insert(
        "scope".into(),
        names::given_or(&n.scope_name, SCOPES, n.scope).into(),
    );
    if n.blackhole {
        m.insert("blackhole".into(), Value::Null);
    }
    m.insert(
        "protocol".into(),
        names::given_or(&n.protocol_name, PROTOCOLS, n.protocol).into(),
    );
    m.insert("flags".into(), flags(n.flags));
    if n.fdb {
        m.insert("fdb".into(), Value::Null);
    }
    unknown_json(&n.other, m);
}

/// A realm as `ip` names it with the built-in `rt_realms` (events carry
/// no realm names).
pub(super) fn realm(n: u32) -> String {
    names::name(names::REALMS, n).into_owned()
}

fn flags(bits: u32) -> Value {
    names::flag_names(bits)
        .into_iter()
        .map(|f| Value::from(f.into_owned()))
        .collect()
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
    use std::time::Duration;

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
        let v = event_json("h:1", &resync).unwrap();
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
        let v = notice_json("h:1", &resumed, 0);
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
        let v = notice_json("h:1", &fresh, 0);
        assert_eq!(v["resumed"], false);
        assert!(v["seq"].is_null());

        let lost = Notice::Disconnected {
            error: "connection reset",
            retry_in: Duration::from_millis(1234),
        };
        let v = notice_json("h:1", &lost, 0);
        assert_eq!(v["action"], "disconnected");
        assert_eq!(v["error"], "connection reset");
        assert_eq!(v["retry_in_ms"], 1234);
    }
}
