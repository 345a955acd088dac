//! Text and JSON of every encapsulation type, from the agent's fixtures
//! (`agent/tests/fixtures/README.md`, "Encapsulations") through the agent's
//! decoder. Each test opens with the command and the line iproute2 6.1
//! prints for the same bytes (`ip -d route show`, or `ip -d monitor file`
//! for the types this kernel refuses); the text must equal iproute2's
//! `encap ...` words, runs of spaces made one.

use routewatch_agent::decode::{decode_message, Message};
use routewatch_proto::v1::{encap::Kind, Encap, RawAttribute, Route};
use serde_json::{json, Value};

use super::{encap_json, encap_text};
use crate::printer::json_writer::json_map;
use crate::printer::text::route_line;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../../agent/tests/fixtures/", $name))
    };
}

/// The route as the state table hands it on: `va` is ifindex 3, `vb` 2.
fn route(bytes: &[u8]) -> Route {
    let mut r = match decode_message(bytes).expect("decodes").message {
        Message::NewRoute { route, .. } => *route,
        other => panic!("expected RTM_NEWROUTE, got {other:?}"),
    };
    let name = |i: u32| match i {
        2 => "vb".to_owned(),
        3 => "va".to_owned(),
        _ => String::new(),
    };
    r.dev = name(r.ifindex);
    for h in &mut r.nexthops {
        h.dev = name(h.ifindex);
    }
    if let Some(e) = r.encap.as_mut() {
        match e.kind.as_mut() {
            Some(Kind::Seg6local(l)) => l.oif_dev = name(l.oif),
            Some(Kind::Xfrm(x)) => x.link_dev = name(x.link),
            _ => {}
        }
    }
    r
}

fn encap(bytes: &[u8]) -> Encap {
    *route(bytes).encap.expect("an encapsulation")
}

/// The `encap` object of `e`, read back.
fn encap_value(e: &Encap) -> Value {
    json_map(|o| encap_json(e, o.key("encap")))["encap"].clone()
}

fn one_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// iproute2's words from `encap` to the route's next field (`via`/`dev`).
fn iproute2_encap(line: &str) -> String {
    let line = one_space(line);
    let start = line.find(" encap ").expect("the line has an encapsulation");
    let rest = &line[start..];
    let end = [" via ", " dev "]
        .iter()
        .filter_map(|w| rest.find(w))
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

fn assert_text(bytes: &[u8], iproute2: &str) {
    let mut ours = String::new();
    encap_text(&encap(bytes), &mut ours);
    assert_eq!(ours, iproute2_encap(iproute2));
}

fn line(r: &Route) -> String {
    let mut s = String::new();
    route_line(r, &mut s);
    s
}

#[test]
fn ip_where_ip_route_show_puts_it() {
    // ip route add 10.12.0.0/24 encap ip id 5 dst 192.0.2.9 dev va
    // `ip route show`: 10.12.0.0/24  encap ip id 5 src 0.0.0.0 dst 192.0.2.9 ttl 0 tos 0 dev va scope link
    let r = route(fixture!("route_v4_encap_ip.bin"));
    assert_eq!(
        line(&r),
        one_space(
            "10.12.0.0/24  encap ip id 5 src 0.0.0.0 dst 192.0.2.9 ttl 0 tos 0 dev va scope link"
        )
    );
}

#[test]
fn ip_flags_before_the_gateway() {
    // ip route add 10.13.0.0/24 encap ip id 6 src 10.1.0.1 dst 192.0.2.9 ttl 64 tos 0x10 key csum seq via 10.1.0.2 dev va
    // `ip route show`: 10.13.0.0/24  encap ip id 6 src 10.1.0.1 dst 192.0.2.9 ttl 64 tos 16 key csum seq via 10.1.0.2 dev va
    let r = route(fixture!("route_v4_encap_ip_flags.bin"));
    assert_eq!(
        line(&r),
        one_space("10.13.0.0/24  encap ip id 6 src 10.1.0.1 dst 192.0.2.9 ttl 64 tos 16 key csum seq via 10.1.0.2 dev va")
    );
}

#[test]
fn ip6() {
    // ip -6 route add 2001:db8:12::/64 encap ip6 id 9 src 2001:db8:1::1 dst 2001:db8::9 hoplimit 10 tc 0x20 dev va
    // `ip -6 route show`: 2001:db8:12::/64  encap ip6 id 9 src 2001:db8:1::1 dst 2001:db8::9 hoplimit 10 tc 32 dev va metric 1024 pref medium
    let r = route(fixture!("route_v6_encap_ip6.bin"));
    assert_eq!(
        line(&r),
        one_space("2001:db8:12::/64  encap ip6 id 9 src 2001:db8:1::1 dst 2001:db8::9 hoplimit 10 tc 32 dev va metric 1024 pref medium")
    );
}

#[test]
fn multipath_per_path() {
    // ip route add 10.14.0.0/24 nexthop via 10.1.0.2 dev va encap ip id 7 dst 192.0.2.7 nexthop via 10.1.0.3 dev va encap ip6 id 8 dst 2001:db8::8 hoplimit 5 tc 3
    // `ip route show`:
    //   10.14.0.0/24
    //       nexthop  encap ip id 7 src 0.0.0.0 dst 192.0.2.7 ttl 0 tos 0 via 10.1.0.2 dev va weight 1
    //       nexthop  encap ip6 id 8 src :: dst 2001:db8::8 hoplimit 5 tc 3 via 10.1.0.3 dev va weight 1
    let r = route(fixture!("route_v4_multipath_encap.bin"));
    assert_eq!(
        line(&r),
        "10.14.0.0/24 \
         nexthop encap ip id 7 src 0.0.0.0 dst 192.0.2.7 ttl 0 tos 0 via 10.1.0.2 dev va weight 1 \
         nexthop encap ip6 id 8 src :: dst 2001:db8::8 hoplimit 5 tc 3 via 10.1.0.3 dev va weight 1"
    );
}

#[test]
fn mpls() {
    // ip route add 10.15.0.0/24 encap mpls 100/200 ttl 10 via 10.1.0.2 dev va
    assert_text(
        fixture!("route_v4_encap_mpls.bin"),
        "unicast 10.15.0.0/24  encap mpls  100/200 ttl 10 via 10.1.0.2 dev va table main proto boot scope global",
    );
}

#[test]
fn seg6() {
    // ip -6 route add 2001:db8:15::/64 encap seg6 mode encap segs 2001:db8::a,2001:db8::b dev va
    assert_text(
        fixture!("route_v6_encap_seg6.bin"),
        "unicast 2001:db8:15::/64  encap seg6 mode encap segs 2 [ 2001:db8::a 2001:db8::b ] dev va table main proto boot scope global metric 1024 pref medium",
    );
}

#[test]
fn seg6local_counters_are_not_printed() {
    // ip -6 route add 2001:db8:16::/64 encap seg6local action End.DX6 nh6 2001:db8:1::2 count dev va
    assert_text(
        fixture!("route_v6_encap_seg6local.bin"),
        "unicast 2001:db8:16::/64  encap seg6local action End.DX6 nh6 2001:db8:1::2 dev va table main proto boot scope global metric 1024 pref medium",
    );
}

#[test]
fn seg6local_flavors() {
    // ip -6 route add 2001:db8:17::/64 encap seg6local action End flavors next-csid lblen 32 nflen 16 dev va
    assert_text(
        fixture!("route_v6_encap_seg6local_flavors.bin"),
        "unicast 2001:db8:17::/64  encap seg6local action End flavors next-csid lblen 32 nflen 16 dev va table main proto boot scope global metric 1024 pref medium",
    );
}

#[test]
fn seg6local_srh_and_oif() {
    // ip -6 route add 2001:db8:18::/64 encap seg6local action End.B6.Encaps srh segs 2001:db8::c,2001:db8::d oif vb dev va
    assert_text(
        fixture!("route_v6_encap_seg6local_b6.bin"),
        "unicast 2001:db8:18::/64  encap seg6local action End.B6.Encaps segs 2 [ 2001:db8::c 2001:db8::d ] oif vb dev va table main proto boot scope global metric 1024 pref medium",
    );
}

#[test]
fn bpf() {
    // ip route add 10.17.0.0/24 encap bpf in obj lwt.o sec in xmit obj lwt.o sec xmit headroom 14 dev va
    assert_text(
        fixture!("route_v4_encap_bpf.bin"),
        "unicast 10.17.0.0/24  encap bpf in lwt.o:[in] xmit lwt.o:[xmit]  14 dev va table main proto boot scope link",
    );
}

#[test]
fn ila() {
    // ip -6 route add 2001:db8:19::/64 encap ila 2001:0:0:1 csum-mode neutral-map ident-type luid hook-type input dev va
    assert_text(
        fixture!("route_v6_encap_ila.bin"),
        "unicast 2001:db8:19::/64  encap ila  2001:0:0:1  csum-mode neutral-map  ident-type luid  hook-type input dev va table main proto boot scope global metric 1024 pref medium",
    );
}

#[test]
fn ioam6() {
    // ip -6 route add 2001:db8:20::/64 encap ioam6 freq 2/5 mode encap tundst 2001:db8::1 trace prealloc type 0x800000 ns 1 size 12 dev va
    assert_text(
        fixture!("route_v6_encap_ioam6.bin"),
        "unicast 2001:db8:20::/64  encap ioam6 freq 2/5 mode encap tundst 2001:db8::1 trace prealloc type 0x800000 ns 1 size 12 dev va table main proto boot scope global metric 1024 pref medium",
    );
}

#[test]
fn rpl() {
    // ip -6 route add 2001:db8:21::/64 encap rpl segs 2001:db8::1,2001:db8::2 dev va
    assert_text(
        fixture!("route_v6_encap_rpl.bin"),
        "unicast 2001:db8:21::/64  encap rpl segs 2 [ 2001:db8::1 2001:db8::2 ] dev va table main proto boot scope global metric 1024 pref medium",
    );
}

#[test]
fn xfrm() {
    // ip route add 10.21.0.0/24 encap xfrm if_id 7 link_dev vb dev va
    assert_text(
        fixture!("route_v4_encap_xfrm.bin"),
        "unicast 10.21.0.0/24  encap xfrm if_id 7 link_dev vb dev va table main proto boot scope link",
    );
}

#[test]
fn json_nests_iproute2_fields() {
    // ip route add 10.12.0.0/24 encap ip id 5 dst 192.0.2.9 dev va
    // `ip -j -d route show` (flat): "dst":"10.12.0.0/24","encap":"ip","id":5,"src":"0.0.0.0","dst":"192.0.2.9","ttl":0,"tos":0,"dev":"va"
    assert_eq!(
        encap_value(&encap(fixture!("route_v4_encap_ip.bin"))),
        json!({"type": "ip", "id": 5, "src": "0.0.0.0", "dst": "192.0.2.9", "ttl": 0, "tos": 0})
    );
    // ... key csum seq: "key":true,"csum":true,"seq":true
    assert_eq!(
        encap_value(&encap(fixture!("route_v4_encap_ip_flags.bin"))),
        json!({"type": "ip", "id": 6, "src": "10.1.0.1", "dst": "192.0.2.9", "ttl": 64, "tos": 16,
               "key": true, "csum": true, "seq": true})
    );
    // "encap":"ip6","id":9,"src":"2001:db8:1::1","dst":"2001:db8::9","hoplimit":10,"tc":32
    assert_eq!(
        encap_value(&encap(fixture!("route_v6_encap_ip6.bin"))),
        json!({"type": "ip6", "id": 9, "src": "2001:db8:1::1", "dst": "2001:db8::9",
               "hoplimit": 10, "tc": 32})
    );
}

#[test]
fn json_of_the_other_types_follows_iproute2s_keys() {
    let cases: [(&[u8], Value); 10] = [
        (
            fixture!("route_v4_encap_mpls.bin"),
            json!({"type": "mpls", "dst": "100/200", "ttl": 10}),
        ),
        (
            fixture!("route_v6_encap_seg6.bin"),
            json!({"type": "seg6", "mode": "encap", "segs": ["2001:db8::a", "2001:db8::b"]}),
        ),
        (
            fixture!("route_v6_encap_seg6local.bin"),
            json!({"type": "seg6local", "action": "End.DX6", "nh6": "2001:db8:1::2"}),
        ),
        (
            fixture!("route_v6_encap_seg6local_flavors.bin"),
            json!({"type": "seg6local", "action": "End", "flavors": ["next-csid"],
                   "lblen": 32, "nflen": 16}),
        ),
        (
            fixture!("route_v6_encap_seg6local_b6.bin"),
            json!({"type": "seg6local", "action": "End.B6.Encaps",
                   "srh": {"segs": ["2001:db8::c", "2001:db8::d"]}, "oif": "vb"}),
        ),
        (
            fixture!("route_v4_encap_bpf.bin"),
            json!({"type": "bpf", "in": "lwt.o:[in]", "xmit": "lwt.o:[xmit]", "headroom": 14}),
        ),
        (
            fixture!("route_v6_encap_ila.bin"),
            json!({"type": "ila", "locator": "2001:0:0:1", "csum_mode": "neutral-map",
                   "ident_type": "luid", "hook_type": "input"}),
        ),
        (
            fixture!("route_v6_encap_ioam6.bin"),
            json!({"type": "ioam6", "freqk": 2, "freqn": 5, "mode": "encap",
                   "tundst": "2001:db8::1", "trace": null, "prealloc": null,
                   "trace_type": "800000", "ns": 1, "size": 12}),
        ),
        (
            fixture!("route_v6_encap_rpl.bin"),
            json!({"type": "rpl", "segs": ["2001:db8::1", "2001:db8::2"]}),
        ),
        (
            fixture!("route_v4_encap_xfrm.bin"),
            json!({"type": "xfrm", "if_id": 7, "link_dev": "vb"}),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(encap_value(&encap(bytes)), want);
    }
}

#[test]
fn unknown_attributes_and_types_are_shown() {
    let e = Encap {
        r#type: 77,
        kind: None,
        unknown: vec![RawAttribute {
            kind: 3,
            value: vec![0xca, 0xfe],
        }],
    };
    let mut s = String::new();
    encap_text(&e, &mut s);
    assert_eq!(s, " encap 77 unknown 3:cafe");
    assert_eq!(
        encap_value(&e),
        json!({"type": "77", "unknown": [{"type": 3, "hex": "cafe"}]})
    );
}

#[test]
fn nexthop_object_text_and_json() {
    // ip nexthop add id 5 encap ip id 5 dst 192.0.2.9 dev va
    // `ip nexthop show`: id 5  encap ip id 5 src 0.0.0.0 dst 192.0.2.9 ttl 0 tos 0 dev va scope host
    let bytes = fixture!("nexthop_encap.bin");
    let msg = routewatch_agent::decode::nexthop::parse(&bytes[16..]).expect("decodes");
    let nh = routewatch_proto::v1::Nexthop {
        id: msg.id,
        dev: "va".into(),
        ifindex: 3,
        scope: u32::from(msg.scope),
        encap: msg.encap.map(Box::new),
        ..Default::default()
    };
    let mut s = String::new();
    crate::printer::text::nexthop_line(&nh, &mut s);
    assert_eq!(
        s,
        one_space("id 5  encap ip id 5 src 0.0.0.0 dst 192.0.2.9 ttl 0 tos 0 dev va scope host")
    );
    let m = json_map(|o| crate::printer::nexthop_fields(&nh, o));
    assert_eq!(
        m["encap"],
        json!({"type": "ip", "id": 5, "src": "0.0.0.0", "dst": "192.0.2.9", "ttl": 0, "tos": 0})
    );
    assert_eq!(m["id"], 5, "the object's id, not the tunnel's");
}

#[test]
fn a_routes_unknown_attributes_end_its_line() {
    // ip route add 10.12.0.0/24 encap ip id 5 dst 192.0.2.9 dev va, plus an
    // attribute the agent did not decode.
    let mut r = route(fixture!("route_v4_encap_ip.bin"));
    r.other = vec![RawAttribute {
        kind: 18,
        value: vec![0x0a, 0x00],
    }];
    assert!(
        line(&r).ends_with(" dev va scope link unknown 18:0a00"),
        "{}",
        line(&r)
    );
    let m = json_map(|o| crate::printer::route_fields(&r, o));
    assert_eq!(m["unknown"], json!([{"type": 18, "hex": "0a00"}]));
    assert_eq!(m["dst"], "10.12.0.0/24");
    assert_eq!(m["encap"]["dst"], "192.0.2.9");
}
