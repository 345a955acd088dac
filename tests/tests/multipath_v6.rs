//! Multipath routes: IPv6 `append` merging paths into one route, partial
//! deletes (`ip -6 route del P via ONE`), replace, and IPv4 multipath.

use routewatch_tests::compare::{kind, Kind};
use routewatch_tests::Env;
use serde_json::Value;

fn route(env: &Env, dst: &str) -> Vec<Value> {
    env.agent
        .show()
        .into_iter()
        .filter(|v| kind(v) == Kind::Route && v["dst"] == dst)
        .collect()
}

#[test]
fn ipv6_append_and_partial_delete() {
    let env = Env::start();
    let p = "2001:db8:70::/64";
    env.ns
        .ip(&format!("-6 route append {p} via 2001:db8:1::10"));
    env.check();
    env.ns
        .ip(&format!("-6 route append {p} via 2001:db8:2::10"));
    env.check();
    env.ns
        .ip(&format!("-6 route append {p} via 2001:db8:1::11"));
    env.check();
    let r = route(&env, p);
    assert_eq!(r.len(), 1, "one multipath route: {r:#?}");
    assert_eq!(r[0]["nexthops"].as_array().map(Vec::len), Some(3), "{r:#?}");

    env.ns.ip(&format!("-6 route del {p} via 2001:db8:2::10"));
    env.check();
    let r = route(&env, p);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0]["nexthops"].as_array().map(Vec::len), Some(2), "{r:#?}");

    env.ns.ip(&format!("-6 route del {p} via 2001:db8:1::10"));
    env.check();
    env.ns.ip(&format!("-6 route del {p} via 2001:db8:1::11"));
    env.check();
    assert!(route(&env, p).is_empty());
}

/// `ip -6 route prepend` announces the paths as [new, old] while the
/// kernel's table (and `ip route show`) lists them as [old, new]: the
/// table's order is what a consumer must hold.
#[test]
fn ipv6_prepend_keeps_the_kernels_path_order() {
    let env = Env::start();
    let p = "2001:db8:72::/64";
    env.ns.ip(&format!(
        "-6 route add {p} via 2001:db8:1::10 dev va metric 10"
    ));
    env.check();
    env.ns.ip(&format!(
        "-6 route prepend {p} via 2001:db8:2::10 dev vb metric 10"
    ));
    env.check();
    let r = route(&env, p);
    let gateways: Vec<&str> = r[0]["nexthops"]
        .as_array()
        .map(|hops| hops.iter().filter_map(|h| h["gateway"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(gateways, ["2001:db8:1::10", "2001:db8:2::10"], "{r:#?}");
}

#[test]
fn ipv6_multipath_add_replace_and_delete() {
    let env = Env::start();
    let p = "2001:db8:71::/64";
    env.ns.ip(&format!(
        "-6 route add {p} nexthop via 2001:db8:1::10 dev va weight 2 nexthop via 2001:db8:2::10 dev vb"
    ));
    env.ns.ip("-6 route add 2001:db8:71:1::/64 table 1000 nexthop via 2001:db8:1::10 nexthop via 2001:db8:1::11");
    env.check();
    // Append to an existing multipath route, then replace it by one path.
    env.ns
        .ip(&format!("-6 route append {p} via 2001:db8:1::12"));
    env.check();
    env.ns
        .ip(&format!("-6 route replace {p} via 2001:db8:1::13"));
    env.check();
    env.ns.ip(&format!(
        "-6 route replace {p} nexthop via 2001:db8:1::14 nexthop via 2001:db8:2::14"
    ));
    env.check();
    // Deleting the whole route at once.
    env.ns.ip(&format!("-6 route del {p}"));
    env.ns.ip("-6 route del 2001:db8:71:1::/64 table 1000");
    env.check();
}

#[test]
fn ipv4_multipath() {
    let env = Env::start();
    env.ns
        .ip("route add 10.72.0.0/24 nexthop via 10.1.0.10 weight 2 nexthop via 10.2.0.10 weight 1");
    env.ns
        .ip("route add 10.72.1.0/24 table 1000 nexthop via 10.1.0.10 nexthop dev vb");
    env.check();
    env.ns.ip("route replace 10.72.0.0/24 nexthop via 10.1.0.11 nexthop via 10.2.0.11 nexthop via 10.1.0.12");
    env.check();
    env.ns.ip("route del 10.72.0.0/24");
    env.check();
}
