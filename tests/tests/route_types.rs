//! Every route type, tables above 255, metrics and other attributes: each
//! added, checked against the kernel through `routewatch show` and a
//! long-running tail, then removed and checked again.

use std::time::Duration;

use routewatch_tests::Env;

/// Runs every line as `ip` arguments.
fn ip_all(env: &Env, cmds: &[&str]) {
    for c in cmds {
        env.ns.ip(c);
    }
}

#[test]
fn ipv4_route_types() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "route add 10.50.0.0/24 via 10.1.0.10",
            "route add 10.50.1.0/24 dev va",
            "route add 10.50.2.0/24 dev vb scope link",
            "route add local 10.50.3.1 dev va",
            "route add local 10.50.3.0/24 dev va table 1000",
            "route add broadcast 10.50.4.255 dev va table local",
            "route add broadcast 10.50.5.255 dev vb table 1000",
            "route add multicast 224.1.0.0/16 dev va",
            "route add anycast 10.50.6.0/24 dev va",
            "route add blackhole 10.50.7.0/24",
            "route add unreachable 10.50.8.0/24",
            "route add prohibit 10.50.9.0/24",
            "route add throw 10.50.10.0/24 table 1000",
            "route add default via 10.1.0.254",
        ],
    );
    env.check();
    ip_all(
        &env,
        &[
            "route del 10.50.0.0/24",
            "route del local 10.50.3.1 dev va",
            "route del broadcast 10.50.5.255 dev vb table 1000",
            "route del multicast 224.1.0.0/16 dev va",
            "route del anycast 10.50.6.0/24 dev va",
            "route del blackhole 10.50.7.0/24",
            "route del prohibit 10.50.9.0/24",
            "route del throw 10.50.10.0/24 table 1000",
            "route del default",
        ],
    );
    env.check();
}

#[test]
fn ipv6_route_types() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "-6 route add 2001:db8:50::/64 via 2001:db8:1::10",
            "-6 route add 2001:db8:51::/64 dev vb",
            "-6 route add local 2001:db8:52::1 dev va",
            "-6 route add local 2001:db8:52::/64 dev va table 1000",
            "-6 route add multicast ff3e::/32 dev va table 1000",
            "-6 route add anycast 2001:db8:53::/64 dev va",
            "-6 route add blackhole 2001:db8:54::/64",
            "-6 route add unreachable 2001:db8:55::/64",
            "-6 route add prohibit 2001:db8:56::/64",
            "-6 route add throw 2001:db8:57::/64 table 1000",
            "-6 route add default via 2001:db8:1::fe",
        ],
    );
    env.check();
    ip_all(
        &env,
        &[
            "-6 route del 2001:db8:50::/64",
            "-6 route del local 2001:db8:52::1 dev va",
            "-6 route del multicast ff3e::/32 dev va table 1000",
            "-6 route del anycast 2001:db8:53::/64 dev va",
            "-6 route del blackhole 2001:db8:54::/64",
            "-6 route del unreachable 2001:db8:55::/64",
            "-6 route del throw 2001:db8:57::/64 table 1000",
            "-6 route del default",
        ],
    );
    env.check();
}

/// `nat` routes: Linux has refused to create them since 2.6 ("Invalid
/// scope"). If a kernel accepts one, it must be mirrored like any other.
#[test]
fn nat_route_is_refused_or_mirrored() {
    let env = Env::start();
    match env.ns.try_ip("route add nat 10.51.0.0/24 via 10.1.0.10") {
        Err(e) => {
            assert!(
                e.contains("Invalid scope"),
                "the kernel refused the nat route for an unexpected reason: {e}"
            );
            eprintln!("note: this kernel refuses nat routes ({e}); nothing to mirror");
        }
        Ok(_) => eprintln!("note: this kernel accepted a nat route; checking it is mirrored"),
    }
    env.check();
}

#[test]
fn tables_above_255() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "route add 10.52.0.0/24 via 10.1.0.10 table 1000",
            "route add 10.52.1.0/24 via 10.1.0.10 table 100000",
            "route add blackhole 10.52.2.0/24 table 100000",
            "route add 10.52.3.0/24 via 10.1.0.10 table 4294967294",
            "-6 route add 2001:db8:52::/64 via 2001:db8:1::10 table 1000",
            "-6 route add 2001:db8:52:1::/64 via 2001:db8:1::10 table 100000",
            "-6 route add unreachable 2001:db8:52:2::/64 table 100000",
            // Same prefix in several tables: distinct routes.
            "route add 10.52.9.0/24 via 10.1.0.10",
            "route add 10.52.9.0/24 via 10.1.0.10 table 1000",
            "route add 10.52.9.0/24 via 10.1.0.10 table 100000",
        ],
    );
    env.check();
    ip_all(
        &env,
        &[
            "route del 10.52.9.0/24 table 100000",
            "route del 10.52.1.0/24 table 100000",
            "-6 route del 2001:db8:52:1::/64 table 100000",
            "route del 10.52.3.0/24 table 4294967294",
        ],
    );
    env.check();
    // Flushing a whole table.
    env.ns.ip("route flush table 1000");
    env.check();
}

#[test]
fn metrics_mtu_advmss() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "route add 10.53.0.0/24 via 10.1.0.10 mtu 1400 advmss 1300",
            "route add 10.53.1.0/24 via 10.1.0.10 mtu lock 1280 table 1000",
            "-6 route add 2001:db8:53::/64 via 2001:db8:1::10 mtu 1400 advmss 1300 hoplimit 10",
        ],
    );
    env.check();
    ip_all(
        &env,
        &[
            "route change 10.53.0.0/24 via 10.1.0.10 mtu 1500",
            "-6 route change 2001:db8:53::/64 via 2001:db8:1::10 mtu 1280",
            "route del 10.53.1.0/24 table 1000",
        ],
    );
    env.check();
}

/// The other RTAX_* metrics, each printed by `ip` in its own unit (rtt in
/// ms from 1/8 ms, rttvar from 1/4 ms, features by name, congctl by name).
#[test]
fn metrics_other() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "route add 10.53.2.0/24 via 10.1.0.10 window 65535 ssthresh 10 cwnd 20 initcwnd 10 initrwnd 20 quickack 1 fastopen_no_cookie 1 reordering 5 hoplimit 30",
            "route add 10.53.3.0/24 via 10.1.0.10 rtt 100ms rttvar 50ms rto_min 200ms",
            "route add 10.53.4.0/24 via 10.1.0.10 features ecn",
            "route add 10.53.5.0/24 via 10.1.0.10 congctl lock reno",
        ],
    );
    env.check();
}

#[test]
fn other_attributes() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "route add 10.54.0.0/24 via 10.1.0.10 tos 0x10",
            "route add 10.54.0.0/24 via 10.1.0.11 metric 50",
            "route add 10.54.1.0/24 via 10.1.0.10 proto static src 10.1.0.1",
            "route add 10.54.2.0/24 via 10.1.0.10 proto 186",
            "route add 10.54.3.0/24 via 10.9.9.9 dev va onlink",
            "route add 10.54.4.0/24 dev va scope host",
            "-6 route add 2001:db8:54::/64 via 2001:db8:1::10 pref high metric 5",
            "-6 route add 2001:db8:54:1::/64 via 2001:db8:1::10 pref low proto static",
            "-6 route add 2001:db8:54:2::/64 from 2001:db8:99::/64 via 2001:db8:1::10",
            "-6 route add 2001:db8:54:3::/64 via 2001:db8:1::10 src 2001:db8:1::1",
        ],
    );
    env.check();
    ip_all(
        &env,
        &[
            "route del 10.54.0.0/24 tos 0x10",
            "-6 route del 2001:db8:54:2::/64 from 2001:db8:99::/64",
        ],
    );
    env.check();
}

/// IPv4 realms (RTA_FLOW), printed by `ip` as `flow`.
#[test]
fn realms() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "route add 10.55.0.0/24 via 10.1.0.10 realm 5",
            "route add 10.55.1.0/24 via 10.1.0.10 realms 3/4",
        ],
    );
    env.check();
}

/// `expires` is a countdown: ours must be within a few seconds of the
/// kernel's, so this checks right after adding the route.
#[test]
fn ipv6_expires() {
    let env = Env::start();
    env.ns
        .ip("-6 route add 2001:db8:55::/64 via 2001:db8:1::10 expires 3600");
    env.ns
        .ip("-6 route add 2001:db8:55:1::/64 via 2001:db8:1::10");
    env.check_routes(Duration::from_secs(4));
    env.ns.ip("-6 route del 2001:db8:55::/64");
    env.check();
}
