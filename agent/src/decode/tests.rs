//! Decoding of messages the kernel sent for real `ip` commands. Setup S and
//! the exact sequence are in `agent/tests/fixtures/README.md`: a namespace
//! with veth `vb` (ifindex 2) and `va` (ifindex 3), 10.1.0.1/24 and
//! 2001:db8:1::1/64 on va.

use routewatch_proto::v1::{Family, Route};

use super::{decode_message, Message};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/", $name))
    };
}

fn new_route(bytes: &[u8]) -> (Route, u16) {
    match decode_message(bytes).expect("decodes").message {
        Message::NewRoute { route, flags } => (*route, flags),
        other => panic!("expected RTM_NEWROUTE, got {other:?}"),
    }
}

fn del_route(bytes: &[u8]) -> Route {
    match decode_message(bytes).expect("decodes").message {
        Message::DelRoute(route) => *route,
        other => panic!("expected RTM_DELROUTE, got {other:?}"),
    }
}

#[test]
fn ipv4_gateway_route() {
    // ip route add 10.2.0.0/24 via 10.1.0.2 dev va metric 100 proto static
    let (r, flags) = new_route(fixture!("route_v4_via.bin"));
    assert_eq!(flags, 0x0600, "EXCL|CREATE");
    assert_eq!(r.family, Family::Inet as i32);
    assert_eq!(
        (r.dst.as_str(), r.gateway.as_str(), r.ifindex),
        ("10.2.0.0/24", "10.1.0.2", 3)
    );
    assert_eq!(
        (r.table, r.metric, r.protocol, r.scope, r.r#type),
        (254, 100, 4, 0, 1)
    );
    assert!(r.dev.is_empty(), "names are the state table's job");
}

#[test]
fn ipv4_delete_carries_the_whole_route() {
    // ip route del 10.2.0.0/24 via 10.1.0.2 dev va metric 100 proto static
    let r = del_route(fixture!("route_v4_del.bin"));
    assert_eq!(
        (r.dst.as_str(), r.gateway.as_str(), r.metric),
        ("10.2.0.0/24", "10.1.0.2", 100)
    );
}

#[test]
fn replace_and_append_flags() {
    // ip route replace 10.2.0.0/24 via 10.1.0.3 metric 100 proto static
    let (r, flags) = new_route(fixture!("route_v4_replace.bin"));
    assert_eq!(flags, 0x0100, "REPLACE only");
    assert_eq!(r.gateway, "10.1.0.3");
    // ip route append 10.2.0.0/24 via 10.1.0.4 metric 100 proto static
    let (r, flags) = new_route(fixture!("route_v4_append.bin"));
    assert_eq!(flags, 0x0c00, "CREATE|APPEND");
    assert_eq!(r.gateway, "10.1.0.4");
}

#[test]
fn table_above_255_and_metrics() {
    // ip route add 10.3.0.0/24 via 10.1.0.2 table 1000 mtu 1400 advmss 1300
    let (r, _) = new_route(fixture!("route_v4_table1000_mtu.bin"));
    assert_eq!(
        r.table, 1000,
        "read from RTA_TABLE, not the u8 header field"
    );
    let metrics: Vec<(u32, u32)> = r.metrics.iter().map(|m| (m.kind, m.value)).collect();
    assert_eq!(metrics, vec![(2, 1400), (8, 1300)]);
}

#[test]
fn ipv4_multipath_weights() {
    // ip route add 10.8.0.0/24 nexthop via 10.1.0.2 weight 2 nexthop via 10.1.0.3 weight 1
    let (r, _) = new_route(fixture!("route_v4_multipath.bin"));
    let hops: Vec<(&str, u32, u32)> = r
        .nexthops
        .iter()
        .map(|h| (h.gateway.as_str(), h.ifindex, h.weight))
        .collect();
    assert_eq!(
        hops,
        vec![("10.1.0.2", 3, 2), ("10.1.0.3", 3, 1)],
        "weight is rtnh_hops + 1"
    );
    assert!(r.gateway.is_empty());
}

#[test]
fn route_types() {
    // ip route add blackhole 10.4.0.0/24 / unreachable 10.5.0.0/24 /
    // prohibit 10.6.0.0/24 / throw 10.7.0.0/24 table 5
    for (bytes, kind, table) in [
        (&fixture!("route_v4_blackhole.bin")[..], 6, 254),
        (&fixture!("route_v4_unreachable.bin")[..], 7, 254),
        (&fixture!("route_v4_prohibit.bin")[..], 8, 254),
        (&fixture!("route_v4_throw.bin")[..], 9, 5),
    ] {
        let (r, _) = new_route(bytes);
        assert_eq!((r.r#type, r.table), (kind, table));
    }
    // ip addr add 10.1.0.1/24 dev va: the kernel's local route
    let (r, _) = new_route(fixture!("route_v4_local.bin"));
    assert_eq!(
        (r.r#type, r.table, r.scope, r.dst.as_str()),
        (2, 255, 254, "10.1.0.1/32")
    );
    assert_eq!(r.prefsrc, "10.1.0.1");
}

#[test]
fn tos_and_prefsrc() {
    // ip route add 10.11.0.1 dev va scope link src 10.1.0.1 tos 0x10
    let (r, _) = new_route(fixture!("route_v4_tos_prefsrc.bin"));
    assert_eq!(
        (r.tos, r.scope, r.prefsrc.as_str(), r.dst.as_str()),
        (0x10, 253, "10.1.0.1", "10.11.0.1/32")
    );
}

#[test]
fn nhid_route_carries_the_expanded_group() {
    // ip route add 10.9.0.0/24 nhid 10   (group 10 = 1/2,3)
    let (r, _) = new_route(fixture!("route_v4_nhid.bin"));
    assert_eq!(r.nhid, 10);
    let weights: Vec<u32> = r.nexthops.iter().map(|h| h.weight).collect();
    assert_eq!(weights, vec![1, 3]);
}

#[test]
fn ipv6_routes() {
    // ip -6 route add 2001:db8:2::/64 via 2001:db8:1::2 dev va metric 100 proto static
    let (r, _) = new_route(fixture!("route_v6_via.bin"));
    assert_eq!(r.family, Family::Inet6 as i32);
    assert_eq!(
        (r.dst.as_str(), r.gateway.as_str(), r.metric, r.pref),
        ("2001:db8:2::/64", "2001:db8:1::2", 100, Some(0))
    );
    // ip -6 route add 2001:db8:5::/64 via 2001:db8:1::2 dev va expires 300
    let (r, _) = new_route(fixture!("route_v6_expires.bin"));
    assert_eq!(r.expires, 300, "RTA_CACHEINFO expires is in 1/100 s");
    // ip -6 route add 2001:db8:6::/64 from 2001:db8:8::/64 via 2001:db8:1::2 dev va
    let (r, _) = new_route(fixture!("route_v6_from.bin"));
    assert_eq!(r.src, "2001:db8:8::/64");
}

#[test]
fn ipv6_multipath_append_and_partial_delete() {
    // ip -6 route append 2001:db8:3::/64 via 2001:db8:1::3 dev va metric 1024
    let (r, flags) = new_route(fixture!("route_v6_multipath_append.bin"));
    assert_eq!(flags, 0x0c00);
    let gws: Vec<&str> = r.nexthops.iter().map(|h| h.gateway.as_str()).collect();
    assert_eq!(
        gws,
        vec!["2001:db8:1::3", "2001:db8:1::2"],
        "appended path first, full set"
    );
    // ip -6 route del 2001:db8:3::/64 via 2001:db8:1::2 dev va metric 1024
    let r = del_route(fixture!("route_v6_partial_del.bin"));
    assert_eq!((r.gateway.as_str(), r.nexthops.len()), ("2001:db8:1::2", 0));
}

#[test]
fn link_and_address_messages() {
    // ip link set va down
    match decode_message(fixture!("link_down.bin")).unwrap().message {
        Message::NewLink(link) => {
            assert_eq!((link.index, link.name.as_str(), link.up), (3, "va", false));
        }
        other => panic!("expected RTM_NEWLINK, got {other:?}"),
    }
    // ip addr del 10.1.0.1/24 dev va
    assert!(matches!(
        decode_message(fixture!("addr_v4_del.bin")).unwrap().message,
        Message::DelAddress(a) if a == "10.1.0.1/24"
    ));
}

#[test]
fn vrf_links_name_their_table() {
    // ip link add blue type vrf table 10 (built from the uapi, see the
    // fixtures' README)
    match decode_message(fixture!("link_vrf_new.bin"))
        .unwrap()
        .message
    {
        Message::NewLink(link) => {
            assert_eq!((link.index, link.name.as_str()), (4, "blue"));
            assert_eq!(link.vrf_table, Some(10));
        }
        other => panic!("expected RTM_NEWLINK, got {other:?}"),
    }
    // ip link del green (blue renamed)
    match decode_message(fixture!("link_vrf_del.bin"))
        .unwrap()
        .message
    {
        Message::DelLink(link) => {
            assert_eq!((link.name.as_str(), link.vrf_table), ("green", Some(10)));
        }
        other => panic!("expected RTM_DELLINK, got {other:?}"),
    }
    // ip link set va down: no VRF
    match decode_message(fixture!("link_down.bin")).unwrap().message {
        Message::NewLink(link) => assert_eq!(link.vrf_table, None),
        other => panic!("expected RTM_NEWLINK, got {other:?}"),
    }
}

#[test]
fn nexthop_objects_decode_through_our_module() {
    // ip nexthop add id 10 group 1/2,3
    match decode_message(fixture!("nexthop_group.bin"))
        .unwrap()
        .message
    {
        Message::NewNexthop(nh) => {
            let members: Vec<(u32, u16)> = nh.group.iter().map(|m| (m.id, m.weight)).collect();
            assert_eq!((nh.id, members), (10, vec![(1, 1), (2, 3)]));
        }
        other => panic!("expected RTM_NEWNEXTHOP, got {other:?}"),
    }
    // ip nexthop del id 2
    assert!(matches!(
        decode_message(fixture!("nexthop_del.bin")).unwrap().message,
        Message::DelNexthop(nh) if nh.id == 2
    ));
}

#[test]
fn broken_messages_fail_with_their_bytes() {
    let mut bytes = fixture!("route_v4_via.bin").to_vec();
    bytes.truncate(20);
    bytes[0..4].copy_from_slice(&20u32.to_ne_bytes());
    let failure = decode_message(&bytes).unwrap_err();
    assert_eq!(failure.bytes, bytes);
    // A datagram whose length field lies.
    let mut lying = fixture!("route_v4_via.bin").to_vec();
    lying[0..4].copy_from_slice(&4096u32.to_ne_bytes());
    let out = super::decode_datagram(&lying);
    assert!(matches!(out.as_slice(), [Err(_)]));
}

#[test]
fn attributes_without_an_api_field_are_kept_raw() {
    // The route of `ip route add 10.2.0.0/24 via 10.1.0.2 dev va metric 100
    // proto static` with RTA_VIA (18) added: what `ip route add ... via
    // inet6 2001:db8:1::2` sends, which the API has no field for.
    let mut bytes = fixture!("route_v4_via.bin").to_vec();
    let mut via = 10u16.to_ne_bytes().to_vec(); // AF_INET6
    via.extend_from_slice(
        &"2001:db8:1::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    bytes.extend_from_slice(&((4 + via.len()) as u16).to_ne_bytes());
    bytes.extend_from_slice(&18u16.to_ne_bytes());
    bytes.extend_from_slice(&via);
    bytes.extend_from_slice(&[0, 0]); // to the 4-byte boundary
                                      // And an attribute no version knows (type 40), nested: its type is
                                      // kept without NLA_F_NESTED.
    bytes.extend_from_slice(&[8, 0, 40, 0x80, 4, 0, 1, 0]);
    let len = bytes.len() as u32;
    bytes[0..4].copy_from_slice(&len.to_ne_bytes());
    let (r, _) = new_route(&bytes);
    assert_eq!(
        r.other,
        vec![
            routewatch_proto::v1::RawAttribute {
                kind: 18,
                value: via
            },
            routewatch_proto::v1::RawAttribute {
                kind: 40,
                value: vec![4, 0, 1, 0]
            },
        ]
    );
}

#[test]
fn a_prefix_longer_than_its_family_allows_is_a_decode_failure() {
    // Found by fuzz_netlink_routes_are_well_formed: the route of `ip route
    // add 10.2.0.0/24 via 10.1.0.2 dev va metric 100 proto static` with
    // rtm_dst_len (byte 17) set to 33 decoded to "10.2.0.0/33", a prefix
    // no filter, store or `ip` reads.
    let mut bytes = fixture!("route_v4_via.bin").to_vec();
    bytes[17] = 33;
    let failure = decode_message(&bytes).unwrap_err();
    assert!(failure.reason.contains("rtm_dst_len 33"), "{failure}");
    assert_eq!(failure.bytes, bytes);
    bytes[17] = 32;
    assert_eq!(new_route(&bytes).0.dst, "10.2.0.0/32");
    // ip -6 route add 2001:db8:6::/64 from 2001:db8:8::/64 via 2001:db8:1::2 dev va
    // with rtm_src_len (byte 18) 129.
    let mut bytes = fixture!("route_v6_from.bin").to_vec();
    bytes[18] = 129;
    let failure = decode_message(&bytes).unwrap_err();
    assert!(failure.reason.contains("rtm_src_len 129"), "{failure}");
    bytes[18] = 128;
    assert_eq!(new_route(&bytes).0.src, "2001:db8:8::/128");
}

#[test]
fn a_rule_prefix_longer_than_its_family_allows_is_a_decode_failure() {
    // Found by fuzz_netlink_routes_are_well_formed: an IPv4 rule whose
    // header had dst_len 127 decoded to dst "0/127". Here the rule of `ip
    // rule add from 10.0.0.0/8 lookup 100 pref 100` with dst_len (byte 17)
    // set so.
    let mut bytes = fixture!("rule_v4_from_lookup.bin").to_vec();
    bytes[17] = 127;
    let failure = decode_message(&bytes).unwrap_err();
    assert!(failure.reason.contains("dst_len 127"), "{failure}");
    bytes[17] = 32;
    assert!(matches!(
        decode_message(&bytes).unwrap().message,
        Message::NewRule(rule) if rule.dst == "0/32"
    ));
    // ip -6 rule add from 2001:db8::/32 lookup 100 pref 100, with src_len
    // (byte 18) 129.
    let mut bytes = fixture!("rule_v6_from.bin").to_vec();
    bytes[18] = 129;
    let failure = decode_message(&bytes).unwrap_err();
    assert!(failure.reason.contains("src_len 129"), "{failure}");
}

#[test]
fn a_rule_address_of_the_other_family_is_a_decode_failure() {
    // Found by fuzz_netlink_routes_are_well_formed: an IPv6 rule (family
    // 10) whose FRA_SRC held 4 bytes decoded to src "1.2.3.4/32".
    // netlink-packet-route reads a rule's address by its length, not by
    // the rule's family. Here the rule of `ip rule add from 10.0.0.0/8
    // lookup 100 pref 100` with its family (byte 16) set to AF_INET6.
    let mut bytes = fixture!("rule_v4_from_lookup.bin").to_vec();
    bytes[16] = 10;
    let failure = decode_message(&bytes).unwrap_err();
    assert!(failure.reason.contains("FRA_SRC 10.0.0.0"), "{failure}");
    assert_eq!(failure.bytes, bytes);
}
