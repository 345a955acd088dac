//! Anti-entropy digests end to end: real agents sending digests every
//! second (`--digest-interval 1`), a collector whose stored record is
//! damaged on purpose (a current row deleted, another altered) finding and
//! repairing it within one interval, `query verify` saying so before and
//! after, and no false alarm from `tail --verify` or `collect` while tens
//! of thousands of routes churn.

use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use routewatch_tests::bins::client_bin;
use routewatch_tests::{
    add_veth_pair, blackholes, eventually_all_match_kernel, Agent, Collector, Netns, Tail,
    TestStore,
};
use serde_json::Value;

const SETTLE: Duration = routewatch_tests::collector::STORE_SETTLE;

/// Routes churned while digests flow (added, then deleted). The issue asks
/// for 200k: bench/digest.sh churns that many against a release build.
const CHURN: u32 = 30_000;

/// A namespace with the veth pair and an agent sending a digest every
/// second (fields drop in this order: the agent before its namespace).
struct Host {
    ns: Netns,
    agent: Agent,
    addr: String,
}

fn host() -> Host {
    host_with(&[])
}

fn host_with(extra: &[&str]) -> Host {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let mut args = vec!["--digest-interval", "1"];
    args.extend_from_slice(extra);
    let agent = Agent::start_with(&ns, &args);
    let addr = agent.addr().to_owned();
    Host { ns, agent, addr }
}

/// `routewatch query --store URL [-o json] verify --host ADDR --insecure`.
fn verify(ns: &Netns, store: &TestStore, addr: &str, json: bool) -> Output {
    let url = store.url();
    let mut args = vec!["query", "--store", url.as_str()];
    if json {
        args.extend_from_slice(&["-o", "json"]);
    }
    args.extend_from_slice(&["verify", "--host", addr, "--insecure"]);
    ns.output(client_bin(), &args)
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn routes_now(store: &TestStore, ns: &Netns) -> Vec<Value> {
    store.query(ns, &["routes"])
}

/// Gaps whose reason says a digest differed.
fn digest_gaps(store: &TestStore) -> Vec<Vec<Option<String>>> {
    store.rows("SELECT cause, reason FROM gaps WHERE reason LIKE 'digest mismatch%'")
}

/// A current route version of a blackhole route: its vid.
fn current_blackhole(store: &TestStore, skip: usize) -> String {
    let rows = store.rows(
        "SELECT v.vid FROM versions v JOIN version_columns c
            ON c.target_id = v.target_id AND c.vid = v.vid
         WHERE v.valid_to IS NULL AND v.kind = 1 AND c.type = 'blackhole'
         ORDER BY v.vid",
    );
    rows.get(skip)
        .and_then(|r| r[0].clone())
        .unwrap_or_else(|| panic!("no current blackhole version #{skip} in the store"))
}

fn a_damaged_record_is_found_and_repaired_within_one_interval(store: TestStore) {
    let Host {
        ns,
        agent: _agent,
        addr,
    } = host();
    ns.ip_batch(&blackholes("add", 0..50));
    ns.ip("route add 10.250.0.0/24 via 10.1.0.10");
    let mut collector = Collector::start(&ns, &store, &[&addr]);
    store.wait_stored(&ns, &addr);
    let ok = verify(&ns, &store, &addr, false);
    assert!(
        ok.status.success(),
        "a record collected as is verifies\n{}",
        text(&ok)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("ok "),
        "{}",
        text(&ok)
    );
    // A few digests went by while the record was right: no alarm.
    thread::sleep(Duration::from_millis(2500));
    assert!(digest_gaps(&store).is_empty(), "a false alarm");
    collector.kill();

    // Damage the stored record: one current route gone, another one's
    // object replaced by a third's (same count, different contents).
    let gone = current_blackhole(&store, 0);
    let altered = current_blackhole(&store, 1);
    let other = current_blackhole(&store, 2);
    store.execute(&format!("DELETE FROM versions WHERE vid = {gone}"));
    store.execute(&format!(
        "UPDATE versions SET object = (SELECT object FROM versions WHERE vid = {other}) \
         WHERE vid = {altered}"
    ));
    let bad = verify(&ns, &store, &addr, true);
    assert_eq!(
        bad.status.code(),
        Some(6),
        "query verify exits 6 on a mismatch\n{}",
        text(&bad)
    );
    let parts: Vec<Value> = String::from_utf8_lossy(&bad.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let main = parts
        .iter()
        .find(|p| p["kind"] == "route" && p["table"] == 254)
        .unwrap_or_else(|| panic!("no part for table main\n{}", text(&bad)));
    assert_eq!(main["status"], "mismatch", "{}", text(&bad));
    assert_eq!(
        main["stored_count"].as_u64().unwrap() + 1,
        main["agent_count"].as_u64().unwrap(),
        "one route is missing from the store\n{}",
        text(&bad)
    );
    assert!(
        parts
            .iter()
            .filter(|p| !(p["kind"] == "route" && p["table"] == 254))
            .all(|p| p["status"] == "ok"),
        "only table main differs\n{}",
        text(&bad)
    );

    // A collector started on the damaged record finds it at the agent's
    // next digest and repairs it from a fresh snapshot.
    let started = Instant::now();
    let collector = Collector::start(&ns, &store, &[&addr]);
    let deadline = started + Duration::from_secs(20);
    while digest_gaps(&store).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no gap with reason 'digest mismatch' within 20 s\n--- collector ---\n{}",
            collector.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let found = started.elapsed();
    eprintln!("damaged record found and repaired {found:?} after the collector started");
    let gaps = digest_gaps(&store);
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?}");
    assert_eq!(gaps[0][0].as_deref(), Some("4"), "cause DIGEST_MISMATCH");
    assert_eq!(
        store.rows("SELECT cause FROM record_gaps WHERE reason LIKE 'digest mismatch%'"),
        [[Some("digest mismatch".to_owned())]],
        "the view names the cause"
    );
    let log = collector.log();
    assert!(
        log.contains("warning: digest mismatch") && log.contains("table 254"),
        "the collector says which part differed\n{log}"
    );
    store.wait_stored(&ns, &addr);
    eventually_all_match_kernel(&ns, || routes_now(&store, &ns), SETTLE);
    let repaired = verify(&ns, &store, &addr, false);
    assert!(
        repaired.status.success(),
        "the repaired record verifies\n{}",
        text(&repaired)
    );
    // Repaired for good: later digests match.
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(digest_gaps(&store).len(), 1, "no second alarm");
}

#[test]
fn sqlite_a_damaged_record_is_found_and_repaired_within_one_interval() {
    a_damaged_record_is_found_and_repaired_within_one_interval(TestStore::sqlite());
}

#[test]
fn postgres_a_damaged_record_is_found_and_repaired_within_one_interval() {
    a_damaged_record_is_found_and_repaired_within_one_interval(TestStore::postgres(
        "digest_repair",
    ));
}

/// Digests every second while CHURN routes are added and deleted: tail
/// --verify and collect compare each one they get at its position, and
/// none differs. A raw tail counts the digests, so that the comparison is
/// known to have happened during the churn.
#[test]
fn no_false_alarm_from_tail_verify_or_collect_under_churn() {
    // A journal that holds the whole churn: three subscribers of a debug
    // build must not lag behind it (a resync is not what is tested here).
    let Host {
        ns,
        agent: _agent,
        addr,
    } = host_with(&[
        "--journal-bytes",
        "536870912",
        "--journal-capacity",
        "1000000",
    ]);
    let store = TestStore::sqlite();
    let _collector = Collector::start(&ns, &store, &[&addr]);
    let verifying = Tail::with_args(
        &ns,
        &["tail", "--insecure", "-o", "json", "--verify", &addr],
    );
    let raw = Tail::with_args(&ns, &["tail", "--insecure", "-o", "jsonpb", &addr]);
    verifying.wait_synced(SETTLE);
    store.wait_stored(&ns, &addr);
    // In rounds, so that readers catch up between them and get digests at
    // positions inside the churn: each round adds a thousand routes and
    // deletes half of the previous round's.
    let started = Instant::now();
    let rounds = CHURN / 1000;
    for round in 0..rounds {
        let mut batch = blackholes("add", round * 1000..(round + 1) * 1000);
        if round > 0 {
            batch += &blackholes("del", (round - 1) * 1000..(round - 1) * 1000 + 500);
        }
        ns.ip_batch(&batch);
        thread::sleep(Duration::from_millis(300));
    }
    let left: String = (0..rounds)
        .map(|round| {
            let from = if round + 1 == rounds { 0 } else { 500 };
            blackholes("del", round * 1000 + from..(round + 1) * 1000)
        })
        .collect();
    ns.ip_batch(&left);
    let churned = started.elapsed();
    let last = store.wait_stored(&ns, &addr).1;
    // Digests at rest after the churn, once the raw tail (slowest: it
    // prints every event) has caught up.
    let deadline = Instant::now() + SETTLE;
    let digest_positions = || -> Vec<u64> {
        raw.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["event"].clone())
            .filter(|e| e.get("digest").is_some())
            .map(|e| match &e["seq"] {
                Value::String(s) => s.parse().unwrap_or(0),
                other => other.as_u64().unwrap_or(0),
            })
            .collect()
    };
    while digest_positions()
        .iter()
        .filter(|&&seq| seq == last)
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no digest at rest within {SETTLE:?}\n{}",
            raw.report()
        );
        thread::sleep(Duration::from_millis(200));
    }
    thread::sleep(Duration::from_millis(1500));
    let positions = digest_positions();
    let during = positions.iter().filter(|&&seq| seq < last).count();
    eprintln!(
        "{} route changes in {churned:?}; the raw tail got {} digests, {during} of them during the churn",
        2 * CHURN,
        positions.len()
    );
    assert!(
        during >= 3,
        "digests at positions inside the churn: {during}"
    );
    let stderr = verifying.stderr();
    assert!(
        !stderr.contains("digest mismatch"),
        "tail --verify raised a false alarm\n{stderr}"
    );
    assert!(
        !verifying.lines().iter().any(|l| l.contains("resync")),
        "tail --verify resynchronised\n{}",
        verifying.report()
    );
    assert!(
        store.rows("SELECT reason FROM gaps").is_empty(),
        "collect recorded a gap"
    );
    let ok = verify(&ns, &store, &addr, false);
    assert!(ok.status.success(), "{}", text(&ok));
}

#[test]
fn tail_verify_refuses_what_keeps_no_whole_picture() {
    let ns = Netns::new();
    for (extra, says) in [
        (&["--raw"][..], "--raw"),
        (&["--table", "main"][..], "filters"),
        (&["--last", "5"][..], "--last"),
    ] {
        let mut args = vec!["tail", "--insecure", "--verify", "127.0.0.1:1"];
        args.extend_from_slice(extra);
        let out = ns.output(client_bin(), &args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            text(&out)
        );
    }
}
