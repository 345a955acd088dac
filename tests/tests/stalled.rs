//! A subscriber that stops reading costs the agent bounded memory, and when
//! its connection closes (it did not answer HTTP/2 keepalive pings) the
//! agent says so once -- who, where in the stream, why -- and counts it.
//! The subscriber comes back without losing anything.

use std::time::Duration;

use routewatch_tests::ops::scrape;
use routewatch_tests::util::poll;
use routewatch_tests::{blackholes, eventually_matches_kernel, Agent, Netns, Tail, SYNC_TIMEOUT};

const OPS: &str = "127.0.0.1:9466";
const LINE: &str = "stalled subscriber disconnected";

#[test]
fn a_stalled_subscriber_is_disconnected_with_one_log_line_and_counted() {
    let ns = Netns::new();
    let agent = Agent::start_with(&ns, &["--ops-listen", OPS]);
    // Uncompressed, so that the churn fills the connection.
    let args = [
        "tail",
        "--insecure",
        "-o",
        "json",
        "--compression",
        "none",
        agent.addr(),
    ];
    let tail = Tail::with_args(&ns, &args);
    tail.wait_synced(SYNC_TIMEOUT);
    tail.signal("STOP");
    // Far more than the connection holds for a reader that stopped.
    ns.ip_batch(&blackholes("add", 0..100_000));
    ns.ip_batch(&blackholes("del", 0..100_000));
    // Keepalive pings every 10 s, unanswered for 20 s.
    let found = poll(Duration::from_secs(90), Duration::from_millis(500), || {
        agent.log().contains(LINE).then_some(())
    });
    let log = agent.log();
    assert!(
        found.is_some(),
        "no log line about the stalled subscriber:\n{log}"
    );
    // Nothing else happens to that session: the line stays alone.
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(LINE)).collect();
    assert_eq!(lines.len(), 1, "said once:\n{log}");
    assert!(
        lines[0].contains("peer=127.0.0.1:") && lines[0].contains("seq_sent="),
        "says who and where: {}",
        lines[0]
    );
    let metrics = scrape(&ns, OPS);
    assert_eq!(
        metrics.value("routewatch_subscribers_stalled_disconnects_total", &[]),
        Some(1.0)
    );
    tail.signal("CONT");
    eventually_matches_kernel(&ns, || tail.objects(), Duration::from_secs(90));
}
