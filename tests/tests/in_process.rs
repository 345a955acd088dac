//! `routewatch show` and `routewatch tail` without a target run the
//! pipeline in the client process, on the namespace they run in.

use routewatch_tests::{
    add_veth_pair, assert_matches_kernel, assert_nexthops_match_kernel,
    eventually_all_match_kernel, show_in_process, Netns, Tail, CHECK_TIMEOUT, SYNC_TIMEOUT,
};

fn populate(ns: &Netns) {
    for c in [
        "route add 10.100.0.0/24 via 10.1.0.10",
        "route add 10.100.1.0/24 via 10.1.0.10 table 100000 mtu 1400 advmss 1300",
        "route append 10.100.2.0/24 via 10.1.0.10",
        "route append 10.100.2.0/24 via 10.1.0.11",
        "route add blackhole 10.100.3.0/24",
        "route add throw 10.100.4.0/24 table 1000",
        "nexthop add id 1 via 10.1.0.10 dev va",
        "nexthop add id 2 via 10.2.0.10 dev vb",
        "nexthop add id 10 group 1/2",
        "route add 10.100.5.0/24 nhid 10",
        "-6 route append 2001:db8:100::/64 via 2001:db8:1::10",
        "-6 route append 2001:db8:100::/64 via 2001:db8:2::10",
        "-6 route add prohibit 2001:db8:100:1::/64",
    ] {
        ns.ip(c);
    }
}

#[test]
fn show_without_target_equals_kernel() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    populate(&ns);
    let ours = show_in_process(&ns);
    assert_matches_kernel(&ns, ours.clone());
    assert_nexthops_match_kernel(&ns, ours);
    // A fresh run after silent changes.
    ns.ip("nexthop replace id 1 via 10.1.0.12 dev va");
    ns.ip("link set vb down");
    let ours = show_in_process(&ns);
    assert_matches_kernel(&ns, ours.clone());
    assert_nexthops_match_kernel(&ns, ours);
}

#[test]
fn tail_without_target_follows_changes() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let tail = Tail::in_process(&ns);
    tail.wait_synced(SYNC_TIMEOUT);
    eventually_all_match_kernel(&ns, || tail.objects(), CHECK_TIMEOUT);
    populate(&ns);
    eventually_all_match_kernel(&ns, || tail.objects(), CHECK_TIMEOUT);
    ns.ip("-6 route del 2001:db8:100::/64 via 2001:db8:2::10");
    ns.ip("route del 10.100.2.0/24 via 10.1.0.10");
    ns.ip("nexthop replace id 2 via 10.2.0.11 dev vb");
    eventually_all_match_kernel(&ns, || tail.objects(), CHECK_TIMEOUT);
    ns.ip("link set va down");
    eventually_all_match_kernel(&ns, || tail.objects(), CHECK_TIMEOUT);
}
