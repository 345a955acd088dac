//! `dns:///NAME:PORT` targets: every address NAME resolves to is followed,
//! and hosts come and go as the answer changes. The names live in the
//! test namespace's own hosts file (`ip netns exec` mounts
//! /etc/netns/NAME/hosts over /etc/hosts), the agents on loopback
//! addresses of that namespace, each with its own host name.

use std::time::Duration;

use routewatch_tests::compare::{diff_routes, kernel_routes};
use routewatch_tests::{add_veth_pair, run_show, Agent, Netns, Replay, Tail, SYNC_TIMEOUT};
use serde_json::Value;

const TARGET: &str = "dns:///agents.rwt.test:50051";

fn hosts(addresses: &[&str]) -> String {
    addresses
        .iter()
        .map(|a| format!("{a} agents.rwt.test\n"))
        .collect()
}

fn agent(ns: &Netns, addr: &str, name: &str) -> Agent {
    Agent::start_at(ns, &format!("{addr}:50051"), &["--hostname", name])
}

/// Each of `names` has synced and holds exactly the kernel's routes.
fn holds_the_kernel(ns: &Netns, replay: &Replay, names: &[&str]) -> bool {
    let (v4, v6) = kernel_routes(ns);
    names.iter().all(|name| {
        replay.synced.get(*name) == Some(&true)
            && replay.state.get(*name).is_some_and(|held| {
                let ours: Vec<Value> = held.values().cloned().collect();
                diff_routes(&v4, &v6, &ours).is_empty()
            })
    })
}

#[test]
fn a_dns_target_follows_every_address_as_the_answer_changes() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.write_hosts(&hosts(&["127.0.0.2", "127.0.0.3"]));
    let _a2 = agent(&ns, "127.0.0.2", "rw-a2");
    let a3 = agent(&ns, "127.0.0.3", "rw-a3");
    let tail = Tail::with_args(
        &ns,
        &[
            "tail",
            "--insecure",
            "-o",
            "json",
            "--dns-refresh",
            "1",
            TARGET,
        ],
    );
    tail.wait_for(
        |r| holds_the_kernel(&ns, r, &["rw-a2", "rw-a3"]),
        SYNC_TIMEOUT,
    );
    ns.ip("route add 10.50.0.0/16 via 10.1.0.10 proto bgp");
    tail.wait_for(
        |r| holds_the_kernel(&ns, r, &["rw-a2", "rw-a3"]),
        SYNC_TIMEOUT,
    );

    let shown = run_show(ns.name(), &["show", "--insecure", "-o", "json", TARGET])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut shown_hosts: Vec<&str> = shown.iter().filter_map(|l| l["host"].as_str()).collect();
    shown_hosts.dedup();
    assert_eq!(shown_hosts, ["rw-a2", "rw-a3"], "show asks every address");
    let info = run_show(ns.name(), &["info", "--insecure", "-o", "json", TARGET])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut named: Vec<&str> = info.iter().filter_map(|l| l["host"].as_str()).collect();
    named.sort();
    assert_eq!(named, ["rw-a2", "rw-a3"], "info asks every address");

    // A new agent joins the answer and one leaves it.
    let _a4 = agent(&ns, "127.0.0.4", "rw-a4");
    ns.write_hosts(&hosts(&["127.0.0.2", "127.0.0.4"]));
    tail.wait_for(
        |r| holds_the_kernel(&ns, r, &["rw-a2", "rw-a4"]),
        SYNC_TIMEOUT,
    );
    let dropped = |lines: &[String]| {
        lines.iter().any(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_default();
            v["action"] == "dropped"
                && v["host"] == "rw-a3"
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("127.0.0.3:50051 is no longer in the DNS answer"))
        })
    };
    routewatch_tests::util::poll(Duration::from_secs(10), Duration::from_millis(100), || {
        dropped(&tail.lines()).then_some(())
    })
    .unwrap_or_else(|| panic!("no dropped marker for rw-a3\n{}", tail.report()));
    // The dropped host is no longer followed: its agent's end goes unseen.
    let before = tail.line_count();
    drop(a3);
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<String> = tail.lines()[before..].to_vec();
    assert!(
        after.iter().all(|l| !l.contains("rw-a3")),
        "nothing more from rw-a3: {after:?}"
    );
}

#[test]
fn a_name_that_does_not_resolve_fails_show() {
    let ns = Netns::new();
    ns.write_hosts("127.0.0.2 other.rwt.test\n");
    let out = ns.output(
        routewatch_tests::bins::client_bin(),
        &["show", "--insecure", "dns:///absent.rwt.test:50051"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "unreachable: README \"Exit status\""
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot resolve dns:///absent.rwt.test:50051"),
        "{stderr}"
    );
}
