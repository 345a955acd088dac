//! The capabilities the agent needs, measured: it runs as an unprivileged
//! user (nobody) with exactly the capabilities granted, as the Kubernetes
//! DaemonSet and the systemd unit run it (see deploy/ and the README).
//!
//! - none: joins the rtnetlink groups, dumps and follows its own namespace;
//!   SO_RCVBUFFORCE is refused, so the receive buffer is capped by
//!   net.core.rmem_max;
//! - CAP_NET_ADMIN: SO_RCVBUFFORCE works;
//! - CAP_SYS_ADMIN: needed to enter another network namespace (setns);
//! - CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: naming the process that made a
//!   change (reading another user's `/proc/PID/fd`, taking its socket with
//!   `pidfd_getfd`); with CAP_SYS_PTRACE alone the early readers still name
//!   a new requester (they take its socket), with CAP_DAC_READ_SEARCH alone
//!   the change names the requesting socket's port id only.

use std::process::Stdio;

use routewatch_tests::bins::agent_bin;
use routewatch_tests::{
    add_veth_pair, assert_matches_kernel, eventually_matches_kernel, Agent, IpBatch, Netns,
    AGENT_ADDR, CHECK_TIMEOUT, SYNC_TIMEOUT,
};

const REFUSED: &str = "SO_RCVBUFFORCE refused";

/// `setpriv` switching to nobody with only `caps` (e.g. "+net_admin"),
/// in the ambient set so that they survive the exec.
fn as_nobody_with(caps: &str) -> Vec<String> {
    let set = format!("-all{caps}");
    [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        &format!("--inh-caps={set}"),
        &format!("--ambient-caps={set}"),
        &format!("--bounding-set={set}"),
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start(ns: &Netns, caps: &str, extra: &[&str]) -> Agent {
    let wrapper = as_nobody_with(caps);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    Agent::start_via(ns, &wrapper, AGENT_ADDR, extra)
}

#[test]
fn without_capabilities_the_agent_follows_its_own_namespace() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = start(&ns, "", &[]);
    let tail = agent.tail(&ns);
    tail.wait_synced(SYNC_TIMEOUT);
    ns.ip("route add 10.60.0.0/24 via 10.1.0.2");
    // Notifications arrive: joining the groups needed no capability.
    eventually_matches_kernel(&ns, || tail.objects(), CHECK_TIMEOUT);
    assert!(agent.log().contains(REFUSED), "{}", agent.log());
}

#[test]
fn net_admin_is_what_a_forced_receive_buffer_needs() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = start(&ns, ",+net_admin", &[]);
    assert_matches_kernel(&ns, agent.show());
    assert!(!agent.log().contains(REFUSED), "{}", agent.log());
}

#[test]
fn sys_admin_is_what_entering_another_namespace_needs() {
    let host = Netns::new();
    let other = Netns::new();
    add_veth_pair(&other);
    // Without CAP_SYS_ADMIN, --netns NAME fails and says why.
    let mut args = as_nobody_with(",+net_admin");
    args.push(agent_bin().display().to_string());
    args.extend(
        [
            "--insecure",
            "--listen",
            AGENT_ADDR,
            "--netns",
            other.name(),
        ]
        .map(String::from),
    );
    let out = host
        .command(&args[0], &args[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs CAP_SYS_ADMIN"), "{stderr}");

    // With it (and NET_ADMIN for the buffer), --netns all enters every
    // named namespace.
    let agent = start(&host, ",+net_admin,+sys_admin", &["--netns", "all"]);
    let shown = agent.show();
    let of_other: Vec<_> = shown
        .iter()
        .filter(|v| v.get("object").is_some() && v["netns"] == other.name())
        .cloned()
        .collect();
    assert_matches_kernel(&other, of_other);
    // No namespace was left out for want of a capability. (The agent also
    // warns of namespaces in use that it does not watch yet, which the
    // other tests, creating theirs meanwhile, can cause at its first check:
    // that warning is not about capabilities.)
    let log = agent.log();
    assert!(
        !log.contains(REFUSED) && !log.contains("network namespace left out"),
        "{log}"
    );
}

/// The ambient capabilities of the shipped systemd unit, as `setpriv`
/// takes them (`,+net_admin,+sys_admin,...`).
fn unit_capabilities() -> String {
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/systemd/routewatch-agent.service"
    );
    let text = std::fs::read_to_string(unit).unwrap_or_else(|e| panic!("{unit}: {e}"));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap_or_else(|| panic!("{unit} has no AmbientCapabilities="));
    line.split_whitespace()
        .map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect()
}

/// Who changed a route, as an agent running as nobody with `caps` says:
/// the `changed_by` of a route added by a long-lived `ip -batch` (run as
/// root, another user than the agent's).
fn changed_by_with(caps: &str) -> (serde_json::Value, u32) {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = start(&ns, caps, &[]);
    let tail = agent.tail(&ns);
    tail.wait_synced(SYNC_TIMEOUT);
    let mut ip = IpBatch::start(&ns);
    ip.send("route add 10.61.0.0/24 via 10.1.0.2\n");
    let change =
        routewatch_tests::util::poll(CHECK_TIMEOUT, std::time::Duration::from_millis(50), || {
            tail.lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["dst"] == "10.61.0.0/24" && v["origin"] == "notification")
        })
        .unwrap_or_else(|| panic!("no change of 10.61.0.0/24\n{}", tail.report()));
    (change["changed_by"].clone(), ip.pid())
}

#[test]
fn the_units_capabilities_name_the_process_that_changed_a_route() {
    let caps = unit_capabilities();
    let (by, pid) = changed_by_with(&caps);
    assert_eq!(by["pid"], pid, "with {caps}: {by}");
    assert_eq!(by["comm"], "ip", "with {caps}: {by}");
    for (without, named) in [("dac_read_search", true), ("sys_ptrace", false)] {
        let fewer = caps.replace(&format!(",+{without}"), "");
        assert_ne!(fewer, caps, "the unit grants CAP_{without}");
        let (by, pid) = changed_by_with(&fewer);
        assert_eq!(by["port_id"], pid, "with {fewer}: {by}");
        if named {
            // CAP_SYS_PTRACE alone: the early reader takes the requester's
            // socket (pidfd_getfd) and checks it in the socket table.
            assert_eq!(by["pid"], pid, "with {fewer}: {by}");
            assert_eq!(by["comm"], "ip", "with {fewer}: {by}");
        } else {
            // Another user's open files cannot be read or taken: the port
            // id alone, no guessed process.
            assert!(
                by.get("pid").is_none() && by.get("comm").is_none(),
                "with {fewer}: {by}"
            );
        }
    }
}
