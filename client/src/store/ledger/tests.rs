use routewatch_proto::v1::Heartbeat;

use super::*;
use crate::store::testing::{add, change, cursor, marker, route, snapshot};

fn target() -> TargetRow {
    TargetRow {
        id: 7,
        name: "h:1".into(),
        host: String::new(),
        cursor: StoredCursor::default(),
        next_vid: 1,
        last_seen: None,
    }
}

/// A ledger that holds `a` (10.0.0.0/24) and `b` (10.0.1.0/24) as of s:5.
fn synced() -> (Ledger, Write) {
    let mut ledger = Ledger::new(&target(), Vec::new());
    ledger.apply(&snapshot(
        "s",
        5,
        100,
        None,
        &[
            ("a", route("10.0.0.0/24", 0)),
            ("b", route("10.0.1.0/24", 0)),
        ],
    ));
    let write = ledger.take().expect("a write");
    (ledger, write)
}

#[test]
fn the_first_snapshot_opens_versions_and_sets_the_cursor() {
    let (ledger, write) = synced();
    assert_eq!(write.expect, StoredCursor::default());
    assert_eq!(write.cursor, cursor("s", 5));
    assert_eq!(write.opens.len(), 2);
    assert!(
        write.events.is_empty(),
        "snapshot contents are not log rows"
    );
    assert!(write.gaps.is_empty(), "a first snapshot is no gap");
    let a = write.opens.iter().find(|v| v.key == "a").unwrap();
    assert_eq!(a.valid_from, 100);
    assert_eq!(a.opened_origin, Origin::Dump as i64);
    assert_eq!(a.opened_seq, 5);
    assert_eq!(a.dst_len, Some(24));
    assert_eq!(a.dst_lo.as_deref(), Some(&[10, 0, 0, 0][..]));
    assert_eq!(a.dst_hi.as_deref(), Some(&[10, 0, 0, 255][..]));
    assert_eq!(a.table_id, Some(254));
    assert_eq!(write.next_vid, 3);
    assert_eq!(ledger.current_len(), 2);
    assert_eq!(write.last_seen, Some(101));
}

#[test]
fn nothing_is_written_before_the_snapshot_is_complete() {
    let mut ledger = Ledger::new(&target(), Vec::new());
    ledger.apply(&[change(
        "s",
        5,
        100,
        Action::Add,
        Origin::Dump,
        "a",
        route("10.0.0.0/24", 0),
    )]);
    assert_eq!(ledger.take(), None);
    assert_eq!(ledger.held_back(), 1);
}

#[test]
fn live_changes_open_and_close_versions_and_log_every_seq() {
    let (mut ledger, first) = synced();
    ledger.apply(&[
        add(6, 200, "c", route("10.0.2.0/24", 0)),
        add(7, 210, "c", route("10.0.2.0/24", 5)),
        change(
            "s",
            8,
            220,
            Action::Delete,
            Origin::Reconcile,
            "a",
            route("10.0.0.0/24", 0),
        ),
        add(9, 230, "b", route("10.0.1.0/24", 0)),
    ]);
    let write = ledger.take().unwrap();
    assert_eq!(write.expect, first.cursor, "continues from the last write");
    assert_eq!(write.cursor, cursor("s", 9));
    let seqs: Vec<i64> = write.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [6, 7, 8, 9]);
    // c's first version opened and closed within this write: one row.
    assert_eq!(write.opens.len(), 2);
    let c1 = &write.opens[0];
    let close = c1.close.as_ref().expect("closed in place");
    assert_eq!((close.valid_to, close.seq), (210, 7));
    assert!(write.opens[1].close.is_none());
    // a was written before: closed by an update, with the reconcile origin.
    assert_eq!(write.closes.len(), 1);
    let a_vid = first.opens.iter().find(|v| v.key == "a").unwrap().vid;
    assert_eq!(write.closes[0].vid, a_vid);
    assert_eq!(write.closes[0].close.origin, Origin::Reconcile as i64);
    assert_eq!(
        write.events[2].vid, a_vid,
        "a delete points at what it closed"
    );
    // b sent again unchanged: the same version goes on.
    let b_vid = first.opens.iter().find(|v| v.key == "b").unwrap().vid;
    assert_eq!(write.events[3].vid, b_vid);
    assert_eq!(ledger.current_len(), 2);
}

#[test]
fn a_resync_records_a_gap_and_replaces_what_changed() {
    let (mut ledger, first) = synced();
    ledger.apply(&[marker("s", 5, 150, event::Kind::Heartbeat(Heartbeat {}))]);
    let heartbeat = ledger.take().unwrap();
    assert_eq!(heartbeat.rows(), 0);
    assert_eq!(heartbeat.last_seen, Some(150));
    // a unchanged, b gone, d new.
    ledger.apply(&snapshot(
        "t",
        2,
        300,
        Some("unknown stream"),
        &[
            ("a", route("10.0.0.0/24", 0)),
            ("d", route("2001:db8::/64", 0)),
        ],
    ));
    let write = ledger.take().unwrap();
    assert_eq!(write.cursor, cursor("t", 2));
    assert_eq!(write.gaps.len(), 1);
    let gap = &write.gaps[0];
    assert_eq!(gap.from, cursor("s", 5));
    assert_eq!(gap.from_time, Some(150));
    assert_eq!((gap.to.clone(), gap.to_time), (cursor("t", 2), 301));
    assert_eq!(gap.cause, 1);
    let b_vid = first.opens.iter().find(|v| v.key == "b").unwrap().vid;
    assert_eq!(write.closes.len(), 1);
    assert_eq!(write.closes[0].vid, b_vid);
    assert_eq!(write.closes[0].close.origin, CLOSED_BY_RESYNC);
    assert_eq!(write.closes[0].close.valid_to, 301);
    assert_eq!(write.opens.len(), 1);
    assert_eq!(write.opens[0].key, "d");
    assert_eq!(write.opens[0].family, 2);
    assert_eq!(write.opens[0].dst_lo.as_ref().map(Vec::len), Some(16));
}

#[test]
fn a_loaded_ledger_continues_the_stored_record() {
    let (_, first) = synced();
    let a = first.opens.iter().find(|v| v.key == "a").unwrap();
    let stored = TargetRow {
        cursor: cursor("s", 5),
        next_vid: 3,
        last_seen: Some(101),
        ..target()
    };
    let open = vec![OpenVersion {
        netns: String::new(),
        key: "a".into(),
        vid: a.vid,
        digest: a.digest,
        kind: a.kind,
        object: a.object.clone(),
    }];
    let mut ledger = Ledger::new(&stored, open);
    ledger.apply(&[add(6, 200, "a", route("10.0.0.0/24", 9))]);
    let write = ledger.take().unwrap();
    assert_eq!(write.expect, cursor("s", 5));
    assert_eq!(write.closes[0].vid, a.vid);
    assert_eq!(write.opens[0].vid, 3);
}

/// The ledger loaded from what `write` stored (every version it opened
/// and left open), at `write`'s cursor.
fn loaded(write: &Write, damage: impl Fn(&mut Vec<OpenVersion>)) -> Ledger {
    let stored = TargetRow {
        cursor: write.cursor.clone(),
        next_vid: write.next_vid,
        last_seen: write.last_seen,
        ..target()
    };
    let mut open: Vec<OpenVersion> = write
        .opens
        .iter()
        .filter(|v| v.close.is_none())
        .map(|v| OpenVersion {
            netns: v.netns.clone(),
            key: v.key.clone(),
            vid: v.vid,
            digest: v.digest,
            kind: v.kind,
            object: v.object.clone(),
        })
        .collect();
    damage(&mut open);
    Ledger::new(&stored, open)
}

fn digest_at(ledger: &Ledger, stream: &str, seq: u64) -> Event {
    Event {
        stream_id: stream.into(),
        seq,
        kind: Some(event::Kind::Digest(ledger.digests().to_message())),
        ..Default::default()
    }
}

#[test]
fn a_digest_equal_to_the_record_changes_nothing() {
    let (ledger, first) = synced();
    let mut reloaded = loaded(&first, |_| {});
    assert_eq!(reloaded.digests(), ledger.digests(), "loaded = kept");
    let digest = digest_at(&ledger, "s", 5);
    assert!(reloaded.apply(&[digest]).is_none());
    assert!(reloaded.take().is_none(), "nothing to write");
}

#[test]
fn a_damaged_record_differs_and_is_repaired_by_the_resync_that_follows() {
    let (ledger, first) = synced();
    let agent = digest_at(&ledger, "s", 5);
    // b's stored object replaced by a's: same count, different sums.
    let mut damaged = loaded(&first, |open| {
        let a = open.iter().find(|v| v.key == "a").unwrap().object.clone();
        open.iter_mut().find(|v| v.key == "b").unwrap().object = a;
    });
    let mismatches = damaged.apply(&[agent]).expect("a mismatch");
    assert_eq!(mismatches.len(), 1);
    assert_eq!(mismatches[0].ours.count, mismatches[0].agent.count);
    // Until the subscription starts over, events are ignored.
    assert!(damaged
        .apply(&[add(6, 200, "c", route("10.0.2.0/24", 0))])
        .is_none());
    let resync = crate::restart::resync_event("s", 5);
    damaged.apply(&[resync]);
    damaged.apply(&snapshot(
        "s",
        5,
        300,
        None,
        &[
            ("a", route("10.0.0.0/24", 0)),
            ("b", route("10.0.1.0/24", 0)),
        ],
    ));
    let write = damaged.take().unwrap();
    assert_eq!(write.gaps.len(), 1);
    assert_eq!(write.gaps[0].cause, ResyncCause::DigestMismatch as i64);
    assert!(
        write.gaps[0]
            .reason
            .starts_with("digest mismatch: netns (own) route table 254"),
        "{}",
        write.gaps[0].reason
    );
    assert_eq!(write.opens.len(), 1, "b is stored again");
    assert_eq!(write.opens[0].key, "b");
    assert_eq!(damaged.digests(), ledger.digests(), "repaired");
}
