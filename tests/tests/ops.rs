//! The agent's ops port (`--ops-listen`): `/metrics` is well-formed
//! OpenMetrics whose counters follow what the agent does, and `/healthz`
//! and `/readyz` answer as probes expect.

use std::time::Duration;

use routewatch_tests::compare::kernel_routes;
use routewatch_tests::openmetrics::Exposition;
use routewatch_tests::ops::{http_get, scrape};
use routewatch_tests::util::poll;
use routewatch_tests::{
    blackholes, Agent, Env, Netns, StreamCheck, Tail, CHECK_TIMEOUT, SYNC_TIMEOUT,
};

const OPS: &str = "127.0.0.1:9464";

/// Every metric family the agent exports.
const FAMILIES: [&str; 32] = [
    "routewatch_build",
    "routewatch_events",
    "routewatch_resyncs",
    "routewatch_dumps",
    "routewatch_netlink_enobufs",
    "routewatch_netlink_truncated",
    "routewatch_decode_failures",
    "routewatch_reconcile_differences",
    "routewatch_changed_by_lookups",
    "routewatch_changed_by_lookup_seconds",
    "routewatch_subscribers",
    "routewatch_subscriber_lag_max",
    "routewatch_stream_seq",
    "routewatch_journal_changes",
    "routewatch_journal_bytes",
    "routewatch_routes",
    "routewatch_nexthops",
    "routewatch_rules",
    "routewatch_namespaces",
    "routewatch_namespace_failures",
    "routewatch_ready",
    "routewatch_tls_reloads",
    "routewatch_tls_reload_failures",
    "routewatch_send_latency_seconds",
    "routewatch_dump_duration_seconds",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_threads",
    "process_start_time_seconds",
];

fn events(e: &Exposition, origin: &str, action: &str) -> f64 {
    e.value(
        "routewatch_events_total",
        &[("origin", origin), ("action", action)],
    )
    .unwrap_or_else(|| panic!("no routewatch_events_total{{origin={origin},action={action}}}"))
}

fn one(e: &Exposition, name: &str) -> f64 {
    e.value(name, &[])
        .unwrap_or_else(|| panic!("no sample {name} in {e:?}"))
}

/// Scrapes until `pred` holds (the agent counts as it goes).
fn scrape_until(ns: &Netns, pred: impl Fn(&Exposition) -> bool) -> Exposition {
    poll(CHECK_TIMEOUT, Duration::from_millis(100), || {
        let e = scrape(ns, OPS);
        pred(&e).then_some(e)
    })
    .unwrap_or_else(|| {
        panic!(
            "metrics did not reach the expected state: {:?}",
            scrape(ns, OPS)
        )
    })
}

#[test]
fn metrics_are_openmetrics_and_follow_churn_flushes_and_subscribers() {
    let env = Env::start_with(&["--ops-listen", OPS]);
    let before = scrape(&env.ns, OPS);
    for family in FAMILIES {
        assert!(before.families.contains_key(family), "{family} is exported");
    }
    assert_eq!(
        before.value(
            "routewatch_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(one(&before, "routewatch_ready"), 1.0);
    assert_eq!(one(&before, "routewatch_subscribers"), 1.0, "the tail");
    assert_eq!(one(&before, "routewatch_namespaces"), 1.0);
    assert_eq!(
        before.value("routewatch_dumps_total", &[("reason", "initial_dump")]),
        Some(1.0)
    );

    // Churn: every add and delete is counted, the gauges follow the table.
    env.ns.ip_batch(&blackholes("add", 0..300));
    env.ns.ip_batch(&blackholes("del", 0..100));
    env.ns.ip("route add 10.120.0.0/24 via 10.1.0.10");
    env.check();
    // A silent flush: carrier loss on va drops the IPv4 routes through it
    // without a message; the agent re-dumps and reconciles.
    env.ns.ip("link set vb down");
    env.check();
    let after = scrape_until(&env.ns, |e| {
        one(e, "routewatch_reconcile_differences_total") > 0.0
            && one(e, "routewatch_subscriber_lag_max") == 0.0
    });
    assert!(
        events(&after, "notification", "add") - events(&before, "notification", "add") >= 301.0
    );
    assert!(
        events(&after, "notification", "delete") - events(&before, "notification", "delete")
            >= 100.0
    );
    assert!(
        events(&after, "reconcile", "delete") >= 1.0,
        "the flushed routes"
    );
    assert!(
        after.value(
            "routewatch_dumps_total",
            &[("reason", "link_state_changed")]
        ) >= Some(1.0),
        "{after:?}"
    );
    // Every change is numbered: the stream's position is the sum of the
    // changes counted, and the journal (far from its bounds) holds them all.
    let changes: f64 = ["notification", "reconcile"]
        .iter()
        .flat_map(|o| ["add", "delete"].map(|a| events(&after, o, a)))
        .sum();
    assert_eq!(one(&after, "routewatch_stream_seq"), changes);
    assert_eq!(one(&after, "routewatch_journal_changes"), changes);
    assert!(one(&after, "routewatch_journal_bytes") > 0.0);
    let (v4, v6) = kernel_routes(&env.ns);
    assert_eq!(
        after.value("routewatch_routes", &[("netns", ""), ("family", "inet")]),
        Some(v4.len() as f64)
    );
    assert_eq!(
        after.value("routewatch_routes", &[("netns", ""), ("family", "inet6")]),
        Some(v6.len() as f64)
    );

    // Every dump is timed (the initial one, the re-dump after the flush);
    // every batch the tail received was timed from the kernel to its send.
    let dumps: f64 = after.sum("routewatch_dumps_total");
    assert!(dumps >= 2.0, "{after:?}");
    assert_eq!(one(&after, "routewatch_dump_duration_seconds_count"), dumps);
    assert!(one(&after, "routewatch_send_latency_seconds_count") >= 1.0);
    assert_eq!(
        after.value("routewatch_send_latency_seconds_bucket", &[("le", "+Inf")]),
        Some(one(&after, "routewatch_send_latency_seconds_count"))
    );
    // The process: the agent's own figures, not the test's.
    let pid = env.agent.pid();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()) as f64;
    let open = one(&after, "process_open_fds");
    assert!(
        open > 3.0 && (open - fds).abs() <= 4.0,
        "open fds {open} vs /proc {fds}"
    );
    let started = one(&after, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now && started > now - 600.0,
        "start time {started}"
    );
    assert!(one(&after, "process_resident_memory_bytes") > 1e6);
    assert!(one(&after, "process_cpu_seconds_total") > 0.0);

    // A snapshot counts its objects as dump events; subscribers come and go.
    let objects = env.agent.show().len() as f64 - 1.0; // less the sync marker
    let late = env.agent.tail(&env.ns);
    late.wait_synced(SYNC_TIMEOUT);
    let with_late = scrape_until(&env.ns, |e| one(e, "routewatch_subscribers") == 2.0);
    assert!(events(&with_late, "dump", "add") - events(&after, "dump", "add") >= 2.0 * objects);
    drop(late);
    scrape_until(&env.ns, |e| one(e, "routewatch_subscribers") == 1.0);
}

#[test]
fn an_overflowing_socket_is_counted_as_enobufs_and_a_redump() {
    let env = Env::start_with(&["--ops-listen", OPS, "--netlink-rcvbuf", "4096"]);
    // The agent stopped while the kernel notifies: its 4 KiB queue
    // overflows for certain (running, it may keep up with `ip -batch` on a
    // busy machine, where `ip` is slowed as much as it is).
    routewatch_tests::util::signal(env.agent.pid(), "STOP");
    env.ns.ip_batch(&blackholes("add", 0..5000));
    routewatch_tests::util::signal(env.agent.pid(), "CONT");
    env.check_routes(Duration::from_secs(120));
    let e = scrape_until(&env.ns, |e| {
        one(e, "routewatch_netlink_enobufs_total") > 0.0
    });
    assert!(
        e.value(
            "routewatch_dumps_total",
            &[("reason", "netlink_overflow_enobufs")]
        ) >= Some(1.0),
        "{e:?}"
    );
    assert_eq!(one(&e, "routewatch_decode_failures_total"), 0.0);
}

#[test]
fn a_restarted_agent_counts_the_resync_its_subscriber_gets() {
    let ns = Netns::new();
    let agent = Agent::start_with(&ns, &["--ops-listen", OPS]);
    let tail = Tail::remote(&ns, agent.addr());
    tail.wait_synced(SYNC_TIMEOUT);
    agent.stop_with("KILL", Duration::from_secs(10));
    let agent = Agent::start_with(&ns, &["--ops-listen", OPS]);
    let e = scrape_until(&ns, |e| {
        e.value("routewatch_resyncs_total", &[("cause", "unknown_stream")]) == Some(1.0)
    });
    assert_eq!(
        e.value("routewatch_resyncs_total", &[("cause", "lagged")]),
        Some(0.0)
    );
    // The agent counts the resync when it sends it; the tail prints it a
    // moment later.
    tail.wait_for(|r| r.resyncs == 1 && r.is_synced(), SYNC_TIMEOUT);
    assert_eq!(
        StreamCheck::of(&tail.lines()).resync_causes,
        vec!["unknown_stream"]
    );
    drop(agent);
}

#[test]
fn probes_answer_on_the_ops_port() {
    let env = Env::start_with(&["--ops-listen", OPS]);
    let (status, body) = http_get(&env.ns, OPS, "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // The gRPC port opens only after the first complete dump, so by now
    // the agent is ready (503 before it: see the agent's ops unit test).
    let (status, _) = http_get(&env.ns, OPS, "/readyz").unwrap();
    assert_eq!(status, 200);
    let (status, _) = http_get(&env.ns, OPS, "/nope").unwrap();
    assert_eq!(status, 404);
}
