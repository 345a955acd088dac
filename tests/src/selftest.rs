//! Self-tests of the harness against the real kernel (need root and
//! iproute2, like every end-to-end test): namespaces, `ip` helpers and the
//! comparison with the kernel's own output standing in for ours.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use serde_json::Value;

use crate::compare::{
    decorate, diff_against_kernel, diff_nexthops_against_kernel, diff_rules_against_kernel,
    eventually_matches_kernel, kernel_nexthops, kernel_routes, kernel_rules,
};
use crate::fixture::add_veth_pair;
use crate::netns::Netns;

fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// The kernel's current routes and nexthops dressed as our lines.
fn kernel_as_ours(ns: &Netns) -> Vec<Value> {
    let (v4, v6) = kernel_routes(ns);
    let mut o = decorate(&v4, "route", "inet", "r4-");
    o.extend(decorate(&v6, "route", "inet6", "r6-"));
    o.extend(decorate(&kernel_nexthops(ns), "nexthop", "inet", "nh-"));
    let (v4, v6) = kernel_rules(ns);
    o.extend(decorate(&v4, "rule", "inet", "ru4-"));
    o.extend(decorate(&v6, "rule", "inet6", "ru6-"));
    o
}

#[test]
fn rules_as_ours_match_and_a_changed_rule_is_found() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.ip("rule add pref 100 from 10.0.0.0/8 lookup 100");
    ns.ip("rule add pref 200 blackhole");
    ns.ip("-6 rule add pref 100 from 2001:db8::/32 iif va lookup 5");
    let ours = kernel_as_ours(&ns);
    let d = diff_rules_against_kernel(&ns, ours.clone());
    assert!(d.is_empty(), "{d}");
    assert_eq!(d.ours_count, 3 + 3 + 2, "{d}");
    // `ip`'s action is our type.
    assert!(ours
        .iter()
        .any(|v| v["object"] == "rule" && v["type"] == "blackhole"));

    ns.ip("rule del pref 200");
    ns.ip("rule add pref 200 unreachable");
    let d = diff_rules_against_kernel(&ns, ours);
    assert_eq!((d.only_kernel.len(), d.only_ours.len()), (1, 1), "{d}");
    assert!(d.only_kernel[0].contains("unreachable"), "{d}");
}

#[test]
fn netns_is_created_with_lo_up_and_deleted_on_drop() {
    let ns = Netns::new();
    let name = ns.name().to_owned();
    assert!(
        name.starts_with(&format!("rwt-{}-", std::process::id())),
        "{name}"
    );
    assert!(netns_exists(&name));
    let lo = ns.ip_json("link show lo");
    let flags = lo[0]["flags"].as_array().unwrap();
    assert!(flags.iter().any(|f| f == "UP"), "{lo}");
    // A route through lo exists only in this namespace.
    ns.ip("route add blackhole 192.0.2.0/24");
    let other = Netns::new();
    assert_ne!(other.name(), name);
    assert_eq!(
        other.ip_json("route show 192.0.2.0/24"),
        serde_json::json!([])
    );
    drop(ns);
    assert!(!netns_exists(&name));
}

#[test]
fn netns_is_deleted_when_the_test_panics() {
    let mut name = String::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let ns = Netns::new();
        name = ns.name().to_owned();
        ns.ip("route add 10.77.0.0/24 dev nonexistent");
    }));
    let err = r.expect_err("ip failure must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("route add 10.77.0.0/24"), "{msg}");
    assert!(
        msg.contains("Cannot find device") || msg.contains("nonexistent"),
        "{msg}"
    );
    assert!(!name.is_empty());
    assert!(!netns_exists(&name));
}

#[test]
fn ip_helpers() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    assert!(ns.try_ip("route add nonsense").is_err());
    let batch: String = (0..100)
        .map(|i| format!("route add 10.99.{i}.0/24 via 10.1.0.10\n"))
        .collect();
    ns.ip_batch(&batch);
    let routes = ns.ip_json("route show table main");
    assert!(routes.as_array().unwrap().len() >= 100, "{routes}");
    // An empty answer parses as [].
    assert_eq!(ns.ip_json("route show 192.0.2.0/24"), serde_json::json!([]));
    let r = catch_unwind(AssertUnwindSafe(|| {
        ns.ip_batch("route add 10.98.0.0/24 via 10.1.0.10\nroute add bogus\n")
    }));
    assert!(r.is_err(), "a failing batch line must panic");
    // Programs run inside the namespace see its interfaces.
    let out = ns.output("cat", &["/proc/net/dev"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("va:") && text.contains("vb:"), "{text}");
}

#[test]
fn kernel_output_as_ours_matches_and_a_removed_route_is_found() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.ip("route add 10.5.0.0/24 via 10.1.0.10 mtu 1400 advmss 1300 table 1000");
    ns.ip("route append 10.20.0.0/24 via 10.1.0.10");
    ns.ip("route append 10.20.0.0/24 via 10.1.0.11");
    ns.ip("-6 route add 2001:db8:5::/64 via 2001:db8:1::10 expires 100");
    ns.ip("nexthop add id 1 via 10.1.0.10 dev va");
    ns.ip("nexthop add id 2 via 10.2.0.10 dev vb");
    ns.ip("nexthop add id 10 group 1/2,3");
    ns.ip("route add 10.30.0.0/24 nhid 10");

    let ours = kernel_as_ours(&ns);
    let d = diff_against_kernel(&ns, ours.clone());
    assert!(d.is_empty(), "{d}");
    let d = diff_nexthops_against_kernel(&ns, ours.clone());
    assert!(d.is_empty(), "{d}");

    // Remove one route from ours: it is only in the kernel.
    let mut fewer = ours.clone();
    let i = fewer
        .iter()
        .position(|v| v["dst"] == "10.20.0.0/24" && v["gateway"] == "10.1.0.11")
        .unwrap();
    fewer.remove(i);
    let d = diff_against_kernel(&ns, fewer);
    assert_eq!((d.only_kernel.len(), d.only_ours.len()), (1, 0), "{d}");
    assert!(d.only_kernel[0].contains("10.1.0.11"));

    // Change the kernel behind ours' back: ours is stale.
    ns.ip("nexthop replace id 1 via 10.1.0.12 dev va");
    let d = diff_against_kernel(&ns, ours.clone());
    assert!(
        !d.is_empty(),
        "a nexthop replace changes the routes using it"
    );
    assert!(d.to_string().contains("10.30.0.0/24"), "{d}");
    let d = diff_nexthops_against_kernel(&ns, ours);
    assert_eq!((d.only_kernel.len(), d.only_ours.len()), (1, 1), "{d}");
}

#[test]
fn eventually_waits_and_then_gives_up_with_the_diff() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let stale = kernel_as_ours(&ns);
    ns.ip("route add 10.6.0.0/24 via 10.1.0.10");
    let fresh = kernel_as_ours(&ns);
    // Stale for the first calls, then fresh: passes.
    let mut calls = 0;
    eventually_matches_kernel(
        &ns,
        || {
            calls += 1;
            if calls < 3 {
                stale.clone()
            } else {
                fresh.clone()
            }
        },
        Duration::from_secs(10),
    );
    assert_eq!(calls, 3);
    // Always stale: panics with the missing route.
    let r = catch_unwind(AssertUnwindSafe(|| {
        eventually_matches_kernel(&ns, || stale.clone(), Duration::from_millis(600))
    }));
    let msg = r
        .expect_err("must give up")
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("still different"), "{msg}");
    assert!(msg.contains("only in the kernel (1)"), "{msg}");
    assert!(msg.contains("10.6.0.0/24"), "{msg}");
}
