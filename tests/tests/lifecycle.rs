//! The agent's and the client's life cycle: readiness, the shape of a
//! tail's stream (snapshot, sync, live changes), several subscribers, and a
//! clean exit on SIGTERM and SIGINT.

use std::time::Duration;

use routewatch_tests::compare::{diff_routes, kernel_routes};
use routewatch_tests::{
    add_veth_pair, assert_matches_kernel, Agent, Env, Netns, Replay, Tail, CHECK_TIMEOUT,
    SYNC_TIMEOUT,
};
use serde_json::Value;

#[test]
fn agent_exits_cleanly_on_sigterm() {
    let ns = Netns::new();
    let agent = Agent::start(&ns);
    let status = agent.stop(Duration::from_secs(10));
    assert!(
        status.success(),
        "agent exit status after SIGTERM: {status}"
    );
}

#[test]
fn agent_exits_cleanly_on_sigint() {
    let ns = Netns::new();
    let agent = Agent::start(&ns);
    let status = agent.stop_with("INT", Duration::from_secs(10));
    assert!(status.success(), "agent exit status after SIGINT: {status}");
}

#[test]
fn show_of_a_fresh_agent_equals_kernel_and_exits() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.ip("route add 10.110.0.0/24 via 10.1.0.10");
    let agent = Agent::start(&ns);
    // The agent accepts only after its first complete dump: the very first
    // show must already be exact.
    assert_matches_kernel(&ns, agent.show());
}

#[test]
fn tail_stream_is_snapshot_then_sync_then_changes() {
    let env = Env::start();
    let lines: Vec<Value> = env
        .tail
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("tail prints JSON lines"))
        .collect();
    let sync = lines
        .iter()
        .position(|v| v["action"] == "sync")
        .expect("a sync marker");
    assert!(sync > 0, "a snapshot precedes the sync marker");
    for v in &lines[..sync] {
        assert_eq!(v["action"], "add", "snapshot lines are adds: {v}");
        assert_eq!(v["origin"], "dump", "snapshot lines have origin dump: {v}");
    }
    assert!(
        lines[sync].get("object").is_none(),
        "markers have no object"
    );
    // The snapshot alone is the kernel's state (nothing changed since).
    let snapshot = Replay::from_lines(&env.tail.lines()[..=sync]);
    let (v4, v6) = kernel_routes(&env.ns);
    let d = diff_routes(&v4, &v6, &snapshot.routes());
    assert!(d.is_empty(), "snapshot: {d}");

    env.ns.ip("route add 10.111.0.0/24 via 10.1.0.10");
    let has_route = |r: &Replay| r.routes().iter().any(|v| v["dst"] == "10.111.0.0/24");
    let r = env.tail.wait_for(has_route, CHECK_TIMEOUT);
    assert!(r.is_synced());
    let change: Value = env.tail.lines()[sync + 1..]
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["dst"] == "10.111.0.0/24")
        .unwrap();
    assert_eq!(change["action"], "add", "{change}");
    assert_eq!(change["object"], "route", "{change}");
    assert_eq!(change["origin"], "notification", "{change}");
    env.ns.ip("route del 10.111.0.0/24");
    let r = env.tail.wait_for(|r| r.deletes > 0, CHECK_TIMEOUT);
    assert_eq!(r.unknown_deletes, 0, "deletes name held keys");
    env.check();
}

#[test]
fn several_subscribers_agree() {
    let env = Env::start();
    let late = env.agent.tail(&env.ns);
    late.wait_synced(SYNC_TIMEOUT);
    env.ns.ip("route add 10.112.0.0/24 via 10.1.0.10");
    env.ns
        .ip("-6 route add 2001:db8:112::/64 via 2001:db8:1::10");
    env.check();
    routewatch_tests::eventually_matches_kernel(&env.ns, || late.objects(), CHECK_TIMEOUT);
    // A subscriber that joins after the changes sees them in its snapshot.
    let later = env.agent.tail(&env.ns);
    later.wait_synced(SYNC_TIMEOUT);
    routewatch_tests::eventually_matches_kernel(&env.ns, || later.objects(), CHECK_TIMEOUT);
}

/// `(action, origin, dst)` of the route lines among `lines`.
fn route_lines(lines: &[String]) -> Vec<(String, String, String)> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["object"] == "route")
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            (s("action"), s("origin"), s("dst"))
        })
        .collect()
}

#[test]
fn tail_count_stops_after_n_lines_and_no_snapshot_prints_changes_only() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start(&ns);
    let changes = agent.tail_with(&ns, &["--insecure", "--no-snapshot", "--count", "2"]);
    changes.wait_synced(SYNC_TIMEOUT);
    // --raw --no-snapshot does not even ask for the snapshot: no sync.
    let raw = agent.tail_with(
        &ns,
        &["--insecure", "--raw", "--no-snapshot", "--count", "1"],
    );
    routewatch_tests::util::poll(SYNC_TIMEOUT, Duration::from_millis(50), || {
        (agent.log().matches("subscriber connected").count() >= 2).then_some(())
    })
    .expect("both tails subscribed");
    for n in 0..3 {
        ns.ip(&format!("route add 10.130.{n}.0/24 via 10.1.0.10"));
    }
    let status = changes.wait_exit(CHECK_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", changes.report());
    let add = |n: u32| {
        (
            "add".to_owned(),
            "notification".to_owned(),
            format!("10.130.{n}.0/24"),
        )
    };
    assert_eq!(
        route_lines(&changes.lines()),
        [add(0), add(1)],
        "{}",
        changes.report()
    );
    assert_eq!(
        raw.wait_exit(CHECK_TIMEOUT).code(),
        Some(0),
        "{}",
        raw.report()
    );
    assert_eq!(route_lines(&raw.lines()), [add(0)], "{}", raw.report());
    assert!(
        !raw.lines().iter().any(|l| l.contains(r#""action":"sync""#)),
        "{}",
        raw.report()
    );

    // With the snapshot: its first N objects (routes, rules, ...).
    let some = agent.tail_with(&ns, &["--insecure", "--count", "5"]);
    assert_eq!(
        some.wait_exit(CHECK_TIMEOUT).code(),
        Some(0),
        "{}",
        some.report()
    );
    let printed: Vec<Value> = some
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("object").is_some())
        .collect();
    assert_eq!(printed.len(), 5, "{}", some.report());
    assert!(
        printed.iter().all(|v| v["origin"] == "dump"),
        "{}",
        some.report()
    );
}

#[test]
fn tail_until_exits_at_the_time_given() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start(&ns);
    let started = std::time::Instant::now();
    let tail = agent.tail_with(&ns, &["--insecure", "--until", "3s"]);
    tail.wait_synced(SYNC_TIMEOUT);
    ns.ip("route add 10.131.0.0/24 via 10.1.0.10");
    let status = tail.wait_exit(Duration::from_secs(20));
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", tail.report());
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "exited after {took:?}"
    );
    assert_matches_kernel(&ns, tail.replay().objects());
}

#[test]
fn tail_last_and_since_replay_the_journal_and_say_when_it_is_shorter() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_with(&ns, &["--journal-capacity", "4"]);
    agent.tail(&ns).wait_synced(SYNC_TIMEOUT);
    for n in 0..3 {
        ns.ip(&format!("route add 10.132.{n}.0/24 via 10.1.0.10"));
    }
    // Changes reach the journal at once; let the agent take them in.
    std::thread::sleep(Duration::from_millis(500));
    let add = |n: u32| {
        (
            "add".to_owned(),
            "notification".to_owned(),
            format!("10.132.{n}.0/24"),
        )
    };
    let replay_line = |t: &routewatch_tests::Tail| -> Value {
        t.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["action"] == "replay")
            .unwrap_or_else(|| panic!("no replay line\n{}", t.report()))
    };

    let last = agent.tail_with(&ns, &["--insecure", "--last", "2", "--count", "3"]);
    routewatch_tests::util::poll(CHECK_TIMEOUT, Duration::from_millis(50), || {
        (route_lines(&last.lines()).len() == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("--last 2 replayed\n{}", last.report()));
    assert_eq!(
        route_lines(&last.lines()),
        [add(1), add(2)],
        "{}",
        last.report()
    );
    assert_eq!(replay_line(&last)["complete"], true, "{}", last.report());
    // Then live, as any tail.
    ns.ip("route add 10.132.3.0/24 via 10.1.0.10");
    assert_eq!(
        last.wait_exit(CHECK_TIMEOUT).code(),
        Some(0),
        "{}",
        last.report()
    );
    assert_eq!(
        route_lines(&last.lines()),
        [add(1), add(2), add(3)],
        "{}",
        last.report()
    );
    routewatch_tests::StreamCheck::of(&last.lines()).assert_exactly_once();

    // The journal holds the whole stream (4 changes): an hour is complete.
    let since = agent.tail_with(&ns, &["--insecure", "--since", "1h", "--count", "4"]);
    assert_eq!(
        since.wait_exit(CHECK_TIMEOUT).code(),
        Some(0),
        "{}",
        since.report()
    );
    assert_eq!(replay_line(&since)["complete"], true, "{}", since.report());
    // Two more: the journal holds changes 3 to 6 only, and says so.
    ns.ip("route add 10.132.4.0/24 via 10.1.0.10");
    ns.ip("route add 10.132.5.0/24 via 10.1.0.10");
    std::thread::sleep(Duration::from_millis(500));
    let since = agent.tail_with(&ns, &["--insecure", "--since", "1h", "--count", "4"]);
    assert_eq!(
        since.wait_exit(CHECK_TIMEOUT).code(),
        Some(0),
        "{}",
        since.report()
    );
    assert_eq!(
        route_lines(&since.lines()),
        [add(2), add(3), add(4), add(5)],
        "{}",
        since.report()
    );
    let marker = replay_line(&since);
    assert_eq!(marker["complete"], false, "{}", since.report());
    assert!(
        marker["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no longer held"),
        "{marker}"
    );
    let many = agent.tail_with(&ns, &["--insecure", "--last", "10", "--count", "4"]);
    assert_eq!(
        many.wait_exit(CHECK_TIMEOUT).code(),
        Some(0),
        "{}",
        many.report()
    );
    assert_eq!(replay_line(&many)["complete"], false, "{}", many.report());
    let text = Tail::with_args(
        &ns,
        &[
            "tail",
            "--insecure",
            "--last",
            "10",
            "--count",
            "4",
            agent.addr(),
        ],
    );
    assert_eq!(
        text.wait_exit(CHECK_TIMEOUT).code(),
        Some(0),
        "{}",
        text.report()
    );
    assert!(
        text.stderr().contains("INCOMPLETE replay of the journal"),
        "{}",
        text.report()
    );
}
