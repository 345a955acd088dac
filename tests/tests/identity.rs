//! A record keyed by the agent, not by the address dialled: an agent
//! reached at a new address continues its record, one agent given at two
//! addresses is collected once, and two agents claiming one identity are
//! refused loudly, never merged. Real agents in namespaces this test
//! makes, SQLite and PostgreSQL.

use std::thread;
use std::time::Duration;

use routewatch_tests::fixture::{VA4, VB4};
use routewatch_tests::util::poll;
use routewatch_tests::{
    add_veth_pair, eventually_all_match_kernel, Agent, Collector, Netns, TestStore,
};
use serde_json::Value;

const SETTLE: Duration = routewatch_tests::collector::STORE_SETTLE;

/// One value of the first row of `sql`, as text.
fn one(store: &TestStore, sql: &str) -> String {
    store.rows(sql)[0][0].clone().unwrap_or_default()
}

/// Records with a stored cursor.
fn records_stored(store: &TestStore) -> usize {
    store
        .try_rows("SELECT COUNT(*) FROM targets WHERE stream_id <> ''")
        .ok()
        .and_then(|rows| rows[0][0].as_deref()?.parse().ok())
        .unwrap_or(0)
}

/// No change is stored twice.
fn assert_no_duplicate_rows(store: &TestStore) {
    let twice = store.rows(
        "SELECT stream_id, seq, COUNT(*) FROM events GROUP BY target_id, stream_id, seq
         HAVING COUNT(*) > 1",
    );
    assert!(twice.is_empty(), "changes stored twice: {twice:?}");
    let versions = store.rows(
        "SELECT netns, key, COUNT(*) FROM versions WHERE valid_to IS NULL
         GROUP BY target_id, netns, key HAVING COUNT(*) > 1",
    );
    assert!(versions.is_empty(), "objects current twice: {versions:?}");
}

fn routes(store: &TestStore, ns: &Netns) -> Vec<Value> {
    store.query(ns, &["routes"])
}

/// The agent listens on every address of its namespace; the collector
/// follows it at 127.0.0.1, stops, and is started again with the agent's
/// address on the veth: the record continues (one record, the same
/// stream, every change once, no gap), and the new address is noted.
fn an_agent_reached_at_a_new_address_continues_its_record(store: TestStore) {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let _agent = Agent::start_at(&ns, "0.0.0.0:50071", &["--hostname", "rw-moving"]);
    let old = "127.0.0.1:50071";
    let new = format!("{VA4}:50071");
    let collector = Collector::start(&ns, &store, &[old]);
    let first = store.wait_stored(&ns, old);
    ns.ip("route add 10.71.0.0/24 via 10.1.0.10");
    store.wait_stored(&ns, old);
    collector.stop(Duration::from_secs(10));
    // Changes made while no collector runs come from the agent's journal.
    ns.ip("route add 10.71.1.0/24 via 10.1.0.10");
    ns.ip("route del 10.71.0.0/24");

    let collector = Collector::start(&ns, &store, &[&new]);
    let (stream, _) = store.wait_stored(&ns, &new);
    eventually_all_match_kernel(&ns, || routes(&store, &ns), SETTLE);
    assert_eq!(stream, first.0, "one stream, continued");
    assert_eq!(
        one(&store, "SELECT COUNT(*) FROM targets"),
        "1",
        "one record"
    );
    assert_no_duplicate_rows(&store);
    assert!(
        store.rows("SELECT * FROM gaps").is_empty(),
        "resumed: no gap"
    );
    let log = collector.log();
    assert!(
        log.contains("rw-moving (agent ")
            && log.contains(&format!("is now reached at {new}, no longer at {old}")),
        "the collector says the address changed:\n{log}"
    );
    assert!(
        log.contains(&format!("following {new} from {stream}:")),
        "resumed from the stored cursor:\n{log}"
    );
    // The note: fleet_hosts and query hosts show both addresses.
    let fleet = store.rows("SELECT host, address, agent_id, addresses FROM fleet_hosts");
    assert_eq!(fleet.len(), 1, "{fleet:?}");
    assert_eq!(fleet[0][0].as_deref(), Some("rw-moving"));
    assert_eq!(fleet[0][1].as_deref(), Some(new.as_str()), "{fleet:?}");
    assert!(
        fleet[0][2]
            .as_deref()
            .is_some_and(|id| id.ends_with(&format!("/{}", ns.name()))),
        "{fleet:?}"
    );
    assert_eq!(
        fleet[0][3].as_deref(),
        Some(format!("{old} {new}").as_str()),
        "{fleet:?}"
    );
    let hosts = store.query(&ns, &["hosts"]);
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0]["address"], new.as_str(), "{hosts:?}");
    assert_eq!(
        hosts[0]["addresses"],
        serde_json::json!([old, new]),
        "{hosts:?}"
    );
}

/// One agent given at two addresses: followed at one of them, once; the
/// other stands by and says so. When the address followed goes away, the
/// agent is followed at the other, continuing the record.
fn one_agent_at_two_addresses_is_collected_once(store: TestStore) {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let _agent = Agent::start_at(&ns, "0.0.0.0:50072", &["--hostname", "rw-twice"]);
    let (a, b) = (format!("{VA4}:50072"), format!("{VB4}:50072"));
    let ops = "127.0.0.1:9481";
    let collector = Collector::start(&ns, &store, &[&a, &b, "--ops-listen", ops]);
    let stored = poll(SETTLE, Duration::from_millis(100), || {
        (records_stored(&store) == 1).then_some(())
    });
    assert!(stored.is_some(), "{}", collector.log());
    ns.ip("route add 10.72.0.0/24 via 10.1.0.10");
    eventually_all_match_kernel(&ns, || routes(&store, &ns), SETTLE);
    // Time for the second address to be stored too, if it would.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        one(&store, "SELECT COUNT(*) FROM targets"),
        "1",
        "{}",
        collector.log()
    );
    assert_no_duplicate_rows(&store);
    let log = collector.log();
    assert!(
        log.contains("is rw-twice (agent ") && log.contains("collected once, through"),
        "the collector says the second address reaches the agent it follows:\n{log}"
    );
    let metrics = routewatch_tests::ops::scrape(&ns, ops);
    assert_eq!(
        metrics.value("routewatch_collector_targets_held", &[]),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("routewatch_collector_targets_waiting", &[]),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("routewatch_collector_identity_conflicts_total", &[]),
        Some(0.0)
    );

    // The address followed goes away: the other takes over.
    let followed = one(&store, "SELECT address FROM fleet_hosts");
    let (gone, dev, other) = if followed == a {
        (VA4, "va", &b)
    } else {
        (VB4, "vb", &a)
    };
    let stream = one(&store, "SELECT stream_id FROM targets");
    ns.ip(&format!("addr del {gone}/24 dev {dev}"));
    ns.ip("route add 10.72.1.0/24 dev lo");
    let moved = poll(SETTLE, Duration::from_millis(100), || {
        (one(&store, "SELECT address FROM fleet_hosts") == *other).then_some(())
    });
    assert!(moved.is_some(), "{}", collector.log());
    eventually_all_match_kernel(&ns, || routes(&store, &ns), SETTLE);
    let log = collector.log();
    assert!(
        log.contains(&format!(
            "{followed} (rw-twice) is unreachable and another address of its agent stands by"
        )),
        "{log}"
    );
    assert_eq!(one(&store, "SELECT COUNT(*) FROM targets"), "1", "{log}");
    assert_eq!(
        one(&store, "SELECT stream_id FROM targets"),
        stream,
        "one stream, continued"
    );
    assert!(
        store.rows("SELECT * FROM gaps").is_empty(),
        "resumed: no gap\n{log}"
    );
    assert_no_duplicate_rows(&store);
}

/// Identity is the agent id and the namespace served. Two agents started
/// with the same --agent-id serving the same namespace (machines cloned
/// with one machine id look like this) claim one identity: the second is
/// refused loudly (an error naming both, a metric), and its changes never
/// enter the first one's record. The same --agent-id serving another
/// namespace is another identity, collected on its own.
fn two_agents_claiming_one_identity_are_refused_loudly(store: TestStore) {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let other = Netns::new();
    let id = ["--agent-id", "rw-clone"];
    let _first = Agent::start_at(
        &ns,
        "127.0.0.1:50073",
        &[&id[..], &["--hostname", "rw-first"]].concat(),
    );
    let _clone = Agent::start_at(
        &ns,
        "127.0.0.1:50074",
        &[&id[..], &["--hostname", "rw-clone"]].concat(),
    );
    let elsewhere = ["--hostname", "rw-elsewhere", "--netns", other.name()];
    let _elsewhere = Agent::start_at(&ns, "127.0.0.1:50075", &[&id[..], &elsewhere].concat());
    let ops = "127.0.0.1:9482";
    let targets = [
        "127.0.0.1:50073",
        "127.0.0.1:50074",
        "127.0.0.1:50075",
        "--ops-listen",
        ops,
    ];
    let collector = Collector::start(&ns, &store, &targets);
    let stored = poll(SETTLE, Duration::from_millis(100), || {
        (records_stored(&store) == 2).then_some(())
    });
    assert!(stored.is_some(), "{}", collector.log());
    // Time for the refused one to be stored too, if it would.
    thread::sleep(Duration::from_secs(2));
    let log = collector.log();
    let refused = log
        .lines()
        .find(|l| l.contains("error: REFUSED"))
        .unwrap_or_else(|| panic!("no refusal in the log:\n{log}"));
    assert!(
        refused.contains(&format!("claims identity rw-clone/{}", ns.name()))
            && refused
                .contains("two agents claim one identity, and their records are never merged")
            && refused.contains("--agent-id"),
        "{refused}"
    );
    // Whichever answered first is followed; the other is named as refused.
    let hosts: Vec<String> = store
        .rows("SELECT host FROM fleet_hosts")
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(
        hosts.iter().any(|h| h == "rw-elsewhere"),
        "another namespace is another identity: {hosts:?}"
    );
    assert_eq!(
        hosts
            .iter()
            .filter(|h| *h == "rw-first" || *h == "rw-clone")
            .count(),
        1,
        "one of the two claiming one identity: {hosts:?}"
    );
    let streams = store.rows("SELECT DISTINCT target_id, stream_id FROM events");
    let mut targets: Vec<&Option<String>> = streams.iter().map(|r| &r[0]).collect();
    targets.dedup();
    assert_eq!(
        streams.len(),
        targets.len(),
        "one stream per record, never two merged: {streams:?}"
    );
    let metrics = routewatch_tests::ops::scrape(&ns, ops);
    assert_eq!(
        metrics.value("routewatch_collector_identity_conflicts_total", &[]),
        Some(1.0),
        "{log}"
    );
}

/// The agent at an address stops, and another agent (another identity)
/// comes to answer there: the collector notices on connecting, lets the
/// first record go, and stores the newcomer in a record of its own; the
/// first record holds nothing of it.
fn another_agent_at_the_same_address_gets_its_own_record(store: TestStore) {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let addr = "127.0.0.1:50076";
    let first = Agent::start_at(
        &ns,
        addr,
        &["--agent-id", "rw-before", "--hostname", "rw-before"],
    );
    let collector = Collector::start(&ns, &store, &[addr]);
    let before = store.wait_stored(&ns, addr);
    first.stop(Duration::from_secs(10));
    let _second = Agent::start_at(
        &ns,
        addr,
        &["--agent-id", "rw-after", "--hostname", "rw-after"],
    );
    ns.ip("route add 10.76.0.0/24 via 10.1.0.10");
    let stored = poll(SETTLE, Duration::from_millis(100), || {
        (records_stored(&store) == 2).then_some(())
    });
    assert!(stored.is_some(), "{}", collector.log());
    eventually_all_match_kernel(
        &ns,
        || store.query(&ns, &["routes", "--host", "rw-after"]),
        SETTLE,
    );
    let log = collector.log();
    assert!(
        log.contains(&format!(
            "{addr}: the agent there is now rw-after/{}, not rw-before/{}",
            ns.name(),
            ns.name()
        )),
        "{log}"
    );
    let streams = store.rows(&format!(
        "SELECT agent_id, stream_id FROM targets WHERE agent_id LIKE 'rw-%/{}' ORDER BY agent_id",
        ns.name()
    ));
    assert_eq!(streams.len(), 2, "{streams:?}");
    assert_eq!(
        streams[1][1].as_deref(),
        Some(before.0.as_str()),
        "{streams:?}"
    );
    assert_ne!(
        streams[0][1].as_deref(),
        Some(before.0.as_str()),
        "the newcomer's own stream: {streams:?}"
    );
    // Nothing of the newcomer's stream in the first record.
    let mixed = store.rows(&format!(
        "SELECT COUNT(*) FROM events e JOIN targets t ON t.id = e.target_id
         WHERE t.agent_id = 'rw-before/{}' AND e.stream_id <> '{}'",
        ns.name(),
        before.0
    ));
    assert_eq!(mixed[0][0].as_deref(), Some("0"), "{log}");
    assert_no_duplicate_rows(&store);
}

macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $check() {
                    super::$check(super::TestStore::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $check() {
                    super::$check(super::TestStore::postgres(stringify!($check)));
                }
            )*
        }
    };
}

on_both_backends!(
    an_agent_reached_at_a_new_address_continues_its_record,
    one_agent_at_two_addresses_is_collected_once,
    two_agents_claiming_one_identity_are_refused_loudly,
    another_agent_at_the_same_address_gets_its_own_record,
);
