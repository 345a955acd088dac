//! What each output format prints for the same events: a route added, a
//! multipath route, a nexthop group and a delete, from one host.

use routewatch_proto::v1::{
    change, event, Action, Change, Event, Family, NextHop, Nexthop, NexthopGroupMember,
    Origin as ApiOrigin, Route, Sync,
};

use super::{printer, Format, Mode, Origin, Paint};

/// 2026-11-28T04:16:05.516Z
const TIME: i64 = 1_795_839_365_516_000_000;

fn event(seq: u64, action: Action, origin: ApiOrigin, object: change::Object) -> Event {
    Event {
        stream_id: "s1".into(),
        seq,
        time_unix_nano: TIME,
        netns: String::new(),
        kind: Some(event::Kind::Change(Change {
            action: action as i32,
            origin: origin as i32,
            key: format!("k{seq}"),
            object: Some(object),
            ..Default::default()
        })),
    }
}

fn via() -> Route {
    Route {
        family: Family::Inet as i32,
        table: 254,
        dst: "10.2.0.0/24".into(),
        metric: 100,
        r#type: 1,
        protocol: 186,
        gateway: "10.1.0.2".into(),
        dev: "va".into(),
        ifindex: 3,
        ..Default::default()
    }
}

fn multipath() -> Route {
    let hop = |gateway: &str, dev: &str| NextHop {
        gateway: gateway.into(),
        dev: dev.into(),
        weight: 1,
        ..Default::default()
    };
    Route {
        family: Family::Inet6 as i32,
        table: 1000,
        dst: "2001:db8:100::/64".into(),
        metric: 1024,
        r#type: 1,
        protocol: 3,
        nexthops: vec![hop("2001:db8:1::10", "va"), hop("2001:db8:2::10", "vb")],
        pref: Some(0),
        ..Default::default()
    }
}

fn group() -> Nexthop {
    Nexthop {
        id: 10,
        group: vec![
            NexthopGroupMember { id: 1, weight: 1 },
            NexthopGroupMember { id: 2, weight: 3 },
        ],
        ..Default::default()
    }
}

fn events() -> Vec<Event> {
    vec![
        event(
            7,
            Action::Add,
            ApiOrigin::Dump,
            change::Object::Nexthop(group()),
        ),
        event(
            7,
            Action::Add,
            ApiOrigin::Dump,
            change::Object::Route(via()),
        ),
        Event {
            stream_id: "s1".into(),
            seq: 7,
            time_unix_nano: TIME,
            kind: Some(event::Kind::Sync(Sync {})),
            ..Default::default()
        },
        event(
            8,
            Action::Add,
            ApiOrigin::Notification,
            change::Object::Route(multipath()),
        ),
        event(
            9,
            Action::Delete,
            ApiOrigin::Reconcile,
            change::Object::Route(via()),
        ),
    ]
}

fn output(format: Format, mode: Mode, paint: Paint, many: bool) -> String {
    let mut out = Vec::new();
    let mut p = printer(format, mode, paint);
    let from = Origin {
        host: "node1",
        many,
    };
    for e in events() {
        p.print(&mut out, &from, &e).unwrap();
    }
    p.finish(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn text_reads_like_ip_monitor() {
    assert_eq!(
        output(Format::Text, Mode::Tail, Paint::NONE, false),
        "\
2026-11-28T04:16:05.516Z id 10 group 1/2,3
2026-11-28T04:16:05.516Z 10.2.0.0/24 via 10.1.0.2 dev va proto bgp metric 100
2026-11-28T04:16:05.516Z 2001:db8:100::/64 table 1000 metric 1024 pref medium nexthop via 2001:db8:1::10 dev va weight 1 nexthop via 2001:db8:2::10 dev vb weight 1
2026-11-28T04:16:05.516Z Deleted 10.2.0.0/24 via 10.1.0.2 dev va proto bgp metric 100
"
    );
    assert_eq!(
        output(Format::Text, Mode::Show, Paint::ANSI, true),
        "\
node1 id 10 group 1/2,3
node1 10.2.0.0/24 via 10.1.0.2 dev va proto bgp metric 100
node1 2001:db8:100::/64 table 1000 metric 1024 pref medium nexthop via 2001:db8:1::10 dev va weight 1 nexthop via 2001:db8:2::10 dev vb weight 1
node1 Deleted 10.2.0.0/24 via 10.1.0.2 dev va proto bgp metric 100
",
        "show prints no colour"
    );
}

#[test]
fn text_colours_live_adds_and_deletes_apart_from_the_snapshot() {
    let text = output(Format::Text, Mode::Tail, Paint::ANSI, false);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].starts_with("2026-11-28T04:16:05.516Z 10.2.0.0/24") && !lines[1].contains('\x1b'),
        "the snapshot is not coloured: {:?}",
        lines[1]
    );
    assert!(lines[2].starts_with("\x1b[32m2026-11-28T04:16:05.516Z 2001:db8:100::/64"));
    assert!(lines[2].ends_with("weight 1\x1b[0m"));
    assert!(lines[3].starts_with("\x1b[31m2026-11-28T04:16:05.516Z Deleted"));
}

#[test]
fn json_uses_ip_s_field_names() {
    let text = output(Format::Json, Mode::Tail, Paint::ANSI, false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(
        lines[1],
        r#"{"time":"2026-11-28T04:16:05.516Z","host":"node1","netns":"","seq":7,"stream_id":"s1","action":"add","origin":"dump","object":"route","family":"inet","key":"k7","type":"unicast","dst":"10.2.0.0/24","gateway":"10.1.0.2","dev":"va","table":"main","protocol":"bgp","scope":"global","metric":100,"flags":[]}"#
    );
    assert_eq!(
        lines[0],
        r#"{"time":"2026-11-28T04:16:05.516Z","host":"node1","netns":"","seq":7,"stream_id":"s1","action":"add","origin":"dump","object":"nexthop","family":"unspec","key":"k7","id":10,"group":[{"id":1},{"id":2,"weight":3}],"scope":"global","protocol":"unspec","flags":[]}"#
    );
    assert_eq!(
        lines[2],
        r#"{"time":"2026-11-28T04:16:05.516Z","host":"node1","netns":"","seq":7,"stream_id":"s1","action":"sync"}"#
    );
    assert_eq!(
        lines[4],
        r#"{"time":"2026-11-28T04:16:05.516Z","host":"node1","netns":"","seq":9,"stream_id":"s1","action":"delete","origin":"reconcile","object":"route","family":"inet","key":"k9","type":"unicast","dst":"10.2.0.0/24","gateway":"10.1.0.2","dev":"va","table":"main","protocol":"bgp","scope":"global","metric":100,"flags":[]}"#
    );
}

#[test]
fn jsonpb_wraps_the_api_s_events_with_the_host() {
    let text = output(Format::Jsonpb, Mode::Tail, Paint::ANSI, false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        r#"{"host":"node1","event":{"streamId":"s1","seq":"7","timeUnixNano":"1795839365516000000","change":{"action":"ACTION_ADD","origin":"ORIGIN_DUMP","key":"k7","route":{"family":"FAMILY_INET","table":254,"dst":"10.2.0.0/24","metric":100,"type":1,"protocol":186,"gateway":"10.1.0.2","dev":"va","ifindex":3}}}}"#
    );
    assert_eq!(
        lines[2],
        r#"{"host":"node1","event":{"streamId":"s1","seq":"7","timeUnixNano":"1795839365516000000","sync":{}}}"#
    );
}

#[test]
fn show_s_table_aligns_to_the_widest_value() {
    assert_eq!(
        output(Format::Table, Mode::Show, Paint::ANSI, false),
        "\
TABLE  DST                TYPE     VIA                            DEV    PROTO   SCOPE   METRIC  SRC
-      nhid 10            group    1/2,3                          -      unspec  global  -       -
main   10.2.0.0/24        unicast  10.1.0.2                       va     bgp     global  100     -
1000   2001:db8:100::/64  unicast  2001:db8:1::10,2001:db8:2::10  va,vb  boot    global  1024    -
main   10.2.0.0/24        unicast  10.1.0.2                       va     bgp     global  100     -
"
    );
}

#[test]
fn tail_s_table_has_time_and_action_and_fixed_columns() {
    assert_eq!(
        output(Format::Table, Mode::Tail, Paint::NONE, true),
        "\
TIME          HOST          ACTION  TABLE  DST                 TYPE     VIA              DEV     PROTO   SCOPE   METRIC  SRC
04:16:05.516  node1         add     -      nhid 10             group    1/2,3            -       unspec  global  -       -
04:16:05.516  node1         add     main   10.2.0.0/24         unicast  10.1.0.2         va      bgp     global  100     -
04:16:05.516  node1         add     1000   2001:db8:100::/64   unicast  2001:db8:1::10,2001:db8:2::10  va,vb   boot    global  1024    -
04:16:05.516  node1         delete  main   10.2.0.0/24         unicast  10.1.0.2         va      bgp     global  100     -
",
        "a long value shifts its own row only"
    );
}

#[test]
fn tail_s_table_colours_live_adds_and_deletes_apart_from_the_snapshot() {
    let text = output(Format::Table, Mode::Tail, Paint::ANSI, false);
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines[2].contains('\x1b'), "snapshot: {:?}", lines[2]);
    assert!(lines[3].starts_with("\x1b[32m"), "live add: {:?}", lines[3]);
    assert!(lines[4].starts_with("\x1b[31m"), "delete: {:?}", lines[4]);
}

/// One event of `route` printed in `format`.
fn one(format: Format, object: change::Object) -> String {
    let mut out = Vec::new();
    let mut p = printer(format, Mode::Tail, Paint::NONE);
    let from = Origin {
        host: "node1",
        many: false,
    };
    let e = event(7, Action::Add, ApiOrigin::Notification, object);
    p.print(&mut out, &from, &e).unwrap();
    p.finish(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn the_agent_s_names_and_the_vrf_label_are_printed() {
    let route = Route {
        table: 1234,
        table_name: "blue".into(),
        protocol_name: "frr-bgp".into(),
        vrf: "blue".into(),
        ..via()
    };
    let text = one(Format::Text, change::Object::Route(route.clone()));
    assert!(
        text.ends_with(" table blue proto frr-bgp metric 100 vrf blue\n"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&one(Format::Json, change::Object::Route(route))).unwrap();
    assert_eq!(
        (&json["table"], &json["protocol"], &json["vrf"]),
        (&"blue".into(), &"frr-bgp".into(), &"blue".into())
    );
    let nexthop = Nexthop {
        protocol: 188,
        protocol_name: "ospf6".into(),
        ..group()
    };
    let text = one(Format::Table, change::Object::Nexthop(nexthop));
    assert!(text.contains("ospf6"), "{text}");
    let json = one(Format::Json, change::Object::Route(via()));
    assert!(!json.contains("vrf"), "no label without a VRF: {json}");
}
