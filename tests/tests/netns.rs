//! `--netns all` and `--netns NAME`: several network namespaces in one
//! stream, followed as they are created and deleted while the agent runs.
//! Each namespace's objects (by the events' `netns`) must equal
//! `ip -n NS -j -d route show table all` for that namespace.

use std::time::Duration;

use routewatch_tests::ops::scrape;
use routewatch_tests::util::{poll, temp_path};
use routewatch_tests::{
    add_veth_pair, assert_matches_kernel, eventually_matches_kernel, Agent, Netns, StreamCheck,
    Tail, CHECK_TIMEOUT, SYNC_TIMEOUT,
};

const OPS: &str = "127.0.0.1:9464";

/// A namespace with the veth pair (va 10.1.0.1/24, vb 10.2.0.1/24) and a
/// route through va.
fn populated() -> Netns {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.ip("route add 10.51.0.0/24 via 10.1.0.2");
    ns
}

fn in_ns(tail: &Tail, netns: &str) -> Vec<serde_json::Value> {
    // Also fails at once if the tail died or printed bad lines.
    tail.objects();
    tail.replay().objects_in(netns)
}

#[test]
fn netns_all_follows_namespaces_created_and_deleted_while_it_runs() {
    let host = Netns::new();
    add_veth_pair(&host);
    let before = populated();
    let agent = Agent::start_with(&host, &["--netns", "all", "--ops-listen", OPS]);
    let tail = agent.tail(&host);
    tail.wait_synced(SYNC_TIMEOUT);
    eventually_matches_kernel(&host, || in_ns(&tail, ""), CHECK_TIMEOUT);
    eventually_matches_kernel(&before, || in_ns(&tail, before.name()), CHECK_TIMEOUT);

    // Created while the agent runs: its routes arrive, already populated
    // or added later.
    let during = populated();
    eventually_matches_kernel(&during, || in_ns(&tail, during.name()), CHECK_TIMEOUT);
    during.ip("route add 10.52.0.0/24 via 10.1.0.3");
    during.ip("-6 route add 2001:db8:52::/64 via 2001:db8:1::3");
    before.ip("route add 10.53.0.0/24 via 10.1.0.2");
    host.ip("route add 10.54.0.0/24 via 10.1.0.10");
    // The same route in two namespaces is two objects.
    before.ip("route add 10.55.0.0/24 via 10.1.0.2");
    during.ip("route add 10.55.0.0/24 via 10.1.0.2");
    for ns in [&before, &during] {
        eventually_matches_kernel(ns, || in_ns(&tail, ns.name()), CHECK_TIMEOUT);
    }
    eventually_matches_kernel(&host, || in_ns(&tail, ""), CHECK_TIMEOUT);
    // Every event names the namespace it happened in.
    for line in tail.lines() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let want = match v["dst"].as_str() {
            Some("10.52.0.0/24") | Some("2001:db8:52::/64") => during.name(),
            Some("10.53.0.0/24") => before.name(),
            Some("10.54.0.0/24") => "",
            _ => continue,
        };
        assert_eq!(v["netns"], want, "{line}");
    }
    let metrics = scrape(&host, OPS);
    assert!(metrics.value("routewatch_namespaces", &[]) >= Some(3.0));
    assert!(
        metrics.value(
            "routewatch_routes",
            &[("netns", during.name()), ("family", "inet6")]
        ) > Some(0.0)
    );

    // Deleted while the agent runs: every object of it is deleted.
    let gone = during.name().to_owned();
    assert!(!in_ns(&tail, &gone).is_empty());
    drop(during);
    poll(CHECK_TIMEOUT, Duration::from_millis(50), || {
        in_ns(&tail, &gone).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("{gone} deleted, its objects still held\n{}", tail.report()));
    before.ip("route del 10.53.0.0/24");
    eventually_matches_kernel(&before, || in_ns(&tail, before.name()), CHECK_TIMEOUT);
    eventually_matches_kernel(&host, || in_ns(&tail, ""), CHECK_TIMEOUT);

    // One stream for all namespaces: one cursor, every change once.
    let check = StreamCheck::of(&tail.lines());
    check.assert_exactly_once();
    assert_eq!(check.streams.len(), 1);
    assert!(check.resync_causes.is_empty());
    // A later subscriber's snapshot holds every namespace too.
    let shown = agent.show();
    let of = |ns: &str| -> Vec<serde_json::Value> {
        shown
            .iter()
            .filter(|v| v.get("object").is_some() && v["netns"] == ns)
            .cloned()
            .collect()
    };
    assert_matches_kernel(&before, of(before.name()));
    assert_matches_kernel(&host, of(""));
    assert!(of(&gone).is_empty());
}

#[test]
fn netns_name_watches_that_namespace_alone() {
    let host = Netns::new();
    add_veth_pair(&host);
    let watched = populated();
    let agent = Agent::start_with(&host, &["--netns", watched.name()]);
    let shown = agent.show();
    assert!(
        shown.iter().all(|v| v["netns"] == watched.name()),
        "every event names the watched namespace"
    );
    assert_matches_kernel(&watched, shown);
    let tail = agent.tail(&host);
    tail.wait_synced(SYNC_TIMEOUT);
    watched.ip("route add 10.56.0.0/24 via 10.1.0.2");
    host.ip("route add 10.57.0.0/24 via 10.1.0.10");
    eventually_matches_kernel(&watched, || in_ns(&tail, watched.name()), CHECK_TIMEOUT);
    assert!(
        in_ns(&tail, "").is_empty(),
        "the agent's own namespace is not watched"
    );
}

#[test]
fn netns_all_with_a_state_dir_continues_across_a_restart_that_missed_a_deletion() {
    let host = Netns::new();
    let kept = populated();
    let dropped = populated();
    let dir = temp_path("state");
    let state = dir.display().to_string();
    let args = ["--netns", "all", "--state-dir", state.as_str()];
    let agent = Agent::start_with(&host, &args);
    let tail = agent.tail(&host);
    tail.wait_synced(SYNC_TIMEOUT);
    eventually_matches_kernel(&dropped, || in_ns(&tail, dropped.name()), CHECK_TIMEOUT);
    agent.stop_with("KILL", Duration::from_secs(10));
    // While the agent is down: one namespace goes, another changes.
    let gone = dropped.name().to_owned();
    drop(dropped);
    kept.ip("route add 10.58.0.0/24 via 10.1.0.2");
    let agent = Agent::start_with(&host, &args);
    eventually_matches_kernel(&kept, || in_ns(&tail, kept.name()), CHECK_TIMEOUT);
    poll(CHECK_TIMEOUT, Duration::from_millis(50), || {
        in_ns(&tail, &gone).is_empty().then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{gone} was deleted while the agent was down\n{}",
            tail.report()
        )
    });
    let check = StreamCheck::of(&tail.lines());
    check.assert_exactly_once();
    assert!(check.resync_causes.is_empty(), "{:?}", check.resync_causes);
    assert_eq!(check.streams.len(), 1, "the same stream across the restart");
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills and reaps a process on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn netns_all_says_which_namespaces_in_use_it_cannot_see() {
    const OPS_HIDDEN: &str = "127.0.0.1:9467";
    let host = Netns::new();
    let hidden = Netns::new();
    // A process in it, as a container's would be.
    let sleeper = Reaped(hidden.spawn("sleep", &["600"]));
    let link = std::fs::read_link(format!("/proc/{}/ns/net", sleeper.0.id()))
        .expect("the sleeper's namespace");
    let ns_ref = link.to_string_lossy().into_owned();
    assert!(ns_ref.starts_with("net:["), "{ns_ref}");
    // The agent in a mount namespace of its own where /run/netns is an
    // empty tmpfs: it cannot see the host's named namespaces.
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs rwt-hidden /run/netns && exec \"$@\"",
        "sh",
    ];
    let agent = Agent::start_via(
        &host,
        &wrapper,
        routewatch_tests::AGENT_ADDR,
        &["--netns", "all", "--ops-listen", OPS_HIDDEN],
    );
    let line = poll(Duration::from_secs(30), Duration::from_millis(200), || {
        agent
            .log()
            .lines()
            .find(|l| l.contains("are NOT watched"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| {
        panic!(
            "no warning about namespaces the agent cannot see:\n{}",
            agent.log()
        )
    });
    assert!(
        line.contains("WARN") && line.contains("Run the agent in the host's mount namespace"),
        "says what to do: {line}"
    );
    let count: usize = line
        .split("unwatched=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no unwatched=N in {line}"));
    assert!(count >= 1, "{line}");
    if count <= 20 {
        assert!(line.contains(&ns_ref), "names {ns_ref}: {line}");
    }
    let metrics = scrape(&host, OPS_HIDDEN);
    let gauge = metrics
        .value("routewatch_namespaces_unwatched", &[])
        .expect("the gauge is exported");
    assert!(gauge >= 1.0, "routewatch_namespaces_unwatched = {gauge}");
    // Its own namespace is still watched.
    let tail = agent.tail(&host);
    tail.wait_synced(SYNC_TIMEOUT);
    host.ip("route add 10.57.0.0/24 dev lo");
    eventually_matches_kernel(&host, || in_ns(&tail, ""), CHECK_TIMEOUT);
    drop(sleeper);
}
