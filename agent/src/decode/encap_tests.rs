//! Encapsulations decoded from the fixtures `encap_fixtures.py` wrote (see
//! `agent/tests/fixtures/README.md`, "Encapsulations"): `ip` and `ip6`
//! captured from the kernel, the other types built from the uapi headers.
//! Each test opens with the command and the line `ip -d monitor file`
//! (iproute2 6.1) prints for the bytes.

use routewatch_proto::v1::{
    encap::Kind, Encap, EncapBpf, EncapBpfProgram, EncapIla, EncapIoam6, EncapIp, EncapIp6,
    EncapMpls, EncapRpl, EncapSeg6, EncapSeg6Local, EncapSeg6LocalCounters, EncapXfrm, NextHop,
    RawAttribute, Route,
};

use super::*;
use crate::decode::test_bytes::{garbage, nla};
use crate::decode::{decode_message, nexthop, Message};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/", $name))
    };
}

fn route(bytes: &[u8]) -> Route {
    match decode_message(bytes).expect("decodes").message {
        Message::NewRoute { route, .. } => *route,
        other => panic!("expected RTM_NEWROUTE, got {other:?}"),
    }
}

fn encap(bytes: &[u8]) -> Encap {
    *route(bytes).encap.expect("the route has an encapsulation")
}

fn typed(r#type: u32, kind: Kind) -> Encap {
    Encap {
        r#type,
        kind: Some(kind),
        unknown: vec![],
    }
}

fn ip(id: u64, src: &str, dst: &str) -> EncapIp {
    EncapIp {
        id,
        src: src.into(),
        dst: dst.into(),
        ..Default::default()
    }
}

fn ip6(id: u64, src: &str, dst: &str, hoplimit: u32, tc: u32) -> EncapIp6 {
    EncapIp6 {
        id,
        src: src.into(),
        dst: dst.into(),
        hoplimit,
        tc,
        ..Default::default()
    }
}

#[test]
fn ip_single_path() {
    // ip route add 10.12.0.0/24 encap ip id 5 dst 192.0.2.9 dev va
    // unicast 10.12.0.0/24  encap ip id 5 src 0.0.0.0 dst 192.0.2.9 ttl 0 tos 0 dev va table main proto boot scope link
    let r = route(fixture!("route_v4_encap_ip.bin"));
    assert_eq!((r.dst.as_str(), r.ifindex), ("10.12.0.0/24", 3));
    assert_eq!(
        r.encap.as_deref().cloned(),
        Some(typed(
            LWTUNNEL_ENCAP_IP,
            Kind::Ip(ip(5, "0.0.0.0", "192.0.2.9"))
        ))
    );
    assert!(r.other.is_empty(), "RTA_ENCAP is decoded, not kept raw");
}

#[test]
fn ip_every_field_and_flag() {
    // ip route add 10.13.0.0/24 encap ip id 6 src 10.1.0.1 dst 192.0.2.9 ttl 64 tos 0x10 key csum seq via 10.1.0.2 dev va
    // unicast 10.13.0.0/24  encap ip id 6 src 10.1.0.1 dst 192.0.2.9 ttl 64 tos 16 key csum seq via 10.1.0.2 dev va table main proto boot scope global
    let r = route(fixture!("route_v4_encap_ip_flags.bin"));
    assert_eq!(r.gateway, "10.1.0.2");
    let want = EncapIp {
        ttl: 64,
        tos: 0x10,
        // TUNNEL_CSUM | TUNNEL_KEY | TUNNEL_SEQ
        flags: 0x1 | 0x4 | 0x8,
        ..ip(6, "10.1.0.1", "192.0.2.9")
    };
    assert_eq!(
        r.encap.as_deref().cloned(),
        Some(typed(LWTUNNEL_ENCAP_IP, Kind::Ip(want)))
    );
}

#[test]
fn ip6_single_path() {
    // ip -6 route add 2001:db8:12::/64 encap ip6 id 9 src 2001:db8:1::1 dst 2001:db8::9 hoplimit 10 tc 0x20 dev va
    // unicast 2001:db8:12::/64  encap ip6 id 9 src 2001:db8:1::1 dst 2001:db8::9 hoplimit 10 tc 32 dev va table main proto boot scope global metric 1024 pref medium
    assert_eq!(
        encap(fixture!("route_v6_encap_ip6.bin")),
        typed(
            LWTUNNEL_ENCAP_IP6,
            Kind::Ip6(ip6(9, "2001:db8:1::1", "2001:db8::9", 10, 0x20))
        )
    );
}

fn hop_encaps(r: &Route) -> Vec<(String, Option<Encap>)> {
    r.nexthops
        .iter()
        .map(|h: &NextHop| (h.gateway.clone(), h.encap.as_deref().cloned()))
        .collect()
}

#[test]
fn ipv4_multipath_with_an_encapsulation_per_path() {
    // ip route add 10.14.0.0/24 nexthop via 10.1.0.2 dev va encap ip id 7 dst 192.0.2.7 nexthop via 10.1.0.3 dev va encap ip6 id 8 dst 2001:db8::8 hoplimit 5 tc 3
    // unicast 10.14.0.0/24 table main proto boot scope global
    //     nexthop  encap ip id 7 src 0.0.0.0 dst 192.0.2.7 ttl 0 tos 0 via 10.1.0.2 dev va weight 1
    //     nexthop  encap ip6 id 8 src :: dst 2001:db8::8 hoplimit 5 tc 3 via 10.1.0.3 dev va weight 1
    let r = route(fixture!("route_v4_multipath_encap.bin"));
    assert_eq!(
        r.encap, None,
        "a multipath route's encapsulations are per path"
    );
    assert_eq!(
        hop_encaps(&r),
        vec![
            (
                "10.1.0.2".into(),
                Some(typed(
                    LWTUNNEL_ENCAP_IP,
                    Kind::Ip(ip(7, "0.0.0.0", "192.0.2.7"))
                ))
            ),
            (
                "10.1.0.3".into(),
                Some(typed(
                    LWTUNNEL_ENCAP_IP6,
                    Kind::Ip6(ip6(8, "::", "2001:db8::8", 5, 3))
                ))
            ),
        ]
    );
}

#[test]
fn ipv6_multipath_with_an_encapsulation_per_path() {
    // ip -6 route add 2001:db8:14::/64 nexthop via 2001:db8:1::2 dev va encap ip6 id 10 dst 2001:db8::10 nexthop via 2001:db8:1::3 dev va encap ip id 11 dst 192.0.2.11
    // unicast 2001:db8:14::/64 table main proto boot scope global metric 1024 pref medium
    //     nexthop  encap ip6 id 10 src :: dst 2001:db8::10 hoplimit 0 tc 0 via 2001:db8:1::2 dev va weight 1
    //     nexthop  encap ip id 11 src 0.0.0.0 dst 192.0.2.11 ttl 0 tos 0 via 2001:db8:1::3 dev va weight 1
    let r = route(fixture!("route_v6_multipath_encap.bin"));
    assert_eq!(
        hop_encaps(&r),
        vec![
            (
                "2001:db8:1::2".into(),
                Some(typed(
                    LWTUNNEL_ENCAP_IP6,
                    Kind::Ip6(ip6(10, "::", "2001:db8::10", 0, 0))
                ))
            ),
            (
                "2001:db8:1::3".into(),
                Some(typed(
                    LWTUNNEL_ENCAP_IP,
                    Kind::Ip(ip(11, "0.0.0.0", "192.0.2.11"))
                ))
            ),
        ]
    );
}

#[test]
fn nexthop_object() {
    // ip nexthop add id 5 encap ip id 5 dst 192.0.2.9 dev va
    // id 5  encap ip id 5 src 0.0.0.0 dst 192.0.2.9 ttl 0 tos 0 dev va scope host proto unspec
    let bytes = fixture!("nexthop_encap.bin");
    let nh = nexthop::parse(&bytes[16..]).expect("decodes");
    assert_eq!(nh.id, 5);
    assert_eq!(
        nh.encap,
        Some(typed(
            LWTUNNEL_ENCAP_IP,
            Kind::Ip(ip(5, "0.0.0.0", "192.0.2.9"))
        ))
    );
    assert!(nh.undecoded().is_empty());
}

#[test]
fn mpls() {
    // ip route add 10.15.0.0/24 encap mpls 100/200 ttl 10 via 10.1.0.2 dev va
    // unicast 10.15.0.0/24  encap mpls  100/200 ttl 10 via 10.1.0.2 dev va table main proto boot scope global
    assert_eq!(
        encap(fixture!("route_v4_encap_mpls.bin")),
        typed(
            LWTUNNEL_ENCAP_MPLS,
            Kind::Mpls(EncapMpls {
                labels: vec![100, 200],
                ttl: Some(10)
            })
        )
    );
}

#[test]
fn seg6() {
    // ip -6 route add 2001:db8:15::/64 encap seg6 mode encap segs 2001:db8::a,2001:db8::b dev va
    // unicast 2001:db8:15::/64  encap seg6 mode encap segs 2 [ 2001:db8::a 2001:db8::b ] dev va table main proto boot scope global metric 1024 pref medium
    assert_eq!(
        encap(fixture!("route_v6_encap_seg6.bin")),
        typed(
            LWTUNNEL_ENCAP_SEG6,
            Kind::Seg6(EncapSeg6 {
                mode: 1,
                segs: vec!["2001:db8::a".into(), "2001:db8::b".into()],
                ..Default::default()
            })
        )
    );
}

#[test]
fn seg6local_with_counters() {
    // ip -6 route add 2001:db8:16::/64 encap seg6local action End.DX6 nh6 2001:db8:1::2 count dev va
    // unicast 2001:db8:16::/64  encap seg6local action End.DX6 nh6 2001:db8:1::2 dev va table main proto boot scope global metric 1024 pref medium
    assert_eq!(
        encap(fixture!("route_v6_encap_seg6local.bin")),
        typed(
            LWTUNNEL_ENCAP_SEG6_LOCAL,
            Kind::Seg6local(EncapSeg6Local {
                action: 5,
                nh6: "2001:db8:1::2".into(),
                counters: Some(EncapSeg6LocalCounters::default()),
                ..Default::default()
            })
        )
    );
}

#[test]
fn seg6local_flavors() {
    // ip -6 route add 2001:db8:17::/64 encap seg6local action End flavors next-csid lblen 32 nflen 16 dev va
    // unicast 2001:db8:17::/64  encap seg6local action End flavors next-csid lblen 32 nflen 16 dev va table main proto boot scope global metric 1024 pref medium
    assert_eq!(
        encap(fixture!("route_v6_encap_seg6local_flavors.bin")),
        typed(
            LWTUNNEL_ENCAP_SEG6_LOCAL,
            Kind::Seg6local(EncapSeg6Local {
                action: 1,
                flavors: Some(1 << 4),
                lblen: Some(32),
                nflen: Some(16),
                ..Default::default()
            })
        )
    );
}

#[test]
fn seg6local_srh_and_oif() {
    // ip -6 route add 2001:db8:18::/64 encap seg6local action End.B6.Encaps srh segs 2001:db8::c,2001:db8::d oif vb dev va
    // unicast 2001:db8:18::/64  encap seg6local action End.B6.Encaps segs 2 [ 2001:db8::c 2001:db8::d ] oif vb dev va table main proto boot scope global metric 1024 pref medium
    assert_eq!(
        encap(fixture!("route_v6_encap_seg6local_b6.bin")),
        typed(
            LWTUNNEL_ENCAP_SEG6_LOCAL,
            Kind::Seg6local(EncapSeg6Local {
                action: 10,
                srh_segs: vec!["2001:db8::c".into(), "2001:db8::d".into()],
                oif: 2,
                ..Default::default()
            })
        )
    );
}

#[test]
fn bpf() {
    // ip route add 10.17.0.0/24 encap bpf in obj lwt.o sec in xmit obj lwt.o sec xmit headroom 14 dev va
    // unicast 10.17.0.0/24  encap bpf in lwt.o:[in] xmit lwt.o:[xmit]  14 dev va table main proto boot scope link
    let program = |name: &str| Some(EncapBpfProgram { name: name.into() });
    assert_eq!(
        encap(fixture!("route_v4_encap_bpf.bin")),
        typed(
            LWTUNNEL_ENCAP_BPF,
            Kind::Bpf(EncapBpf {
                r#in: program("lwt.o:[in]"),
                out: None,
                xmit: program("lwt.o:[xmit]"),
                headroom: Some(14),
            })
        )
    );
}

#[test]
fn ila() {
    // ip -6 route add 2001:db8:19::/64 encap ila 2001:0:0:1 csum-mode neutral-map ident-type luid hook-type input dev va
    // unicast 2001:db8:19::/64  encap ila  2001:0:0:1  csum-mode neutral-map  ident-type luid  hook-type input dev va table main proto boot scope global metric 1024 pref medium
    assert_eq!(
        encap(fixture!("route_v6_encap_ila.bin")),
        typed(
            LWTUNNEL_ENCAP_ILA,
            Kind::Ila(EncapIla {
                locator: 0x2001_0000_0000_0001,
                csum_mode: 1,
                ident_type: 1,
                hook_type: 1,
            })
        )
    );
}

#[test]
fn ioam6() {
    // ip -6 route add 2001:db8:20::/64 encap ioam6 freq 2/5 mode encap tundst 2001:db8::1 trace prealloc type 0x800000 ns 1 size 12 dev va
    // unicast 2001:db8:20::/64  encap ioam6 freq 2/5 mode encap tundst 2001:db8::1 trace prealloc type 0x800000 ns 1 size 12 dev va table main proto boot scope global metric 1024 pref medium
    assert_eq!(
        encap(fixture!("route_v6_encap_ioam6.bin")),
        typed(
            LWTUNNEL_ENCAP_IOAM6,
            Kind::Ioam6(EncapIoam6 {
                mode: 2,
                tundst: "2001:db8::1".into(),
                tunsrc: String::new(),
                freq_k: 2,
                freq_n: 5,
                trace_type: 0x80_0000,
                trace_ns: 1,
                trace_size: 12,
            })
        )
    );
}

#[test]
fn rpl() {
    // ip -6 route add 2001:db8:21::/64 encap rpl segs 2001:db8::1,2001:db8::2 dev va
    // unicast 2001:db8:21::/64  encap rpl segs 2 [ 2001:db8::1 2001:db8::2 ] dev va table main proto boot scope global metric 1024 pref medium
    assert_eq!(
        encap(fixture!("route_v6_encap_rpl.bin")),
        typed(
            LWTUNNEL_ENCAP_RPL,
            Kind::Rpl(EncapRpl {
                segs: vec!["2001:db8::1".into(), "2001:db8::2".into()],
            })
        )
    );
}

#[test]
fn xfrm() {
    // ip route add 10.21.0.0/24 encap xfrm if_id 7 link_dev vb dev va
    // unicast 10.21.0.0/24  encap xfrm if_id 7 link_dev vb dev va table main proto boot scope link
    assert_eq!(
        encap(fixture!("route_v4_encap_xfrm.bin")),
        typed(
            LWTUNNEL_ENCAP_XFRM,
            Kind::Xfrm(EncapXfrm {
                if_id: 7,
                link: 2,
                link_dev: String::new(),
            })
        )
    );
}

// ---- what is not decoded is kept ----

#[test]
fn unknown_attributes_inside_a_known_type_are_kept() {
    // encap ip with LWTUNNEL_IP_ID 5 and an attribute type 42 ip does not
    // define.
    let mut value = nla(1, &5u64.to_be_bytes());
    value.extend(nla(42, &[0xde, 0xad]));
    let e = from_raw(LWTUNNEL_ENCAP_IP as u16, &value);
    assert_eq!(
        e.kind,
        Some(Kind::Ip(EncapIp {
            id: 5,
            ..Default::default()
        }))
    );
    assert_eq!(
        e.unknown,
        vec![RawAttribute {
            kind: 42,
            value: vec![0xde, 0xad]
        }]
    );
}

#[test]
fn an_unknown_type_keeps_every_attribute() {
    let mut value = nla(1, &[1, 2, 3, 4]);
    value.extend(nla(0x8000 | 2, &nla(1, &[9])));
    let e = from_raw(77, &value);
    assert_eq!(e.r#type, 77);
    assert_eq!(e.kind, None);
    assert_eq!(
        e.unknown,
        vec![
            RawAttribute {
                kind: 1,
                value: vec![1, 2, 3, 4]
            },
            RawAttribute {
                kind: 2,
                value: nla(1, &[9])
            },
        ]
    );
}

#[test]
fn a_value_of_the_wrong_size_is_kept_raw() {
    // LWTUNNEL_IP_TTL must be one byte.
    let e = from_raw(LWTUNNEL_ENCAP_IP as u16, &nla(4, &[1, 2]));
    assert_eq!(
        e.unknown,
        vec![RawAttribute {
            kind: 4,
            value: vec![1, 2]
        }]
    );
}

#[test]
fn a_broken_tail_is_kept() {
    let mut value = nla(1, &5u64.to_be_bytes());
    value.extend_from_slice(&[200, 0, 2, 0]);
    let e = from_raw(LWTUNNEL_ENCAP_IP as u16, &value);
    assert_eq!(
        e.unknown,
        vec![RawAttribute {
            kind: 0,
            value: vec![200, 0, 2, 0]
        }]
    );
}

#[test]
fn every_fixture_decodes_the_same_through_both_paths() {
    // A route's RTA_ENCAP (typed by netlink-packet-route) and the same bytes
    // as a nexthop object's NHA_ENCAP (parsed here) give one answer.
    for bytes in [
        &fixture!("route_v4_encap_ip_flags.bin")[..],
        fixture!("route_v6_encap_ip6.bin"),
        fixture!("route_v4_encap_mpls.bin"),
        fixture!("route_v6_encap_seg6.bin"),
        fixture!("route_v6_encap_seg6local.bin"),
        fixture!("route_v6_encap_seg6local_flavors.bin"),
        fixture!("route_v6_encap_seg6local_b6.bin"),
        fixture!("route_v4_encap_bpf.bin"),
        fixture!("route_v6_encap_ila.bin"),
        fixture!("route_v6_encap_ioam6.bin"),
        fixture!("route_v6_encap_rpl.bin"),
        fixture!("route_v4_encap_xfrm.bin"),
    ] {
        let want = encap(bytes);
        let (kind, value) = raw_encap(bytes);
        assert_eq!(from_raw(kind, &value), want);
    }
}

/// RTA_ENCAP_TYPE's value and RTA_ENCAP's value from a route message.
fn raw_encap(msg: &[u8]) -> (u16, Vec<u8>) {
    let (mut kind, mut value) = (None, None);
    // nlmsghdr (16) + rtmsg (12), then the attributes.
    for nla in netlink_packet_core::NlasIterator::new(&msg[28..]) {
        let nla = nla.expect("well formed");
        match nla.kind() {
            21 => kind = Some(u16::from_ne_bytes([nla.value()[0], nla.value()[1]])),
            22 => value = Some(nla.value().to_vec()),
            _ => {}
        }
    }
    (kind.expect("RTA_ENCAP_TYPE"), value.expect("RTA_ENCAP"))
}

#[test]
fn garbage_never_panics() {
    for (i, buf) in garbage(0x2545_f491, 20_000, 64, 0, 12).enumerate() {
        // Every type, the unknown ones too.
        let _ = from_raw((i % 12) as u16, &buf);
    }
}
