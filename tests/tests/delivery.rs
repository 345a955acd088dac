//! Delivery guarantees: consumers survive agent crashes and restarts, dead
//! links, stalled neighbours and their own restarts -- with every change
//! exactly once, or an explicit resync, and the kernel's state at the end.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use routewatch_tests::ops::scrape;
use routewatch_tests::util::{temp_path, TempDir};
use routewatch_tests::{
    add_veth_pair, blackholes, eventually_matches_kernel, Agent, Env, Netns, StreamCheck, Tail,
    SYNC_TIMEOUT,
};

const SETTLE: Duration = Duration::from_secs(90);

fn state_args(dir: &Path) -> Vec<String> {
    vec!["--state-dir".to_owned(), dir.display().to_string()]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn agent_killed_during_churn_continues_its_stream_from_the_state_dir() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let dir = TempDir::new("state");
    let args = state_args(&dir);
    let agent = Agent::start_with(&ns, &strs(&args));
    let tail = agent.tail(&ns);
    tail.wait_synced(SYNC_TIMEOUT);
    thread::scope(|s| {
        s.spawn(|| ns.ip_batch(&blackholes("add", 0..4000)));
        thread::sleep(Duration::from_millis(150));
        agent.stop_with("KILL", Duration::from_secs(10));
    });
    // What changes while the agent is down must arrive as reconcile changes.
    ns.ip_batch(&blackholes("del", 0..1000));
    ns.ip("route add 10.250.0.0/24 via 10.1.0.10");
    let agent = Agent::start_with(&ns, &strs(&args));
    ns.ip_batch(&blackholes("add", 4000..5000));
    eventually_matches_kernel(&ns, || tail.objects(), SETTLE);
    let check = StreamCheck::of(&tail.lines());
    check.assert_exactly_once();
    assert!(
        check.resync_causes.is_empty(),
        "no resync needed, got {:?}",
        check.resync_causes
    );
    assert_eq!(check.streams.len(), 1, "one stream across the restart");
    assert!(
        tail.lines()
            .iter()
            .any(|l| l.contains(r#""origin":"reconcile""#)),
        "changes made while the agent was down arrive as reconcile changes"
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn agent_restarted_without_state_dir_means_an_explicit_resync() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start(&ns);
    let tail = agent.tail(&ns);
    tail.wait_synced(SYNC_TIMEOUT);
    ns.ip_batch(&blackholes("add", 0..500));
    agent.stop_with("KILL", Duration::from_secs(10));
    ns.ip_batch(&blackholes("del", 0..250));
    let _agent = Agent::start(&ns);
    ns.ip_batch(&blackholes("add", 1000..1100));
    eventually_matches_kernel(&ns, || tail.objects(), SETTLE);
    let check = StreamCheck::of(&tail.lines());
    check.assert_exactly_once();
    assert_eq!(check.resync_causes, vec!["unknown_stream"]);
    assert_eq!(check.streams.len(), 2);
}

#[test]
fn a_link_down_for_ten_seconds_between_agent_and_tail_loses_nothing() {
    let host = Netns::new();
    let watcher = Netns::new();
    host.ip(&format!(
        "link add rwa type veth peer name rwb netns {}",
        watcher.name()
    ));
    host.ip("addr add 10.77.0.1/24 dev rwa");
    host.ip("link set rwa up");
    watcher.ip("addr add 10.77.0.2/24 dev rwb");
    watcher.ip("link set rwb up");
    let agent = Agent::start_at(&host, "10.77.0.1:50051", &[]);
    let tail = Tail::remote(&watcher, "10.77.0.1:50051");
    tail.wait_synced(SYNC_TIMEOUT);
    thread::scope(|s| {
        let churn = s.spawn(|| {
            for round in 0..12u32 {
                host.ip_batch(&blackholes("add", round * 200..round * 200 + 200));
                host.ip_batch(&blackholes("del", round * 200..round * 200 + 100));
                thread::sleep(Duration::from_millis(1000));
            }
        });
        thread::sleep(Duration::from_millis(500));
        host.ip("link set rwa down");
        thread::sleep(Duration::from_secs(10));
        host.ip("link set rwa up");
        churn.join().expect("churn thread");
    });
    eventually_matches_kernel(&host, || tail.objects(), SETTLE);
    let check = StreamCheck::of(&tail.lines());
    check.assert_exactly_once();
    assert!(
        check.resync_causes.is_empty(),
        "resumed, not resynced: {:?}",
        check.resync_causes
    );
    drop(agent);
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_stalled_subscriber_is_resynced_alone_and_memory_stays_bounded() {
    const RSS_BOUND_MIB: u64 = 256;
    let ns = Netns::new();
    add_veth_pair(&ns);
    // Far more than a healthy subscriber has in flight (a few batches of
    // 1024), far less than the churn.
    let agent = Agent::start_with(&ns, &["--journal-capacity", "40000"]);
    // Uncompressed, so that the kernel's socket buffers cannot absorb the
    // whole churn for a stopped reader.
    let args = [
        "tail",
        "--insecure",
        "-o",
        "json",
        "--compression",
        "none",
        agent.addr(),
    ];
    let steady = Tail::with_args(&ns, &args);
    let stalled = [Tail::with_args(&ns, &args), Tail::with_args(&ns, &args)];
    steady.wait_synced(SYNC_TIMEOUT);
    for t in &stalled {
        t.wait_synced(SYNC_TIMEOUT);
        t.signal("STOP");
    }
    let pid = agent.pid();
    let mut peak = 0;
    thread::scope(|s| {
        let churn = s.spawn(|| {
            // Far more than the journal plus what the kernel's socket
            // buffers hold for a stopped reader (several MiB), in steps a
            // running subscriber keeps up with.
            for verb in ["add", "del"] {
                for step in 0..20 {
                    ns.ip_batch(&blackholes(verb, step * 5000..step * 5000 + 5000));
                    thread::sleep(Duration::from_millis(150));
                }
            }
        });
        while !churn.is_finished() {
            peak = peak.max(rss_kib(pid));
            thread::sleep(Duration::from_millis(20));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(50));
    }
    for t in &stalled {
        t.signal("CONT");
    }
    eventually_matches_kernel(&ns, || steady.objects(), SETTLE);
    let check = StreamCheck::of(&steady.lines());
    check.assert_exactly_once();
    assert!(
        check.resync_causes.is_empty(),
        "the steady subscriber is undisturbed, got resyncs {:?}\n{}\n{}",
        check.resync_causes,
        steady.report(),
        agent.log()
    );
    assert_eq!(
        check.live_changes, 200_000,
        "the steady subscriber saw every change"
    );
    for t in &stalled {
        eventually_matches_kernel(&ns, || t.objects(), SETTLE);
        let check = StreamCheck::of(&t.lines());
        check.assert_exactly_once();
        assert_eq!(
            check.resync_causes,
            vec!["lagged"],
            "the stalled subscriber learns it lagged"
        );
    }
    assert!(
        peak < RSS_BOUND_MIB * 1024,
        "agent RSS peaked at {} MiB with two stalled subscribers (bound {RSS_BOUND_MIB} MiB)",
        peak / 1024
    );
    eprintln!("note: agent RSS peak {} MiB", peak / 1024);
}

#[test]
fn a_restarted_tail_resumes_from_its_cursor_file_or_resyncs_when_too_old() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_with(&ns, &["--journal-capacity", "100"]);
    let cursors = temp_path("cursors.json");
    let cursor_arg = cursors.display().to_string();
    let args = [
        "tail",
        "--insecure",
        "-o",
        "json",
        "--cursor-file",
        &cursor_arg,
        agent.addr(),
    ];
    let first = Tail::with_args(&ns, &args);
    first.wait_synced(SYNC_TIMEOUT);
    ns.ip_batch(&blackholes("add", 0..20));
    eventually_matches_kernel(&ns, || first.objects(), SETTLE);
    assert!(
        first.stop(Duration::from_secs(10)).success(),
        "{}",
        first.report()
    );

    // Within the journal: no snapshot, nothing twice, nothing missing.
    ns.ip_batch(&blackholes("add", 20..60));
    let second = Tail::with_args(&ns, &args);
    let mut both = first.lines();
    eventually_matches_kernel(
        &ns,
        || {
            both = first.lines();
            both.extend(second.lines());
            routewatch_tests::Replay::from_lines(&both).objects()
        },
        SETTLE,
    );
    assert!(
        !second
            .lines()
            .iter()
            .any(|l| l.contains(r#""origin":"dump""#)),
        "a resumed tail gets no snapshot:\n{}",
        second.report()
    );
    let check = StreamCheck::of(&both);
    check.assert_exactly_once();
    assert!(check.resync_causes.is_empty());
    assert!(second.stop(Duration::from_secs(10)).success());

    // Further back than the journal holds: an explicit resync, then exact.
    ns.ip_batch(&blackholes("add", 100..400));
    let third = Tail::with_args(&ns, &args);
    eventually_matches_kernel(&ns, || third.objects(), SETTLE);
    let check = StreamCheck::of(&third.lines());
    assert_eq!(
        check.resync_causes,
        vec!["cursor_too_old"],
        "{}",
        third.report()
    );
    drop(agent);
    let _ = std::fs::remove_file(&cursors);
}

/// Every response encoding a client can ask for carries the same stream:
/// subscribers accepting only zstd, only gzip, both, or neither each end
/// with the kernel's table and every change once, the agent used the
/// encoding each one asked for (none for `auto` on loopback, where
/// compressing only costs CPU), and its metrics count the bytes of each.
#[test]
fn every_response_encoding_carries_the_same_exact_stream() {
    const OPS: &str = "127.0.0.1:9464";
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_with(&ns, &["--ops-listen", OPS]);
    // A snapshot of several messages, then churn in large batches.
    ns.ip_batch(&blackholes("add", 0..3000));
    let choices = ["zstd", "gzip", "auto", "none"];
    let tails: Vec<Tail> = choices
        .iter()
        .map(|c| {
            Tail::with_args(
                &ns,
                &[
                    "tail",
                    "--insecure",
                    "-o",
                    "json",
                    "--compression",
                    c,
                    agent.addr(),
                ],
            )
        })
        .collect();
    for t in &tails {
        t.wait_synced(SYNC_TIMEOUT);
    }
    ns.ip_batch(&blackholes("add", 3000..8000));
    ns.ip_batch(&blackholes("del", 0..5000));
    for (choice, t) in choices.iter().zip(&tails) {
        eventually_matches_kernel(&ns, || t.objects(), SETTLE);
        let check = StreamCheck::of(&t.lines());
        check.assert_exactly_once();
        assert_eq!(
            check.live_changes,
            10_000,
            "--compression {choice}: every change\n{}",
            t.report()
        );
    }
    let log = agent.log();
    let used: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("subscriber connected"))
        .filter_map(|l| l.split("compression=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let mut sorted = used.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["gzip", "none", "none", "zstd"], "{log}");
    let metrics = scrape(&ns, OPS);
    let bytes = |c: &str| {
        metrics
            .value("routewatch_response_bytes_total", &[("compression", c)])
            .unwrap_or_else(|| panic!("no response bytes for {c}: {metrics:?}"))
    };
    // 13000 snapshot and live events of about 100 bytes each, at least.
    assert!(bytes("none") > 1_000_000.0, "{}", bytes("none"));
    assert!(bytes("gzip") > 0.0 && bytes("gzip") < bytes("none") / 2.0);
    assert!(bytes("zstd") > 0.0 && bytes("zstd") < bytes("none") / 2.0);
}

/// The object lines (routes, nexthop objects, rules) among `lines`.
fn object_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("object").is_some())
        .collect()
}

#[test]
fn after_an_agent_restart_tail_prints_only_what_changed_while_it_was_down() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.ip("route add 10.251.0.0/24 via 10.1.0.10");
    ns.ip("route add 10.251.1.0/24 via 10.1.0.10");
    let agent = Agent::start(&ns);
    let addr = agent.addr().to_owned();
    let json = agent.tail(&ns);
    let raw = agent.tail_with(&ns, &["--insecure", "--raw"]);
    let text = Tail::with_args(&ns, &["tail", "--insecure", "--color", "never", &addr]);
    json.wait_synced(SYNC_TIMEOUT);
    raw.wait_synced(SYNC_TIMEOUT);
    let synced = |t: &Tail| t.stderr().contains("synced at seq");
    let start = Instant::now();
    while !synced(&text) && start.elapsed() < SYNC_TIMEOUT {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(synced(&text), "text tail never synced\n{}", text.report());
    let (json_before, raw_before, text_before) =
        (json.line_count(), raw.line_count(), text.line_count());

    agent.stop_with("KILL", Duration::from_secs(10));
    ns.ip("route del 10.251.0.0/24 via 10.1.0.10");
    ns.ip("route add 10.251.2.0/24 via 10.1.0.10");
    let _agent = Agent::start(&ns);
    json.wait_for(|r| r.resyncs == 1 && r.is_synced(), SETTLE);
    raw.wait_for(|r| r.resyncs == 1 && r.is_synced(), SETTLE);
    eventually_matches_kernel(&ns, || json.objects(), SETTLE);
    eventually_matches_kernel(&ns, || raw.objects(), SETTLE);

    let after = object_lines(&json.lines()[json_before..]);
    let seen: Vec<(String, String, String)> = after
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            (s("action"), s("origin"), s("dst"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("delete".into(), "reconcile".into(), "10.251.0.0/24".into()),
            ("add".into(), "reconcile".into(), "10.251.2.0/24".into()),
        ],
        "only the differences, not the whole snapshot\n{}",
        json.report()
    );
    let check = StreamCheck::of(&json.lines());
    check.assert_exactly_once();
    assert_eq!(check.resync_causes, vec!["unknown_stream"]);

    // --raw: the agent's full snapshot again, as before.
    let raw_after = object_lines(&raw.lines()[raw_before..]);
    assert_eq!(
        raw_after.len(),
        raw.objects().len(),
        "--raw prints the whole fresh snapshot\n{}",
        raw.report()
    );
    assert!(raw_after.iter().all(|v| v["origin"] == "dump"));

    // Text: the same two lines, the removed route as `Deleted`.
    let start = Instant::now();
    while text.line_count() < text_before + 2 && start.elapsed() < SETTLE {
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(500));
    let lines = text.lines()[text_before..].to_vec();
    assert_eq!(lines.len(), 2, "{lines:#?}\n{}", text.report());
    assert!(
        lines[0].ends_with(" Deleted 10.251.0.0/24 via 10.1.0.10 dev va"),
        "{lines:#?}"
    );
    assert!(
        lines[1].ends_with(" 10.251.2.0/24 via 10.1.0.10 dev va"),
        "{lines:#?}"
    );
    assert!(
        text.stderr()
            .contains("the differences from the new snapshot follow"),
        "{}",
        text.report()
    );
}

/// 2,000 routes added by one `ip -batch` reach the agent in bursts of
/// thousands of datagrams read at once; each change carries the time its
/// own datagram was read, so that `--at` can tell them apart: the times
/// differ, and never go back along the stream.
#[test]
fn each_change_carries_its_own_time() {
    let env = Env::start();
    env.ns.ip_batch(&blackholes("add", 0..2000));
    env.check();
    let changes: Vec<(u64, String)> = env
        .tail
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["origin"] == "notification" && v["action"] == "add")
        .map(|v| {
            let seq = v["seq"].as_u64().expect("seq");
            let time = v["time"].as_str().expect("time").to_owned();
            (seq, time)
        })
        .collect();
    assert!(changes.len() >= 2000, "{} notifications", changes.len());
    let times: Vec<i64> = changes
        .iter()
        .map(|(_, t)| {
            let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("{t}: {e}"));
            t.unix_timestamp_nanos() as i64
        })
        .collect();
    assert!(
        changes.windows(2).all(|w| w[0].0 < w[1].0),
        "in stream order"
    );
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times go back along the stream"
    );
    let mut distinct = times.clone();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        times.len(),
        "changes read apart share a time: {} times for {} changes",
        distinct.len(),
        times.len()
    );
}
