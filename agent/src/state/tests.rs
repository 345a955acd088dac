//! The state table's kernel rules, driven by messages the kernel sent for
//! real `ip` commands (setup in `agent/tests/fixtures/README.md`: veth `va`
//! is ifindex 3).

use routewatch_proto::v1::Route;

use super::{Action, Change, Object, Previous, Recheck, StateTable};
use crate::decode::{decode_message, Link, Message};

macro_rules! msg {
    ($name:literal) => {
        decode_message(include_bytes!(concat!("../../tests/fixtures/", $name)))
            .expect("fixture decodes")
            .message
    };
}

fn table() -> StateTable {
    let mut t = StateTable::new();
    for (index, name) in [(2, "vb"), (3, "va")] {
        let link = Link {
            index,
            name: name.into(),
            up: true,
            carrier: true,
            vrf_table: None,
        };
        t.insert_dumped(Message::NewLink(link));
    }
    t
}

pub(super) fn apply(t: &mut StateTable, m: &Message) -> (Vec<Change>, Recheck) {
    let mut out = Vec::new();
    let recheck = t.apply(m.clone(), &mut out);
    (out, recheck)
}

fn routes(changes: &[Change]) -> Vec<(Action, Route)> {
    changes
        .iter()
        .filter_map(|c| match &c.object {
            Object::Route(r) => Some((c.action, r.route())),
            _ => None,
        })
        .collect()
}

fn one_add(changes: &[Change], what: &str) -> Route {
    let mut r = routes(changes);
    assert_eq!(r.len(), 1, "{what}: {r:?}");
    let (action, route) = r.remove(0);
    assert_eq!(action, Action::Add, "{what}");
    route
}

#[test]
fn routes_get_device_names_at_event_time() {
    let mut t = table();
    // ip route add 10.2.0.0/24 via 10.1.0.2 dev va metric 100 proto static
    let (out, _) = apply(&mut t, &msg!("route_v4_via.bin"));
    let r = one_add(&out, "one add");
    assert_eq!(r.dev, "va");
}

#[test]
fn ipv4_replace_swaps_the_first_route_of_the_key() {
    let mut t = table();
    apply(&mut t, &msg!("route_v4_via.bin"));
    // ip route replace 10.2.0.0/24 via 10.1.0.3 metric 100 proto static:
    // one RTM_NEWROUTE with NLM_F_REPLACE and no delete.
    let (out, _) = apply(&mut t, &msg!("route_v4_replace.bin"));
    let r = routes(&out);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].0, r[0].1.gateway.as_str()),
        (Action::Delete, "10.1.0.2")
    );
    assert_eq!((r[1].0, r[1].1.gateway.as_str()), (Action::Add, "10.1.0.3"));
    assert_eq!(t.route_count(), 1);
}

#[test]
fn ipv4_append_keeps_both_and_delete_names_one() {
    let mut t = table();
    apply(&mut t, &msg!("route_v4_via.bin"));
    apply(&mut t, &msg!("route_v4_replace.bin"));
    // ip route append 10.2.0.0/24 via 10.1.0.4 metric 100 proto static
    let (out, _) = apply(&mut t, &msg!("route_v4_append.bin"));
    assert_eq!(routes(&out).len(), 1);
    assert_eq!(t.route_count(), 2);
    let keys: Vec<_> = t.snapshot().into_iter().map(|c| c.key).collect();
    assert_ne!(keys[0], keys[1], "same dst/tos/metric, distinct keys");
}

#[test]
fn ipv6_multipath_append_then_partial_delete() {
    let mut t = table();
    // The route before the append: 2001:db8:3::/64 via 2001:db8:1::2, built
    // from the append's own message minus the appended path.
    let Message::NewRoute {
        route: mut first, ..
    } = msg!("route_v6_multipath_append.bin")
    else {
        panic!()
    };
    let second = first.nexthops.remove(0);
    let only = first.nexthops.remove(0);
    first.gateway = only.gateway.clone();
    first.ifindex = only.ifindex;
    apply(
        &mut t,
        &Message::NewRoute {
            route: first,
            flags: 0x0600,
        },
    );
    // ip -6 route append 2001:db8:3::/64 via 2001:db8:1::3 dev va metric 1024
    let (out, _) = apply(&mut t, &msg!("route_v6_multipath_append.bin"));
    let r = one_add(&out, "one upsert");
    let gws: Vec<&str> = r.nexthops.iter().map(|h| h.gateway.as_str()).collect();
    assert_eq!(
        gws,
        vec![only.gateway.as_str(), second.gateway.as_str()],
        "kernel dump order"
    );
    assert_eq!(t.route_count(), 1);
    // ip -6 route del 2001:db8:3::/64 via 2001:db8:1::2 dev va metric 1024
    let (out, recheck) = apply(&mut t, &msg!("route_v6_partial_del.bin"));
    assert_eq!(recheck, Recheck::No);
    let r = one_add(&out, "survivor re-sent");
    assert_eq!(
        (r.gateway.as_str(), r.nexthops.len(), r.dev.as_str()),
        ("2001:db8:1::3", 0, "va")
    );
}

#[test]
fn nexthop_change_resends_the_routes_using_it() {
    let mut t = table();
    // ip nexthop add id 1 via 10.1.0.2 dev va; (id 2 via 10.1.0.3);
    // ip nexthop add id 10 group 1/2,3; ip route add 10.9.0.0/24 nhid 10
    apply(&mut t, &msg!("nexthop_single.bin"));
    let Message::NewNexthop(mut two) = msg!("nexthop_single.bin") else {
        panic!()
    };
    two.id = 2;
    two.gateway = Some("10.1.0.3".parse().unwrap());
    apply(&mut t, &Message::NewNexthop(two));
    apply(&mut t, &msg!("nexthop_group.bin"));
    apply(&mut t, &msg!("route_v4_nhid.bin"));
    // ip nexthop replace id 2 via 10.1.0.4 dev va: the kernel sends the
    // object; the route through group 10 must follow.
    let (out, _) = apply(&mut t, &msg!("nexthop_replace.bin"));
    let r = routes(&out);
    assert_eq!(r.len(), 1, "{r:?}");
    let gws: Vec<&str> = r[0].1.nexthops.iter().map(|h| h.gateway.as_str()).collect();
    assert_eq!(gws, vec!["10.1.0.2", "10.1.0.4"]);
    // Each add carries what it replaced, for filters on gateways.
    let Previous::Was(Object::Nexthop(old)) = &out[0].previous else {
        panic!("the object's old version: {:?}", out[0].previous)
    };
    assert_eq!(old.gateway, "10.1.0.3");
    let route = out
        .iter()
        .find(|c| matches!(c.object, Object::Route(_)))
        .unwrap();
    let Previous::Was(Object::Route(old)) = &route.previous else {
        panic!("the route's old version: {:?}", route.previous)
    };
    let old = old.route();
    let gws: Vec<&str> = old.nexthops.iter().map(|h| h.gateway.as_str()).collect();
    assert_eq!(gws, vec!["10.1.0.2", "10.1.0.3"]);
    // The kernel's own RTM_NEWROUTE that follows changes nothing more.
    let (out, _) = apply(&mut t, &msg!("route_v4_nhid_nh_replaced.bin"));
    assert_eq!(routes(&out).len(), 0);
}

#[test]
fn routes_of_one_base_on_one_nexthop_object_follow_it_until_deleted() {
    // The table finds an object's users by their base: two IPv4 routes of
    // one base through nexthop 1 (`ip route append`, another protocol),
    // then one deleted: the other still follows the object.
    let mut t = table();
    apply(&mut t, &msg!("nexthop_single.bin"));
    let route = |protocol: u32| Route {
        family: routewatch_proto::v1::Family::Inet as i32,
        table: 254,
        dst: "10.9.0.0/24".into(),
        r#type: 1,
        protocol,
        nhid: 1,
        ..Default::default()
    };
    for (protocol, flags) in [(4, 0x600), (186, 0x800)] {
        let (out, _) = apply(
            &mut t,
            &Message::NewRoute {
                route: Box::new(route(protocol)),
                flags,
            },
        );
        one_add(&out, "a route through nexthop 1");
    }
    assert_eq!(t.route_count(), 2);
    let replace = |t: &mut StateTable, gateway: &str| {
        let Message::NewNexthop(mut nh) = msg!("nexthop_single.bin") else {
            panic!()
        };
        nh.gateway = Some(gateway.parse().unwrap());
        let (out, _) = apply(t, &Message::NewNexthop(nh));
        let mut protocols: Vec<(u32, String)> = routes(&out)
            .into_iter()
            .map(|(_, r)| (r.protocol, r.gateway))
            .collect();
        protocols.sort();
        protocols
    };
    assert_eq!(
        replace(&mut t, "10.1.0.7"),
        vec![(4, "10.1.0.7".into()), (186, "10.1.0.7".into())]
    );
    let (out, _) = apply(&mut t, &Message::DelRoute(Box::new(route(4))));
    assert_eq!(routes(&out).len(), 1, "{out:?}");
    assert_eq!(replace(&mut t, "10.1.0.8"), vec![(186, "10.1.0.8".into())]);
    let (out, _) = apply(&mut t, &Message::DelRoute(Box::new(route(186))));
    assert_eq!(routes(&out).len(), 1, "{out:?}");
    assert_eq!(replace(&mut t, "10.1.0.9"), vec![]);
    assert!(t.nh_users.is_empty(), "{:?}", t.nh_users);
}

#[test]
fn silent_flush_triggers_ask_for_a_redump() {
    let mut t = table();
    // ip link set va down
    assert!(matches!(
        apply(&mut t, &msg!("link_down.bin")).1,
        Recheck::Yes(_)
    ));
    // ip addr del 10.1.0.1/24 dev va
    assert!(matches!(
        apply(&mut t, &msg!("addr_v4_del.bin")).1,
        Recheck::Yes(_)
    ));
    // ip nexthop del id 2: routes using it vanish without a message.
    assert!(matches!(
        apply(&mut t, &msg!("nexthop_del.bin")).1,
        Recheck::Yes(_)
    ));
}

#[test]
fn delete_of_an_unknown_route_asks_for_a_redump() {
    let mut t = table();
    let (out, recheck) = apply(&mut t, &msg!("route_v4_del.bin"));
    assert!(out.is_empty());
    assert!(matches!(recheck, Recheck::Yes(_)));
}

#[test]
fn reconcile_emits_exactly_the_differences() {
    let mut t = table();
    apply(&mut t, &msg!("route_v4_via.bin"));
    apply(&mut t, &msg!("route_v4_blackhole.bin"));
    let mut fresh = table();
    fresh.insert_dumped(msg!("route_v4_blackhole.bin"));
    fresh.insert_dumped(msg!("route_v4_table1000_mtu.bin"));
    let changes = t.reconcile(fresh);
    let mut r: Vec<(Action, String)> = routes(&changes)
        .into_iter()
        .map(|(a, r)| (a, r.dst))
        .collect();
    r.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        r,
        vec![
            (Action::Delete, "10.2.0.0/24".into()),
            (Action::Add, "10.3.0.0/24".into())
        ]
    );
    assert_eq!(t.route_count(), 2);
}

#[test]
fn a_route_announced_during_a_dump_is_not_doubled_by_the_dump() {
    // The re-dump's table gets notifications queued ahead of the replies,
    // before its link dump has named the devices; then the dump reply for
    // the same route arrives.
    let mut fresh = StateTable::new();
    let m = msg!("route_v4_via.bin");
    apply(&mut fresh, &m);
    for (index, name) in [(2, "vb"), (3, "va")] {
        let link = Link {
            index,
            name: name.into(),
            up: true,
            carrier: true,
            vrf_table: None,
        };
        fresh.insert_dumped(Message::NewLink(link));
    }
    fresh.insert_dumped(m.clone());
    assert_eq!(fresh.route_count(), 1);
    let snapshot = fresh.snapshot();
    let Object::Route(r) = &snapshot[0].object else {
        panic!("a route")
    };
    assert_eq!(
        r.route().dev,
        "va",
        "the dump's copy, with the device named"
    );
}

#[test]
fn a_dump_keeps_routes_its_key_cannot_tell_apart_and_notes_no_key_once_ended() {
    // Two replies the key cannot tell apart are two kernel routes.
    let mut fresh = table();
    let m = msg!("route_v4_via.bin");
    fresh.insert_dumped(m.clone());
    fresh.insert_dumped(m.clone());
    assert_eq!(fresh.route_count(), 2);
    assert!(fresh.announced.is_empty());
    // A notification during the dump is noted, and forgotten at its end;
    // the table then notes nothing more.
    let mut fresh = table();
    apply(&mut fresh, &m);
    assert_eq!(fresh.announced.len(), 1);
    fresh.insert_dumped(m.clone());
    assert_eq!(fresh.route_count(), 1);
    fresh.end_dump();
    assert!(fresh.announced.is_empty());
    apply(&mut fresh, &Message::DelRoute(Box::new(route_of(&m))));
    apply(&mut fresh, &m);
    assert!(fresh.announced.is_empty());
}

fn route_of(m: &Message) -> Route {
    match m {
        Message::NewRoute { route, .. } => (**route).clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn adds_of_new_keys_replace_nothing_and_reconcile_names_what_it_replaces() {
    let mut t = table();
    let (out, _) = apply(&mut t, &msg!("route_v4_via.bin"));
    assert_eq!(out[0].previous, Previous::None, "a new key");
    let mut fresh = table();
    let Message::NewRoute { mut route, flags } = msg!("route_v4_via.bin") else {
        panic!()
    };
    let before = t.snapshot().remove(0).object;
    // The same route with another MTU: same key, new version.
    route.metrics = vec![routewatch_proto::v1::RouteMetric {
        kind: 2,
        value: 1400,
    }];
    fresh.insert_dumped(Message::NewRoute { route, flags });
    let changes = t.reconcile(fresh);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].action, Action::Add);
    assert_eq!(changes[0].previous, Previous::Was(before));
}

#[test]
fn a_nexthop_objects_encapsulation_shows_on_its_routes() {
    let mut t = table();
    // ip nexthop add id 5 encap ip id 5 dst 192.0.2.9 dev va
    let (out, _) = apply(&mut t, &msg!("nexthop_encap.bin"));
    let nh = match &out[..] {
        [Change {
            object: Object::Nexthop(nh),
            ..
        }] => nh.clone(),
        other => panic!("{other:?}"),
    };
    assert!(nh.encap.is_some() && nh.other.is_empty(), "{nh:?}");
    // What `ip route add 10.12.0.0/24 nhid 5` would send with
    // nexthop_compat_mode 0: the id and nothing of the object.
    let route = Route {
        family: routewatch_proto::v1::Family::Inet as i32,
        table: 254,
        dst: "10.12.0.0/24".into(),
        r#type: 1,
        nhid: 5,
        ..Default::default()
    };
    let (out, _) = apply(
        &mut t,
        &Message::NewRoute {
            route: Box::new(route),
            flags: 0x600,
        },
    );
    let r = one_add(&out, "nhid route");
    assert_eq!((r.dev.as_str(), r.ifindex), ("va", 3));
    assert_eq!(r.encap, nh.encap, "as `ip route show` prints it");
}

#[test]
fn ipv4_routes_differing_only_by_encapsulation_are_two() {
    let mut t = table();
    // ip route add 10.12.0.0/24 encap ip id 5 dst 192.0.2.9 dev va
    let with = msg!("route_v4_encap_ip.bin");
    let Message::NewRoute { route, .. } = &with else {
        panic!("{with:?}")
    };
    // The same route without it (`ip route append 10.12.0.0/24 dev va`).
    let without = Message::NewRoute {
        route: Box::new(Route {
            encap: None,
            ..(**route).clone()
        }),
        flags: 0x0c00,
    };
    apply(&mut t, &with);
    let (out, _) = apply(&mut t, &without);
    one_add(&out, "appended");
    assert_eq!(t.route_count(), 2, "both routes are held");
    // Deleting the one without leaves the one with.
    let (out, _) = apply(
        &mut t,
        &Message::DelRoute(Box::new(Route {
            encap: None,
            ..(**route).clone()
        })),
    );
    let gone = routes(&out);
    assert_eq!(gone.len(), 1);
    assert_eq!(
        (gone[0].0, gone[0].1.encap.is_none()),
        (Action::Delete, true)
    );
    assert_eq!(t.route_count(), 1);
}

#[test]
fn ipv6_paths_through_one_gateway_differ_by_encapsulation() {
    let mut t = table();
    // ip -6 route add 2001:db8:14::/64 nexthop via 2001:db8:1::2 dev va encap ip6 id 10 dst 2001:db8::10 nexthop via 2001:db8:1::3 dev va encap ip id 11 dst 192.0.2.11
    let m = msg!("route_v6_multipath_encap.bin");
    apply(&mut t, &m);
    let Message::NewRoute { route, .. } = m else {
        panic!()
    };
    // The kernel's delete of the first path: its own gateway and encap.
    let first = &route.nexthops[0];
    let del = Route {
        nexthops: vec![],
        gateway: first.gateway.clone(),
        ifindex: first.ifindex,
        encap: first.encap.clone(),
        ..(*route).clone()
    };
    // A path through the same gateway without the encapsulation is not one
    // the table holds: nothing is guessed, the tables are read again.
    let (out, recheck) = apply(
        &mut t,
        &Message::DelRoute(Box::new(Route {
            encap: None,
            ..del.clone()
        })),
    );
    assert!(out.is_empty(), "{out:?}");
    assert!(matches!(recheck, Recheck::Yes(_)));
    let (out, _) = apply(&mut t, &Message::DelRoute(Box::new(del)));
    let survivor = one_add(&out, "survivor");
    assert!(survivor.nexthops.is_empty());
    assert_eq!(survivor.gateway, "2001:db8:1::3");
    assert_eq!(
        survivor.encap, route.nexthops[1].encap,
        "moves to the route"
    );
}

/// 10.2.0.0/24 via 10.1.0.2 dev va (route_v4_via.bin), in table 10.
fn route_in_table_10() -> Message {
    let Message::NewRoute { mut route, flags } = msg!("route_v4_via.bin") else {
        panic!("a route")
    };
    route.table = 10;
    Message::NewRoute { route, flags }
}

/// What a re-dump reads: the links (`va`, `vb` and `vrf` if given), then
/// `route`.
fn dumped(vrf: Option<Message>, route: &Message) -> StateTable {
    let mut fresh = table();
    if let Some(link) = vrf {
        fresh.insert_dumped(link);
    }
    fresh.insert_dumped(route.clone());
    fresh
}

fn vrf_of(changes: &[Change]) -> String {
    one_add(changes, "relabelled").vrf
}

#[test]
fn routes_of_a_vrf_s_table_carry_its_name() {
    let mut t = table();
    // ip link add blue type vrf table 10
    let (_, recheck) = apply(&mut t, &msg!("link_vrf_new.bin"));
    assert_eq!(recheck, Recheck::Yes("vrf link added"));
    let (out, _) = apply(&mut t, &route_in_table_10());
    assert_eq!(vrf_of(&out), "blue");
    // The same route in the main table is in no VRF.
    let (out, _) = apply(&mut t, &msg!("route_v4_via.bin"));
    assert_eq!(vrf_of(&out), "");
}

#[test]
fn a_route_added_before_its_vrf_is_relabelled_as_the_vrf_comes_changes_and_goes() {
    let mut t = table();
    let route = route_in_table_10();
    let (out, _) = apply(&mut t, &route);
    assert_eq!(vrf_of(&out), "", "no VRF yet");

    // ip link add blue type vrf table 10: the re-dump labels the route.
    let (_, recheck) = apply(&mut t, &msg!("link_vrf_new.bin"));
    assert_eq!(recheck, Recheck::Yes("vrf link added"));
    let out = t.reconcile(dumped(Some(msg!("link_vrf_new.bin")), &route));
    assert_eq!(vrf_of(&out), "blue");

    // ip link set blue name green
    let (_, recheck) = apply(&mut t, &msg!("link_vrf_renamed.bin"));
    assert_eq!(recheck, Recheck::Yes("vrf link changed"));
    let out = t.reconcile(dumped(Some(msg!("link_vrf_renamed.bin")), &route));
    assert_eq!(vrf_of(&out), "green");

    // The same VRF moved to another table (built from the new one).
    let Message::NewLink(mut moved) = msg!("link_vrf_renamed.bin") else {
        panic!("a link")
    };
    moved.vrf_table = Some(20);
    let (_, recheck) = apply(&mut t, &Message::NewLink(moved.clone()));
    assert_eq!(recheck, Recheck::Yes("vrf link changed"));
    let out = t.reconcile(dumped(Some(Message::NewLink(moved)), &route));
    assert_eq!(vrf_of(&out), "");

    // ip link del green
    let (_, recheck) = apply(&mut t, &msg!("link_vrf_del.bin"));
    assert_eq!(recheck, Recheck::Yes("link deleted"));
    assert!(
        t.reconcile(dumped(None, &route)).is_empty(),
        "already unlabelled"
    );
}

#[test]
fn a_vrf_link_s_carrier_alone_changes_no_label() {
    let mut t = table();
    apply(&mut t, &msg!("link_vrf_new.bin"));
    let Message::NewLink(mut up) = msg!("link_vrf_new.bin") else {
        panic!("a link")
    };
    up.up = true;
    let (_, recheck) = apply(&mut t, &Message::NewLink(up));
    assert_eq!(recheck, Recheck::Yes("link state changed"));
}
