//! The state dir on disk (`--state-dir`): damage to its files never lets a
//! restarted agent continue its stream with sequence numbers that mean
//! something else than what consumers already hold. A torn last record (the
//! agent was killed while writing) is cut off and the stream continues;
//! damage anywhere else starts a new stream, which every resuming consumer
//! learns through an explicit resync.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use routewatch_tests::ops::scrape;
use routewatch_tests::util::temp_path;
use routewatch_tests::{
    add_veth_pair, blackholes, eventually_matches_kernel, Agent, Netns, StreamCheck, SYNC_TIMEOUT,
};

const SETTLE: Duration = Duration::from_secs(90);
const OPS: &str = "127.0.0.1:9465";

/// Overwrites 4 bytes in the middle of `path` (its length stays).
fn damage_the_middle_of(path: &Path) {
    let len = fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    assert!(
        len > 4096,
        "{} holds {len} bytes: too few to damage its middle",
        path.display()
    );
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for writing");
    file.seek(SeekFrom::Start(len / 2)).expect("seek");
    file.write_all(&[0xde, 0xad, 0xbe, 0xef]).expect("write");
}

#[test]
fn a_journal_damaged_in_the_middle_starts_a_new_stream_and_its_consumers_resync() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let dir = temp_path("state");
    let dir_arg = dir.display().to_string();
    let args = ["--state-dir", dir_arg.as_str(), "--ops-listen", OPS];
    let agent = Agent::start_with(&ns, &args);
    let tail = agent.tail(&ns);
    tail.wait_synced(SYNC_TIMEOUT);
    // After the initial dump the table is in state.pb: these go to the log.
    ns.ip_batch(&blackholes("add", 0..3000));
    eventually_matches_kernel(&ns, || tail.objects(), SETTLE);
    agent.stop_with("KILL", Duration::from_secs(10));
    damage_the_middle_of(&dir.join("journal.log"));
    // While the agent is down: the routes the damaged part of the log
    // added go away, others come.
    ns.ip_batch(&blackholes("del", 0..3000));
    ns.ip_batch(&blackholes("add", 3000..6000));
    let agent = Agent::start_with(&ns, &args);
    ns.ip_batch(&blackholes("add", 6000..6500));
    eventually_matches_kernel(&ns, || tail.objects(), SETTLE);
    let check = StreamCheck::of(&tail.lines());
    check.assert_exactly_once();
    assert_eq!(
        check.resync_causes,
        vec!["unknown_stream"],
        "the consumer resyncs once\n{}",
        agent.log()
    );
    assert_eq!(check.streams.len(), 2, "a new stream after the damage");
    let log = agent.log();
    assert!(
        log.contains("journal.log is damaged: record ")
            && log.contains(" at byte ")
            && log.contains("starting a new stream"),
        "the agent says what it found where, and what it did:\n{log}"
    );
    assert!(
        dir.join("journal.log.discarded").exists(),
        "the damaged log is kept for a post-mortem"
    );
    let metrics = scrape(&ns, OPS);
    assert_eq!(
        metrics.value(
            "routewatch_state_dir_discarded_total",
            &[("reason", "damaged")]
        ),
        Some(1.0),
        "counted once"
    );
    drop(agent);
    let _ = fs::remove_dir_all(&dir);
}
