//! The readable columns of a version: what the SQL views show of a route,
//! nexthop object or rule, in iproute2's words, so that people can query
//! the history with plain SQL. Computed once when a version is written
//! (and by the migration that added them, for versions written before).

use ipnet::IpNet;
use routewatch_proto::names::{self, PROTOCOLS, ROUTE_TYPES, SCOPES, TABLES};
use routewatch_proto::v1::change;

use super::schema::{ATTRIBUTION_COLUMNS, KIND_NEXTHOP, KIND_ROUTE, KIND_RULE, READABLE_COLUMNS};
use crate::printer::{changed_by_text, encap_text, object_fields, JsonObject};

/// A version's readable columns (`None` is SQL NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// The table's name (`main`, `local`, a number); for a rule, the
    /// table it looks up.
    pub table_name: Option<String>,
    /// The destination in CIDR form, always with its length
    /// (`0.0.0.0/0`, `10.0.0.1/32`): comparable as text, castable to inet.
    pub dst: Option<String>,
    /// The gateway of a single-path route or nexthop object (NULL for
    /// multipath routes: their paths are in `object_json`).
    pub gateway: Option<String>,
    pub dev: Option<String>,
    pub protocol: Option<String>,
    pub r#type: Option<String>,
    pub scope: Option<String>,
    /// A route's metric; a rule's priority.
    pub metric: Option<i64>,
    pub prefsrc: Option<String>,
    pub vrf: Option<String>,
    /// The encapsulation as `ip route` prints it (`encap ip id 1 ...`), the
    /// route's own or its first path's.
    pub encap: Option<String>,
    /// The object as `ip -j -d` prints it.
    pub object_json: String,
    /// Who opened the version (see [`schema::ATTRIBUTION_COLUMNS`]).
    ///
    /// [`schema::ATTRIBUTION_COLUMNS`]: super::schema::ATTRIBUTION_COLUMNS
    pub changed_by: Option<String>,
    pub changed_by_pid: Option<i64>,
    pub changed_by_comm: Option<String>,
    pub changed_by_pod: Option<String>,
    /// A reconcile's reason.
    pub reason: Option<String>,
}

impl Columns {
    /// The columns of a stored object this version cannot decode.
    pub fn unreadable() -> Columns {
        Columns {
            object_json:
                r#"{"unreadable":"this version of routewatch cannot decode the stored object"}"#
                    .to_owned(),
            ..Columns::default()
        }
    }
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `10.0.0.0/8`, `10.0.0.1/32`, `0.0.0.0/0` from the API's destination
/// (which may lack the length, or say `default`).
fn cidr(dst: &str, family_v6: bool) -> Option<String> {
    if dst.is_empty() || dst == "default" {
        return Some(if family_v6 { "::/0" } else { "0.0.0.0/0" }.to_owned());
    }
    if let Ok(net) = dst.parse::<IpNet>() {
        return Some(net.to_string());
    }
    dst.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| IpNet::from(ip).to_string())
}

/// The object a stored version holds (`versions.kind` and `object`).
pub fn decode(kind: i64, bytes: &[u8]) -> Option<change::Object> {
    use prost::Message;
    use routewatch_proto::v1::{Nexthop, Route, Rule};
    match kind {
        KIND_ROUTE => Route::decode(bytes).ok().map(change::Object::Route),
        KIND_NEXTHOP => Nexthop::decode(bytes).ok().map(change::Object::Nexthop),
        KIND_RULE => Rule::decode(bytes).ok().map(change::Object::Rule),
        _ => None,
    }
}

/// Every column of `version_columns` after `target_id` and `vid`, in the
/// order the writers bind them.
fn names() -> Vec<&'static str> {
    READABLE_COLUMNS
        .iter()
        .chain(&ATTRIBUTION_COLUMNS)
        .map(|(name, _)| *name)
        .collect()
}

/// The insert of versions' readable columns, without its VALUES:
/// `target_id`, `vid`, then the columns in [`READABLE_COLUMNS`]' and
/// [`ATTRIBUTION_COLUMNS`]' order.
pub fn insert_head() -> String {
    let names = names();
    format!(
        "INSERT INTO version_columns (target_id, vid, {})",
        names.join(", ")
    )
}

/// PostgreSQL's binary COPY of the same columns, in the same order.
pub fn copy_statement() -> String {
    let names = names();
    format!(
        "COPY version_columns (target_id, vid, {}) FROM STDIN (FORMAT binary)",
        names.join(", ")
    )
}

/// The versions written before the readable columns existed, a batch at a
/// time after the `(target_id, vid)` given three times (the migration
/// fills them in one transaction, from `(0, 0, 0)`).
pub const TO_BACKFILL: &str = "SELECT target_id, vid, kind, object FROM versions
     WHERE target_id > ? OR (target_id = ? AND vid > ?) ORDER BY target_id, vid LIMIT 10000";

/// No attribution: a log row's when the agent said nothing or the row is
/// an add's.
pub static NOBODY: Attribution = Attribution {
    changed_by: None,
    changed_by_pid: None,
    changed_by_comm: None,
    changed_by_pod: None,
    reason: None,
};

/// Who made a change, as the store's attribution columns hold it
/// ([`ATTRIBUTION_COLUMNS`]): on `version_columns` for the change that
/// opened a version, on `events` for a delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub changed_by: Option<String>,
    pub changed_by_pid: Option<i64>,
    pub changed_by_comm: Option<String>,
    pub changed_by_pod: Option<String>,
    /// A reconcile's reason.
    pub reason: Option<String>,
}

impl Attribution {
    /// Who made `change`, as far as the agent said.
    pub fn of(change: &routewatch_proto::v1::Change) -> Attribution {
        let mut a = Attribution::default();
        if let Some(by) = &change.changed_by {
            let mut text = String::new();
            changed_by_text(by, &mut text);
            a.changed_by = Some(text.trim_start().trim_start_matches("by ").to_owned());
            a.changed_by_pid = (by.pid != 0).then_some(i64::from(by.pid));
            a.changed_by_comm = (!by.comm.is_empty()).then(|| by.comm.clone());
            a.changed_by_pod = (!by.pod_uid.is_empty()).then(|| by.pod_uid.clone());
        }
        a.reason = (!change.reason.is_empty()).then(|| change.reason.clone());
        a
    }
}

/// The columns of a change's object, with who made the change.
pub fn of_change(change: &routewatch_proto::v1::Change) -> Columns {
    let c = change.object.as_ref().map(of).unwrap_or_default();
    let a = Attribution::of(change);
    Columns {
        changed_by: a.changed_by,
        changed_by_pid: a.changed_by_pid,
        changed_by_comm: a.changed_by_comm,
        changed_by_pod: a.changed_by_pod,
        reason: a.reason,
        ..c
    }
}

/// The columns of `object`.
pub fn of(object: &change::Object) -> Columns {
    let mut json = Vec::with_capacity(256);
    object_fields(object, &mut JsonObject::open(&mut json));
    let object_json = String::from_utf8(json).unwrap_or_default();
    match object {
        change::Object::Route(r) => {
            let v6 = r.family == routewatch_proto::v1::Family::Inet6 as i32;
            let single = r.nexthops.is_empty();
            let encap = r
                .encap
                .as_deref()
                .or_else(|| r.nexthops.first().and_then(|h| h.encap.as_deref()))
                .map(|e| {
                    let mut s = String::new();
                    encap_text(e, &mut s);
                    s.trim().to_owned()
                });
            Columns {
                table_name: Some(names::given_or(&r.table_name, TABLES, r.table).into_owned()),
                dst: cidr(&r.dst, v6),
                gateway: if single { text(&r.gateway) } else { None },
                dev: if single {
                    text(&r.dev)
                } else {
                    // Every path's device, when they share one.
                    let first = &r.nexthops[0].dev;
                    r.nexthops
                        .iter()
                        .all(|h| h.dev == *first)
                        .then(|| text(first))
                        .flatten()
                },
                protocol: Some(
                    names::given_or(&r.protocol_name, PROTOCOLS, r.protocol).into_owned(),
                ),
                r#type: Some(names::given_or(&r.type_name, ROUTE_TYPES, r.r#type).into_owned()),
                scope: Some(names::given_or(&r.scope_name, SCOPES, r.scope).into_owned()),
                metric: Some(i64::from(r.metric)),
                prefsrc: text(&r.prefsrc),
                vrf: text(&r.vrf),
                encap,
                object_json,
                ..Columns::default()
            }
        }
        change::Object::Nexthop(n) => Columns {
            gateway: text(&n.gateway),
            dev: text(&n.dev),
            protocol: Some(names::given_or(&n.protocol_name, PROTOCOLS, n.protocol).into_owned()),
            encap: n.encap.as_deref().map(|e| {
                let mut s = String::new();
                encap_text(e, &mut s);
                s.trim().to_owned()
            }),
            object_json,
            ..Columns::default()
        },
        change::Object::Rule(r) => Columns {
            table_name: (r.table != 0)
                .then(|| names::given_or(&r.table_name, TABLES, r.table).into_owned()),
            protocol: Some(names::given_or(&r.protocol_name, PROTOCOLS, r.protocol).into_owned()),
            metric: Some(i64::from(r.priority)),
            object_json,
            ..Columns::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::{NextHop, Route};

    #[test]
    fn destinations_are_cidr_with_their_length() {
        assert_eq!(cidr("default", false).as_deref(), Some("0.0.0.0/0"));
        assert_eq!(cidr("", true).as_deref(), Some("::/0"));
        assert_eq!(cidr("10.0.0.1", false).as_deref(), Some("10.0.0.1/32"));
        assert_eq!(cidr("10.0.0.0/8", false).as_deref(), Some("10.0.0.0/8"));
        assert_eq!(
            cidr("2001:db8::1", true).as_deref(),
            Some("2001:db8::1/128")
        );
    }

    #[test]
    fn a_route_reads_in_iproute2_words() {
        let route = Route {
            family: 2,
            table: 254,
            dst: "10.1.0.0/16".into(),
            metric: 100,
            r#type: 1,
            protocol: 4,
            scope: 0,
            gateway: "192.0.2.1".into(),
            dev: "v0".into(),
            ..Route::default()
        };
        let c = of(&change::Object::Route(route.clone()));
        assert_eq!(c.table_name.as_deref(), Some("main"));
        assert_eq!(c.dst.as_deref(), Some("10.1.0.0/16"));
        assert_eq!(c.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(c.dev.as_deref(), Some("v0"));
        assert_eq!(c.protocol.as_deref(), Some("static"));
        assert_eq!(c.r#type.as_deref(), Some("unicast"));
        assert_eq!(c.scope.as_deref(), Some("global"));
        assert_eq!(c.metric, Some(100));
        let json: serde_json::Value = serde_json::from_str(&c.object_json).unwrap();
        assert_eq!(json["dst"], "10.1.0.0/16");
        assert_eq!(json["gateway"], "192.0.2.1");

        let multipath = Route {
            gateway: String::new(),
            dev: String::new(),
            nexthops: vec![
                NextHop {
                    gateway: "192.0.2.1".into(),
                    dev: "v0".into(),
                    weight: 1,
                    ..NextHop::default()
                },
                NextHop {
                    gateway: "192.0.2.2".into(),
                    dev: "v1".into(),
                    weight: 1,
                    ..NextHop::default()
                },
            ],
            ..route
        };
        let c = of(&change::Object::Route(multipath));
        assert_eq!((c.gateway, c.dev), (None, None));
        let json: serde_json::Value = serde_json::from_str(&c.object_json).unwrap();
        assert_eq!(json["nexthops"][1]["gateway"], "192.0.2.2");
    }
}
