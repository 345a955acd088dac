//! `routewatch info` and host labels: the agent describes itself, and the
//! lines it sends are labelled with its host name, not the address dialled.

use routewatch_tests::compare::kernel_routes;
use routewatch_tests::{add_veth_pair, run_show, Agent, Netns, SYNC_TIMEOUT};

#[test]
fn info_describes_the_agent_and_lines_carry_its_host_name() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.ip("route add 10.50.0.0/16 via 10.1.0.10 proto bgp");
    let agent = Agent::start_with(&ns, &["--hostname", "rw-node-1"]);
    let tail = agent.tail(&ns);
    let replay = tail.wait_synced(SYNC_TIMEOUT);
    assert_eq!(
        replay.state.keys().collect::<Vec<_>>(),
        vec!["rw-node-1"],
        "labelled with the agent's host name\n{}",
        tail.report()
    );

    let info = run_show(
        ns.name(),
        &["info", "--insecure", "-o", "json", agent.addr()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.len(), 1, "{info:?}");
    let info = &info[0];
    assert_eq!(info["host"], "rw-node-1");
    assert_eq!(info["target"], agent.addr());
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info["kernel_release"], release.trim());
    assert_eq!(info["agent_version"], env!("CARGO_PKG_VERSION"));
    let (v4, v6) = kernel_routes(&ns);
    assert_eq!(info["routes"]["inet"], v4.len(), "{info}");
    assert_eq!(info["routes"]["inet6"], v6.len(), "{info}");
    let subscribers = info["subscribers"].as_array().unwrap();
    assert_eq!(subscribers.len(), 1, "the tail: {info}");
    assert_eq!(subscribers[0]["filtered"], false);
    let stream = tail.lines().iter().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        v["stream_id"].as_str().map(str::to_owned)
    });
    assert_eq!(info["stream_id"].as_str(), stream.as_deref());

    let text = ns.output(
        routewatch_tests::bins::client_bin(),
        &["info", "--insecure", agent.addr()],
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with(&format!("rw-node-1 ({})\n", agent.addr())),
        "{text}"
    );
    assert!(text.contains("  subscribers  1\n"), "{text}");
}

#[test]
fn an_unreachable_agent_fails_info() {
    let ns = Netns::new();
    let out = ns.output(
        routewatch_tests::bins::client_bin(),
        &["info", "--insecure", "127.0.0.1:1"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "unreachable: README \"Exit status\""
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to 127.0.0.1:1"), "{stderr}");
}
