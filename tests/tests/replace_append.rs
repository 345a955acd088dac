//! `ip route replace`, `append` (duplicates that differ only in the
//! gateway, each its own key) and `prepend`, and deleting exactly one of
//! several duplicates.

use routewatch_tests::compare::{kind, Kind};
use routewatch_tests::Env;
use serde_json::Value;

/// Our route objects for `dst` (from `routewatch show`).
fn shown(env: &Env, dst: &str) -> Vec<Value> {
    env.agent
        .show()
        .into_iter()
        .filter(|v| kind(v) == Kind::Route && v["dst"] == dst)
        .collect()
}

#[test]
fn replace_changes_routes_in_place() {
    let env = Env::start();
    env.ns.ip("route add 10.60.0.0/24 via 10.1.0.10");
    env.ns.ip("route add 10.60.1.0/24 via 10.1.0.10 table 1000");
    env.ns
        .ip("-6 route add 2001:db8:60::/64 via 2001:db8:1::10");
    env.check();
    // New gateway, then another device, then another type; in main and 1000.
    env.ns.ip("route replace 10.60.0.0/24 via 10.1.0.11");
    env.ns
        .ip("route replace 10.60.1.0/24 via 10.2.0.10 table 1000");
    env.ns
        .ip("-6 route replace 2001:db8:60::/64 via 2001:db8:2::10");
    env.check();
    env.ns.ip("route replace blackhole 10.60.0.0/24");
    env.ns
        .ip("route replace 10.60.1.0/24 via 10.2.0.10 mtu 1400 table 1000");
    env.ns.ip("-6 route replace unreachable 2001:db8:60::/64");
    env.check();
    // Replace of a route that does not exist creates it.
    env.ns
        .ip("route replace 10.60.2.0/24 via 10.1.0.10 proto static");
    env.ns.ip("-6 route replace 2001:db8:60:2::/64 dev va");
    env.check();
    // `change` modifies an existing route.
    env.ns
        .ip("route change 10.60.2.0/24 via 10.1.0.12 proto static");
    env.check();
}

#[test]
fn append_duplicates_and_delete_exactly_one() {
    let env = Env::start();
    env.ns.ip("route append 10.61.0.0/24 via 10.1.0.10");
    env.ns.ip("route append 10.61.0.0/24 via 10.1.0.11");
    env.ns.ip("route append 10.61.0.0/24 via 10.2.0.10");
    env.ns.ip("route prepend 10.61.0.0/24 via 10.1.0.12");
    env.check();
    let dups = shown(&env, "10.61.0.0/24");
    assert_eq!(dups.len(), 4, "four duplicates of 10.61.0.0/24: {dups:#?}");

    env.ns.ip("route del 10.61.0.0/24 via 10.1.0.11");
    env.check();
    let left: Vec<Value> = shown(&env, "10.61.0.0/24")
        .into_iter()
        .map(|v| v["gateway"].clone())
        .collect();
    assert_eq!(left.len(), 3, "exactly one duplicate removed: {left:?}");
    assert!(!left.contains(&Value::from("10.1.0.11")), "{left:?}");

    // A plain delete removes the first match only, each time.
    env.ns.ip("route del 10.61.0.0/24");
    env.check();
    env.ns.ip("route del 10.61.0.0/24");
    env.check();
    env.ns.ip("route del 10.61.0.0/24");
    env.check();
    assert!(shown(&env, "10.61.0.0/24").is_empty());
}

#[test]
fn replace_among_duplicates() {
    let env = Env::start();
    env.ns.ip("route append 10.62.0.0/24 via 10.1.0.10");
    env.ns.ip("route append 10.62.0.0/24 via 10.1.0.11");
    env.check();
    // Replaces the first of the duplicates; the other stays.
    env.ns.ip("route replace 10.62.0.0/24 via 10.1.0.12");
    env.check();
    // Same prefix, different metric or tos: separate routes.
    env.ns.ip("route add 10.62.0.0/24 via 10.1.0.13 metric 10");
    env.ns.ip("route add 10.62.0.0/24 via 10.1.0.14 tos 0x10");
    env.check();
    env.ns.ip("route del 10.62.0.0/24 metric 10");
    env.check();
}

#[test]
fn ipv6_replace_and_metric_duplicates() {
    let env = Env::start();
    env.ns
        .ip("-6 route add 2001:db8:63::/64 via 2001:db8:1::10 metric 100");
    env.ns
        .ip("-6 route add 2001:db8:63::/64 via 2001:db8:1::11 metric 200");
    env.check();
    env.ns
        .ip("-6 route replace 2001:db8:63::/64 via 2001:db8:2::10 metric 100");
    env.check();
    env.ns.ip("-6 route del 2001:db8:63::/64 metric 200");
    env.check();
}
