//! Nexthop objects and groups, routes using them (`nhid`), and changes of
//! the objects that the routes must follow although the kernel sends no
//! route notification for them.

use routewatch_tests::{Env, CHECK_TIMEOUT};

fn setup(env: &Env) {
    for c in [
        "nexthop add id 1 via 10.1.0.10 dev va",
        "nexthop add id 2 via 10.2.0.10 dev vb",
        "nexthop add id 3 via 10.1.0.12 dev va",
        "nexthop add id 4 blackhole",
        "-6 nexthop add id 5 via 2001:db8:1::10 dev va",
        "-6 nexthop add id 6 via 2001:db8:2::10 dev vb",
        "nexthop add id 10 group 1/2,3",
        "nexthop add id 11 group 1,2/3,4",
        "nexthop add id 12 group 5/6",
        "route add 10.80.0.0/24 nhid 10",
        "route add 10.80.1.0/24 nhid 1",
        "route add 10.80.2.0/24 nhid 4",
        "route add 10.80.3.0/24 nhid 11 table 1000",
        "-6 route add 2001:db8:80::/64 nhid 5",
        "-6 route add 2001:db8:80:1::/64 nhid 12",
    ] {
        env.ns.ip(c);
    }
}

#[test]
fn nexthop_objects_groups_and_routes() {
    let env = Env::start();
    setup(&env);
    env.check_all(CHECK_TIMEOUT);
}

#[test]
fn routes_follow_nexthop_replace() {
    let env = Env::start();
    setup(&env);
    env.check_all(CHECK_TIMEOUT);
    // A member of groups 10 and 11, and the target of 10.80.1.0/24.
    env.ns.ip("nexthop replace id 1 via 10.1.0.11 dev va");
    env.check_all(CHECK_TIMEOUT);
    // Move a member to the other device.
    env.ns.ip("nexthop replace id 2 via 10.1.0.20 dev va");
    env.ns
        .ip("-6 nexthop replace id 6 via 2001:db8:1::20 dev va");
    env.check_all(CHECK_TIMEOUT);
    // Replace a group's membership and weights.
    env.ns.ip("nexthop replace id 10 group 2,5/3");
    env.ns.ip("nexthop replace id 11 group 3");
    env.check_all(CHECK_TIMEOUT);
}

#[test]
fn routes_follow_nexthop_delete() {
    let env = Env::start();
    setup(&env);
    env.check_all(CHECK_TIMEOUT);
    // Deleting a member shrinks the groups; the route using it directly
    // goes away.
    env.ns.ip("nexthop del id 1");
    env.check_all(CHECK_TIMEOUT);
    env.ns.ip("-6 nexthop del id 6");
    env.check_all(CHECK_TIMEOUT);
    // Deleting a group deletes its routes.
    env.ns.ip("nexthop del id 11");
    env.check_all(CHECK_TIMEOUT);
    // Deleting the last member of a group deletes the group and its routes.
    env.ns.ip("nexthop del id 2");
    env.check_all(CHECK_TIMEOUT);
    env.ns.ip("nexthop flush");
    env.check_all(CHECK_TIMEOUT);
}

#[test]
fn route_moves_between_nexthops() {
    let env = Env::start();
    setup(&env);
    env.ns.ip("route replace 10.80.1.0/24 nhid 10");
    env.ns.ip("route replace 10.80.0.0/24 via 10.1.0.30");
    env.ns.ip("-6 route replace 2001:db8:80::/64 nhid 12");
    env.check_all(CHECK_TIMEOUT);
    env.ns.ip("route replace 10.80.0.0/24 nhid 3");
    env.check_all(CHECK_TIMEOUT);
}
