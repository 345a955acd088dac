//! Lightweight-tunnel encapsulations (`encap ip`, `encap ip6`) on routes,
//! on each path of multipath routes and on nexthop objects: added,
//! replaced, appended and deleted, and after each step `routewatch show`
//! and a long-running tail hold exactly what `ip -j -d route show table
//! all` says (its flat encapsulation fields nested, see
//! `routewatch_tests::flat_encap`). The text output is compared with
//! `ip route show` word for word.

use std::process::{Command, Stdio};

use routewatch_tests::bins::client_bin;
use routewatch_tests::compare::{kind, Kind};
use routewatch_tests::ops::scrape;
use routewatch_tests::{Env, CHECK_TIMEOUT};
use serde_json::Value;

const OPS: &str = "127.0.0.1:9464";

fn ip_all(env: &Env, cmds: &[&str]) {
    for c in cmds {
        env.ns.ip(c);
    }
}

/// Our routes to `dst` (as `ip -j` spells it).
fn routes(env: &Env, dst: &str) -> Vec<Value> {
    env.agent
        .show()
        .into_iter()
        .filter(|v| kind(v) == Kind::Route && v["dst"] == dst)
        .collect()
}

fn one_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `routewatch show -o text`'s line for `dst` equals `ip ARGS route show
/// DST` (whose lines, tabs and doubled spaces are made single spaces).
fn assert_text_like_ip(env: &Env, family: &str, dst: &str) {
    let ip = one_space(&env.ns.ip(&format!("{family} route show {dst}")));
    let deadline = std::time::Instant::now() + CHECK_TIMEOUT;
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", env.ns.name()])
            .arg(client_bin())
            .args(["show", "-o", "text", "--insecure", env.agent.addr()])
            .stdin(Stdio::null())
            .output()
            .expect("runs routewatch show");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let ours: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{dst} ")))
            .collect();
        if ours == [ip.as_str()] {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "routewatch show -o text: {ours:?}\nip route show: {ip:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn ipv4_encap_ip_add_replace_append_delete() {
    let env = Env::start_with(&["--ops-listen", OPS]);
    ip_all(
        &env,
        &[
            "route add 10.60.0.0/24 encap ip id 5 dst 192.0.2.9 dev va",
            "route add 10.60.1.0/24 encap ip id 6 src 10.1.0.1 dst 192.0.2.9 ttl 64 tos 0x10 key csum seq via 10.1.0.10 dev va",
            "route add 10.60.2.0/24 encap ip6 id 7 src 2001:db8:1::1 dst 2001:db8::7 hoplimit 3 tc 0x20 via 10.1.0.11 dev va",
            "route add 10.60.3.0/24 encap ip id 8 dst 192.0.2.8 dev vb table 1000 metric 7",
        ],
    );
    env.check();
    let r = routes(&env, "10.60.1.0/24");
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0]["encap"]["dst"], "192.0.2.9", "{r:#?}");
    assert_eq!(r[0]["dst"], "10.60.1.0/24", "the route's own dst stays");
    assert_text_like_ip(&env, "-4", "10.60.1.0/24");

    // Replace changes only the encapsulation.
    env.ns
        .ip("route replace 10.60.0.0/24 encap ip id 50 dst 192.0.2.10 ttl 9 dev va");
    env.check();
    assert_eq!(routes(&env, "10.60.0.0/24")[0]["encap"]["id"], 50);

    // A route differing only by its encapsulation is a second route.
    env.ns
        .ip("route append 10.60.0.0/24 encap ip id 51 dst 192.0.2.11 dev va");
    env.ns.ip("route append 10.60.0.0/24 dev va");
    env.check();
    assert_eq!(routes(&env, "10.60.0.0/24").len(), 3);

    // Deletes name the exact one, encapsulation included.
    env.ns
        .ip("route del 10.60.0.0/24 encap ip id 51 dst 192.0.2.11 dev va");
    env.check();
    let left: Vec<Value> = routes(&env, "10.60.0.0/24")
        .iter()
        .map(|r| r["encap"]["id"].clone())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&Value::from(51)), "{left:?}");

    ip_all(
        &env,
        &[
            "route del 10.60.1.0/24",
            "route del 10.60.3.0/24 table 1000",
        ],
    );
    env.check();

    // Everything the kernel sent was decoded.
    let e = scrape(&env.ns, OPS);
    for object in ["route", "nexthop"] {
        assert_eq!(
            e.value("routewatch_unknown_attributes_total", &[("object", object)]),
            Some(0.0),
            "{object}"
        );
    }
}

#[test]
fn ipv6_encap_ip6_add_replace_delete() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "-6 route add 2001:db8:60::/64 encap ip6 id 9 src 2001:db8:1::1 dst 2001:db8::9 hoplimit 10 tc 0x20 dev va",
            "-6 route add 2001:db8:61::/64 encap ip id 10 dst 192.0.2.10 ttl 5 tos 0x8 via 2001:db8:1::10 dev va",
            "-6 route add 2001:db8:62::/64 encap ip6 id 11 dst 2001:db8::11 key seq dev vb metric 5",
        ],
    );
    env.check();
    assert_text_like_ip(&env, "-6", "2001:db8:60::/64");

    env.ns
        .ip("-6 route replace 2001:db8:60::/64 encap ip6 id 90 dst 2001:db8::90 hoplimit 1 dev va");
    env.check();
    assert_eq!(routes(&env, "2001:db8:60::/64")[0]["encap"]["id"], 90);

    // Device routes differing only by encapsulation are two routes.
    env.ns
        .ip("-6 route append 2001:db8:62::/64 encap ip6 id 12 dst 2001:db8::12 dev vb metric 5");
    env.ns
        .ip("-6 route append 2001:db8:62::/64 dev vb metric 5");
    env.check();
    assert_eq!(routes(&env, "2001:db8:62::/64").len(), 3);

    env.ns
        .ip("-6 route del 2001:db8:62::/64 encap ip6 id 12 dst 2001:db8::12 dev vb metric 5");
    env.check();
    assert_eq!(routes(&env, "2001:db8:62::/64").len(), 2);

    ip_all(
        &env,
        &[
            "-6 route del 2001:db8:60::/64",
            "-6 route del 2001:db8:61::/64",
        ],
    );
    env.check();
}

#[test]
fn multipath_with_an_encapsulation_per_path() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "route add 10.61.0.0/24 nexthop via 10.1.0.10 dev va encap ip id 7 dst 192.0.2.7 \
             nexthop via 10.1.0.11 dev va encap ip6 id 8 dst 2001:db8::8 hoplimit 5 tc 3 \
             nexthop via 10.2.0.10 dev vb",
            "-6 route add 2001:db8:63::/64 nexthop via 2001:db8:1::10 dev va encap ip6 id 10 dst 2001:db8::10 \
             nexthop via 2001:db8:1::11 dev va encap ip id 11 dst 192.0.2.11 ttl 2",
        ],
    );
    env.check();
    assert_text_like_ip(&env, "-4", "10.61.0.0/24");
    assert_text_like_ip(&env, "-6", "2001:db8:63::/64");

    // IPv6 merges a path through the same gateway that differs only by its
    // encapsulation into the route. A delete matches gateway and device
    // only (measured on 6.18): it removes the first such path, whatever
    // encapsulation it names.
    let p = "2001:db8:63::/64";
    env.ns.ip(&format!(
        "-6 route append {p} encap ip6 id 12 dst 2001:db8::12 via 2001:db8:1::10 dev va"
    ));
    env.check();
    let r = routes(&env, p);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0]["nexthops"].as_array().map(Vec::len), Some(3), "{r:#?}");
    env.ns.ip(&format!(
        "-6 route del {p} encap ip6 id 12 dst 2001:db8::12 via 2001:db8:1::10 dev va"
    ));
    env.check();
    let r = routes(&env, p);
    let ids: Vec<Value> = r[0]["nexthops"]
        .as_array()
        .expect("multipath")
        .iter()
        .map(|h| h["encap"]["id"].clone())
        .collect();
    assert_eq!(ids, vec![Value::from(11), Value::from(12)]);

    // Down to one path: the survivor's encapsulation moves to the route.
    env.ns
        .ip(&format!("-6 route del {p} via 2001:db8:1::10 dev va"));
    env.check();
    assert_eq!(routes(&env, p)[0]["encap"]["id"], 11);

    // IPv4: the same paths with other encapsulations are another route.
    env.ns.ip(
        "route append 10.61.0.0/24 nexthop via 10.1.0.10 dev va encap ip id 70 dst 192.0.2.70 \
         nexthop via 10.1.0.11 dev va",
    );
    env.check();
    assert_eq!(routes(&env, "10.61.0.0/24").len(), 2);
    ip_all(&env, &["route del 10.61.0.0/24", "route del 10.61.0.0/24"]);
    env.check();
}

#[test]
fn nexthop_objects_with_an_encapsulation() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            "nexthop add id 5 encap ip id 5 dst 192.0.2.9 dev va",
            "nexthop add id 6 encap ip6 id 6 dst 2001:db8::6 hoplimit 3 via 10.1.0.10 dev va",
            "nexthop add id 7 via 10.1.0.11 dev va",
            "nexthop add id 8 group 6/7",
            "route add 10.62.0.0/24 nhid 5",
            "route add 10.62.1.0/24 nhid 8",
            "-6 nexthop add id 9 encap ip6 id 9 dst 2001:db8::9 via 2001:db8:1::10 dev va",
            "-6 route add 2001:db8:64::/64 nhid 9",
        ],
    );
    env.check_all(CHECK_TIMEOUT);
    assert_text_like_ip(&env, "-4", "10.62.0.0/24");

    // A new encapsulation on the object changes what its routes do, with
    // no route message of their own for the group's route.
    env.ns
        .ip("nexthop replace id 6 encap ip6 id 60 dst 2001:db8::60 via 10.1.0.10 dev va");
    env.ns
        .ip("nexthop replace id 5 encap ip id 50 dst 192.0.2.50 dev va");
    env.check_all(CHECK_TIMEOUT);
    assert_eq!(routes(&env, "10.62.0.0/24")[0]["encap"]["id"], 50);

    ip_all(&env, &["route del 10.62.1.0/24", "nexthop del id 8"]);
    env.check_all(CHECK_TIMEOUT);
}

#[test]
fn attributes_the_api_has_no_field_for_are_shown_not_dropped() {
    let env = Env::start_with(&["--ops-listen", OPS]);
    // RTA_VIA (18): struct rtvia { AF_INET6 (10, host order), address }.
    env.ns
        .ip("route add 10.63.0.0/24 via inet6 2001:db8:1::10 dev va");
    let want = serde_json::json!([{"type": 18, "hex": "0a0020010db8000100000000000000000010"}]);
    let found =
        routewatch_tests::util::poll(CHECK_TIMEOUT, std::time::Duration::from_millis(250), || {
            routes(&env, "10.63.0.0/24")
                .first()
                .filter(|r| r["unknown"] == want)
                .cloned()
        });
    assert!(found.is_some(), "{:#?}", routes(&env, "10.63.0.0/24"));
    let e = scrape(&env.ns, OPS);
    assert!(
        e.value(
            "routewatch_unknown_attributes_total",
            &[("object", "route")]
        ) >= Some(1.0),
        "{e:?}"
    );
}

#[test]
fn link_down_deletes_each_encapsulated_path() {
    let env = Env::start();
    ip_all(
        &env,
        &[
            // IPv6 announces the loss of these one path at a time, each
            // with its own encapsulation.
            "-6 route add 2001:db8:65::/64 nexthop via 2001:db8:1::10 dev va encap ip6 id 1 dst 2001:db8::1 \
             nexthop via 2001:db8:1::10 dev va encap ip6 id 2 dst 2001:db8::2 \
             nexthop via 2001:db8:2::10 dev vb encap ip id 3 dst 192.0.2.3",
            "route add 10.64.0.0/24 encap ip id 4 dst 192.0.2.4 dev va",
        ],
    );
    env.check();
    env.ns.ip("link set va down");
    env.check();
    env.ns.ip("link set va up");
    env.check();
}
