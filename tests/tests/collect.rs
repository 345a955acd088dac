//! `routewatch collect` and `routewatch query` end to end: real agents in
//! namespaces, churn with `ip`, collectors killed and restarted, SQLite and
//! PostgreSQL; what is stored is compared with the kernel's tables and the
//! agents' streams.

use std::thread;
use std::time::{Duration, Instant};

use routewatch_tests::compare::canonical;
use routewatch_tests::{
    add_veth_pair, assert_matches_kernel, blackholes, eventually_all_match_kernel, run_show, Agent,
    Collector, Netns, TestStore,
};
use serde_json::Value;

const SETTLE: Duration = routewatch_tests::collector::STORE_SETTLE;

/// A namespace with the veth pair and an agent in it (fields drop in
/// this order: the agent before its namespace).
struct Host {
    ns: Netns,
    agent: Agent,
    addr: String,
}

fn host() -> Host {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start(&ns);
    let addr = agent.addr().to_owned();
    Host { ns, agent, addr }
}
const SECOND_AGENT: &str = "127.0.0.1:50052";

/// The log holds every change of `stream` after the first snapshot exactly
/// once: contiguous numbers up to `last`, no duplicate.
fn assert_log_exactly_once(store: &TestStore, addr: &str, stream: &str, last: u64) {
    let log = store.log(addr);
    let seqs: Vec<u64> = log
        .iter()
        .filter(|(s, _)| s == stream)
        .map(|(_, seq)| *seq)
        .collect();
    assert!(!seqs.is_empty(), "no change of stream {stream} was logged");
    for pair in seqs.windows(2) {
        assert_ne!(pair[0], pair[1], "seq {} is stored twice", pair[0]);
        assert_eq!(
            pair[0] + 1,
            pair[1],
            "the log skips from seq {} to {}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(
        *seqs.last().unwrap(),
        last,
        "the log ends at the agent's last change"
    );
}

fn routes_now(store: &TestStore, ns: &Netns, host_args: &[&str]) -> Vec<Value> {
    let mut args = vec!["routes"];
    args.extend_from_slice(host_args);
    store.query(ns, &args)
}

/// A route set for comparing two outputs of the same printer: the route's
/// own fields, not when or by which event it was seen.
fn route_set(values: &[Value]) -> Vec<String> {
    let mut set: Vec<String> = values
        .iter()
        .filter(|v| v.get("object").is_some())
        .map(|v| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                for k in ["time", "seq", "stream_id", "action", "origin", "key"] {
                    m.remove(k);
                }
            }
            canonical(&v)
        })
        .collect();
    set.sort();
    set
}

fn stored_and_exact(store: &TestStore, ns: &Netns, addr: &str) -> (String, u64) {
    let cursor = store.wait_stored(ns, addr);
    eventually_all_match_kernel(ns, || routes_now(store, ns, &[]), SETTLE);
    cursor
}

fn kill_during_churn_then_resume(store: TestStore) {
    let Host {
        ns,
        agent: _agent,
        addr,
    } = host();
    let mut collector = Collector::start(&ns, &store, &[&addr]);
    let first = store.wait_stored(&ns, &addr);
    thread::scope(|s| {
        // The churn goes on for a while, in bursts, so that the kills
        // below come while it is being stored.
        let churn = s.spawn(|| {
            for burst in 0..6 {
                ns.ip_batch(&blackholes("add", burst * 1000..(burst + 1) * 1000));
                thread::sleep(Duration::from_millis(300));
            }
        });
        // Killed (SIGKILL) while the churn is being stored, restarted and
        // killed again: a collector applies the next events while its last
        // commit runs, so a kill may come with a commit in flight and the
        // next write taken; each restart continues from the cursor stored.
        let mut seen = first.1;
        for kills in 1..=3 {
            // At its first commit, while the rest of the burst may still
            // be on its way to the store.
            let started = Instant::now();
            while store.cursor(&addr).map_or(0, |c| c.1) <= seen
                && !churn.is_finished()
                && started.elapsed() < SETTLE
            {
                thread::sleep(Duration::from_millis(10));
            }
            collector.kill();
            seen = store.cursor(&addr).map_or(seen, |c| c.1);
            if kills < 3 {
                collector = Collector::start(&ns, &store, &[&addr]);
            }
        }
    });
    // Changes made while no collector runs come from the agent's journal.
    ns.ip_batch(&blackholes("del", 0..2000));
    ns.ip("route add 10.250.0.0/24 via 10.1.0.10");
    let collector = Collector::start(&ns, &store, &[&addr]);
    ns.ip_batch(&blackholes("add", 6000..7000));
    let (stream, last) = stored_and_exact(&store, &ns, &addr);
    assert_eq!(stream, first.0, "one stream");
    assert_log_exactly_once(&store, &addr, &stream, last);
    assert!(
        store.rows("SELECT * FROM gaps").is_empty(),
        "resumed from the stored cursor: no gap"
    );
    assert!(
        collector
            .log()
            .contains(&format!("following {addr} from {stream}:")),
        "the restarted collector resumes from the stored cursor:\n{}",
        collector.log()
    );
    // The other questions read the same record on either store.
    let hosts = store.query(&ns, &["hosts"]);
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0]["gaps"], 0, "{hosts:?}");
    assert_eq!(
        (hosts[0]["stream_id"].as_str(), hosts[0]["seq"].as_u64()),
        (Some(stream.as_str()), Some(last)),
        "hosts shows the stored cursor: {hosts:?}"
    );
    assert!(store.query(&ns, &["gaps"]).is_empty());
    // 10.200.0.5/32: added during the churn, deleted while no collector
    // ran: one closed version.
    let history = store.query(&ns, &["history", "10.200.0.5/32"]);
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(!history[0]["valid_to"].is_null(), "{history:?}");
    // 10.200.0.0/16 holds the 5000 blackholes that remain, and the 2000
    // deleted ones, each one version.
    let within = store.query(&ns, &["history", "10.200.0.0/16"]);
    assert_eq!(within.len(), 7000, "versions within 10.200.0.0/16");
}

#[test]
fn sqlite_collector_killed_mid_churn_stores_every_change_exactly_once() {
    kill_during_churn_then_resume(TestStore::sqlite());
}

#[test]
fn postgres_collector_killed_mid_churn_stores_every_change_exactly_once() {
    kill_during_churn_then_resume(TestStore::postgres("collect_kill"));
}

#[test]
fn query_routes_at_a_moment_equals_show_at_that_moment() {
    let Host { ns, agent, addr } = host();
    let store = TestStore::sqlite();
    let _collector = Collector::start(&ns, &store, &[&addr]);
    ns.ip("route add 10.30.0.0/24 via 10.1.0.10 metric 7");
    ns.ip("-6 route add 2001:db8:30::/64 via 2001:db8:1::10");
    ns.ip("nexthop add id 31 via 10.1.0.11 dev va");
    ns.ip("route add 10.31.0.0/24 nhid 31");
    ns.ip("rule add pref 100 from 10.30.0.0/24 lookup 30");
    store.wait_stored(&ns, &addr);
    let shown = agent.show();
    thread::sleep(Duration::from_millis(20));
    let at = time_now_rfc3339();
    thread::sleep(Duration::from_millis(20));
    // Later changes must not show at that moment.
    ns.ip("route replace 10.30.0.0/24 via 10.1.0.12 metric 7");
    ns.ip("route del 10.31.0.0/24");
    ns.ip("-6 route add 2001:db8:32::/64 via 2001:db8:1::10");
    ns.ip("rule del pref 100");
    ns.ip("rule add pref 100 from 10.30.0.0/24 lookup 31");
    store.wait_stored(&ns, &addr);
    let then = routes_now(&store, &ns, &["--at", &at]);
    assert_eq!(
        route_set(&then),
        route_set(&shown),
        "query routes --at {at} differs from the show taken then"
    );
    // And now is now.
    assert_matches_kernel(&ns, routes_now(&store, &ns, &[]));
    let history = store.query(&ns, &["history", "10.30.0.0/24"]);
    let versions: Vec<&Value> = history.iter().filter(|v| v.get("gap").is_none()).collect();
    assert_eq!(
        versions.len(),
        2,
        "two versions of 10.30.0.0/24: {history:?}"
    );
    // The rules' history: the default rules, and the rule at 100 looking
    // up table 30 until it was deleted, then table 31.
    let rules = store.query(&ns, &["history", "rules"]);
    let at_100: Vec<(&Value, bool)> = rules
        .iter()
        .filter(|v| v["object"] == "rule" && v["priority"] == 100)
        .map(|v| (&v["table"], v["valid_to"].is_null()))
        .collect();
    assert_eq!(
        at_100,
        [(&Value::from("30"), false), (&Value::from("31"), true)],
        "{rules:?}"
    );
    assert_eq!(rules.len(), 3 + 2 + 2, "{rules:?}");
}

fn time_now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn an_agent_restarted_without_its_state_is_a_recorded_gap_then_exact() {
    let Host { ns, agent, addr } = host();
    let store = TestStore::sqlite();
    let _collector = Collector::start(&ns, &store, &[&addr]);
    ns.ip("route add 10.40.0.0/24 via 10.1.0.10");
    let before = stored_and_exact(&store, &ns, &addr);
    agent.stop(Duration::from_secs(10));
    ns.ip("route del 10.40.0.0/24");
    ns.ip("route add 10.41.0.0/24 via 10.1.0.10");
    let _agent = Agent::start(&ns);
    let after = stored_and_exact(&store, &ns, &addr);
    assert_ne!(after.0, before.0, "a new stream");
    let gaps = store.query(&ns, &["gaps"]);
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?}");
    let gap = gaps[0].to_string();
    assert!(gap.contains(&before.0) && gap.contains(&after.0), "{gap}");
    assert!(gap.contains("unknown_stream"), "{gap}");
    // What went away during the gap was closed by the resync.
    let history = store.query(&ns, &["history", "10.40.0.0/24"]);
    let closed: Vec<&Value> = history
        .iter()
        .filter(|v| v.get("gap").is_none() && !v["valid_to"].is_null())
        .collect();
    assert_eq!(closed.len(), 1, "{history:?}");
    assert_eq!(closed[0]["closed_by"], "resync", "{history:?}");
}

#[test]
fn two_postgres_collectors_share_targets_and_take_over_when_one_dies() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    // Two agents in one namespace: each its own --agent-id, or they would
    // claim one identity.
    let a = Agent::start_with(&ns, &["--agent-id", "rw-share-a"]);
    let b = Agent::start_at(&ns, SECOND_AGENT, &["--agent-id", "rw-share-b"]);
    let (a_addr, b_addr) = (a.addr().to_owned(), b.addr().to_owned());
    let store = TestStore::postgres("collect_share");
    let targets = [a_addr.as_str(), b_addr.as_str(), "--claim-interval", "1"];
    let mut first = Collector::start(&ns, &store, &targets);
    // The first takes both before the second starts.
    store.wait_stored(&ns, &a_addr);
    store.wait_stored(&ns, &b_addr);
    let mut second = Collector::start(&ns, &store, &targets);
    ns.ip_batch(&blackholes("add", 0..1000));
    thread::sleep(Duration::from_millis(500));
    second.assert_running();
    assert!(
        !second.log().contains("following"),
        "the second collector must not follow targets the first holds:\n{}",
        second.log()
    );
    // Each collector names itself to PostgreSQL (63 bytes of it kept), and
    // the other names it as the holder of what it waits for.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut first_name = format!("routewatch on {} (pid {})", hostname.trim(), first.pid());
    first_name.truncate(63);
    for addr in [&a_addr, &b_addr] {
        let waiting = format!("{addr} is held by {first_name}, PostgreSQL backend ");
        let told = routewatch_tests::util::poll(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || second.log().contains(&waiting).then_some(()),
        );
        assert!(told.is_some(), "{waiting}\n{}", second.log());
    }
    thread::scope(|s| {
        s.spawn(|| ns.ip_batch(&blackholes("add", 1000..5000)));
        thread::sleep(Duration::from_millis(200));
        first.kill();
    });
    ns.ip_batch(&blackholes("del", 0..500));
    let started = Instant::now();
    let a_cursor = store.wait_stored(&ns, &a_addr);
    let b_cursor = store.wait_stored(&ns, &b_addr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took over within seconds"
    );
    for addr in [&a_addr, &b_addr] {
        let log = second.log();
        let took = log
            .lines()
            .find(|l| l.contains(&format!("following {addr} ")))
            .unwrap_or_else(|| panic!("{addr} not followed:\n{log}"));
        assert!(
            took.contains(&format!(
                "taken over from {first_name}, PostgreSQL backend "
            )),
            "{took}"
        );
        let connected = format!("{addr} (");
        let connected = log
            .lines()
            .find(|l| l.contains(&connected) && l.contains("connected"))
            .unwrap_or_else(|| panic!("{addr} never said it connected:\n{log}"));
        assert!(
            connected.contains(&format!(": connected, taken over from {first_name}")),
            "{connected}"
        );
    }
    assert_log_exactly_once(&store, &a_addr, &a_cursor.0, a_cursor.1);
    assert_log_exactly_once(&store, &b_addr, &b_cursor.0, b_cursor.1);
    assert!(store.rows("SELECT * FROM gaps").is_empty());
    let mut second_name = format!("routewatch on {} (pid {})", hostname.trim(), second.pid());
    second_name.truncate(63);
    for host in store.query(&ns, &["hosts"]) {
        let held_by = host["held_by"].as_str().unwrap_or_default();
        assert!(
            held_by.starts_with(&format!("{second_name}, PostgreSQL backend ")),
            "{host}"
        );
    }
    for host in [&a_addr, &b_addr] {
        eventually_all_match_kernel(&ns, || routes_now(&store, &ns, &["--host", host]), SETTLE);
    }
}

#[test]
fn retain_prunes_closed_history_and_keeps_current_routes() {
    let Host {
        ns,
        agent: _agent,
        addr,
    } = host();
    let store = TestStore::sqlite();
    let collector = Collector::start(&ns, &store, &[&addr]);
    store.wait_stored(&ns, &addr);
    ns.ip_batch(&blackholes("add", 0..200));
    ns.ip_batch(&blackholes("del", 0..100));
    stored_and_exact(&store, &ns, &addr);
    assert!(collector.stop(Duration::from_secs(10)).success());
    let closed = "SELECT COUNT(*) FROM versions WHERE valid_to IS NOT NULL";
    assert_eq!(store.rows(closed)[0][0].as_deref(), Some("100"));
    thread::sleep(Duration::from_millis(1100));
    let collector = Collector::start(&ns, &store, &[&addr, "--retain", "1s"]);
    let pruned = routewatch_tests::util::poll(SETTLE, Duration::from_millis(100), || {
        (store.rows(closed)[0][0].as_deref() == Some("0")).then_some(())
    });
    assert!(
        pruned.is_some(),
        "closed versions pruned:\n{}",
        collector.log()
    );
    assert!(
        store.rows("SELECT * FROM events").is_empty(),
        "old log rows pruned"
    );
    stored_and_exact(&store, &ns, &addr);
}

#[test]
fn collector_metrics_and_readiness() {
    let Host {
        ns,
        agent: _agent,
        addr,
    } = host();
    let store = TestStore::sqlite();
    let ops = "127.0.0.1:9471";
    let _collector = Collector::start(&ns, &store, &[&addr, "--ops-listen", ops]);
    store.wait_stored(&ns, &addr);
    ns.ip_batch(&blackholes("add", 0..50));
    store.wait_stored(&ns, &addr);
    let metrics = routewatch_tests::ops::scrape(&ns, ops);
    let text = format!("{metrics:?}");
    // Series are labelled with the address dialled and the host name the
    // agent reports.
    let host = run_show(ns.name(), &["info", "--insecure", "-o", "json", &addr])
        .unwrap_or_else(|e| panic!("{e}"))[0]["host"]
        .as_str()
        .expect("host")
        .to_owned();
    let target = [("target", addr.as_str()), ("host", host.as_str())];
    let events = metrics
        .value("routewatch_collector_events_total", &target)
        .unwrap_or_else(|| panic!("no events counter:\n{text}"));
    assert!(events >= 50.0, "{text}");
    assert_eq!(
        metrics.value("routewatch_collector_connected", &target),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metrics.value("routewatch_collector_targets_held", &[]),
        Some(1.0)
    );
    assert_eq!(metrics.value("routewatch_collector_ready", &[]), Some(1.0));
    let (status, body) = routewatch_tests::ops::http_get(&ns, ops, "/readyz").unwrap();
    assert_eq!((status, body.trim()), (200, "ready"));
}

#[test]
fn a_second_sqlite_collector_is_refused() {
    let Host { ns, agent, addr } = host();
    let store = TestStore::sqlite();
    let _first = Collector::start(&ns, &store, &[&addr]);
    store.wait_stored(&ns, &addr);
    let mut second = Collector::start(&ns, &store, &[&addr]);
    let status = second.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "{}", second.log());
    assert!(
        second
            .log()
            .contains("another routewatch collect is writing to this file"),
        "{}",
        second.log()
    );
    drop(agent);
}

#[test]
fn a_dns_target_stores_every_address_it_resolves_to() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.write_hosts("127.0.0.2 agents.rwt.test\n127.0.0.3 agents.rwt.test\n");
    let a2 = ["--hostname", "rw-a2", "--agent-id", "rw-a2"];
    let a3 = ["--hostname", "rw-a3", "--agent-id", "rw-a3"];
    let _a2 = Agent::start_at(&ns, "127.0.0.2:50051", &a2);
    let _a3 = Agent::start_at(&ns, "127.0.0.3:50051", &a3);
    let store = TestStore::sqlite();
    let _collector = Collector::start(
        &ns,
        &store,
        &["--dns-refresh", "1", "dns:///agents.rwt.test:50051"],
    );
    ns.ip("route add 10.60.0.0/24 via 10.1.0.10");
    for addr in ["127.0.0.2:50051", "127.0.0.3:50051"] {
        store.wait_stored(&ns, addr);
    }
    for host in ["rw-a2", "rw-a3"] {
        eventually_all_match_kernel(&ns, || routes_now(&store, &ns, &["--host", host]), SETTLE);
    }
    let hosts = store.query(&ns, &["hosts"]);
    let names: Vec<&str> = hosts.iter().filter_map(|h| h["host"].as_str()).collect();
    assert_eq!(names.len(), 2, "{hosts:?}");
    assert!(
        names.contains(&"rw-a2") && names.contains(&"rw-a3"),
        "{hosts:?}"
    );
}

#[test]
fn a_lost_postgres_connection_is_reopened_and_nothing_is_lost() {
    let Host {
        ns,
        agent: _agent,
        addr,
    } = host();
    let store = TestStore::postgres("collect_reconnect");
    let collector = Collector::start(&ns, &store, &[&addr, "--claim-interval", "1"]);
    let first = store.wait_stored(&ns, &addr);
    thread::scope(|s| {
        s.spawn(|| ns.ip_batch(&blackholes("add", 0..3000)));
        thread::sleep(Duration::from_millis(100));
        // The server drops the collector's connection, and with it the
        // target's lock, in the middle of the churn.
        store.rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
    });
    ns.ip_batch(&blackholes("del", 0..1000));
    let (stream, last) = stored_and_exact(&store, &ns, &addr);
    assert_eq!(stream, first.0);
    assert_log_exactly_once(&store, &addr, &stream, last);
    let log = collector.log();
    assert!(
        log.contains("is back"),
        "the collector reopened the store:\n{log}"
    );
    assert!(
        log.matches(&format!("following {addr}")).count() >= 2,
        "and followed the target again from its cursor:\n{log}"
    );
}

#[test]
fn an_agent_restarted_with_its_state_dir_continues_the_record_without_a_gap() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let dir = routewatch_tests::util::TempDir::new("state");
    let state = ["--state-dir", dir.to_str().expect("utf-8 path")];
    let agent = Agent::start_with(&ns, &state);
    let addr = agent.addr().to_owned();
    let store = TestStore::sqlite();
    let _collector = Collector::start(&ns, &store, &[&addr]);
    ns.ip("route add 10.70.0.0/24 via 10.1.0.10");
    let before = stored_and_exact(&store, &ns, &addr);
    agent.stop(Duration::from_secs(10));
    // Changed while the agent is down: it finds out when it starts again.
    ns.ip("route del 10.70.0.0/24");
    ns.ip("route add 10.71.0.0/24 via 10.1.0.10");
    let _agent = Agent::start_with(&ns, &state);
    let after = stored_and_exact(&store, &ns, &addr);
    assert_eq!(after.0, before.0, "the same stream");
    assert_log_exactly_once(&store, &addr, &after.0, after.1);
    assert!(store.rows("SELECT * FROM gaps").is_empty(), "no gap");
    let reconciled = store.rows("SELECT COUNT(*) FROM events WHERE origin = 3");
    assert_eq!(
        reconciled[0][0].as_deref(),
        Some("2"),
        "the two changes made while the agent was down are stored as reconcile changes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Targets the collector has claimed (held or waiting) so far, as its ops
/// port says.
fn targets_claimed(ns: &Netns, ops: &str) -> usize {
    let Ok((200, body)) = routewatch_tests::ops::http_get(ns, ops, "/metrics") else {
        return 0;
    };
    let Ok(metrics) = routewatch_tests::openmetrics::parse(&body) else {
        return 0;
    };
    [
        "routewatch_collector_targets_held",
        "routewatch_collector_targets_waiting",
    ]
    .iter()
    .filter_map(|name| metrics.value(name, &[]))
    .sum::<f64>() as usize
}

/// 100 targets (one agent, reached at 100 loopback addresses) and a
/// collector whose open files limit is 80, soft and hard: it says at start
/// that the limit leaves room for 16 connections (64 are kept for the
/// store, the ops port and the rest), claims 16 targets (one agent: one is
/// followed, the others stand by), and its ops port keeps answering. With
/// a hard limit of 4096 the soft limit of 80 is raised to it, and every
/// target is claimed.
#[test]
fn a_collector_short_of_file_descriptors_says_so_and_keeps_its_ops_port() {
    let ns = Netns::new();
    // All 100 connections come from 127.0.0.1: above the agent's default
    // per-address limit.
    let _agent = Agent::start_at(&ns, "0.0.0.0:50061", &["--max-connections-per-peer", "200"]);
    let targets: Vec<String> = (1..=100).map(|i| format!("127.0.0.{i}:50061")).collect();
    let ops = "127.0.0.1:9473";
    let mut args = vec!["--ops-listen", ops];
    args.extend(targets.iter().map(String::as_str));

    let store = TestStore::sqlite();
    let mut short = Collector::start_via(&ns, &store, &["prlimit", "--nofile=80:80", "--"], &args);
    let sixteen = routewatch_tests::util::poll(SETTLE, Duration::from_millis(100), || {
        (targets_claimed(&ns, ops) >= 16).then_some(())
    });
    assert!(sixteen.is_some(), "{}", short.log());
    // Time for the others to try, and fail, if they would.
    thread::sleep(Duration::from_secs(3));
    short.assert_running();
    for path in ["/healthz", "/metrics"] {
        let answer = routewatch_tests::ops::http_get_within(&ns, ops, path, Duration::from_secs(5));
        match answer {
            Ok((status, _)) => assert_eq!(status, 200, "{path}"),
            Err(e) => panic!("{e}\n--- log ---\n{}", short.log()),
        }
    }
    assert_eq!(targets_claimed(&ns, ops), 16, "{}", short.log());
    let log = short.log();
    assert!(
        log.contains("100 targets, but the open files limit (80, hard limit 80) leaves room for 16 connections at once"),
        "{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    short.stop(Duration::from_secs(10));

    let store = TestStore::sqlite();
    let raised = Collector::start_via(&ns, &store, &["prlimit", "--nofile=80:4096", "--"], &args);
    let open_files = || {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", raised.pid())).unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files"));
        line.expect("Max open files").to_owned()
    };
    let soft_raised = routewatch_tests::util::poll(SETTLE, Duration::from_millis(50), || {
        let line = open_files();
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[3..5] == ["4096", "4096"]).then_some(())
    });
    assert!(soft_raised.is_some(), "{}\n{}", open_files(), raised.log());
    let all = routewatch_tests::util::poll(SETTLE, Duration::from_millis(100), || {
        (targets_claimed(&ns, ops) == 100).then_some(())
    });
    assert!(all.is_some(), "{}", raised.log());
    assert!(
        !raised.log().contains("open files limit"),
        "{}",
        raised.log()
    );
}

/// The collector's resident memory, in bytes (VmRSS).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Changes in [`memory_after_a_burst_is_given_back`]'s burst: adds, then
/// as many deletes.
const BURST: u32 = 100_000;

/// A burst of changes is stored, then the collector idles: what it took
/// for the burst (the snapshot it held back, the rows of its writes, the
/// deliveries they came in, maps sized for the burst) goes back to the
/// system rather than stay for ever. The burst is a backlog of 150,000
/// changes made while no collector ran (the agent answers it with a
/// resync and a snapshot of 50,000 routes); the reference is a collector
/// started afresh on the same record, which holds the same state.
#[test]
fn memory_after_a_burst_is_given_back() {
    let store = TestStore::sqlite();
    let Host {
        ns,
        agent: _agent,
        addr,
    } = host();
    let mut collector = Collector::start(&ns, &store, &[&addr]);
    store.wait_stored(&ns, &addr);
    let before = rss(collector.pid());
    collector.kill();
    let (_, start) = routewatch_tests::collector::agent_cursor(&ns, &addr);
    ns.ip_batch(&blackholes("add", 0..BURST));
    ns.ip_batch(&blackholes("del", 0..BURST / 2));
    // The agent may still be reading the kernel's notifications when
    // ip -batch returns: the backlog is all of them.
    let numbered = routewatch_tests::util::poll(SETTLE, Duration::from_millis(100), || {
        let (_, seq) = routewatch_tests::collector::agent_cursor(&ns, &addr);
        (seq >= start + (BURST + BURST / 2) as u64).then_some(())
    });
    assert!(
        numbered.is_some(),
        "the agent did not number the burst within {SETTLE:?}"
    );
    let mut collector = Collector::start(&ns, &store, &[&addr]);
    store.wait_stored(&ns, &addr);
    let after_burst = rss(collector.pid());
    // Idle: nothing arrives but heartbeats.
    thread::sleep(Duration::from_secs(3));
    let idle = rss(collector.pid());
    collector.kill();
    let fresh = Collector::start(&ns, &store, &[&addr]);
    store.wait_stored(&ns, &addr);
    thread::sleep(Duration::from_secs(3));
    let reference = rss(fresh.pid());
    eprintln!(
        "collector RSS: {} MB before, {} MB right after a backlog of {} changes, {} MB idle; \
         {} MB for a fresh collector of the same record",
        before >> 20,
        after_burst >> 20,
        BURST + BURST / 2,
        idle >> 20,
        reference >> 20
    );
    const BOUND: u64 = 24 << 20;
    assert!(
        idle < reference + BOUND,
        "idle after the burst: {} MB, where a fresh collector of the same record takes {} MB \
         (bound: {} MB more)",
        idle >> 20,
        reference >> 20,
        BOUND >> 20
    );
}
