//! Server-side filters: a filtered tail replays to exactly the kernel's
//! objects that the same filter keeps -- computed here from `ip -j` with
//! predicates of the test's own -- across churn that moves routes and
//! nexthop objects into and out of each filter, silent flushes included.

use std::time::Duration;

use routewatch_tests::ipjson::{devs, dst, field, gateway_within, is_within, metric, prefix};
use routewatch_tests::util::{poll, temp_path};
use routewatch_tests::{
    add_veth_pair, eventually_matches_kernel_filtered, run_show, Agent, Env, KernelFilter, Netns,
    Replay, Tail, CHECK_TIMEOUT, SYNC_TIMEOUT,
};
use serde_json::Value;

/// A filtered tail and the predicates that say what it must hold.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    routes: fn(&str, &Value) -> bool,
    nexthops: fn(&Value) -> bool,
}

fn none(_: &Value) -> bool {
    false
}

const CASES: &[Case] = &[
    Case {
        name: "BGP routes inside 10.50/16 and 2001:db8:50::/48",
        args: &[
            "--proto",
            "bgp",
            "--within",
            "10.50.0.0/16,2001:db8:50::/48",
        ],
        routes: |family, r| {
            field(r, "protocol") == "bgp"
                && (is_within(dst(r, family), prefix("10.50.0.0/16", "inet"))
                    || is_within(dst(r, family), prefix("2001:db8:50::/48", "inet6")))
        },
        nexthops: none,
    },
    Case {
        name: "everything but the kernel's routes in the local table",
        args: &["--not", "--table", "local", "--not", "--proto", "kernel"],
        routes: |_, r| !(field(r, "table") == "local" && field(r, "protocol") == "kernel"),
        nexthops: |_| true,
    },
    Case {
        name: "whatever goes out of vb",
        args: &["--dev", "vb"],
        routes: |_, r| devs(r).iter().any(|d| d == "vb"),
        nexthops: |n| field(n, "dev") == "vb",
    },
    Case {
        name: "gateways in 10.1.0.0/24 with metrics 100 to 200",
        args: &["--gateway-within", "10.1.0.0/24", "--metric", "100-200"],
        routes: |_, r| gateway_within(r, "10.1.0.0/24") && (100..=200).contains(&metric(r)),
        nexthops: none,
    },
    Case {
        name: "IPv4 routes that could carry 10.50.1.7",
        args: &["-4", "--contains", "10.50.1.7"],
        routes: |family, r| {
            family == "inet" && is_within(prefix("10.50.1.7", "inet"), dst(r, family))
        },
        nexthops: none,
    },
    Case {
        name: "blackholes and unreachables in table 1000, not static",
        args: &[
            "--type",
            "blackhole,unreachable",
            "--table",
            "1000",
            "--not",
            "--proto",
            "static",
        ],
        routes: |_, r| {
            matches!(field(r, "type"), "blackhole" | "unreachable")
                && field(r, "table") == "1000"
                && field(r, "protocol") != "static"
        },
        nexthops: none,
    },
    Case {
        name: "nexthop objects through 10.2.0.0/24",
        args: &["--object", "nexthop", "--gateway-within", "10.2.0.0/24"],
        routes: |_, _| false,
        nexthops: |n| gateway_within(n, "10.2.0.0/24"),
    },
];

fn tail_args<'a>(case: &Case, target: &'a str) -> Vec<&'a str> {
    let mut args = vec!["tail", "--insecure", "-o", "json", target];
    args.extend_from_slice(case.args);
    args
}

/// Every case's tail (and `show` with the same filter) holds exactly what
/// its predicates keep of the kernel's objects.
fn check(env: &Env, tails: &[(&Case, Tail)]) {
    env.check_all(CHECK_TIMEOUT);
    for (case, tail) in tails {
        let keep = KernelFilter {
            routes: &case.routes,
            nexthops: &case.nexthops,
        };
        eprintln!("checking: {}", case.name);
        eventually_matches_kernel_filtered(&env.ns, || tail.objects(), &keep, CHECK_TIMEOUT);
        let mut show = vec!["show", "--insecure", "-o", "json", env.agent.addr()];
        show.extend_from_slice(case.args);
        let shown = run_show(env.ns.name(), &show).unwrap_or_else(|e| panic!("{e}"));
        eventually_matches_kernel_filtered(&env.ns, || shown.clone(), &keep, Duration::ZERO);
    }
}

#[test]
fn filtered_tails_replay_to_the_kernel_s_objects_under_the_same_filter() {
    let env = Env::start();
    let tails: Vec<(&Case, Tail)> = CASES
        .iter()
        .map(|case| {
            let tail = Tail::with_args(&env.ns, &tail_args(case, env.agent.addr()));
            tail.wait_synced(SYNC_TIMEOUT);
            (case, tail)
        })
        .collect();
    check(&env, &tails);

    env.ns.ip_batch(
        "route add 10.50.1.0/24 via 10.1.0.10 proto bgp
route add 10.50.0.0/16 via 10.1.0.10 proto static metric 150
route add 10.60.0.0/16 via 10.2.0.10 proto bgp
route add 10.50.2.0/24 via 10.2.0.10 proto bgp metric 120
route add 2001:db8:50::/64 via 2001:db8:1::10 proto bgp
route add 2001:db8:50:1::/64 via 2001:db8:2::10 proto ospf metric 150
route add 2001:db8:51::/64 via 2001:db8:2::10 proto bgp
route add blackhole 10.70.0.0/24 table 1000 proto bgp
route add unreachable 10.70.1.0/24 table 1000 proto static
route add unreachable 10.70.3.0/24 table 1000 proto ospf
route add prohibit 10.70.2.0/24 table 1000
nexthop add id 1 via 10.1.0.10 dev va
nexthop add id 2 via 10.2.0.10 dev vb
nexthop add id 10 group 1/2
route add 10.50.3.0/24 nhid 1 proto bgp
route add 10.80.0.0/16 nhid 10 proto bgp metric 110
",
    );
    check(&env, &tails);

    // Moves: out of and into filters, by new keys and by new versions of
    // the same key (IPv6 routes keep their key across a protocol change;
    // routes through nexthop objects follow the objects).
    env.ns.ip_batch(
        "route replace 10.50.1.0/24 via 10.1.0.11 proto static
route replace 2001:db8:50::/64 via 2001:db8:1::10 proto static
route replace 2001:db8:50:1::/64 via 2001:db8:2::10 proto bgp metric 150
nexthop replace id 1 via 10.2.0.11 dev vb
nexthop replace id 2 via 10.1.0.12 dev va
route change 10.50.2.0/24 via 10.2.0.10 proto bgp metric 120 mtu 1400
route del 10.60.0.0/16
route del blackhole 10.70.0.0/24 table 1000
route replace unreachable 10.70.3.0/24 table 1000 proto static
",
    );
    check(&env, &tails);
    // Objects that left a filter under the same key arrived as deletes of
    // the version that matched.
    let deleted = |tail: &Tail, pred: &dyn Fn(&Value) -> bool| {
        tail.lines().iter().any(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_default();
            v["action"] == "delete" && pred(&v)
        })
    };
    assert!(
        deleted(&tails[0].1, &|v| v["dst"] == "2001:db8:50::/64"
            && v["protocol"] == "bgp"),
        "the IPv6 route that stopped being BGP\n{}",
        tails[0].1.report()
    );
    assert!(
        deleted(&tails[6].1, &|v| v["id"] == 2
            && v["gateway"] == "10.2.0.10"),
        "the nexthop object that moved out of 10.2.0.0/24\n{}",
        tails[6].1.report()
    );

    // The kernel's silent flush: vb's IPv4 routes and nexthop objects go
    // without a word; the agent finds out by re-reading the tables.
    env.ns.ip("link set vb down");
    check(&env, &tails);
    env.ns.ip("link set vb up");
    env.ns
        .ip("route add 10.50.4.0/24 via 10.2.0.10 proto bgp metric 130");
    env.ns.ip("nexthop add id 3 via 10.2.0.12 dev vb");
    check(&env, &tails);
}

#[test]
fn a_filtered_tail_in_process_holds_the_filtered_kernel() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let tail = Tail::with_args(&ns, &["tail", "-o", "json", "--proto", "bgp", "-6"]);
    tail.wait_synced(SYNC_TIMEOUT);
    ns.ip("-6 route add 2001:db8:60::/64 via 2001:db8:1::10 proto bgp");
    ns.ip("-6 route add 2001:db8:61::/64 via 2001:db8:1::10 proto static");
    ns.ip("route add 10.60.0.0/16 via 10.1.0.10 proto bgp");
    let keep = KernelFilter {
        routes: &|family, r| family == "inet6" && field(r, "protocol") == "bgp",
        nexthops: &none,
    };
    eventually_matches_kernel_filtered(&ns, || tail.objects(), &keep, CHECK_TIMEOUT);
    ns.ip("-6 route replace 2001:db8:60::/64 via 2001:db8:1::10 proto static");
    eventually_matches_kernel_filtered(&ns, || tail.objects(), &keep, CHECK_TIMEOUT);
}

#[test]
fn bad_filters_are_refused_naming_the_flag() {
    let ns = Netns::new();
    let agent = Agent::start(&ns);
    for (args, expected) in [
        (
            &["--within", "10.50.1.0/16"][..],
            "--within 10.50.1.0/16: host bits set (did you mean 10.50.0.0/16?)",
        ),
        // Names are the agent's host's: the agent refuses them, listing
        // the names it has.
        (
            &["--proto", "bgpp"],
            r#"allow[0].protocol "bgpp": expected a number (0-255) or one of"#,
        ),
        (
            &["--not", "--table", "mian"],
            r#"deny[0].table "mian": expected a number (0-4294967295) or one of unspec, default, main, local"#,
        ),
        (&["--proto", "300"], "--proto 300: out of range (0-255)"),
        (
            &["--metric", "200-100"],
            "--metric 200-100: the range ends below its start",
        ),
        (
            &["--family", "inet7"],
            "--family inet7: expected one of inet, inet6",
        ),
        (
            &["--proto", "bgp", "--not"],
            "--not must come right before a filter flag",
        ),
        (
            &["--allow", r#"{"within":["10.0.0.1/8"]}"#],
            r#"within "10.0.0.1/8": host bits set"#,
        ),
    ] {
        let mut full = vec!["show", "--insecure", agent.addr()];
        full.extend_from_slice(args);
        let out = ns.output(routewatch_tests::bins::client_bin(), &full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// `ip -batch` lines adding static blackholes 10.200.x.y/32, `n` of them.
fn static_churn(first: u32, n: u32) -> String {
    (first..first + n)
        .map(|i| {
            format!(
                "route add blackhole 10.200.{}.{}/32 proto static\n",
                i / 256,
                i % 256
            )
        })
        .collect()
}

/// The agent's current position, from `routewatch info`.
fn agent_seq(ns: &Netns, agent: &Agent) -> u64 {
    let info = run_show(
        ns.name(),
        &["info", "--insecure", "-o", "json", agent.addr()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    info[0]["seq"].as_u64().expect("seq")
}

#[test]
fn a_filtered_tail_s_cursor_moves_through_churn_its_filter_drops() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_with(&ns, &["--heartbeat-secs", "1"]);
    let cursors = temp_path("cursors.json");
    let cursor_arg = cursors.display().to_string();
    let args = [
        "tail",
        "--insecure",
        "-o",
        "json",
        "--cursor-file",
        &cursor_arg,
        "--proto",
        "bgp",
        agent.addr(),
    ];
    let first = Tail::with_args(&ns, &args);
    first.wait_synced(SYNC_TIMEOUT);
    ns.ip("route add 10.50.0.0/16 via 10.1.0.10 proto bgp");
    ns.ip_batch(&static_churn(0, 500));
    // Nothing of that passes the filter, yet heartbeats bring the position
    // to the tail, which keeps it in its cursor file.
    let seq = agent_seq(&ns, &agent);
    assert!(seq > 500, "{seq}");
    let saved = poll(Duration::from_secs(15), Duration::from_millis(100), || {
        let text = std::fs::read_to_string(&cursors).ok()?;
        let file: Value = serde_json::from_str(&text).ok()?;
        let saved = file["cursors"][agent.addr()]["seq"].as_u64()?;
        (saved == seq).then_some(file)
    });
    let saved = saved.unwrap_or_else(|| {
        panic!(
            "the cursor file never reached seq {seq}\n{}",
            first.report()
        )
    });
    assert_eq!(
        saved["filter"],
        serde_json::json!({"allow": [{"protocol": ["bgp"]}]})
    );
    assert!(first.stop(Duration::from_secs(10)).success());

    ns.ip_batch(&static_churn(500, 200));
    ns.ip("route add 10.51.0.0/16 via 10.1.0.10 proto bgp");
    let second = Tail::with_args(&ns, &args);
    let keep = KernelFilter {
        routes: &|_, r| field(r, "protocol") == "bgp",
        nexthops: &none,
    };
    let both = || {
        let lines: Vec<String> = first.lines().into_iter().chain(second.lines()).collect();
        Replay::from_lines(&lines)
    };
    eventually_matches_kernel_filtered(&ns, || both().objects(), &keep, CHECK_TIMEOUT);
    let replay = both();
    assert_eq!(
        replay.resyncs,
        0,
        "resumed without a resync\n{}",
        second.report()
    );
    assert_eq!(
        replay.syncs,
        1,
        "and without a second snapshot\n{}",
        second.report()
    );
    // A tail with other filters refuses the file.
    let other = ns.output(
        routewatch_tests::bins::client_bin(),
        &[
            "tail",
            "--insecure",
            "--cursor-file",
            &cursor_arg,
            "--proto",
            "ospf",
            agent.addr(),
        ],
    );
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{stderr}");
    assert!(stderr.contains("use the same filters"), "{stderr}");
    let _ = std::fs::remove_file(&cursors);
}

/// `ip -batch` lines for `n` /24 routes in 10.128.0.0/9 of table 1000,
/// alternately via 10.1.0.10 and 10.2.0.10.
fn alternating(verb: &str, n: u32) -> String {
    (0..n)
        .map(|i| {
            let via = if i % 2 == 0 { "10.1.0.10" } else { "10.2.0.10" };
            let (a, b) = (128 + i / 256, i % 256);
            format!("route {verb} 10.{a}.{b}.0/24 via {via} table 1000\n")
        })
        .collect()
}

#[test]
fn thousands_of_changes_through_a_filter_with_netlink_overflows() {
    // A tiny receive buffer: the kernel drops notifications (ENOBUFS) and
    // the agent reconciles; the filter applies to those changes too.
    let env = Env::start_with(&["--netlink-rcvbuf", "4096"]);
    let args = [
        "tail",
        "--insecure",
        "-o",
        "json",
        env.agent.addr(),
        "--gateway-within",
        "10.2.0.0/24",
        "--table",
        "1000",
    ];
    let tail = Tail::with_args(&env.ns, &args);
    tail.wait_synced(SYNC_TIMEOUT);
    let keep = KernelFilter {
        routes: &|_, r| gateway_within(r, "10.2.0.0/24") && field(r, "table") == "1000",
        nexthops: &none,
    };
    let settle = Duration::from_secs(120);
    env.ns.ip_batch(&alternating("add", 10_000));
    eventually_matches_kernel_filtered(&env.ns, || tail.objects(), &keep, settle);
    env.ns.ip_batch(&alternating("del", 10_000));
    env.ns
        .ip("route add 10.127.0.0/24 via 10.2.0.10 table 1000");
    eventually_matches_kernel_filtered(&env.ns, || tail.objects(), &keep, settle);
}
