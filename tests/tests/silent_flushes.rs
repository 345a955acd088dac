//! The kernel's silent changes: routes flushed or flagged without any route
//! notification when a link goes down, loses its carrier or is deleted, or
//! when an IPv4 address that routes use as prefsrc is removed.

use routewatch_tests::{Env, CHECK_TIMEOUT};

/// Routes of every kind through `va` and `vb` (no nexthop objects: those
/// are covered separately so that a nexthop problem does not hide a flush
/// problem).
fn populate(env: &Env) {
    for c in [
        "route add 10.90.0.0/24 via 10.1.0.10",
        "route add 10.90.1.0/24 dev va",
        "route add 10.90.2.0/24 via 10.1.0.10 table 1000",
        "route add 10.90.3.0/24 via 10.2.0.10",
        "route add 10.90.4.0/24 nexthop via 10.1.0.10 nexthop via 10.2.0.10",
        "route add 10.90.5.0/24 via 10.2.0.10 src 10.1.0.1",
        "route add broadcast 10.90.6.255 dev va table 1000",
        "route add local 10.90.7.1 dev va table 1000",
        "route add blackhole 10.90.8.0/24",
        "-6 route add 2001:db8:90::/64 via 2001:db8:1::10",
        "-6 route add 2001:db8:90:1::/64 dev va table 1000",
        "-6 route add 2001:db8:90:2::/64 via 2001:db8:2::10",
        "-6 route add 2001:db8:90:3::/64 nexthop via 2001:db8:1::10 nexthop via 2001:db8:2::10",
    ] {
        env.ns.ip(c);
    }
}

/// Nexthop objects on `va` and `vb` and routes using them.
fn populate_nexthops(env: &Env) {
    for c in [
        "nexthop add id 1 via 10.1.0.10 dev va",
        "nexthop add id 2 via 10.2.0.10 dev vb",
        "nexthop add id 10 group 1/2",
        "route add 10.90.10.0/24 nhid 1",
        "route add 10.90.11.0/24 nhid 10",
        "-6 nexthop add id 5 via 2001:db8:1::10 dev va",
        "-6 route add 2001:db8:90:5::/64 nhid 5",
    ] {
        env.ns.ip(c);
    }
}

#[test]
fn link_down_and_up() {
    let env = Env::start();
    populate(&env);
    env.check_all(CHECK_TIMEOUT);
    env.ns.ip("link set va down");
    env.check_all(CHECK_TIMEOUT);
    env.ns.ip("link set va up");
    env.check_all(CHECK_TIMEOUT);
    // Routes added again after the flush are seen too.
    env.ns.ip("route add 10.90.0.0/24 via 10.1.0.10");
    env.check_all(CHECK_TIMEOUT);
}

#[test]
fn carrier_loss_on_the_veth_peer() {
    let env = Env::start();
    populate(&env);
    env.check_all(CHECK_TIMEOUT);
    // vb down: va keeps its routes but they are flagged "linkdown", and the
    // nexthop objects on va are flushed; none of it is notified as a route
    // change.
    env.ns.ip("link set vb down");
    env.check_all(CHECK_TIMEOUT);
    // Carrier back: the flags clear, again silently.
    env.ns.ip("link set vb up");
    env.check_all(CHECK_TIMEOUT);
}

#[test]
fn link_delete() {
    let env = Env::start();
    populate(&env);
    env.ns.ip("link add vc type veth peer name vd");
    env.ns.ip("addr add 10.3.0.1/24 dev vc");
    env.ns.ip("-6 addr add 2001:db8:3::1/64 dev vc nodad");
    env.ns.ip("link set vc up");
    env.ns.ip("link set vd up");
    env.ns.ip("route add 10.91.0.0/24 via 10.3.0.10");
    env.ns.ip("route add 10.91.1.0/24 dev vc table 1000");
    env.ns
        .ip("route add 10.91.2.0/24 nexthop via 10.3.0.10 nexthop via 10.1.0.10");
    env.ns
        .ip("-6 route add 2001:db8:91::/64 via 2001:db8:3::10");
    env.check();
    // Deleting vc deletes its peer vd as well.
    env.ns.ip("link del vc");
    env.check();
    // The remaining pair is untouched and still followed.
    env.ns.ip("link del va");
    env.check();
}

#[test]
fn ipv4_address_removal_flushes_prefsrc_routes() {
    let env = Env::start();
    populate(&env);
    env.ns.ip("addr add 10.1.0.5/24 dev va");
    env.ns.ip("addr add 10.4.0.1/24 dev vb");
    env.ns
        .ip("route add 10.92.0.0/24 via 10.2.0.10 src 10.4.0.1");
    env.ns
        .ip("route add 10.92.1.0/24 via 10.1.0.10 src 10.4.0.1 table 1000");
    env.ns
        .ip("route add 10.92.2.0/24 via 10.1.0.10 src 10.1.0.5");
    env.check_all(CHECK_TIMEOUT);
    // Routes with prefsrc 10.4.0.1 on other devices vanish without a
    // notification.
    env.ns.ip("addr del 10.4.0.1/24 dev vb");
    env.check_all(CHECK_TIMEOUT);
    // Removing the primary address promotes or deletes secondaries.
    env.ns.ip("addr del 10.1.0.1/24 dev va");
    env.check_all(CHECK_TIMEOUT);
    env.ns.ip("addr flush dev va");
    env.check_all(CHECK_TIMEOUT);
}

#[test]
fn ipv6_address_removal() {
    let env = Env::start();
    populate(&env);
    env.ns
        .ip("-6 route add 2001:db8:93::/64 via 2001:db8:2::10 src 2001:db8:1::1");
    env.check_all(CHECK_TIMEOUT);
    env.ns.ip("-6 addr del 2001:db8:1::1/64 dev va");
    env.check_all(CHECK_TIMEOUT);
}

#[test]
fn nexthop_objects_through_link_down_carrier_loss_and_delete() {
    let env = Env::start();
    populate(&env);
    populate_nexthops(&env);
    env.ns.ip("link add vc type veth peer name vd");
    env.ns.ip("addr add 10.3.0.1/24 dev vc");
    env.ns.ip("link set vc up");
    env.ns.ip("link set vd up");
    env.ns.ip("nexthop add id 20 via 10.3.0.10 dev vc");
    env.ns.ip("nexthop add id 21 group 20/1");
    env.ns.ip("route add 10.91.3.0/24 nhid 20");
    env.ns.ip("route add 10.91.4.0/24 nhid 21");
    env.check_all(CHECK_TIMEOUT);
    // Carrier loss on va flushes the nexthop objects on va.
    env.ns.ip("link set vb down");
    env.check_all(CHECK_TIMEOUT);
    env.ns.ip("link set vb up");
    env.ns.ip("nexthop add id 1 via 10.1.0.10 dev va");
    env.ns.ip("route add 10.90.10.0/24 nhid 1");
    env.check_all(CHECK_TIMEOUT);
    // Admin down.
    env.ns.ip("link set va down");
    env.check_all(CHECK_TIMEOUT);
    // Deleting a device deletes its nexthops, shrinks groups and drops the
    // routes using them.
    env.ns.ip("link del vc");
    env.check_all(CHECK_TIMEOUT);
}
