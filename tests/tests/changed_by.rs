//! Who changed it: every change a notification announces names the process
//! that asked the kernel for it (`changed_by`), the kernel's own changes say
//! `kernel`, and reconciles say why the tables were read again.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use routewatch_tests::util::poll;
use routewatch_tests::{
    add_veth_pair, Agent, Env, IpBatch, Netns, Tail, CHECK_TIMEOUT, SYNC_TIMEOUT,
};
use serde_json::Value;

/// The tail's changes (not the snapshot) whose destination starts with
/// `prefix`.
fn changes(tail: &Tail, prefix: &str) -> Vec<Value> {
    tail.lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["origin"] != "dump" && v.get("object").is_some())
        .filter(|v| v["dst"].as_str().is_some_and(|d| d.starts_with(prefix)))
        .collect()
}

/// Waits until the tail holds `n` changes of destinations starting with
/// `prefix`, and returns them.
fn wait_changes(tail: &Tail, prefix: &str, n: usize) -> Vec<Value> {
    poll(CHECK_TIMEOUT, Duration::from_millis(50), || {
        let got = changes(tail, prefix);
        (got.len() >= n).then_some(got)
    })
    .unwrap_or_else(|| {
        panic!(
            "expected {n} changes of {prefix}*, got {}\n{}",
            changes(tail, prefix).len(),
            tail.report()
        )
    })
}

/// Whether a reconcile's reason names `why` (one re-read may have several:
/// "link va came up; link va went down").
fn names(change: &Value, why: &str) -> bool {
    change["origin"] == "reconcile"
        && change["reason"]
            .as_str()
            .is_some_and(|r| r.split("; ").any(|r| r == why))
}

/// A raw rtnetlink socket of namespace `ns`, bound (autobind), and its
/// port id.
fn rtnetlink_socket(ns: &Netns) -> (OwnedFd, u32) {
    ns.in_ns(|| {
        // SAFETY: plain socket calls with valid arguments; the fd is owned
        // by the OwnedFd returned.
        unsafe {
            let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            let rc = libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                len,
            );
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = len;
            let rc = libc::getsockname(
                fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_nl).cast(),
                &mut len,
            );
            assert_eq!(rc, 0);
            (fd, addr.nl_pid)
        }
    })
}

/// `ip route add blackhole 10.78.<i>.0/24` sent through `fd`, waiting for
/// the kernel's acknowledgement.
fn add_blackhole(fd: &OwnedFd, i: u8) {
    const RTM_NEWROUTE: u16 = 24;
    const FLAGS: u16 = 0x1 | 0x4 | 0x400 | 0x200; // REQUEST, ACK, CREATE, EXCL
    let mut m = Vec::with_capacity(36);
    m.extend_from_slice(&36u32.to_ne_bytes());
    m.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
    m.extend_from_slice(&FLAGS.to_ne_bytes());
    m.extend_from_slice(&u32::from(i).to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel fills it
                                              // rtmsg: inet, /24, src 0, tos 0, main, static, universe, blackhole.
    m.extend_from_slice(&[libc::AF_INET as u8, 24, 0, 0, 254, 4, 0, 6]);
    m.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
                                              // RTA_DST 10.78.i.0
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&1u16.to_ne_bytes());
    m.extend_from_slice(&[10, 78, i, 0]);
    assert_eq!(m.len(), 36);
    // SAFETY: send and recv on a valid socket with buffers of the lengths
    // given.
    unsafe {
        let n = libc::send(fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0);
        assert_eq!(
            n,
            m.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
        let mut ack = [0u8; 256];
        let n = libc::recv(fd.as_raw_fd(), ack.as_mut_ptr().cast(), ack.len(), 0);
        assert!(n >= 20, "recv: {}", std::io::Error::last_os_error());
        let errno = i32::from_ne_bytes(ack[16..20].try_into().unwrap());
        assert_eq!(errno, 0, "the kernel refused the route");
    }
}

#[test]
fn a_long_lived_ip_batch_and_a_process_s_second_socket_are_attributed_to_their_pids() {
    let env = Env::start();
    let mut batch = IpBatch::start(&env.ns);
    let lines: String = (0..100)
        .map(|i| format!("route add 10.77.{i}.0/24 via 10.1.0.10\n"))
        .collect();
    batch.send(&lines);
    // This process holds two sockets and changes routes through the second:
    // the second's port id is not the pid.
    let (_first, _) = rtnetlink_socket(&env.ns);
    let (second, port) = rtnetlink_socket(&env.ns);
    for i in 0..50 {
        add_blackhole(&second, i);
    }
    batch.send("route del 10.77.0.0/24\n");

    let by_ip = wait_changes(&env.tail, "10.77.", 101);
    for v in &by_ip {
        let by = &v["changed_by"];
        assert_eq!(by["pid"], batch.pid(), "{v}");
        assert_eq!(by["comm"], "ip", "{v}");
        assert_eq!(by["port_id"], batch.pid(), "{v}");
        assert_eq!(by["how"], "pid", "{v}");
        assert_eq!(
            by["exe"].as_str().map(|e| e.ends_with("/ip")),
            Some(true),
            "{v}"
        );
        assert!(by["cmdline"].as_str().unwrap().contains("-batch"), "{v}");
    }
    let by_us = wait_changes(&env.tail, "10.78.", 50);
    for v in &by_us {
        let by = &v["changed_by"];
        assert_eq!(by["pid"], std::process::id(), "{v}");
        assert_eq!(by["port_id"], port, "{v}");
        assert_eq!(by["how"], "socket", "{v}");
    }
    // --changed-by, allow and deny, applied by the agent.
    let only_ip = env
        .agent
        .tail_with(&env.ns, &["--insecure", "--changed-by", "ip"]);
    let pid = batch.pid().to_string();
    let not_ip = env
        .agent
        .tail_with(&env.ns, &["--insecure", "--not", "--changed-by", &pid]);
    only_ip.wait_synced(SYNC_TIMEOUT);
    not_ip.wait_synced(SYNC_TIMEOUT);
    batch.send("route add 10.79.1.0/24 via 10.1.0.10\n");
    add_blackhole(&second, 200);
    wait_changes(&only_ip, "10.79.", 1);
    wait_changes(&not_ip, "10.78.200.", 1);
    // Give the other change time to arrive where it must not.
    wait_changes(&env.tail, "10.78.200.", 1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        changes(&only_ip, "10.78.").is_empty(),
        "{}",
        only_ip.report()
    );
    assert!(changes(&not_ip, "10.79.").is_empty(), "{}", not_ip.report());
}

#[test]
fn the_kernel_s_changes_say_kernel_and_reconciles_say_why() {
    let env = Env::start();
    env.ns.ip("route add 10.80.0.0/24 via 10.1.0.10");
    env.ns.ip("nexthop add id 10 via 10.2.0.10 dev vb");
    env.ns.ip("route add 10.80.1.0/24 nhid 10");
    wait_changes(&env.tail, "10.80.", 2);
    // va down: the kernel flushes its IPv4 routes without a word; the
    // agent finds them by re-reading the tables.
    env.ns.ip("link set va down");
    let flushed = wait_changes(&env.tail, "10.80.0.", 2);
    let delete = flushed.last().unwrap();
    assert_eq!(delete["action"], "delete", "{delete}");
    assert_eq!(delete["origin"], "reconcile", "{delete}");
    assert!(names(delete, "link va went down"), "{delete}");
    assert_eq!(delete["changed_by"]["kernel"], true, "{delete}");
    // IPv6 announces its deletes: the kernel made them.
    let v6: Vec<Value> = changes(&env.tail, "2001:db8:1::")
        .into_iter()
        .filter(|v| v["action"] == "delete")
        .collect();
    assert!(!v6.is_empty(), "{}", env.tail.report());
    for v in v6 {
        assert_eq!(v["changed_by"]["kernel"], true, "{v}");
    }
    // An address removed, a nexthop object deleted.
    env.ns
        .ip("route add 10.80.2.0/24 via 10.2.0.10 src 10.2.0.1");
    wait_changes(&env.tail, "10.80.2.", 1);
    // Removing the address: this kernel announces the route's delete, but
    // re-reads the tables too; whatever the reconcile finds says why.
    env.ns.ip("addr del 10.2.0.1/24 dev vb");
    wait_changes(&env.tail, "10.80.2.", 2);
    env.ns.ip("addr add 10.2.0.1/24 dev vb");
    // va down again: the reconcile says so.
    env.ns.ip("link set va up");
    env.ns.ip("link set vb up");
    env.ns.ip("route add 10.80.3.0/24 via 10.1.0.10");
    wait_changes(&env.tail, "10.80.3.", 1);
    env.ns.ip("link set va down");
    let flushed = wait_changes(&env.tail, "10.80.3.", 2);
    assert!(names(&flushed[1], "link va went down"), "{}", flushed[1]);
    // A nexthop object deleted takes its routes along; what the kernel does
    // not announce, the reconcile finds and names.
    env.ns.ip("link set va up");
    env.ns.ip("nexthop add id 20 via 10.1.0.10 dev va");
    env.ns.ip("route add 10.80.4.0/24 nhid 20");
    wait_changes(&env.tail, "10.80.4.", 1);
    env.ns.ip("nexthop del id 20");
    let gone = wait_changes(&env.tail, "10.80.4.", 2);
    assert_eq!(gone[1]["action"], "delete", "{}", gone[1]);
    assert!(
        gone[1]["origin"] == "notification" || names(&gone[1], "nexthop 20 deleted"),
        "{}",
        gone[1]
    );
}

#[test]
fn a_process_in_another_namespace_is_found_with_netns_all() {
    let host = Netns::new();
    add_veth_pair(&host);
    let other = Netns::new();
    add_veth_pair(&other);
    let agent = Agent::start_with(&host, &["--netns", "all"]);
    let tail = agent.tail(&host);
    tail.wait_synced(SYNC_TIMEOUT);
    let mut batch = IpBatch::start(&other);
    // A prefix no other test of this file uses: the agent watches every
    // namespace, theirs too.
    batch.send("route add 10.84.0.0/24 via 10.1.0.10\nroute add 10.84.1.0/24 via 10.1.0.10\n");
    let got = wait_changes(&tail, "10.84.", 2);
    for v in got {
        assert_eq!(v["netns"], other.name(), "{v}");
        assert_eq!(v["changed_by"]["pid"], batch.pid(), "{v}");
        assert_eq!(v["changed_by"]["comm"], "ip", "{v}");
    }
}

/// 500 separate `ip route add`/`del` commands, each living milliseconds,
/// run by a shell loop as an operator's script would: at least 99 % are
/// named by pid and comm before they exit (the early reader on the
/// requester's own CPU is woken by the notification itself), none is
/// credited to a wrong process, and the rest name their port id with
/// `how: exited`.
#[test]
fn short_lived_ip_commands_are_attributed_or_said_to_have_exited() {
    let env = Env::start();
    // Each command in the background, its pid printed, then waited for:
    // the pids are known without changing how the shell starts them.
    let script = format!(
        "set -e; for i in $(seq 0 249); do \
           for verb in add del; do \
             ip -n {ns} route $verb 10.82.$((i / 256)).$((i % 256))/32 via 10.1.0.10 & \
             echo $!; wait $!; \
           done; \
         done",
        ns = env.ns.name()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("running sh");
    assert!(
        out.status.success(),
        "the ip commands failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pids: Vec<u32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 500);
    let got = wait_changes(&env.tail, "10.82.", 500);
    let (mut right, mut exited) = (0, 0);
    for (v, pid) in got.iter().zip(&pids) {
        let by = &v["changed_by"];
        assert_eq!(by["port_id"], *pid, "{v}");
        match by["how"].as_str() {
            Some("pid") => {
                assert_eq!(by["pid"], *pid, "{v}");
                assert_eq!(by["comm"], "ip", "{v}");
                right += 1;
            }
            Some("exited") => {
                assert!(by.get("pid").is_none(), "{v}");
                exited += 1;
            }
            other => panic!("unexpected how {other:?}: {v}"),
        }
    }
    eprintln!(
        "500 short-lived ip commands: {right} attributed to their pid, {exited} exited first"
    );
    assert!(
        right >= 495,
        "only {right} of 500 short-lived ip commands attributed to their pid ({exited} exited first)"
    );
}

/// The store keeps who made every change, deletes included: `route_changes`
/// names the deleter, and `query history` says who opened and who ended
/// each version.
#[test]
fn the_store_keeps_who_added_and_who_deleted() {
    use routewatch_tests::collector::{Collector, TestStore};
    let env = Env::start();
    let addr = env.agent.addr().to_owned();
    let store = TestStore::sqlite();
    let _collector = Collector::start(&env.ns, &store, &[&addr]);
    // The changes come after the collector's snapshot.
    store.wait_stored(&env.ns, &addr);
    let mut adder = IpBatch::start(&env.ns);
    adder.send("route add 10.81.0.0/24 via 10.1.0.10\n");
    wait_changes(&env.tail, "10.81.", 1);
    let mut deleter = IpBatch::start(&env.ns);
    deleter.send("route del 10.81.0.0/24\n");
    wait_changes(&env.tail, "10.81.", 2);
    store.wait_stored(&env.ns, &addr);
    let (adder_pid, deleter_pid) = (adder.pid().to_string(), deleter.pid().to_string());
    assert_eq!(
        store.rows(
            "SELECT action, changed_by_pid, changed_by_comm FROM route_changes
             WHERE dst = '10.81.0.0/24' ORDER BY seq"
        ),
        [
            [
                Some("add".into()),
                Some(adder_pid.clone()),
                Some("ip".into())
            ],
            [
                Some("delete".into()),
                Some(deleter_pid.clone()),
                Some("ip".into())
            ],
        ]
    );
    let history = store.query(&env.ns, &["history", "10.81.0.0/24"]);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        history[0]["changed_by"],
        format!("ip[{adder_pid}]"),
        "{history:?}"
    );
    assert_eq!(
        history[0]["ended_by"],
        format!("ip[{deleter_pid}]"),
        "{history:?}"
    );
}
