//! docs/store.md's ten audit questions, answered by running the SQL of the
//! document itself against a store that `routewatch collect` filled from
//! two real agents (`edge-1` and `edge-2`, each its own namespace) while
//! routes changed with `ip`: on SQLite and on PostgreSQL. The document's
//! SQL is what operators copy; if it stops working, these tests fail.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use routewatch_tests::{add_veth_pair, Agent, Collector, Netns, TestStore};

const EDGE1: &str = "127.0.0.1:50051";
const EDGE2: &str = "127.0.0.1:50052";
/// The moment docs/store.md's examples ask about, replaced by a real one.
const SAMPLE_MOMENT: &str = "2026-12-05T14:05:00.000Z";

/// Question number -> its SQL for `backend` ("sqlite" or "postgres"):
/// the block without a backend, or the one for this backend.
fn questions(backend: &str) -> BTreeMap<u32, String> {
    let doc = include_str!("../../docs/store.md");
    let section = doc
        .split("## Ten audit questions")
        .nth(1)
        .expect("docs/store.md has its ten questions");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut out = BTreeMap::new();
    for part in section.split("\n### ").skip(1) {
        let number: u32 = part
            .split('.')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("a question heading without its number: {part:.40}"));
        let mut blocks = part.split("```").skip(1).step_by(2);
        let sql = blocks
            .find_map(|block| {
                let (info, body) = block.split_once('\n')?;
                let tag = info.trim();
                (tag == "sql" || tag == format!("sql {backend}")).then(|| body.to_owned())
            })
            .unwrap_or_else(|| panic!("question {number} has no SQL for {backend}"));
        out.insert(number, sql);
    }
    assert_eq!(
        out.keys().copied().collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>(),
        "docs/store.md asks ten questions"
    );
    out
}

/// RFC 3339 in UTC with milliseconds, as the SQLite views write times.
fn now_text() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

type Rows = Vec<Vec<Option<String>>>;

/// The values of `rows` as text ("NULL" for NULL), for assertions that
/// read like the answer.
fn texts(rows: &Rows) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

/// A destination as both backends print it (PostgreSQL's inet drops the
/// length of host routes; none is asked about here).
fn column(rows: &Rows, i: usize) -> Vec<String> {
    texts(rows).into_iter().map(|r| r[i].clone()).collect()
}

fn answers_the_ten_questions(store: &TestStore, backend: &str) {
    let edge1 = Netns::new();
    add_veth_pair(&edge1);
    let edge2 = Netns::new();
    add_veth_pair(&edge2);
    let _agent1 = Agent::start_at(&edge1, EDGE1, &["--hostname", "edge-1"]);
    let edge2_args = ["--hostname", "edge-2", "--netns", edge2.name()];
    let agent2 = Agent::start_at(&edge1, EDGE2, &edge2_args);
    let _collector = Collector::start(&edge1, store, &[EDGE1, EDGE2]);
    // The first snapshots stored: what follows is stored as changes.
    store.wait_stored(&edge1, EDGE1);
    store.wait_stored(&edge1, EDGE2);

    edge1.ip("route add default via 10.1.0.10");
    edge1.ip("route add 10.20.0.0/16 via 10.1.0.10 proto static");
    edge1.ip("route add 10.30.0.0/24 via 10.2.0.10 table 100");
    edge1.ip("route add blackhole 10.66.0.0/16");
    edge2.ip("route add default via 10.2.0.10");
    edge2.ip("route add 10.20.0.0/16 via 10.2.0.10");
    store.wait_stored(&edge1, EDGE1);
    store.wait_stored(&edge1, EDGE2);
    // Times are kept to the millisecond on SQLite: keep the moment apart
    // from the changes on either side of it.
    thread::sleep(Duration::from_millis(50));
    let moment = now_text();
    thread::sleep(Duration::from_millis(50));

    edge1.ip("route replace 10.20.0.0/16 via 10.2.0.10 proto static");
    for _ in 0..3 {
        edge1.ip("route add 10.99.0.0/24 via 10.1.0.10");
        edge1.ip("route del 10.99.0.0/24");
    }
    // edge-2's agent restarts without its state: a gap in its record.
    agent2.stop(Duration::from_secs(10));
    let _agent2 = Agent::start_at(&edge1, EDGE2, &edge2_args);
    store.wait_stored(&edge1, EDGE1);
    store.wait_stored(&edge1, EDGE2);

    let sql = questions(backend);
    let ask = |n: u32| -> Rows {
        let text = sql[&n].replace(SAMPLE_MOMENT, &moment);
        store.rows(&text)
    };

    // 1. edge-1's main table at the moment: the first gateway of 10.20/16,
    //    none of the flapping prefix, the default and the blackhole.
    let at = ask(1);
    let dsts = column(&at, 0);
    for want in [
        "0.0.0.0/0",
        "10.1.0.0/24",
        "10.2.0.0/24",
        "10.20.0.0/16",
        "10.66.0.0/16",
    ] {
        assert!(dsts.contains(&want.to_owned()), "1: {want} missing: {at:?}");
    }
    assert!(!dsts.iter().any(|d| d.starts_with("10.99.")), "1: {at:?}");
    assert!(
        !dsts.contains(&"10.30.0.0/24".to_owned()),
        "1: table 100 is not main: {at:?}"
    );
    let via = texts(&at)
        .into_iter()
        .find(|r| r[0] == "10.20.0.0/16")
        .expect("10.20.0.0/16");
    assert_eq!(&via[1..4], ["10.1.0.10", "va", "static"], "1: {at:?}");

    // 2. A default route via 10.1.0.10: edge-1 alone.
    assert_eq!(column(&ask(2), 0), ["edge-1"], "2");

    // 3. Every change of 10.20.0.0/16 in the last week: edge-1's add, its
    //    replacement by another gateway (the kernel deletes the old route
    //    and adds the new one), edge-2's add (its snapshot after the gap is
    //    no change).
    let changes = texts(&ask(3));
    let mut seen: Vec<(String, String, String)> = changes
        .iter()
        .map(|r| (r[1].clone(), r[2].clone(), r[4].clone()))
        .collect();
    seen.sort();
    let want: Vec<(String, String, String)> = [
        ("edge-1", "add", "10.1.0.10"),
        ("edge-1", "add", "10.2.0.10"),
        ("edge-1", "delete", "10.1.0.10"),
        ("edge-2", "add", "10.2.0.10"),
    ]
    .iter()
    .map(|(h, a, g)| (h.to_string(), a.to_string(), g.to_string()))
    .collect();
    assert_eq!(seen, want, "3: {changes:?}");

    // 4. Who: the reporting host and address, in stream order, from the
    //    kernel's notifications.
    let who = texts(&ask(4));
    assert_eq!(who.len(), 4, "4: {who:?}");
    assert_eq!(
        (&who[0][1], &who[0][2]),
        (&"edge-1".to_owned(), &EDGE1.to_owned())
    );
    let seqs: Vec<u64> = who[..3].iter().map(|r| r[4].parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "4: {who:?}");
    assert_eq!(who[0][5], "add", "4: {who:?}");
    // Each change, add or delete, names who asked for it (the `ip`
    // command, or its port id when it exited before the agent looked).
    assert!(
        who.iter()
            .all(|r| r[6] == "notification"
                && (r[7].starts_with("ip[") || r[7].ends_with("(exited)"))),
        "4: {who:?}"
    );

    // 5. One gap, edge-2's, from its agent's fresh start.
    let gaps = texts(&ask(5));
    assert_eq!(gaps.len(), 1, "5: {gaps:?}");
    assert_eq!(
        (&gaps[0][0], &gaps[0][3]),
        (&"edge-2".to_owned(), &"unknown stream".to_owned())
    );

    // 6. edge-1 changed most in the last hour.
    let most = texts(&ask(6));
    assert_eq!(most[0][0], "edge-1", "6: {most:?}");
    assert!(
        most[0][1].parse::<u64>().unwrap() > most.get(1).map_or(0, |r| r[1].parse().unwrap()),
        "6: {most:?}"
    );

    // 7. Outside main and local: edge-1's route in table 100.
    let policy = texts(&ask(7));
    assert_eq!(policy.len(), 1, "7: {policy:?}");
    assert_eq!(
        &policy[0][..4],
        ["edge-1", "100", "10.30.0.0/24", "10.2.0.10"],
        "7"
    );

    // 8. The blackhole.
    assert_eq!(
        texts(&ask(8)),
        [["edge-1", "main", "blackhole", "10.66.0.0/16"]],
        "8"
    );

    // 9. The flapping prefix: three adds and three deletes.
    let flaps = texts(&ask(9));
    assert_eq!(flaps, [["edge-1", "10.99.0.0/24", "6"]], "9");

    // 10. Routes per host and table: as many as the kernel holds.
    let counts = texts(&ask(10));
    for (host, ns) in [("edge-1", &edge1), ("edge-2", &edge2)] {
        for (family, flag) in [("inet", "-4"), ("inet6", "-6")] {
            for table in ["main", "local"] {
                let kernel = ns.ip_json(&format!("{flag} route show table {table}"));
                let kernel = kernel.as_array().map_or(0, |a| a.len()).to_string();
                let stored = counts
                    .iter()
                    .find(|r| r[0] == host && r[1] == table && r[2] == family)
                    .map_or("0".to_owned(), |r| r[3].clone());
                assert_eq!(stored, kernel, "10: {host} {table} {family}: {counts:?}");
            }
        }
    }
}

/// Every SQL query of the Grafana dashboards over the store, with
/// Grafana's `$__timeFilter(column)` macro expanded to the last week.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = include_str!("../../deploy/grafana/dashboards/routewatch-store.json");
    let dashboard: serde_json::Value = serde_json::from_str(text).expect("dashboard JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let sql = target["rawSql"].as_str().expect("rawSql");
            let mut expanded = String::new();
            let mut rest = sql;
            while let Some(at) = rest.find("$__timeFilter(") {
                expanded.push_str(&rest[..at]);
                let after = &rest[at + "$__timeFilter(".len()..];
                let end = after.find(')').expect("closing parenthesis");
                let column = &after[..end];
                expanded.push_str(&format!(
                    "{column} BETWEEN now() - interval '7 days' AND now() + interval '1 minute'"
                ));
                rest = &after[end + 1..];
            }
            expanded.push_str(rest);
            assert!(
                !expanded.contains("$__"),
                "a macro this test does not expand: {sql}"
            );
            out.push((panel["title"].as_str().unwrap_or("").to_owned(), expanded));
        }
    }
    out
}

#[test]
fn sqlite_answers_the_ten_audit_questions_of_the_docs() {
    answers_the_ten_questions(&TestStore::sqlite(), "sqlite");
}

#[test]
fn postgres_answers_the_ten_audit_questions_of_the_docs_and_the_dashboards_show_rows() {
    let store = TestStore::postgres("audit");
    answers_the_ten_questions(&store, "postgres");
    // The Grafana dashboard's panels, against the same store.
    let queries = dashboard_queries();
    assert!(queries.len() >= 6, "{queries:?}");
    for (title, sql) in queries {
        let rows = store.rows(&sql);
        assert!(!rows.is_empty(), "panel {title:?} shows nothing: {sql}");
    }
}
