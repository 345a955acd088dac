//! The store's backends keep the same promises: each check below runs on a
//! fresh SQLite file and on a fresh PostgreSQL database, writing what a
//! ledger makes of hand-made agent streams and reading it back. The checks
//! after them are about PostgreSQL alone: collectors sharing one database.

use std::process::Command;
use std::time::{Duration, Instant};

use routewatch_client::query::history;
use routewatch_client::store::testing::{add, change, cursor, delete, marker, route, snapshot};
use routewatch_client::store::{
    Ledger, OpenVersion, Outcome, Pruned, Store, StoreError, StoreUrl, TargetRow, Value, Write,
};
use routewatch_proto::v1::{event, Action, Heartbeat, Origin};
use routewatch_tests::bins::client_bin;
use routewatch_tests::util::run_measured;
use routewatch_tests::TestStore;

/// Opens the test's store as `collect` and `query` do.
async fn open(place: &TestStore) -> Store {
    let url = StoreUrl::parse(&place.url()).expect("a store URL");
    Store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
}

/// The target as the store holds it, and a ledger continuing from there.
async fn follow(store: &mut Store, name: &str) -> (TargetRow, Ledger) {
    let (target, open) = store
        .claim(name)
        .await
        .expect("claim")
        .unwrap_or_else(|| panic!("{name} is held by another collector"));
    let ledger = Ledger::new(&target, open);
    (target, ledger)
}

/// Feeds `events` to the ledger and takes its write.
fn write(ledger: &mut Ledger, events: &[routewatch_proto::v1::Event]) -> Write {
    ledger.apply(events);
    ledger.take().expect("something to write")
}

async fn commit(store: &mut Store, writes: &[Write]) -> Vec<Outcome> {
    store.commit(writes).await.expect("commit")
}

async fn select(store: &mut Store, sql: &str, params: &[Value]) -> Vec<Vec<Value>> {
    store
        .select(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `schema_version`'s rows once every migration ran.
fn every_migration() -> Vec<Vec<Value>> {
    (1..=routewatch_client::store::schema::VERSION)
        .map(|n| vec![int(n)])
        .collect()
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// Current versions as (key, vid), by key.
fn by_key(mut open: Vec<OpenVersion>) -> Vec<(String, i64)> {
    open.sort_by(|a, b| a.key.cmp(&b.key));
    open.into_iter().map(|v| (v.key, v.vid)).collect()
}

/// The version `write` opened for `key` (a snapshot's versions are
/// numbered in no particular order).
fn vid(write: &Write, key: &str) -> i64 {
    let opened = write.opens.iter().find(|v| v.key == key);
    opened.unwrap_or_else(|| panic!("no version of {key}")).vid
}

/// A snapshot of a (10.0.0.0/24), b (10.0.1.0/24) and c (2001:db8::/64)
/// as of s:5, then live changes: d added, a replaced, b deleted.
fn history(ledger: &mut Ledger) -> [Write; 2] {
    let first = write(
        ledger,
        &snapshot(
            "s",
            5,
            100,
            None,
            &[
                ("a", route("10.0.0.0/24", 0)),
                ("b", route("10.0.1.0/24", 0)),
                ("c", route("2001:db8::/64", 0)),
            ],
        ),
    );
    let live = write(
        ledger,
        &[
            add(6, 200, "d", route("10.0.2.0/24", 0)),
            add(7, 210, "a", route("10.0.0.0/24", 9)),
            delete(8, 220, "b", route("10.0.1.0/24", 0)),
        ],
    );
    [first, live]
}

async fn a_reopened_store_continues_where_the_writes_left_it(place: TestStore) {
    let mut store = open(&place).await;
    let (target, mut ledger) = follow(&mut store, "h:1").await;
    assert_eq!(target.cursor, Default::default(), "a new target");
    assert_eq!(target.next_vid, 1);
    ledger.set_host("router-1");
    let [first, live] = history(&mut ledger);
    let outcomes = commit(&mut store, &[first.clone(), live.clone()]).await;
    assert_eq!(outcomes, [Outcome::Committed; 2]);
    drop(store);

    let mut store = open(&place).await;
    let (again, open) = claim_within(&mut store, "h:1", Duration::from_secs(10)).await;
    assert_eq!(again.id, target.id);
    assert_eq!(again.host, "router-1");
    assert_eq!(again.cursor, cursor("s", 8));
    assert_eq!(again.next_vid, live.next_vid);
    assert_eq!(again.last_seen, Some(220));
    // The snapshot's a and b are closed; c, d (4) and a's second version
    // (5) are current.
    assert_eq!(
        by_key(open),
        [
            ("a".into(), 5),
            ("c".into(), vid(&first, "c")),
            ("d".into(), 4)
        ]
    );
    let closed = select(
        &mut store,
        "SELECT key, vid, valid_to, closed_stream, closed_seq, closed_origin FROM versions
         WHERE target_id = ? AND valid_to IS NOT NULL ORDER BY key",
        &[int(target.id)],
    )
    .await;
    assert_eq!(
        closed,
        [
            vec![
                text("a"),
                int(vid(&first, "a")),
                int(210),
                text("s"),
                int(7),
                int(1)
            ],
            vec![
                text("b"),
                int(vid(&first, "b")),
                int(220),
                text("s"),
                int(8),
                int(1)
            ],
        ]
    );
    let events = select(
        &mut store,
        "SELECT stream_id, seq, time, action, origin, vid FROM events WHERE target_id = ? ORDER BY seq",
        &[int(target.id)],
    )
    .await;
    assert_eq!(
        events,
        [
            vec![text("s"), int(6), int(200), int(1), int(1), int(4)],
            vec![text("s"), int(7), int(210), int(1), int(1), int(5)],
            vec![
                text("s"),
                int(8),
                int(220),
                int(2),
                int(1),
                int(vid(&first, "b"))
            ],
        ]
    );
}

async fn a_write_from_a_moved_cursor_is_lost_and_writes_nothing(place: TestStore) {
    let mut store = open(&place).await;
    let (target, open) = store.claim("h:1").await.unwrap().unwrap();
    // Two ledgers loaded from the same record: the second is a collector
    // that missed the first one's write.
    let mut ours = Ledger::new(&target, open.clone());
    let mut stale = Ledger::new(&target, open);
    let (_, mut other) = follow(&mut store, "h:2").await;
    let [first, _] = history(&mut ours);
    assert_eq!(
        commit(&mut store, std::slice::from_ref(&first)).await,
        [Outcome::Committed]
    );

    let refused = write(
        &mut stale,
        &snapshot("x", 1, 500, None, &[("z", route("10.9.0.0/24", 0))]),
    );
    let [elsewhere, _] = history(&mut other);
    assert_eq!(
        commit(&mut store, &[refused, elsewhere]).await,
        [Outcome::Lost, Outcome::Committed],
        "a lost write leaves the others in the same commit be"
    );
    let (after, open) = store.claim("h:1").await.unwrap().unwrap();
    assert_eq!(after.cursor, cursor("s", 5));
    let held: Vec<(String, i64)> = ["a", "b", "c"]
        .map(|key| (key.into(), vid(&first, key)))
        .into();
    assert_eq!(by_key(open), held);
    let rows = select(
        &mut store,
        "SELECT COUNT(*) FROM versions WHERE target_id = ? AND key = ?",
        &[int(target.id), text("z")],
    )
    .await;
    assert_eq!(rows, [vec![int(0)]]);
}

async fn a_resync_stores_its_gap(place: TestStore) {
    let mut store = open(&place).await;
    let (target, mut ledger) = follow(&mut store, "h:1").await;
    let [first, live] = history(&mut ledger);
    let heartbeat = write(
        &mut ledger,
        &[marker("s", 8, 250, event::Kind::Heartbeat(Heartbeat {}))],
    );
    // The agent restarted: only c is left, and e is new.
    let resync = write(
        &mut ledger,
        &snapshot(
            "t",
            3,
            400,
            Some("unknown stream"),
            &[
                ("c", route("2001:db8::/64", 0)),
                ("e", route("10.0.4.0/24", 0)),
            ],
        ),
    );
    assert_eq!(resync.gaps.len(), 1);
    let c = vid(&first, "c");
    let outcomes = commit(&mut store, &[first, live, heartbeat, resync]).await;
    assert_eq!(outcomes, [Outcome::Committed; 4]);

    let gaps = select(
        &mut store,
        "SELECT from_time, from_stream, from_seq, to_time, to_stream, to_seq, cause, reason
         FROM gaps WHERE target_id = ?",
        &[int(target.id)],
    )
    .await;
    assert_eq!(
        gaps,
        [vec![
            int(250),
            text("s"),
            int(8),
            int(401),
            text("t"),
            int(3),
            int(1),
            text("unknown stream"),
        ]]
    );
    let (after, open) = store.claim("h:1").await.unwrap().unwrap();
    assert_eq!(after.cursor, cursor("t", 3));
    assert_eq!(by_key(open), [("c".into(), c), ("e".into(), 6)]);
    let by_resync = select(
        &mut store,
        "SELECT key FROM versions WHERE target_id = ? AND closed_origin = ? ORDER BY key",
        &[int(target.id), int(4)],
    )
    .await;
    assert_eq!(by_resync, [vec![text("a")], vec![text("d")]]);
}

/// `--retain`: SQLite deletes the closed versions, log rows and gaps that
/// ended before the cutoff; PostgreSQL drops the day partitions of
/// `versions` and `events` that end by then (a day cutoff here, so that
/// both answer alike) and deletes the gaps.
async fn prune_removes_only_closed_rows_older_than_the_cutoff(place: TestStore) {
    const DAY: i64 = routewatch_client::store::schema::DAY;
    let mut store = open(&place).await;
    let (target, mut ledger) = follow(&mut store, "h:1").await;
    let held = [
        ("a", route("10.0.0.0/24", 0)),
        ("b", route("10.0.1.0/24", 0)),
    ];
    let mut writes = vec![
        write(&mut ledger, &snapshot("s", 5, DAY, None, &held)),
        // Nothing changed across the resync: a gap, and no new version.
        write(
            &mut ledger,
            &snapshot("t", 2, DAY + DAY / 2, Some("overrun"), &held),
        ),
    ];
    let t = |seq, time, action, key: &str, r| {
        change("t", seq, time, action, Origin::Notification, key, r)
    };
    writes.push(write(
        &mut ledger,
        &[
            t(3, 2 * DAY + 200, Action::Add, "a", route("10.0.0.0/24", 5)),
            t(
                4,
                3 * DAY + 300,
                Action::Delete,
                "b",
                route("10.0.1.0/24", 0),
            ),
            t(5, 3 * DAY + 400, Action::Add, "c", route("10.0.2.0/24", 0)),
        ],
    ));
    let b = vid(&writes[0], "b");
    assert_eq!(commit(&mut store, &writes).await, [Outcome::Committed; 3]);

    let pruned = store.prune(3 * DAY).await.expect("prune");
    assert_eq!(
        pruned,
        Pruned {
            versions: 1,
            events: 1,
            gaps: 1
        }
    );
    let versions = select(
        &mut store,
        "SELECT key, vid, valid_to FROM versions WHERE target_id = ? ORDER BY key",
        &[int(target.id)],
    )
    .await;
    assert_eq!(
        versions,
        [
            vec![text("a"), int(3), Value::Null],
            vec![text("b"), int(b), int(3 * DAY + 300)],
            vec![text("c"), int(4), Value::Null],
        ],
        "a's first version ended on day 2: gone; b ended on day 3: kept"
    );
    let events = select(&mut store, "SELECT seq FROM events ORDER BY seq", &[]).await;
    assert_eq!(events, [vec![int(4)], vec![int(5)]]);
    let columns = select(
        &mut store,
        "SELECT COUNT(*) FROM version_columns WHERE target_id = ?",
        &[int(target.id)],
    )
    .await;
    assert_eq!(
        columns,
        [vec![int(3)]],
        "the pruned version's columns went with it"
    );
    if let TestStore::Postgres(db) = &place {
        let tables =
            db.rows("SELECT tablename FROM pg_tables WHERE tablename LIKE '%\\_1970%' ORDER BY 1");
        let tables: Vec<&str> = tables.iter().filter_map(|r| r[0].as_deref()).collect();
        assert_eq!(
            tables,
            ["events_19700104", "versions_19700104"],
            "day 2's partitions dropped, day 3's kept"
        );
    }
    assert_eq!(
        store.prune(3 * DAY).await.expect("prune"),
        Pruned::default(),
        "nothing more before the same cutoff"
    );
}

async fn select_reads_the_same_values_from_both_backends(place: TestStore) {
    let mut store = open(&place).await;
    let (target, mut ledger) = follow(&mut store, "h:1").await;
    ledger.set_host("router-1");
    let writes = history(&mut ledger);
    commit(&mut store, &writes).await;

    let rows = select(
        &mut store,
        "SELECT key, family, table_id, dst_len, dst_lo, dst_hi, valid_to, valid_to IS NULL
         FROM versions WHERE target_id = ? AND dst_lo >= ? AND dst_lo < ? ORDER BY vid",
        &[
            int(target.id),
            Value::Bytes(vec![10, 0, 0, 0]),
            Value::Bytes(vec![10, 0, 1, 0]),
        ],
    )
    .await;
    let lo = Value::Bytes(vec![10, 0, 0, 0]);
    let hi = Value::Bytes(vec![10, 0, 0, 255]);
    assert_eq!(
        rows,
        [
            vec![
                text("a"),
                int(1),
                int(254),
                int(24),
                lo.clone(),
                hi.clone(),
                int(210),
                int(0),
            ],
            vec![
                text("a"),
                int(1),
                int(254),
                int(24),
                lo,
                hi,
                Value::Null,
                int(1),
            ],
        ]
    );
    let rows = select(
        &mut store,
        "SELECT name, host, COUNT(e.seq), CAST(SUM(e.seq) AS BIGINT), ? + 1
         FROM targets t JOIN events e ON e.target_id = t.id
         WHERE t.name = ? GROUP BY t.name, t.host",
        &[int(41), text("h:1")],
    )
    .await;
    assert_eq!(
        rows,
        [vec![
            text("h:1"),
            text("router-1"),
            int(3),
            int(21),
            int(42)
        ]]
    );
    let none = select(
        &mut store,
        "SELECT key FROM versions WHERE object = ?",
        &[Value::Bytes(vec![0xff])],
    )
    .await;
    assert!(none.is_empty());
}

/// The SQL views read the same on both backends: names as iproute2
/// prints them, destinations comparable as text (and as inet on
/// PostgreSQL), actions, origins and gap causes in words.
async fn the_views_read_in_iproute2_words(place: TestStore) {
    let mut store = open(&place).await;
    let (_, mut ledger) = follow(&mut store, "h:1").await;
    ledger.set_host("router-1");
    let mut gw = route("10.0.9.0/24", 100);
    gw.gateway = "192.0.2.1".into();
    gw.dev = "v0".into();
    gw.protocol = 4;
    let [first, live] = history(&mut ledger);
    let more = write(&mut ledger, &[add(9, 300, "g", gw)]);
    let resync = write(
        &mut ledger,
        &snapshot(
            "t",
            3,
            400,
            Some("unknown stream"),
            &[("c", route("2001:db8::/64", 0))],
        ),
    );
    commit(&mut store, &[first, live, more, resync]).await;

    let history = select(
        &mut store,
        "SELECT host, address, object, family, table_name, gateway, dev, protocol, type, scope,
             metric, opened_by, closed_by, changed_by
         FROM route_history WHERE dst = '10.0.9.0/24'",
        &[],
    )
    .await;
    assert_eq!(
        history,
        [vec![
            text("router-1"),
            text("h:1"),
            text("route"),
            text("inet"),
            text("main"),
            text("192.0.2.1"),
            text("v0"),
            text("static"),
            text("unicast"),
            text("global"),
            int(100),
            text("notification"),
            text("resync"),
            Value::Null,
        ]]
    );
    let json = select(
        &mut store,
        "SELECT object_json FROM route_history WHERE dst = '10.0.9.0/24'",
        &[],
    )
    .await;
    let Value::Text(json) = &json[0][0] else {
        panic!("{json:?}")
    };
    let json: serde_json::Value = serde_json::from_str(json).expect("object_json is JSON");
    assert_eq!(
        (&json["dst"], &json["gateway"], &json["protocol"]),
        (
            &serde_json::json!("10.0.9.0/24"),
            &serde_json::json!("192.0.2.1"),
            &serde_json::json!("static")
        )
    );

    let current = select(
        &mut store,
        "SELECT host, object, family, table_name FROM current_routes ORDER BY key",
        &[],
    )
    .await;
    assert_eq!(
        current,
        [vec![
            text("router-1"),
            text("route"),
            text("inet6"),
            text("main")
        ]]
    );
    let changes = select(
        &mut store,
        "SELECT host, stream_id, seq, action, origin, table_name FROM route_changes
         WHERE dst = '10.0.0.0/24' ORDER BY seq",
        &[],
    )
    .await;
    assert_eq!(
        changes,
        [vec![
            text("router-1"),
            text("s"),
            int(7),
            text("add"),
            text("notification"),
            text("main"),
        ]]
    );
    let gaps = select(
        &mut store,
        "SELECT host, cause, reason, from_cursor, to_cursor FROM record_gaps",
        &[],
    )
    .await;
    assert_eq!(
        gaps,
        [vec![
            text("router-1"),
            text("unknown stream"),
            text("unknown stream"),
            text("s:9"),
            text("t:3"),
        ]]
    );
    let hosts = select(
        &mut store,
        "SELECT host, address, stream, cursor, route_count, nexthop_count, rule_count
         FROM fleet_hosts",
        &[],
    )
    .await;
    assert_eq!(
        hosts,
        [vec![
            text("router-1"),
            text("h:1"),
            text("t"),
            int(3),
            int(1),
            int(0),
            int(0),
        ]]
    );
    // Times: RFC 3339 text on SQLite, timestamptz on PostgreSQL.
    let (sql, want) = match place {
        TestStore::Sqlite(_) => (
            "SELECT valid_from, valid_to FROM route_history WHERE dst = '10.0.9.0/24'",
            vec![
                text("1970-01-01T00:00:00.000Z"),
                text("1970-01-01T00:00:00.000Z"),
            ],
        ),
        TestStore::Postgres(_) => (
            "SELECT CAST(extract(epoch FROM valid_from) AS BIGINT),
                 CAST(valid_to >= valid_from AS TEXT), CAST(dst <<= '10.0.0.0/16' AS TEXT)
             FROM route_history WHERE dst = '10.0.9.0/24'",
            vec![int(0), text("true"), text("true")],
        ),
    };
    assert_eq!(select(&mut store, sql, &[]).await, [want]);
}

/// A store written by a version before the readable columns: opening it
/// migrates it, and the views show its old versions like new ones.
async fn a_store_of_schema_1_gains_the_readable_columns(place: TestStore) {
    use prost::Message;
    use routewatch_client::store::schema::{migration, Dialect};
    use routewatch_client::store::statements::CREATE_SCHEMA_VERSION;
    let mut old = route("10.7.0.0/16", 5);
    old.gateway = "192.0.2.7".into();
    old.dev = "v0".into();
    let object: String = old
        .encode_to_vec()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (dialect, blob) = match &place {
        TestStore::Sqlite(_) => (Dialect::Sqlite, format!("X'{object}'")),
        TestStore::Postgres(_) => (Dialect::Postgres, format!("'\\x{object}'::bytea")),
    };
    let mut sql = vec![CREATE_SCHEMA_VERSION.to_owned()];
    sql.extend(migration(dialect, 1).expect("migration 1"));
    sql.push("INSERT INTO schema_version (version) VALUES (1)".into());
    // Its id is the first one given out (1), as the backend gives it: an
    // id given here would leave PostgreSQL's identity behind it.
    sql.push(
        "INSERT INTO targets (name, host, stream_id, seq) VALUES ('h:1', 'old-router', 's', 3)"
            .into(),
    );
    sql.push(format!(
        "INSERT INTO versions (target_id, vid, netns, key, kind, family, table_id, object,
             digest, valid_from, opened_stream, opened_seq, opened_origin)
         VALUES (1, 1, '', 'k', 1, 1, 254, {blob}, 0, 1000000000, 's', 2, 1)"
    ));
    match &place {
        TestStore::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("sqlite");
            for statement in &sql {
                conn.execute(statement, [])
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        }
        TestStore::Postgres(db) => {
            for statement in &sql {
                db.rows(statement);
            }
        }
    }
    let mut store = open(&place).await;
    let rows = select(
        &mut store,
        "SELECT host, object, table_name, gateway, dev, metric FROM current_routes
         WHERE dst = '10.7.0.0/16'",
        &[],
    )
    .await;
    assert_eq!(
        rows,
        [vec![
            text("old-router"),
            text("route"),
            text("main"),
            text("192.0.2.7"),
            text("v0"),
            int(5),
        ]]
    );
    let versions = select(
        &mut store,
        "SELECT version FROM schema_version ORDER BY version",
        &[],
    )
    .await;
    assert_eq!(versions, every_migration());
    // Migration 4: the record of the address dialled keeps its rows, and
    // becomes the record of the first agent with an identity reached there;
    // that agent reached at another address continues it, with a note.
    let fleet = select(
        &mut store,
        "SELECT host, address, agent_id, addresses FROM fleet_hosts",
        &[],
    )
    .await;
    assert_eq!(
        fleet,
        [vec![
            text("old-router"),
            text("h:1"),
            Value::Null,
            text("h:1")
        ]]
    );
    let adopted = store
        .agent_record("m1/net:[1]", "h:1")
        .await
        .expect("record");
    assert_eq!((adopted.name.as_str(), adopted.adopted), ("h:1", true));
    let (row, _) = store.claim("h:1").await.expect("claim").expect("claimed");
    assert_eq!(
        (row.host.as_str(), row.cursor.seq),
        ("old-router", 3),
        "the record adopted, with its cursor"
    );
    let noted = store
        .note_address(row.id, "h:1", 2_000_000_000)
        .await
        .expect("note");
    assert_eq!(noted, None, "reached where it was");
    // The agent reached at another address: the same record.
    let moved = store
        .agent_record("m1/net:[1]", "h:2")
        .await
        .expect("record");
    assert_eq!((moved.name.as_str(), moved.adopted), ("h:1", false));
    let noted = store
        .note_address(row.id, "h:2", 3_000_000_000)
        .await
        .expect("note");
    assert_eq!(noted.as_deref(), Some("h:1"));
    // Another agent reached at the old address later gets a record of its own.
    let other = store
        .agent_record("m2/net:[1]", "h:1")
        .await
        .expect("record");
    assert_eq!((other.name.as_str(), other.adopted), ("m2/net:[1]", false));
    let (other_row, _) = store
        .claim(&other.name)
        .await
        .expect("claim")
        .expect("claimed");
    let noted = store
        .note_address(other_row.id, "h:1", 4_000_000_000)
        .await
        .expect("note");
    assert_eq!(noted, None, "made with its address");
    let fleet = select(
        &mut store,
        "SELECT host, address, agent_id, addresses, route_count FROM fleet_hosts ORDER BY agent_id",
        &[],
    )
    .await;
    assert_eq!(
        fleet,
        [
            vec![
                text("old-router"),
                text("h:2"),
                text("m1/net:[1]"),
                text("h:1 h:2"),
                int(1)
            ],
            vec![
                text("m2/net:[1]"),
                text("h:1"),
                text("m2/net:[1]"),
                text("h:1"),
                int(0)
            ],
        ]
    );
}

/// `query history PREFIX` reads the prefix's range of the destination
/// index, bounded on both sides: what it reads follows the answer, not the
/// table. 5,000 host routes in 10.1.0.0/19 (planned for with statistics,
/// as a server would have them); the questions are a prefix below them all
/// (an empty answer) and one /24 among them (256 routes).
async fn history_reads_only_the_range_of_its_prefix(place: TestStore) {
    let mut store = open(&place).await;
    let (_, mut ledger) = follow(&mut store, "h:1").await;
    let keys: Vec<String> = (0..5000).map(|i| format!("r{i}")).collect();
    let routes: Vec<(&str, routewatch_proto::v1::Route)> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let dst = format!("10.1.{}.{}/32", i / 256, i % 256);
            (key.as_str(), route(&dst, 0))
        })
        .collect();
    let first = write(&mut ledger, &snapshot("s", 5, 1_000, None, &routes));
    assert_eq!(commit(&mut store, &[first]).await, [Outcome::Committed]);

    for (prefix, answer) in [("10.0.0.0/16", 0), ("10.1.3.0/24", 256)] {
        let (sql, params) = history::statement(prefix, i64::MIN, i64::MAX, None).unwrap();
        assert_eq!(
            select(&mut store, &sql, &params).await.len(),
            answer,
            "{prefix}"
        );
        match &place {
            TestStore::Sqlite(_) => {
                let plan = select(&mut store, &format!("EXPLAIN QUERY PLAN {sql}"), &params).await;
                let details: Vec<&str> = plan.iter().filter_map(|row| row[3].text()).collect();
                assert!(
                    details.iter().any(|d| d
                        .contains("USING INDEX versions_dst (family=? AND dst_lo>? AND dst_lo<?)")),
                    "{prefix}: not a range of versions_dst bounded on both sides: {details:?}"
                );
            }
            TestStore::Postgres(db) => {
                db.rows("ANALYZE versions");
                let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", inline(&sql, &params));
                let text = db.rows(&explain)[0][0].clone().expect("a plan");
                let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
                let mut scans = Vec::new();
                scans_of_versions(&plan[0]["Plan"], &mut scans);
                let read = scans.iter().map(|(_, read)| *read).max();
                assert!(
                    read.is_some_and(|read| read <= answer as u64),
                    "{prefix}: scans of versions read {read:?} rows for {answer}: {text}"
                );
                let bounded = scans
                    .iter()
                    .any(|(cond, _)| cond.contains("dst_lo >=") && cond.contains("dst_lo <="));
                assert!(
                    bounded,
                    "{prefix}: no scan of versions_dst bounded on both sides: {text}"
                );
            }
        }
    }
}

/// A write of many rows (more than one multi-row INSERT holds, and a
/// remainder) keeps every row and its readable columns, in order.
async fn a_large_write_keeps_every_row(place: TestStore) {
    let mut store = open(&place).await;
    let (_, mut ledger) = follow(&mut store, "h:1").await;
    let keys: Vec<String> = (0..1000).map(|i| format!("r{i}")).collect();
    let dst = |i: usize| format!("10.1.{}.{}/32", i / 256, i % 256);
    let routes: Vec<(&str, routewatch_proto::v1::Route)> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (key.as_str(), route(&dst(i), 0)))
        .collect();
    let first = write(&mut ledger, &snapshot("s", 5, 1_000, None, &routes));
    // 130 live adds and 70 deletes: log rows and versions past 2 x 64.
    let mut live: Vec<_> = (0..130)
        .map(|i| {
            add(
                6 + i as u64,
                2_000 + i,
                &format!("n{i}"),
                route(&dst(2000 + i as usize), 0),
            )
        })
        .collect();
    live.extend((0..70).map(|i| {
        delete(
            136 + i as u64,
            3_000 + i,
            &keys[i as usize],
            route(&dst(i as usize), 0),
        )
    }));
    let live = write(&mut ledger, &live);
    assert_eq!(
        commit(&mut store, &[first, live]).await,
        [Outcome::Committed, Outcome::Committed]
    );
    let count = |sql: &str| sql.to_owned();
    for (sql, expected) in [
        (count("SELECT COUNT(*) FROM versions"), 1130),
        (count("SELECT COUNT(*) FROM version_columns"), 1130),
        (count("SELECT COUNT(*) FROM events"), 200),
        (count("SELECT COUNT(*) FROM current_routes"), 1060),
        (count("SELECT COUNT(DISTINCT seq) FROM route_changes"), 200),
        (
            count("SELECT COUNT(*) FROM route_changes WHERE action = 'delete' AND seq >= 136"),
            70,
        ),
    ] {
        assert_eq!(
            select(&mut store, &sql, &[]).await,
            [vec![int(expected)]],
            "{sql}"
        );
    }
    for (i, key) in [(999, "r999"), (69, "r69")] {
        let rows = select(
            &mut store,
            "SELECT key FROM route_history WHERE CAST(dst AS TEXT) = ?",
            &[text(&dst(i))],
        )
        .await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0][0], text(key));
    }
    let seqs = select(
        &mut store,
        "SELECT seq FROM route_changes WHERE key = 'n129' OR key = 'r0' ORDER BY seq",
        &[],
    )
    .await;
    assert_eq!(seqs, [vec![int(135)], vec![int(136)]]);
}

/// Every primary and unique key of the history's tables starts with the
/// target's id, so that the tables can be distributed by host (a
/// distributed PostgreSQL such as Citus requires the distribution column
/// in every key); `targets` itself is small and would be replicated.
async fn every_key_of_the_history_starts_with_the_target(place: TestStore) {
    let mut store = open(&place).await;
    let tables = [
        "versions",
        "version_columns",
        "events",
        "gaps",
        "target_addresses",
    ];
    // (table, key name, its columns in order)
    let mut keys: Vec<(String, String, Vec<String>)> = Vec::new();
    match &place {
        TestStore::Sqlite(_) => {
            for table in tables {
                let primary: Vec<(i64, String)> = select(
                    &mut store,
                    &format!("SELECT pk, name FROM pragma_table_info('{table}') WHERE pk > 0"),
                    &[],
                )
                .await
                .into_iter()
                .map(|r| (r[0].int().unwrap(), r[1].text().unwrap().to_owned()))
                .collect();
                if !primary.is_empty() {
                    let mut primary = primary;
                    primary.sort();
                    let columns = primary.into_iter().map(|(_, c)| c).collect();
                    keys.push((table.into(), "primary key".into(), columns));
                }
                let unique = select(
                    &mut store,
                    &format!(
                        "SELECT name FROM pragma_index_list('{table}') WHERE \"unique\" = 1 \
                         AND origin <> 'pk'"
                    ),
                    &[],
                )
                .await;
                for index in unique {
                    let index = index[0].text().unwrap().to_owned();
                    let columns = select(
                        &mut store,
                        &format!("SELECT name FROM pragma_index_info('{index}') ORDER BY seqno"),
                        &[],
                    )
                    .await
                    .into_iter()
                    .map(|r| r[0].text().unwrap_or("").to_owned())
                    .collect();
                    keys.push((table.into(), index, columns));
                }
            }
        }
        TestStore::Postgres(_) => {
            let rows = select(
                &mut store,
                "SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text,
                     (SELECT string_agg(a.attname, ',' ORDER BY k.n)
                      FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
                 FROM pg_index i
                 WHERE (i.indisprimary OR i.indisunique)
                     AND i.indrelid::regclass::text IN ('versions', 'version_columns', 'events', 'gaps', 'target_addresses')",
                &[],
            )
            .await;
            for r in rows {
                let columns = r[2].text().unwrap().split(',').map(str::to_owned).collect();
                keys.push((
                    r[0].text().unwrap().to_owned(),
                    r[1].text().unwrap().to_owned(),
                    columns,
                ));
            }
        }
    }
    for table in ["versions", "version_columns", "events", "target_addresses"] {
        assert!(
            keys.iter().any(|(t, _, _)| t == table),
            "{table} has no key: {keys:?}"
        );
    }
    for (table, key, columns) in &keys {
        assert_eq!(
            columns.first().map(String::as_str),
            Some("target_id"),
            "{table}'s {key} does not start with target_id: {columns:?}"
        );
    }
}

/// `sql` with its `?` placeholders replaced by `params` as literals (the
/// plan PostgreSQL makes for those values, as it does for bound ones).
fn inline(sql: &str, params: &[Value]) -> String {
    let mut params = params.iter();
    sql.chars()
        .map(|c| match c {
            '?' => match params.next().expect("a value per placeholder") {
                Value::Null => "NULL".to_owned(),
                Value::Int(i) => i.to_string(),
                Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
                Value::Bytes(b) => {
                    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                    format!("'\\x{hex}'::bytea")
                }
            },
            c => c.to_string(),
        })
        .collect()
}

/// Every node of a PostgreSQL plan that scans `versions` or its
/// destination index: its index condition, and the rows it read (those it
/// returned and those it removed after reading them).
fn scans_of_versions(node: &serde_json::Value, out: &mut Vec<(String, u64)>) {
    // PostgreSQL's partitions of versions (`versions_current`, one per
    // day) and their indexes of the destination.
    let relation = node["Relation Name"].as_str().unwrap_or("");
    let index = node["Index Name"].as_str().unwrap_or("");
    let on_versions = relation == "versions"
        || relation.starts_with("versions_")
        || index == "versions_dst"
        || (index.starts_with("versions_") && index.ends_with("_family_dst_lo_idx"));
    if on_versions {
        let n = |field: &str| node[field].as_u64().unwrap_or(0);
        let read =
            (n("Actual Rows") + n("Rows Removed by Filter") + n("Rows Removed by Index Recheck"))
                * n("Actual Loops").max(1);
        let cond = node["Index Cond"].as_str().unwrap_or("").to_owned();
        out.push((cond, read));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        scans_of_versions(child, out);
    }
}

/// Versions `query history` and `query routes` answer with in
/// [`answers_stream_in_bounded_memory`].
const LARGE_ANSWER: usize = 60_000;

/// `query history` and `query routes` print an answer far larger than
/// their memory: the rows go from the database to stdout as they come
/// (the database sorts; one moment, or one destination, is held at a
/// time). Measured on the real binary: its peak RSS must stay under a
/// bound that holding the answer would exceed several times over.
async fn answers_stream_in_bounded_memory(place: TestStore) {
    let mut store = open(&place).await;
    let (_, mut ledger) = follow(&mut store, "h:1").await;
    let first = write(&mut ledger, &snapshot("s", 1, 1_000, None, &[]));
    let keys: Vec<String> = (0..LARGE_ANSWER).map(|i| format!("r{i}")).collect();
    // Each change at its own moment, as an agent stamps them.
    let live: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let dst = format!("10.{}.{}.0/24", i / 256, i % 256);
            add(2 + i as u64, 2_000 + i as i64, key, route(&dst, 0))
        })
        .collect();
    let live = write(&mut ledger, &live);
    assert_eq!(
        commit(&mut store, &[first, live]).await,
        [Outcome::Committed, Outcome::Committed]
    );
    drop(store);

    const BOUND: u64 = 40 << 20;
    let url = place.url();
    let mut over = Vec::new();
    for (question, args) in [
        ("history", vec!["history", "10.0.0.0/8"]),
        (
            "history -o json",
            vec!["-o", "json", "history", "10.0.0.0/8"],
        ),
        ("routes", vec!["routes", "--at", "now"]),
        (
            "routes -o json",
            vec!["-o", "json", "routes", "--at", "now"],
        ),
    ] {
        let run = run_measured(
            Command::new(client_bin())
                .args(["query", "--store", &url])
                .args(&args),
        );
        assert!(run.status.success(), "{question}: {}", run.stderr);
        let per_line = run.stdout_bytes / LARGE_ANSWER as u64;
        assert!(
            (20..1000).contains(&per_line),
            "{question}: {} bytes for {LARGE_ANSWER} versions",
            run.stdout_bytes
        );
        let seen = format!(
            "{question}: peak RSS {} MB for an answer of {} MB",
            run.peak_rss >> 20,
            run.stdout_bytes >> 20
        );
        eprintln!("{seen}");
        if run.peak_rss >= BOUND {
            over.push(seen);
        }
    }
    assert!(over.is_empty(), "over {} MB: {over:?}", BOUND >> 20);
}

/// An add stamped with who made it (and a reconcile's reason).
fn attributed(
    mut event: routewatch_proto::v1::Event,
    by: routewatch_proto::v1::ChangedBy,
    reason: &str,
) -> routewatch_proto::v1::Event {
    if let Some(event::Kind::Change(c)) = &mut event.kind {
        c.changed_by = Some(by);
        c.reason = reason.into();
    }
    event
}

/// Who made each change is kept as plain columns: who opened a version on
/// the version, who deleted it on the delete's log row. The views show
/// them, and `query history` reads back who opened and who ended each
/// version (a delete, or an add that replaced it).
async fn a_version_keeps_who_opened_it(place: TestStore) {
    use routewatch_proto::v1::{ChangedBy, ChangedByHow};
    let mut store = open(&place).await;
    let (_, mut ledger) = follow(&mut store, "h:1").await;
    let first = write(
        &mut ledger,
        &snapshot("s", 5, 100, None, &[("a", route("10.0.0.0/24", 0))]),
    );
    let ip = ChangedBy {
        port_id: 4242,
        how: ChangedByHow::Pid as i32,
        pid: 4242,
        comm: "ip".into(),
        exe: "/usr/bin/ip".into(),
        pod_uid: "0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e".into(),
        ..Default::default()
    };
    let kernel = ChangedBy {
        kernel: true,
        ..Default::default()
    };
    let live = write(
        &mut ledger,
        &[
            attributed(add(6, 200, "d", route("10.0.2.0/24", 0)), ip, ""),
            attributed(
                add(7, 210, "e", route("10.0.3.0/24", 0)),
                kernel.clone(),
                "link v0 went down",
            ),
            attributed(
                delete(8, 220, "d", route("10.0.2.0/24", 0)),
                kernel.clone(),
                "link v1 deleted",
            ),
            // Replaced by a second add of the same key: ended by its maker.
            attributed(
                add(9, 230, "e", route("10.0.3.0/24", 7)),
                ChangedBy {
                    port_id: 99,
                    how: ChangedByHow::Exited as i32,
                    ..Default::default()
                },
                "",
            ),
            delete(10, 240, "a", route("10.0.0.0/24", 0)),
        ],
    );
    commit(&mut store, &[first, live]).await;
    let rows = select(
        &mut store,
        "SELECT CAST(dst AS TEXT), action, changed_by, changed_by_pid, changed_by_comm,
             changed_by_pod, reason
         FROM route_changes ORDER BY seq",
        &[],
    )
    .await;
    let pod = text("0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e");
    assert_eq!(
        rows,
        [
            vec![
                text("10.0.2.0/24"),
                text("add"),
                text("ip[4242] pod 0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e"),
                int(4242),
                text("ip"),
                pod,
                Value::Null,
            ],
            vec![
                text("10.0.3.0/24"),
                text("add"),
                text("kernel"),
                Value::Null,
                Value::Null,
                Value::Null,
                text("link v0 went down"),
            ],
            vec![
                text("10.0.2.0/24"),
                text("delete"),
                text("kernel"),
                Value::Null,
                Value::Null,
                Value::Null,
                text("link v1 deleted"),
            ],
            vec![
                text("10.0.3.0/24"),
                text("add"),
                text("port 99 (exited)"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                text("10.0.0.0/24"),
                text("delete"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        ]
    );
    let current = select(
        &mut store,
        "SELECT changed_by, reason FROM current_routes WHERE dst = '10.0.3.0/24'",
        &[],
    )
    .await;
    assert_eq!(current, [vec![text("port 99 (exited)"), Value::Null]]);
    let snapshot = select(
        &mut store,
        "SELECT changed_by FROM route_history WHERE dst = '10.0.0.0/24'",
        &[],
    )
    .await;
    assert_eq!(snapshot, [vec![Value::Null]], "snapshots name nobody");
    // `query history` reads who opened and who ended each version.
    let (sql, params) = history::statement("10.0.3.0/24", i64::MIN, i64::MAX, None).unwrap();
    let rows = select(&mut store, &sql, &params).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0][14..],
        [
            text("kernel"),
            text("link v0 went down"),
            text("port 99 (exited)"),
            Value::Null
        ]
    );
    assert_eq!(
        rows[1][14..],
        [
            text("port 99 (exited)"),
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );
    let (sql, params) = history::statement("10.0.2.0/24", i64::MIN, i64::MAX, None).unwrap();
    let rows = select(&mut store, &sql, &params).await;
    assert_eq!(
        rows[0][14..],
        [
            text("ip[4242] pod 0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e"),
            Value::Null,
            text("kernel"),
            text("link v1 deleted")
        ]
    );
}

/// Each check, on a fresh SQLite file and on a fresh PostgreSQL database.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $check() {
                    super::$check(super::TestStore::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $check() {
                    super::$check(super::TestStore::postgres(stringify!($check))).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_reopened_store_continues_where_the_writes_left_it,
    a_write_from_a_moved_cursor_is_lost_and_writes_nothing,
    a_resync_stores_its_gap,
    prune_removes_only_closed_rows_older_than_the_cutoff,
    select_reads_the_same_values_from_both_backends,
    the_views_read_in_iproute2_words,
    a_store_of_schema_1_gains_the_readable_columns,
    history_reads_only_the_range_of_its_prefix,
    a_large_write_keeps_every_row,
    every_key_of_the_history_starts_with_the_target,
    answers_stream_in_bounded_memory,
    a_version_keeps_who_opened_it,
);

/// Claims `name` until it is granted, for at most `timeout` (a dropped
/// connection's locks go when the server has noticed it).
async fn claim_within(
    store: &mut Store,
    name: &str,
    timeout: Duration,
) -> (TargetRow, Vec<OpenVersion>) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(claimed) = store.claim(name).await.expect("claim") {
            return claimed;
        }
        assert!(
            Instant::now() < deadline,
            "{name} still held by another collector after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two collectors share a backlog of 200 targets claimed in bulk: each
/// round asks for every target at once, gets those no one else holds with
/// their stored rows and current versions, and a collector that goes
/// leaves all of its targets to the next round of the other.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_collectors_share_a_backlog_claimed_in_bulk() {
    let place = TestStore::postgres("bulk_claims");
    let mut first = open(&place).await;
    let (_, mut ledger) = follow(&mut first, "h:0").await;
    let [snapshot, live] = history(&mut ledger);
    assert_eq!(
        commit(&mut first, &[snapshot, live]).await,
        [Outcome::Committed, Outcome::Committed]
    );
    let names: Vec<String> = (0..200).map(|i| format!("h:{i}")).collect();
    let claimed = first.claim_many(&names[..120]).await.expect("claim");
    assert!(claimed.iter().all(Option::is_some), "all free at first");
    let (row, current) = claimed[0].clone().unwrap();
    assert_eq!((row.name.as_str(), row.cursor.seq), ("h:0", 8));
    assert_eq!(current.len(), 3, "a, c and d are current");

    let mut second = open(&place).await;
    let claimed = second.claim_many(&names).await.expect("claim");
    for (i, (name, got)) in names.iter().zip(&claimed).enumerate() {
        match got {
            Some((row, _)) => {
                assert!(i >= 120, "{name} is the first collector's");
                assert_eq!(&row.name, name);
            }
            None => assert!(i < 120, "{name} is free"),
        }
    }

    // The first collector goes: its 120 targets come in the next rounds.
    drop(first);
    let mut waiting: Vec<String> = names[..120].to_vec();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut rounds = 0;
    while !waiting.is_empty() {
        assert!(Instant::now() < deadline, "still held: {waiting:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let claimed = second.claim_many(&waiting).await.expect("claim");
        rounds += 1;
        let mut still = Vec::new();
        for (name, got) in waiting.iter().zip(claimed) {
            match got {
                Some((row, current)) => {
                    assert_eq!(&row.name, name);
                    if name == "h:0" {
                        assert_eq!(current.len(), 3, "h:0's current versions");
                    }
                }
                None => still.push(name.clone()),
            }
        }
        waiting = still;
    }
    eprintln!("taken over in {rounds} rounds");
    let held: i64 = place.rows("SELECT COUNT(*) FROM targets")[0][0]
        .as_deref()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(held, 200, "one row per target, none added twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_held_target_goes_to_another_collector_once_released_or_dropped() {
    let place = TestStore::postgres("claims");
    let mut first = open(&place).await;
    let mut second = open(&place).await;
    let (target, _) = first.claim("h:1").await.unwrap().expect("free at first");
    assert!(
        first.claim("h:1").await.unwrap().is_some(),
        "claiming again what it holds"
    );
    assert!(second.claim("h:1").await.unwrap().is_none());
    assert!(
        second.claim("h:2").await.unwrap().is_some(),
        "others are free"
    );

    first.release(target.id).await.unwrap();
    claim_within(&mut second, "h:1", Duration::from_secs(2)).await;
    assert!(first.claim("h:1").await.unwrap().is_none());

    // The locks live and die with the connection.
    drop(second);
    let (again, _) = claim_within(&mut first, "h:1", Duration::from_secs(2)).await;
    assert_eq!(again.id, target.id);
    let (h2, _) = claim_within(&mut first, "h:2", Duration::from_secs(2)).await;
    let (h3, _) = first.claim("h:3").await.unwrap().unwrap();
    assert_eq!(
        h3.id,
        h2.id + 1,
        "claims of known targets, however often retried, take no ids"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_collectors_migrating_together_all_succeed() {
    let place = TestStore::postgres("migrate");
    let url = StoreUrl::parse(&place.url()).unwrap();
    let opening: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Store::open(&url).await.map(drop) })
        })
        .collect();
    for open in opening {
        open.await.unwrap().expect("open while others open");
    }
    let mut store = open(&place).await;
    let versions = select(&mut store, "SELECT version FROM schema_version", &[]).await;
    assert_eq!(versions, every_migration(), "migrated once");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_refuses_a_newer_schema_and_numeric_columns_in_words() {
    let place = TestStore::postgres("newer");
    let mut store = open(&place).await;
    let err = store
        .select("SELECT SUM(seq) AS total FROM events", &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("query column \"total\": NUMERIC"), "{err}");
    assert!(err.contains("CAST(SUM(x) AS BIGINT)"), "{err}");
    drop(store);

    let TestStore::Postgres(db) = &place else {
        unreachable!()
    };
    db.rows("INSERT INTO schema_version (version) VALUES (99)");
    let err = match Store::open(&StoreUrl::parse(db.url()).unwrap()).await {
        Err(e @ StoreError::TooNew { .. }) => e.to_string(),
        Err(e) => panic!("not TooNew: {e}"),
        Ok(_) => panic!("a newer schema was opened"),
    };
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("use a newer routewatch"), "{err}");
}

/// PostgreSQL's history is partitioned by UTC day: the collector creates
/// the partitions of the coming days ahead, and of any day a write needs;
/// a closed version moves to its day's partition of `versions`, a current
/// one stays in `versions_current`; a query by time reads only its days.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_history_is_partitioned_by_day() {
    const DAY: i64 = routewatch_client::store::schema::DAY;
    let place = TestStore::postgres("partitions");
    let TestStore::Postgres(db) = &place else {
        unreachable!()
    };
    let mut store = open(&place).await;
    let (_, mut ledger) = follow(&mut store, "h:1").await;
    let now = routewatch_client::printer::now_unix_nano();
    let today = now.div_euclid(DAY);
    // A host whose clock is ten days behind: its day gets a partition too.
    let late = now - 10 * DAY;
    let t = |seq, time, action, key: &str, r| {
        change("s", seq, time, action, Origin::Notification, key, r)
    };
    let mut writes = vec![write(
        &mut ledger,
        &snapshot("s", 5, now, None, &[("a", route("10.0.0.0/24", 0))]),
    )];
    writes.push(write(
        &mut ledger,
        &[
            t(6, now, Action::Add, "x", route("10.0.1.0/24", 0)),
            t(7, now + 1, Action::Delete, "x", route("10.0.1.0/24", 0)),
            t(8, late, Action::Delete, "a", route("10.0.0.0/24", 0)),
        ],
    ));
    assert_eq!(commit(&mut store, &writes).await, [Outcome::Committed; 2]);

    let name = |table: &str, day: i64| -> String {
        let d = db.rows(&format!(
            "SELECT to_char(to_timestamp({day}::bigint * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD')"
        ));
        format!("{table}_{}", d[0][0].as_deref().unwrap())
    };
    let partitions = |table: &str| -> Vec<String> {
        db.rows(&format!(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = '{table}'::regclass ORDER BY 1"
        ))
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect()
    };
    for table in ["versions", "events"] {
        let mut expected: Vec<String> = std::iter::once(late.div_euclid(DAY))
            .chain(today - 1..=today + 7)
            .map(|day| name(table, day))
            .collect();
        if table == "versions" {
            expected.push("versions_current".into());
        }
        expected.sort();
        assert_eq!(partitions(table), expected, "{table}'s partitions");
    }
    let home = |key: &str| -> Vec<String> {
        db.rows(&format!(
            "SELECT tableoid::regclass::text FROM versions WHERE key = '{key}' ORDER BY vid"
        ))
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect()
    };
    assert_eq!(home("x"), [name("versions", today)], "closed today");
    assert_eq!(home("a"), [name("versions", late.div_euclid(DAY))]);
    let open_now = db.rows("SELECT tableoid::regclass::text FROM versions WHERE valid_to IS NULL");
    assert!(open_now.is_empty(), "nothing current: {open_now:?}");
    writes = vec![write(
        &mut ledger,
        &[t(9, now + 2, Action::Add, "y", route("10.0.2.0/24", 0))],
    )];
    assert_eq!(commit(&mut store, &writes).await, [Outcome::Committed]);
    assert_eq!(home("y"), ["versions_current"]);

    // A day's log rows: its partition alone is read.
    let plan = db.rows(&format!(
        "EXPLAIN (FORMAT JSON) SELECT COUNT(*) FROM events WHERE time >= {} AND time < {}",
        today * DAY,
        (today + 1) * DAY
    ));
    let plan = plan[0][0].as_deref().unwrap();
    let read: Vec<&str> = plan
        .split("\"Relation Name\": \"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert_eq!(read, [name("events", today)], "{plan}");
}

/// Closing versions reads each one's row alone, whatever the statistics
/// say: here they describe `versions_current` as it was before a
/// target's 20,000 routes arrived (as right after a big snapshot, before
/// autovacuum analyses it), when a read of the whole target would look
/// cheap.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_closes_versions_by_key_with_stale_statistics() {
    const ROUTES: usize = 20_000;
    const CLOSES: usize = 10;
    let place = TestStore::postgres("stale");
    let TestStore::Postgres(db) = &place else {
        unreachable!()
    };
    let mut store = open(&place).await;
    let (target, mut ledger) = follow(&mut store, "h:1").await;
    db.rows("ALTER TABLE versions_current SET (autovacuum_enabled = off)");
    db.rows("ANALYZE versions_current");
    let keys: Vec<String> = (0..ROUTES).map(|i| format!("k{i}")).collect();
    let routes: Vec<(&str, _)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let dst = format!("10.{}.{}.0/24", i / 256, i % 256);
            (k.as_str(), route(&dst, 0))
        })
        .collect();
    let first = write(&mut ledger, &snapshot("s", 5, 100, None, &routes));
    assert_eq!(commit(&mut store, &[first]).await, [Outcome::Committed]);
    let estimate = db.rows("SELECT reltuples FROM pg_class WHERE relname = 'versions_current'");
    assert!(
        estimate[0][0]
            .as_deref()
            .is_some_and(|n| n.parse::<f64>().unwrap_or(0.0) < 1000.0),
        "the statistics should lag behind: {estimate:?}"
    );

    let vids: Vec<String> = db
        .rows(&format!(
            "SELECT vid FROM versions_current WHERE target_id = {} ORDER BY vid LIMIT {CLOSES}",
            target.id
        ))
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect();
    assert_eq!(vids.len(), CLOSES);
    let array = |v: &str| [v; CLOSES].join(",");
    // Ended now: today's partition exists.
    let now = routewatch_client::printer::now_unix_nano().to_string();
    // One transaction: the close, then what it read of the table.
    let rows = db.rows(&format!(
        "BEGIN;
         SELECT routewatch_close_versions({}, ARRAY[{}]::int8[], ARRAY[{}]::int8[],
             ARRAY[{}]::text[], ARRAY[{}]::int8[], ARRAY[{}]::int8[]);
         SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
             FROM pg_stat_xact_user_tables WHERE relname = 'versions_current';
         ROLLBACK",
        target.id,
        vids.join(","),
        array(&now),
        array("'s'"),
        array("6"),
        array("1"),
    ));
    assert_eq!(
        rows[0][0].as_deref(),
        Some(CLOSES.to_string().as_str()),
        "versions closed"
    );
    let read: usize = rows[1][0].as_deref().unwrap().parse().unwrap();
    assert!(
        read <= 2 * CLOSES,
        "closing {CLOSES} versions read {read} rows of versions_current"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_refuses_to_close_a_version_it_no_longer_has() {
    let place = TestStore::postgres("missing");
    let mut store = open(&place).await;
    let (target, mut ledger) = follow(&mut store, "h:1").await;
    let [first, live] = history(&mut ledger);
    commit(&mut store, std::slice::from_ref(&first)).await;
    let TestStore::Postgres(db) = &place else {
        unreachable!()
    };
    db.rows(&format!(
        "DELETE FROM versions WHERE target_id = {} AND vid = {}",
        target.id,
        vid(&first, "b")
    ));
    let err = match store.commit(&[live]).await {
        Err(e @ StoreError::MissingVersions { .. }) => e.to_string(),
        other => panic!("not MissingVersions: {other:?}"),
    };
    assert!(
        err.contains("1 versions this collector holds current are missing"),
        "{err}"
    );
    let (after, open) = store.claim("h:1").await.unwrap().unwrap();
    assert_eq!(after.cursor, cursor("s", 5), "nothing of the write is kept");
    let kept: Vec<(String, i64)> = ["a", "c"].map(|key| (key.into(), vid(&first, key))).into();
    assert_eq!(by_key(open), kept);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_an_unreachable_server_is_reported_in_words() {
    // A port nothing listens on (reserved for tcpmux, never served here).
    let url = StoreUrl::parse("postgres://rw:secret@127.0.0.1:1/routewatch").unwrap();
    let err = match Store::open(&url).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected to port 1"),
    };
    assert!(
        err.starts_with("postgres://rw:***@127.0.0.1:1/routewatch: cannot connect"),
        "{err}"
    );
    assert!(err.contains("is PostgreSQL running"), "{err}");
}
