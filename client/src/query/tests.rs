//! Each question asked of a store filled the way `collect` fills it: two
//! hosts' streams fed through the ledger and committed to SQLite.

use clap::Parser;
use routewatch_proto::v1::{event, Action, Heartbeat, Nexthop, Origin, Resync, Route, Rule, Sync};

use super::answer;
use crate::cli::{Cli, Command};
use crate::store::testing::{add, change, marker, record, route};
use crate::store::{Store, StoreUrl};
use crate::testing::Scratch;
use crate::ClientError;

/// 2026-11-28T10:00:00Z plus `min` minutes and `sec` seconds.
fn at(min: i64, sec: i64) -> i64 {
    (1_795_860_000 + min * 60 + sec) * 1_000_000_000
}

/// The present of every question: 11:00.
fn now() -> i64 {
    at(60, 0)
}

fn via(dst: &str, gateway: &str, dev: &str, ifindex: u32) -> Route {
    Route {
        gateway: gateway.into(),
        dev: dev.into(),
        ifindex,
        protocol: 4,
        ..route(dst, 0)
    }
}

fn default_route(ifindex: u32) -> Route {
    Route {
        protocol: 3,
        ..via("0.0.0.0/0", "10.1.0.1", "eth0", ifindex)
    }
}

fn link(dst: &str, dev: &str, prefsrc: &str) -> Route {
    Route {
        dev: dev.into(),
        scope: 253,
        protocol: 2,
        prefsrc: prefsrc.into(),
        ..route(dst, 0)
    }
}

fn nexthop(id: u32, gateway: &str) -> Nexthop {
    Nexthop {
        id,
        family: 1,
        gateway: gateway.into(),
        dev: "eth0".into(),
        ..Default::default()
    }
}

fn dump(
    stream: &str,
    seq: u64,
    time: i64,
    key: &str,
    object: impl crate::store::testing::Object,
) -> routewatch_proto::v1::Event {
    change(stream, seq, time, Action::Add, Origin::Dump, key, object)
}

/// node1 (10.0.0.1:50051), stream `s`:
///
/// - 10:00 snapshot at s:5: nexthop 1, default, r1 10.0.0.0/24 via
///   10.1.0.2, r9 192.168.0.0/16; Sync at 10:00:01.
/// - 10:10 r1 replaced (via 10.1.0.3); 10:15 r5 10.0.5.0/24 added, 10:20
///   deleted (reconcile); 10:22 r6 10.0.6.0/24 added; heartbeat at 10:25.
/// - 10:30 resync (lagged) and a snapshot at s:12 without r6 and with r7
///   10.0.7.0/24 (seen 10:31); Sync at 10:32.
///
/// node2 (10.0.0.2:50051), stream `u`:
///
/// - 10:02 snapshot at u:3: nexthop 1 via 10.1.0.9, the same default
///   (another ifindex), x1 10.0.0.0/24 via 10.1.0.2; Sync at 10:02:01.
/// - 10:12 x8 10.0.8.0/24 added.
async fn fleet(dir: &Scratch) -> Store {
    let url = StoreUrl::Sqlite(dir.path().join("routewatch.db"));
    let mut store = Store::open(&url).await.unwrap();
    let node1 = "10.0.0.1:50051";
    record(
        &mut store,
        node1,
        "node1",
        &[
            dump("s", 5, at(0, 0), "nh1", nexthop(1, "10.1.0.1")),
            dump("s", 5, at(0, 0), "d", default_route(2)),
            dump(
                "s",
                5,
                at(0, 0),
                "r1",
                via("10.0.0.0/24", "10.1.0.2", "eth0", 2),
            ),
            dump(
                "s",
                5,
                at(0, 0),
                "r9",
                link("192.168.0.0/16", "eth1", "192.168.0.1"),
            ),
            marker("s", 5, at(0, 1), event::Kind::Sync(Sync {})),
        ],
    )
    .await;
    record(
        &mut store,
        node1,
        "node1",
        &[
            add(
                6,
                at(10, 0),
                "r1",
                via("10.0.0.0/24", "10.1.0.3", "eth0", 2),
            ),
            add(
                7,
                at(15, 0),
                "r5",
                via("10.0.5.0/24", "10.1.0.2", "eth0", 2),
            ),
            change(
                "s",
                8,
                at(20, 0),
                Action::Delete,
                Origin::Reconcile,
                "r5",
                via("10.0.5.0/24", "10.1.0.2", "eth0", 2),
            ),
            add(9, at(22, 0), "r6", link("10.0.6.0/24", "eth1", "10.0.6.1")),
            marker("s", 9, at(25, 0), event::Kind::Heartbeat(Heartbeat {})),
        ],
    )
    .await;
    record(
        &mut store,
        node1,
        "node1",
        &[
            marker(
                "s",
                12,
                at(30, 0),
                event::Kind::Resync(Resync {
                    reason: "lagged behind the journal".into(),
                    cause: 3,
                }),
            ),
            dump("s", 12, at(30, 0), "nh1", nexthop(1, "10.1.0.1")),
            dump("s", 12, at(30, 0), "d", default_route(2)),
            dump(
                "s",
                12,
                at(30, 0),
                "r1",
                via("10.0.0.0/24", "10.1.0.3", "eth0", 2),
            ),
            dump(
                "s",
                12,
                at(30, 0),
                "r9",
                link("192.168.0.0/16", "eth1", "192.168.0.1"),
            ),
            dump(
                "s",
                12,
                at(31, 0),
                "r7",
                via("10.0.7.0/24", "10.1.0.2", "eth0", 2),
            ),
            marker("s", 12, at(32, 0), event::Kind::Sync(Sync {})),
        ],
    )
    .await;
    let node2 = "10.0.0.2:50051";
    record(
        &mut store,
        node2,
        "node2",
        &[
            dump("u", 3, at(2, 0), "xnh1", nexthop(1, "10.1.0.9")),
            dump("u", 3, at(2, 0), "xd", default_route(7)),
            dump(
                "u",
                3,
                at(2, 0),
                "x1",
                via("10.0.0.0/24", "10.1.0.2", "eth0", 7),
            ),
            marker("u", 3, at(2, 1), event::Kind::Sync(Sync {})),
            change(
                "u",
                4,
                at(12, 0),
                Action::Add,
                Origin::Notification,
                "x8",
                link("10.0.8.0/24", "eth2", "10.0.8.1"),
            ),
        ],
    )
    .await;
    store
}

/// `routewatch query ARGS` asked of `store` at 11:00: (stdout, stderr).
async fn ask(store: &mut Store, args: &str) -> Result<(String, String), ClientError> {
    let argv = ["routewatch", "query"]
        .into_iter()
        .chain(args.split_whitespace());
    let Command::Query(query) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!("a query");
    };
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    answer(store, &query, now(), false, &mut out, &mut notes).await?;
    Ok((
        String::from_utf8(out).unwrap(),
        String::from_utf8(notes).unwrap(),
    ))
}

fn ok(answer: Result<(String, String), ClientError>) -> (String, String) {
    answer.unwrap()
}

fn usage(answer: Result<(String, String), ClientError>) -> String {
    match answer {
        Err(ClientError::Usage(message)) => message,
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[tokio::test]
async fn routes_take_the_filters_of_show() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    let at = "routes --host node1 --at 2026-11-28T10:16:00Z";
    let ask_with = |flags: &str| format!("{at} {flags}");
    // Inside a prefix (narrowed by the index on destinations), and a
    // protocol (matched exactly).
    assert_eq!(
        ok(ask(&mut store, &ask_with("--within 10.0.0.0/16 --proto static")).await).0,
        "\
10.0.0.0/24 via 10.1.0.3 dev eth0 proto static
10.0.5.0/24 via 10.1.0.2 dev eth0 proto static
"
    );
    // The routes that carry traffic to an address; a deny filter; the
    // kind of object.
    assert_eq!(
        ok(ask(&mut store, &ask_with("--contains 10.0.5.9")).await).0,
        "\
default via 10.1.0.1 dev eth0
10.0.5.0/24 via 10.1.0.2 dev eth0 proto static
"
    );
    assert_eq!(
        ok(ask(
            &mut store,
            &ask_with("--object route --not --proto kernel,boot")
        )
        .await)
        .0,
        "\
10.0.0.0/24 via 10.1.0.3 dev eth0 proto static
10.0.5.0/24 via 10.1.0.2 dev eth0 proto static
"
    );
    assert_eq!(
        ok(ask(&mut store, &ask_with("--object nexthop")).await).0,
        "id 1 via 10.1.0.1 dev eth0\n"
    );
    assert_eq!(
        ok(ask(&mut store, &ask_with("--dev eth1")).await).0,
        "192.168.0.0/16 dev eth1 proto kernel scope link src 192.168.0.1\n"
    );
    // Nothing kept: said on stderr.
    assert_eq!(
        ok(ask(&mut store, &ask_with("-6")).await),
        (
            String::new(),
            "routewatch: node1 held nothing the filters keep at 2026-11-28T10:16:00Z\n".into()
        )
    );
    assert!(usage(ask(&mut store, &ask_with("--action add")).await)
        .starts_with("--action and --origin do not apply to query routes"));
}

#[tokio::test]
async fn routes_at_a_moment_print_as_show_prints_them() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    let before = "routes --host node1 --at 2026-11-28T10:05:00Z";
    assert_eq!(
        ok(ask(&mut store, before).await),
        (
            "\
id 1 via 10.1.0.1 dev eth0
default via 10.1.0.1 dev eth0
10.0.0.0/24 via 10.1.0.2 dev eth0 proto static
192.168.0.0/16 dev eth1 proto kernel scope link src 192.168.0.1
"
            .into(),
            String::new()
        )
    );
    // After the replace of 10.0.0.0/24 and the add of 10.0.5.0/24; the
    // address finds the host as its name does.
    let (after, _) = ok(ask(
        &mut store,
        "routes --host 10.0.0.1:50051 --at 2026-11-28T10:16:00Z",
    )
    .await);
    assert_eq!(
        after,
        "\
id 1 via 10.1.0.1 dev eth0
default via 10.1.0.1 dev eth0
10.0.0.0/24 via 10.1.0.3 dev eth0 proto static
10.0.5.0/24 via 10.1.0.2 dev eth0 proto static
192.168.0.0/16 dev eth1 proto kernel scope link src 192.168.0.1
"
    );
    // Each version as a snapshot's add: when it began, and where.
    let (json, _) = ok(ask(&mut store, &format!("{before} -o json")).await);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 4, "{json}");
    assert_eq!(
        lines[0],
        r#"{"time":"2026-11-28T10:00:00Z","host":"node1","netns":"","seq":5,"stream_id":"s","action":"add","origin":"dump","object":"nexthop","family":"inet","key":"nh1","id":1,"gateway":"10.1.0.1","dev":"eth0","scope":"global","protocol":"unspec","flags":[]}"#
    );
    assert_eq!(
        lines[2],
        r#"{"time":"2026-11-28T10:00:00Z","host":"node1","netns":"","seq":5,"stream_id":"s","action":"add","origin":"dump","object":"route","family":"inet","key":"r1","type":"unicast","dst":"10.0.0.0/24","gateway":"10.1.0.2","dev":"eth0","table":"main","protocol":"static","scope":"global","flags":[]}"#
    );
    let (table, _) = ok(ask(&mut store, &format!("{before} -o table")).await);
    assert_eq!(
        table,
        "\
TABLE  DST             TYPE     VIA       DEV   PROTO   SCOPE   METRIC  SRC
-      nhid 1          nexthop  10.1.0.1  eth0  unspec  global  -       -
main   default         unicast  10.1.0.1  eth0  boot    global  0       -
main   10.0.0.0/24     unicast  10.1.0.2  eth0  static  global  0       -
main   192.168.0.0/16  unicast  -         eth1  kernel  link    0       192.168.0.1
"
    );
}

#[tokio::test]
async fn routes_say_where_the_record_cannot_answer() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    // Every host, labelled; node1's moment lies in its resync's gap.
    assert_eq!(
        ok(ask(&mut store, "routes --at 2026-11-28T10:28:00Z").await),
        (
            "\
node1 id 1 via 10.1.0.1 dev eth0
node1 default via 10.1.0.1 dev eth0
node1 10.0.0.0/24 via 10.1.0.3 dev eth0 proto static
node1 10.0.6.0/24 dev eth1 proto kernel scope link src 10.0.6.1
node1 192.168.0.0/16 dev eth1 proto kernel scope link src 192.168.0.1
node2 id 1 via 10.1.0.9 dev eth0
node2 default via 10.1.0.1 dev eth0
node2 10.0.0.0/24 via 10.1.0.2 dev eth0 proto static
node2 10.0.8.0/24 dev eth2 proto kernel scope link src 10.0.8.1
"
            .into(),
            "routewatch: the record of node1 is not exact at 2026-11-28T10:28:00Z: resync (lagged: lagged behind the journal) between 2026-11-28T10:25:00Z (s:9) and 2026-11-28T10:32:00Z (s:12)\n".into()
        )
    );
    assert_eq!(
        ok(ask(&mut store, "routes --host node2 --at 2026-11-28T10:01:00Z").await),
        (
            String::new(),
            "routewatch: the record of node2 begins at 2026-11-28T10:02:00Z: nothing is known of 2026-11-28T10:01:00Z\n".into()
        )
    );
    assert_eq!(
        ok(ask(&mut store, "routes --host nope").await),
        (
            String::new(),
            "routewatch: no host matches nope; known: node1 (10.0.0.1:50051), node2 (10.0.0.2:50051)\n".into()
        )
    );
    assert!(usage(ask(&mut store, "routes --at whenever").await)
        .starts_with("--at: \"whenever\" is not a time"));
}

#[tokio::test]
async fn history_of_a_prefix_across_hosts_with_its_gap() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    assert_eq!(
        ok(ask(&mut store, "history 10.0.0.0/8").await),
        (
            "\
2026-11-28T10:00:00.000Z 2026-11-28T10:10:00.000Z node1 dump/notification 10.0.0.0/24 via 10.1.0.2 dev eth0 proto static
2026-11-28T10:02:00.000Z current node2 dump/- 10.0.0.0/24 via 10.1.0.2 dev eth0 proto static
2026-11-28T10:10:00.000Z current node1 notification/- 10.0.0.0/24 via 10.1.0.3 dev eth0 proto static
2026-11-28T10:12:00.000Z current node2 notification/- 10.0.8.0/24 dev eth2 proto kernel scope link src 10.0.8.1
2026-11-28T10:15:00.000Z 2026-11-28T10:20:00.000Z node1 notification/reconcile 10.0.5.0/24 via 10.1.0.2 dev eth0 proto static
2026-11-28T10:22:00.000Z 2026-11-28T10:32:00.000Z node1 notification/resync 10.0.6.0/24 dev eth1 proto kernel scope link src 10.0.6.1
2026-11-28T10:25:00.000Z 2026-11-28T10:32:00.000Z node1 gap lagged s:9..s:12 lagged behind the journal
2026-11-28T10:31:00.000Z current node1 dump/- 10.0.7.0/24 via 10.1.0.2 dev eth0 proto static
"
            .into(),
            String::new()
        )
    );
    let (json, _) = ok(ask(&mut store, "history 10.0.0.0/8 -o json").await);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 8, "{json}");
    // The replaced version, closed by the notification that replaced it.
    assert_eq!(
        lines[0],
        r#"{"host":"node1","netns":"","valid_from":"2026-11-28T10:00:00Z","valid_to":"2026-11-28T10:10:00Z","opened_by":"dump","closed_by":"notification","opened_stream_id":"s","opened_seq":5,"closed_stream_id":"s","closed_seq":6,"object":"route","family":"inet","key":"r1","type":"unicast","dst":"10.0.0.0/24","gateway":"10.1.0.2","dev":"eth0","table":"main","protocol":"static","scope":"global","flags":[]}"#
    );
    // The current version of another host.
    assert_eq!(
        lines[1],
        r#"{"host":"node2","netns":"","valid_from":"2026-11-28T10:02:00Z","valid_to":null,"opened_by":"dump","closed_by":null,"opened_stream_id":"u","opened_seq":3,"closed_stream_id":null,"closed_seq":null,"object":"route","family":"inet","key":"x1","type":"unicast","dst":"10.0.0.0/24","gateway":"10.1.0.2","dev":"eth0","table":"main","protocol":"static","scope":"global","flags":[]}"#
    );
    // The deleted version, and the one a resync's snapshot no longer held.
    assert_eq!(
        lines[4],
        r#"{"host":"node1","netns":"","valid_from":"2026-11-28T10:15:00Z","valid_to":"2026-11-28T10:20:00Z","opened_by":"notification","closed_by":"reconcile","opened_stream_id":"s","opened_seq":7,"closed_stream_id":"s","closed_seq":8,"object":"route","family":"inet","key":"r5","type":"unicast","dst":"10.0.5.0/24","gateway":"10.1.0.2","dev":"eth0","table":"main","protocol":"static","scope":"global","flags":[]}"#
    );
    assert!(
        lines[5].contains(
            r#""valid_to":"2026-11-28T10:32:00Z","opened_by":"notification","closed_by":"resync","#
        ),
        "{}",
        lines[5]
    );
    assert_eq!(
        lines[6],
        r#"{"gap":{"host":"node1","from":"2026-11-28T10:25:00Z","from_stream_id":"s","from_seq":9,"to":"2026-11-28T10:32:00Z","to_stream_id":"s","to_seq":12,"cause":"lagged","reason":"lagged behind the journal"}}"#
    );
}

#[tokio::test]
async fn history_within_a_time_range_a_host_or_a_single_destination() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    // Versions valid at some moment of [10:16, 10:21], and no gap.
    let (text, _) = ok(ask(
        &mut store,
        "history 10.0.0.0/8 --since 2026-11-28T10:16:00Z --until 2026-11-28T10:21:00Z",
    )
    .await);
    assert_eq!(
        text,
        "\
2026-11-28T10:02:00.000Z current node2 dump/- 10.0.0.0/24 via 10.1.0.2 dev eth0 proto static
2026-11-28T10:10:00.000Z current node1 notification/- 10.0.0.0/24 via 10.1.0.3 dev eth0 proto static
2026-11-28T10:12:00.000Z current node2 notification/- 10.0.8.0/24 dev eth2 proto kernel scope link src 10.0.8.1
2026-11-28T10:15:00.000Z 2026-11-28T10:20:00.000Z node1 notification/reconcile 10.0.5.0/24 via 10.1.0.2 dev eth0 proto static
"
    );
    let (text, _) = ok(ask(&mut store, "history 10.0.0.0/24 --host node2").await);
    assert_eq!(
        text,
        "2026-11-28T10:02:00.000Z current node2 dump/- 10.0.0.0/24 via 10.1.0.2 dev eth0 proto static\n"
    );
    // `default` is the default route itself, of either family.
    let (text, _) = ok(ask(&mut store, "history default --host node2").await);
    assert_eq!(
        text,
        "2026-11-28T10:02:00.000Z current node2 dump/- default via 10.1.0.1 dev eth0\n"
    );
    // An address is its host route, which no host had.
    assert_eq!(
        ok(ask(&mut store, "history 10.0.5.7 --host node2").await),
        (
            String::new(),
            "routewatch: the record holds no route at or inside 10.0.5.7\n".into()
        )
    );
    assert_eq!(
        usage(ask(&mut store, "history 10.0.0.1/8").await),
        r#"PREFIX "10.0.0.1/8": host bits set (did you mean 10.0.0.0/8?)"#
    );
    assert_eq!(
        usage(ask(&mut store, "history 10.0.0.0/8 -o jsonpb").await),
        "-o jsonpb does not apply to query history: use text or json"
    );
    // Columns with a header: at a terminal, or asked for with -o table.
    let (table, _) = ok(ask(&mut store, "history 10.0.5.0/24 -o table").await);
    assert_eq!(
        table,
        "\
FROM                      UNTIL                     HOST   BY                      OBJECT
2026-11-28T10:15:00.000Z  2026-11-28T10:20:00.000Z  node1  notification/reconcile  10.0.5.0/24 via 10.1.0.2 dev eth0 proto static
2026-11-28T10:25:00.000Z  2026-11-28T10:32:00.000Z  node1  gap                     lagged s:9..s:12 lagged behind the journal
"
    );
    let query = "history 10.0.0.0/8 --since 2026-11-28T10:24:00Z --until 2026-11-28T10:26:00Z";
    let Command::Query(query) = Cli::try_parse_from(
        ["routewatch", "query"]
            .into_iter()
            .chain(query.split_whitespace()),
    )
    .unwrap()
    .command
    else {
        unreachable!("a query");
    };
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    answer(&mut store, &query, now(), true, &mut out, &mut notes)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("FROM  "), "{out}");
    assert!(
        out.contains("2026-11-28T10:25:00.000Z  2026-11-28T10:32:00.000Z  node1  gap "),
        "{out}"
    );
}

#[tokio::test]
async fn diff_of_one_host_at_two_moments() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    let q = "diff --host node1 --at 2026-11-28T10:05:00Z --at 2026-11-28T10:40:00Z";
    // 10.0.0.0/24 changed gateway, 10.0.7.0/24 came with the resync; the
    // rest is the same at both moments.
    assert_eq!(
        ok(ask(&mut store, q).await).0,
        "\
Deleted 10.0.0.0/24 via 10.1.0.2 dev eth0 proto static
10.0.0.0/24 via 10.1.0.3 dev eth0 proto static
10.0.7.0/24 via 10.1.0.2 dev eth0 proto static
"
    );
    let (json, _) = ok(ask(&mut store, &format!("{q} -o json")).await);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 3, "{json}");
    assert_eq!(
        lines[0],
        r#"{"only":null,"host":"node1","at":"2026-11-28T10:05:00Z","action":"delete","netns":"","object":"route","family":"inet","key":"r1","type":"unicast","dst":"10.0.0.0/24","gateway":"10.1.0.2","dev":"eth0","table":"main","protocol":"static","scope":"global","flags":[]}"#
    );
    assert_eq!(
        lines[2],
        r#"{"only":"2026-11-28T10:40:00Z","host":"node1","at":"2026-11-28T10:40:00Z","action":"add","netns":"","object":"route","family":"inet","key":"r7","type":"unicast","dst":"10.0.7.0/24","gateway":"10.1.0.2","dev":"eth0","table":"main","protocol":"static","scope":"global","flags":[]}"#
    );
    // From a moment inside the gap: said on stderr.
    let (_, notes) = ok(ask(
        &mut store,
        "diff --host node1 --at 2026-11-28T10:28:00Z --at now",
    )
    .await);
    assert!(
        notes.contains("the record of node1 is not exact at 2026-11-28T10:28:00Z"),
        "{notes}"
    );
    // Two moments with nothing between: no lines, and stderr says so.
    let (out, notes) = ok(ask(
        &mut store,
        "diff --host node1 --at 2026-11-28T10:40:00Z --at 2026-11-28T10:40:01Z",
    )
    .await);
    assert_eq!(out, "");
    assert!(
        notes.starts_with("routewatch: no differences: 2026-11-28T10:40:00Z and 2026-11-28T10:40:01Z hold the same "),
        "{notes}"
    );
}

#[tokio::test]
async fn diff_of_two_hosts_at_one_moment() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    let q = "diff --host node1 --host node2 --at 2026-11-28T10:13:00Z";
    // The default routes are alike (each host's interface index is its
    // own); nexthop 1 and 10.0.0.0/24 differ; each host has one route of
    // its own.
    assert_eq!(
        ok(ask(&mut store, q).await).0,
        "\
node1: id 1 via 10.1.0.1 dev eth0
node2: id 1 via 10.1.0.9 dev eth0
node1: 10.0.0.0/24 via 10.1.0.3 dev eth0 proto static
node2: 10.0.0.0/24 via 10.1.0.2 dev eth0 proto static
node2 only: 10.0.8.0/24 dev eth2 proto kernel scope link src 10.0.8.1
node1 only: 192.168.0.0/16 dev eth1 proto kernel scope link src 192.168.0.1
"
    );
    let (json, _) = ok(ask(&mut store, &format!("{q} -o json")).await);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 6, "{json}");
    assert_eq!(
        lines[1],
        r#"{"only":null,"host":"node2","at":"2026-11-28T10:13:00Z","netns":"","object":"nexthop","family":"inet","key":"xnh1","id":1,"gateway":"10.1.0.9","dev":"eth0","scope":"global","protocol":"unspec","flags":[]}"#
    );
    assert_eq!(
        lines[4],
        r#"{"only":"node2","host":"node2","at":"2026-11-28T10:13:00Z","netns":"","object":"route","family":"inet","key":"x8","type":"unicast","dst":"10.0.8.0/24","dev":"eth2","table":"main","protocol":"kernel","scope":"link","prefsrc":"10.0.8.1","flags":[]}"#
    );
    // Without --at: now, when node1 has 10.0.7.0/24 too.
    let (text, _) = ok(ask(&mut store, "diff --host node1 --host 10.0.0.2:50051").await);
    assert!(text.contains("node1 only: 10.0.7.0/24"), "{text}");
}

#[tokio::test]
async fn diff_takes_exactly_one_of_its_two_forms() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    for q in [
        "diff --host node1",
        "diff --host node1 --at -1h",
        "diff --host node1 --at -1h --at -2h --at -3h",
        "diff --host node1 --host node2 --at -1h --at now",
        "diff --host node1 --host node2 --host node3",
    ] {
        let message = usage(ask(&mut store, q).await);
        assert!(
            message.contains("(--host H --at T1 --at T2)")
                && message.contains("(--host A --host B"),
            "{q}: {message}"
        );
    }
    assert_eq!(
        ok(ask(&mut store, "diff --host node1 --host nope").await),
        (
            String::new(),
            "routewatch: no host matches nope; known: node1 (10.0.0.1:50051), node2 (10.0.0.2:50051)\n".into()
        )
    );
}

#[tokio::test]
async fn gaps_are_listed_per_host() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    assert_eq!(
        ok(ask(&mut store, "gaps").await).0,
        "\
HOST   FROM                  FROM_CURSOR  TO                    TO_CURSOR  CAUSE   REASON
node1  2026-11-28T10:25:00Z  s:9          2026-11-28T10:32:00Z  s:12       lagged  lagged behind the journal
"
    );
    assert_eq!(
        ok(ask(&mut store, "gaps -o json --since 2026-11-28T10:30:00Z").await).0,
        r#"{"host":"node1","from":"2026-11-28T10:25:00Z","from_stream_id":"s","from_seq":9,"to":"2026-11-28T10:32:00Z","to_stream_id":"s","to_seq":12,"cause":"lagged","reason":"lagged behind the journal"}
"#
    );
    assert_eq!(
        ok(ask(&mut store, "gaps --since 2026-11-28T10:33:00Z").await),
        (String::new(), "routewatch: no gaps found\n".into())
    );
    assert_eq!(
        ok(ask(&mut store, "gaps --host node2").await),
        (String::new(), "routewatch: no gaps found\n".into())
    );
}

/// Two hosts with the default IPv4 rules; node2's rule at 100 looks up
/// table 300; node1's rule at 100 looks up
/// table 100 from 10:00, table 200 from 10:10 (deleted and added again, as
/// `ip rule` must), and a blackhole rule comes at 10:20.
async fn ruled(dir: &Scratch) -> Store {
    let url = StoreUrl::Sqlite(dir.path().join("rules.db"));
    let mut store = Store::open(&url).await.unwrap();
    let rule = |priority, table, action| Rule {
        family: 1,
        priority,
        table,
        action,
        protocol: if table == 100 || table == 200 { 4 } else { 2 },
        ..Default::default()
    };
    for (host, stream, time) in [("node1", "s", at(0, 0)), ("node2", "u", at(1, 0))] {
        let addr = format!("{host}:50051");
        let mut events = vec![
            dump(stream, 2, time, "main", rule(32766, 254, 1)),
            dump(stream, 2, time, "local", rule(0, 255, 1)),
        ];
        events.push(if host == "node1" {
            dump(stream, 2, time, "t100", rule(100, 100, 1))
        } else {
            dump(stream, 2, time, "t300", rule(100, 300, 1))
        });
        events.push(marker(stream, 2, time + 1, event::Kind::Sync(Sync {})));
        record(&mut store, &addr, host, &events).await;
    }
    let updates = [
        change(
            "s",
            3,
            at(10, 0),
            Action::Delete,
            Origin::Notification,
            "t100",
            rule(100, 100, 1),
        ),
        add(4, at(10, 0), "t200", rule(100, 200, 1)),
        add(5, at(20, 0), "bh", rule(500, 0, 6)),
    ];
    record(&mut store, "node1:50051", "node1", &updates).await;
    store
}

#[tokio::test]
async fn rules_have_a_history_a_moment_and_a_diff() {
    let dir = Scratch::new("query");
    let mut store = ruled(&dir).await;
    assert_eq!(
        ok(ask(&mut store, "history rules --host node1 --since 2026-11-28T10:05:00Z").await).0,
        "\
2026-11-28T10:00:00.000Z current node1 dump/- 0:\tfrom all lookup local
2026-11-28T10:00:00.000Z 2026-11-28T10:10:00.000Z node1 dump/notification 100:\tfrom all lookup 100 proto static
2026-11-28T10:00:00.000Z current node1 dump/- 32766:\tfrom all lookup main
2026-11-28T10:10:00.000Z current node1 notification/- 100:\tfrom all lookup 200 proto static
2026-11-28T10:20:00.000Z current node1 notification/- 500:\tfrom all blackhole
"
    );
    assert_eq!(
        ok(ask(&mut store, "routes --host node1 --at 2026-11-28T10:05:00Z").await).0,
        "0:\tfrom all lookup local\n100:\tfrom all lookup 100 proto static\n32766:\tfrom all lookup main\n"
    );
    assert_eq!(
        ok(ask(&mut store, "diff --host node1 --at 2026-11-28T10:05:00Z --at 2026-11-28T10:25:00Z").await).0,
        "Deleted 100:\tfrom all lookup 100 proto static\n100:\tfrom all lookup 200 proto static\n500:\tfrom all blackhole\n"
    );
    // Across hosts, rules are matched by priority.
    let (out, _) = ok(ask(&mut store, "diff --host node1 --host node2").await);
    assert!(
        out.contains("node1: 100:\tfrom all lookup 200 proto static"),
        "{out}"
    );
    assert!(out.contains("node2: 100:\tfrom all lookup 300"), "{out}");
    assert!(
        out.contains("node1 only: 500:\tfrom all blackhole"),
        "{out}"
    );
    assert!(!out.contains("32766"), "the same rule on both: {out}");
    let hosts = ok(ask(&mut store, "hosts -o json").await).0;
    assert!(
        hosts.contains(r#""host":"node1""#) && hosts.contains(r#""rules":4"#),
        "{hosts}"
    );
    assert!(hosts.contains(r#""rules":3"#), "node2: {hosts}");
}

#[tokio::test]
async fn hosts_with_their_cursor_and_what_they_hold() {
    let dir = Scratch::new("query");
    let mut store = fleet(&dir).await;
    // node2's first write held its snapshot and its first change.
    assert_eq!(
        ok(ask(&mut store, "hosts").await).0,
        "\
HOST   ADDRESS         FIRST_SEEN            LAST_SEEN             CURSOR  ROUTES  NEXTHOPS  RULES  GAPS
node1  10.0.0.1:50051  2026-11-28T10:00:01Z  2026-11-28T10:32:00Z  s:12    4       1         0      1
node2  10.0.0.2:50051  2026-11-28T10:12:00Z  2026-11-28T10:12:00Z  u:4     3       1         0      0
"
    );
    assert_eq!(
        ok(ask(&mut store, "hosts -o json").await).0,
        r#"{"host":"node1","address":"10.0.0.1:50051","first_seen":"2026-11-28T10:00:01Z","last_seen":"2026-11-28T10:32:00Z","stream_id":"s","seq":12,"routes":4,"nexthops":1,"rules":0,"gaps":1,"agent_id":null,"addresses":["10.0.0.1:50051"]}
{"host":"node2","address":"10.0.0.2:50051","first_seen":"2026-11-28T10:12:00Z","last_seen":"2026-11-28T10:12:00Z","stream_id":"u","seq":4,"routes":3,"nexthops":1,"rules":0,"gaps":0,"agent_id":null,"addresses":["10.0.0.2:50051"]}
"#
    );
}

#[tokio::test]
async fn an_empty_store_says_so() {
    let dir = Scratch::new("query");
    let url = StoreUrl::Sqlite(dir.path().join("empty.db"));
    let mut store = Store::open(&url).await.unwrap();
    let empty = "routewatch: the store holds no hosts yet (routewatch collect adds them)\n";
    assert_eq!(
        ok(ask(&mut store, "hosts").await),
        (String::new(), empty.into())
    );
    assert_eq!(
        ok(ask(&mut store, "routes").await),
        (String::new(), empty.into())
    );
}

#[tokio::test]
async fn a_missing_store_is_not_created() {
    let dir = Scratch::new("query");
    let path = dir.path().join("absent.db");
    let argv = ["routewatch", "query", "--store"]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("sqlite://{}", path.display()), "hosts".into()]);
    let Command::Query(query) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!("a query");
    };
    let e = super::run(query).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no store at sqlite://{}: run routewatch collect first, or pass --store",
            path.display()
        )
    );
    assert!(!path.exists());
}

/// `query routes` has the database sort a host's table as far as its
/// columns allow and sorts the rest itself: the order is `show`'s, across
/// families, tables in the kernel's hash order, nested prefixes, TOS and
/// metric. Each route is told by its metric, which no two share.
#[tokio::test]
async fn routes_come_in_shows_order_from_the_database() {
    let dir = Scratch::new("query");
    let url = StoreUrl::Sqlite(dir.path().join("routewatch.db"));
    let mut store = Store::open(&url).await.unwrap();
    let mut routes = Vec::new();
    let mut metric = 0;
    for table in [254, 2, 256, 1000, 255] {
        for dst in [
            "10.0.0.0/8",
            "10.0.0.0/24",
            "10.0.0.128/25",
            "0.0.0.0/0",
            "192.168.1.0/24",
            "2001:db8::/32",
            "2001:db8:5::/64",
            "2001:db8::/64",
            "::/0",
            "fe80::/64",
            "2001:db8:ffff::/48",
        ] {
            for tos in [0, 16] {
                metric += 1;
                routes.push(Route {
                    table,
                    tos: if dst.contains(':') { 0 } else { tos },
                    ..route(dst, 1000 - metric)
                });
            }
        }
    }
    let mut events: Vec<_> = routes
        .iter()
        .rev()
        .enumerate()
        .map(|(i, r)| dump("s", 5, at(0, 0), &format!("r{i}"), r.clone()))
        .collect();
    events.push(dump("s", 5, at(0, 0), "nh2", nexthop(2, "10.1.0.1")));
    events.push(dump("s", 5, at(0, 0), "nh1", nexthop(1, "10.1.0.1")));
    events.push(marker("s", 5, at(0, 1), event::Kind::Sync(Sync {})));
    record(&mut store, "10.0.0.1:50051", "node1", &events).await;

    let (out, _) = ok(ask(&mut store, "routes --at now -o json").await);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let nexthops: Vec<_> = lines.iter().take(2).map(|l| l["id"].clone()).collect();
    assert_eq!(
        nexthops,
        [serde_json::json!(1), serde_json::json!(2)],
        "{out}"
    );
    let got: Vec<u64> = lines[2..]
        .iter()
        .map(|l| l["metric"].as_u64().unwrap_or(0))
        .collect();
    routes.sort_by(crate::order::routes);
    let expected: Vec<u64> = routes.iter().map(|r| u64::from(r.metric)).collect();
    assert_eq!(got, expected);
}
