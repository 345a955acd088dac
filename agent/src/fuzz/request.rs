//! Subscription requests: the bytes a subscriber sends, decoded and checked
//! as the server does, their filters compiled and applied to objects.

use proptest::prelude::*;
use prost::Message;
use routewatch_proto::filter::{self, Filters, Subject};
use routewatch_proto::fuzzing::{self, bounded};
use routewatch_proto::v1::{
    Action, Cursor, Family, Filter, NextHop, Nexthop, Origin, Route, Rule, SubscribeRequest,
};
use routewatch_proto::Names;

use crate::interest::Interest;
use crate::request::{validate, MAX_REQUEST_BYTES};

/// Values on the edges of what filter fields accept, and a few of what
/// they should take.
const VALUES: &[&str] = &[
    "",
    " ",
    "default",
    "0",
    "-",
    "1-",
    "-1",
    "5-3",
    "1-2-3",
    "4294967295",
    "4294967296",
    "0x10",
    "0xffffffff",
    "0x100000000",
    "+1",
    "10.0.0.0/8",
    "10.0.0.1/8",
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "::/0",
    "::1/129",
    "fe80::1%eth0",
    "2001:db8::/32",
    "1.2.3.4",
    "main",
    "local",
    "MAIN",
    "bgp",
    "inet",
    "inet6",
    "4",
    "6",
    "route",
    "nexthop",
    "rule",
    "add",
    "delete",
    "dump",
    "reconcile",
    "eth0",
    "a/b",
    "sixteen-bytes-xx",
    "é",
    "\u{0}",
    "255",
    "256",
    "link",
    "host",
    "blackhole",
    "unicast",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(VALUES).prop_map(str::to_owned),
        1 => proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ]
}

fn values() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(value(), 0..3)
}

/// Filter fields set at random; most left empty, as real filters are.
fn filter() -> impl Strategy<Value = Filter> {
    let field = || proptest::option::weighted(0.2, values()).prop_map(Option::unwrap_or_default);
    (
        (
            field(),
            field(),
            field(),
            field(),
            field(),
            field(),
            field(),
            field(),
        ),
        (
            field(),
            field(),
            field(),
            field(),
            field(),
            field(),
            field(),
            field(),
        ),
    )
        .prop_map(
            |((a, b, c, d, e, f, g, h), (i, j, k, l, m, n, o, p))| Filter {
                family: a,
                table: b,
                protocol: c,
                r#type: d,
                scope: e,
                prefix: f,
                within: g,
                contains: h,
                gateway_within: i,
                dev: j,
                action: k,
                origin: l,
                object: m,
                netns: n,
                metric: o,
                vrf: p,
                changed_by: Vec::new(),
            },
        )
}

fn request() -> impl Strategy<Value = SubscribeRequest> {
    (
        any::<(bool, bool)>(),
        proptest::option::of((value(), any::<u64>())),
        proptest::collection::vec(filter(), 0..3),
        proptest::collection::vec(filter(), 0..2),
        any::<(u64, i64, bool)>(),
    )
        .prop_map(
            |(
                (snapshot, follow),
                cursor,
                allow,
                deny,
                (replay_last, replay_since_unix_nano, digest),
            )| {
                SubscribeRequest {
                    snapshot,
                    follow,
                    resume_from: cursor.map(|(stream_id, seq)| Cursor { stream_id, seq }),
                    allow,
                    deny,
                    replay_last,
                    replay_since_unix_nano,
                    digest,
                }
            },
        )
}

/// Objects of every kind for compiled filters to judge.
fn objects() -> (Vec<Route>, Nexthop, Rule) {
    let routes = vec![
        Route {
            family: Family::Inet as i32,
            dst: "10.1.0.0/24".into(),
            gateway: "10.0.0.1".into(),
            dev: "eth0".into(),
            table: 254,
            metric: 100,
            ..Default::default()
        },
        Route {
            family: Family::Inet6 as i32,
            dst: "::/0".into(),
            nexthops: vec![NextHop {
                gateway: "fe80::1".into(),
                dev: "eth1".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
    ];
    let nexthop = Nexthop {
        id: 1,
        family: Family::Inet as i32,
        gateway: "10.0.0.1".into(),
        ..Default::default()
    };
    let rule = Rule {
        family: Family::Inet as i32,
        table: 254,
        ..Default::default()
    };
    (routes, nexthop, rule)
}

/// What the server does with one request: decode, check, compile the
/// filters, and test each kind of object.
fn serve(bytes: &[u8]) -> Result<bool, String> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err("too long".into());
    }
    let request = SubscribeRequest::decode(bytes).map_err(|e| e.to_string())?;
    check(&request)
}

fn check(request: &SubscribeRequest) -> Result<bool, String> {
    validate(request).map_err(|e| e.to_string())?;
    let names = Names::builtin();
    let interest = Interest::of(request, &names).map_err(|e| e.to_string())?;
    let filters = Filters::of(request, &names).expect("compiled once already");
    assert_eq!(interest.is_none(), filters.is_empty());
    let (routes, nexthop, rule) = objects();
    let mut any = false;
    let mut subjects: Vec<filter::Object<'_>> = routes.iter().map(filter::Object::Route).collect();
    subjects.push(filter::Object::Nexthop(&nexthop));
    subjects.push(filter::Object::Rule(&rule));
    for object in subjects {
        for action in [Action::Add, Action::Delete] {
            any |= filters.matches(&Subject {
                action,
                origin: Origin::Notification,
                netns: "",
                object,
                changed_by: None,
            });
        }
    }
    Ok(any)
}

/// Encoded requests as subscribers send them.
fn seeds() -> Vec<Vec<u8>> {
    let filter = |edit: fn(&mut Filter)| {
        let mut f = Filter::default();
        edit(&mut f);
        f
    };
    [
        SubscribeRequest::default(),
        SubscribeRequest {
            snapshot: true,
            follow: true,
            resume_from: Some(Cursor {
                stream_id: "0123456789abcdef".into(),
                seq: 42,
            }),
            ..Default::default()
        },
        SubscribeRequest {
            snapshot: true,
            allow: vec![
                filter(|f| {
                    f.protocol = vec!["bgp".into(), "static".into()];
                    f.within = vec!["10.0.0.0/8".into()];
                }),
                filter(|f| f.metric = vec!["100-200".into(), "5-".into()]),
            ],
            deny: vec![filter(|f| {
                f.table = vec!["local".into()];
                f.dev = vec!["eth0".into()];
                f.object = vec!["nexthop".into()];
            })],
            ..Default::default()
        },
    ]
    .iter()
    .map(Message::encode_to_vec)
    .collect()
}

proptest! {
    #![proptest_config(fuzzing::config(1000))]

    /// Any bytes a subscriber sends are decoded, checked and compiled
    /// without a panic, within bounds.
    #[test]
    fn fuzz_request_bytes(bytes in fuzzing::protobuf_mutated(seeds(), 256)) {
        let _ = bounded(&bytes, || serve(&bytes));
    }

    /// Any request is accepted or refused as a whole, without a panic; a
    /// refusal names a field of the request, and what is accepted is
    /// applied to objects of every kind without a panic.
    #[test]
    fn fuzz_request_filters(request in request()) {
        let bytes = request.encode_to_vec();
        match bounded(&bytes, || check(&request)) {
            Ok(_) => {}
            Err(e) => prop_assert!(
                ["resume_from.", "allow[", "deny["].iter().any(|f| e.contains(f)),
                "{e}"
            ),
        }
    }
}
