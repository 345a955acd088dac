//! `tail`'s picture of each target, so that a resync prints what changed
//! instead of the whole snapshot again.
//!
//! An agent that cannot continue a subscriber's stream (it restarted
//! without its state, or the subscriber was away longer than the journal
//! reaches) sends a resync and a fresh snapshot. A consumer that already
//! holds a complete picture only needs the differences: the objects that
//! went away (a route deleted while the agent was down appears as a
//! delete), the ones that came or changed. [`Pictures`] keeps each
//! target's objects by key, holds the new snapshot back until its sync
//! marker, and gives the differences as changes with origin `reconcile`.
//!
//! A picture holds each object encoded (the `Change.object` field's
//! bytes), not as the decoded message: a route decoded, with its strings,
//! takes about ten times the bytes, a full table's picture is 1.25M routes,
//! and a resync holds the incoming snapshot beside it.
//!
//! With `--verify` ([`Pictures::verifying`]) each picture also keeps its
//! digests (see [`routewatch_proto::digest`]) and compares them with every
//! `Digest` the agent sends at the picture's position. On a difference it
//! warns, naming each part, and has the subscription start over
//! ([`crate::restart`]): the Resync that follows prints as a resync
//! marker, then only the differences the fresh snapshot shows.

use std::collections::HashMap;
use std::io;

use prost::Message;

use routewatch_proto::digest::{self, Digests};
use routewatch_proto::v1::{change, event, Action, Change, Event, Origin};

use crate::restart::Restarts;

/// An object's identity: keys are unique within a (host, netns).
type Key = (String, String);

/// An object as a picture holds it: its `Change.object` field, encoded.
type Held = Box<[u8]>;

fn hold(object: &change::Object) -> Held {
    let mut buf = Vec::with_capacity(object.encoded_len());
    object.encode(&mut buf);
    buf.into_boxed_slice()
}

/// The object `held` encodes (the bytes of a `Change` with only its object).
fn unheld(held: &[u8]) -> Option<change::Object> {
    Change::decode(held).ok()?.object
}

/// What to print for one event of a target's stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shown<'a> {
    /// An event to print as it is.
    Event(&'a Event),
    /// A resync after which only the differences follow (then the sync
    /// marker): the consumer keeps what it holds.
    Differences(&'a Event),
}

/// Whether to go on showing a batch's events.
pub type Go = bool;

/// Every target's picture, by the address dialled.
#[derive(Default)]
pub struct Pictures {
    targets: HashMap<String, Picture>,
    /// `--verify`: where a picture that differs from its agent's digest
    /// is started over.
    verify: Option<Restarts>,
}

#[derive(Default)]
struct Picture {
    /// The objects held, as their last add.
    held: HashMap<Key, Held>,
    /// A sync marker has completed `held`: there is a picture to compare
    /// a new snapshot with.
    complete: bool,
    /// The snapshot after a resync, in arrival order, until its sync:
    /// each key with its object, or `None` for a delete.
    incoming: Option<Vec<(Key, Option<Held>)>>,
    /// `--verify`: what `held` holds, per (netns, kind, table).
    digests: Option<Digests>,
    /// The position `held` is at: (stream, seq).
    at: Option<(String, u64)>,
    /// A digest differed and the subscription was asked to start over:
    /// events are ignored until its Resync.
    restarting: bool,
}

impl Pictures {
    /// Pictures that are compared with the agents' digests, each started
    /// over through `restarts` when it differs.
    pub fn verifying(restarts: Restarts) -> Pictures {
        Pictures {
            targets: HashMap::new(),
            verify: Some(restarts),
        }
    }

    /// Applies `events` (one batch of `target`'s stream, in order), giving
    /// `show` what to print for each, as it goes; stops where `show` says
    /// not to go on. Each event is shown as it comes; the picture keeps
    /// its object encoded.
    pub fn apply(
        &mut self,
        target: &str,
        events: Vec<Event>,
        show: &mut dyn FnMut(Shown<'_>) -> io::Result<Go>,
    ) -> io::Result<Go> {
        let picture = match self.targets.get_mut(target) {
            Some(picture) => picture,
            None => self.targets.entry(target.to_owned()).or_insert(Picture {
                digests: self.verify.is_some().then(Digests::default),
                ..Picture::default()
            }),
        };
        for event in events {
            if picture.restarting {
                if !matches!(event.kind, Some(event::Kind::Resync(_))) {
                    continue;
                }
                picture.restarting = false;
            }
            if let (Some(event::Kind::Digest(d)), Some(restarts)) = (&event.kind, &self.verify) {
                if picture.differs(target, &event, d) {
                    picture.restarting = true;
                    restarts.restart(target);
                }
                continue;
            }
            if !picture.apply(event, show)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Picture {
    /// Whether `digest` (the agent's, at `event`'s position) shows this
    /// picture differs; each differing part is warned about.
    fn differs(&self, target: &str, event: &Event, digest: &routewatch_proto::v1::Digest) -> bool {
        let Some(digests) = &self.digests else {
            return false;
        };
        let here = self
            .at
            .as_ref()
            .is_some_and(|(stream, seq)| *stream == event.stream_id && *seq == event.seq);
        if !self.complete || self.incoming.is_some() || !here {
            return false;
        }
        let mismatches = digests.compare(digest);
        for m in &mismatches {
            eprintln!(
                "routewatch tail: {target}: warning: digest mismatch at {}:{}: {m}",
                event.stream_id, event.seq
            );
        }
        if !mismatches.is_empty() {
            eprintln!("routewatch tail: {target}: the picture differs from the agent's; starting over from a fresh snapshot");
        }
        !mismatches.is_empty()
    }

    /// Counts `object` (of `netns`) in (`add` true) or out of the digests.
    fn count(&mut self, netns: &str, object: change::Object, add: bool) {
        let Some(digests) = self.digests.as_mut() else {
            return;
        };
        let (slot, hash) = digest::object_hash(&mut { object }, &mut Vec::new());
        if add {
            digests.add(netns, slot, hash);
        } else {
            digests.remove(netns, slot, hash);
        }
    }

    /// Counts the whole picture afresh (after a snapshot replaced it).
    fn recount(&mut self) {
        if let Some(digests) = self.digests.as_mut() {
            digests.clear();
            let mut buf = Vec::new();
            for (key, held) in &self.held {
                if let Some(mut object) = unheld(held) {
                    let (slot, hash) = digest::object_hash(&mut object, &mut buf);
                    digests.add(&key.0, slot, hash);
                }
            }
        }
    }

    fn moved(&mut self, event: &Event) {
        match &mut self.at {
            Some((stream, seq)) if *stream == event.stream_id => *seq = event.seq,
            _ => self.at = Some((event.stream_id.clone(), event.seq)),
        }
    }

    fn apply(
        &mut self,
        event: Event,
        show: &mut dyn FnMut(Shown<'_>) -> io::Result<Go>,
    ) -> io::Result<Go> {
        match &event.kind {
            Some(event::Kind::Resync(_)) => {
                if self.complete || self.incoming.is_some() {
                    // A resync during a resync (the connection was lost
                    // in the snapshot) starts the snapshot over.
                    self.incoming = Some(Vec::new());
                    self.at = None;
                    show(Shown::Differences(&event))
                } else {
                    // Nothing complete to compare with (the first snapshot
                    // was cut short, or the tail resumed from a cursor
                    // file): the full snapshot follows, as the agent
                    // sends it.
                    self.held.clear();
                    self.recount();
                    self.at = None;
                    show(Shown::Event(&event))
                }
            }
            Some(event::Kind::Sync(_)) => {
                if let Some(snapshot) = self.incoming.take() {
                    let go = self.differences(snapshot, &event, show)?;
                    self.recount();
                    if !go {
                        return Ok(false);
                    }
                }
                self.complete = true;
                self.moved(&event);
                show(Shown::Event(&event))
            }
            Some(event::Kind::Change(c)) => {
                let delete = c.action == Action::Delete as i32;
                let key = (event.netns.clone(), c.key.clone());
                let object = match delete {
                    true => None,
                    false => c.object.as_ref().map(hold),
                };
                if let Some(incoming) = self.incoming.as_mut() {
                    incoming.push((key, object));
                    return Ok(true);
                }
                if c.origin != Origin::Dump as i32 {
                    self.moved(&event);
                }
                let go = show(Shown::Event(&event))?;
                if self.digests.is_some() {
                    if let Some(old) = self.held.get(&key).and_then(|h| unheld(h)) {
                        self.count(&key.0, old, false);
                    }
                    if let (false, Some(new)) = (delete, object_of(&event)) {
                        self.count(&key.0, new.clone(), true);
                    }
                }
                match object {
                    Some(held) => self.held.insert(key, held),
                    None => self.held.remove(&key),
                };
                Ok(go)
            }
            Some(event::Kind::Heartbeat(_)) => {
                if self
                    .at
                    .as_ref()
                    .is_some_and(|(s, seq)| *s == event.stream_id && event.seq >= *seq)
                {
                    self.moved(&event);
                }
                show(Shown::Event(&event))
            }
            Some(event::Kind::Replay(_) | event::Kind::Digest(_)) | None => {
                show(Shown::Event(&event))
            }
        }
    }

    /// Replaces the picture with `snapshot` (closed by `sync`), showing
    /// the deletes, then the adds, that turn one into the other.
    fn differences(
        &mut self,
        snapshot: Vec<(Key, Option<Held>)>,
        sync: &Event,
        show: &mut dyn FnMut(Shown<'_>) -> io::Result<Go>,
    ) -> io::Result<Go> {
        // Each key's last word in the snapshot: an object, or a delete.
        let mut last: HashMap<&Key, usize> = HashMap::with_capacity(snapshot.len());
        for (i, (key, _)) in snapshot.iter().enumerate() {
            last.insert(key, i);
        }
        let before = std::mem::take(&mut self.held);
        let mut gone: Vec<(&Key, &Held)> = before
            .iter()
            .filter(|(key, _)| last.get(key).is_none_or(|&i| snapshot[i].1.is_none()))
            .collect();
        // The held picture has no order of its own: the keys give one.
        gone.sort_by(|a, b| a.0.cmp(b.0));
        let mut go = true;
        for (key, old) in gone {
            if let (true, Some(object)) = (go, unheld(old)) {
                go = show(Shown::Event(&reconciled(sync, key, Action::Delete, object)))?;
            }
        }
        let lasts: Vec<bool> = snapshot
            .iter()
            .enumerate()
            .map(|(i, (key, _))| last[key] == i)
            .collect();
        drop(last);
        self.held.reserve(snapshot.len());
        for ((key, new), last) in snapshot.into_iter().zip(lasts) {
            let (true, Some(new)) = (last, new) else {
                continue; // a later word on the same key decides
            };
            let same = before.get(&key) == Some(&new);
            if let (true, false, Some(object)) = (go, same, unheld(&new)) {
                go = show(Shown::Event(&reconciled(sync, &key, Action::Add, object)))?;
            }
            self.held.insert(key, new);
        }
        Ok(go)
    }
}

fn object_of(event: &Event) -> Option<&change::Object> {
    match &event.kind {
        Some(event::Kind::Change(c)) => c.object.as_ref(),
        _ => None,
    }
}

/// A difference: the object under `key`, at the new stream's position
/// (`sync`'s: the snapshot's state includes every change up to it).
fn reconciled(sync: &Event, key: &Key, action: Action, object: change::Object) -> Event {
    Event {
        stream_id: sync.stream_id.clone(),
        seq: sync.seq,
        time_unix_nano: sync.time_unix_nano,
        netns: key.0.clone(),
        kind: Some(event::Kind::Change(Change {
            action: action as i32,
            origin: Origin::Reconcile as i32,
            key: key.1.clone(),
            object: Some(object),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::{Resync, Route, Sync};

    fn route(
        stream: &str,
        seq: u64,
        origin: Origin,
        action: Action,
        dst: &str,
        dev: &str,
    ) -> Event {
        Event {
            stream_id: stream.into(),
            seq,
            time_unix_nano: seq as i64,
            netns: String::new(),
            kind: Some(event::Kind::Change(Change {
                action: action as i32,
                origin: origin as i32,
                key: format!("254/{dst}"),
                object: Some(change::Object::Route(Route {
                    dst: dst.into(),
                    dev: dev.into(),
                    table: 254,
                    ..Route::default()
                })),
                ..Default::default()
            })),
        }
    }

    fn marker(stream: &str, seq: u64, kind: event::Kind) -> Event {
        Event {
            stream_id: stream.into(),
            seq,
            time_unix_nano: seq as i64,
            netns: String::new(),
            kind: Some(kind),
        }
    }

    fn sync(stream: &str, seq: u64) -> Event {
        marker(stream, seq, event::Kind::Sync(Sync {}))
    }

    fn resync(stream: &str, seq: u64) -> Event {
        marker(
            stream,
            seq,
            event::Kind::Resync(Resync {
                reason: "test".into(),
                cause: 1,
            }),
        )
    }

    fn dump(stream: &str, seq: u64, dst: &str, dev: &str) -> Event {
        route(stream, seq, Origin::Dump, Action::Add, dst, dev)
    }

    /// What `events` show: (whether the event announced differences, the
    /// event), in order.
    fn apply(p: &mut Pictures, target: &str, events: Vec<Event>) -> Vec<(bool, Event)> {
        let mut shown = Vec::new();
        let go = p
            .apply(target, events, &mut |s| {
                shown.push(match s {
                    Shown::Event(e) => (false, e.clone()),
                    Shown::Differences(e) => (true, e.clone()),
                });
                Ok(true)
            })
            .unwrap();
        assert!(go);
        shown
    }

    /// (action, origin, dst, dev) of the changes shown, and whether a
    /// resync announced differences.
    fn summary(shown: &[(bool, Event)]) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let mut differences = false;
        for (announces, e) in shown {
            if *announces {
                differences = true;
                continue;
            }
            if let Some(event::Kind::Change(c)) = &e.kind {
                let Some(change::Object::Route(r)) = &c.object else {
                    continue;
                };
                lines.push(format!(
                    "{:?} {:?} {} {} @{}:{}",
                    Action::try_from(c.action).unwrap(),
                    Origin::try_from(c.origin).unwrap(),
                    r.dst,
                    r.dev,
                    e.stream_id,
                    e.seq
                ));
            }
        }
        (lines, differences)
    }

    #[test]
    fn a_resync_after_a_complete_picture_shows_only_the_differences() {
        let mut p = Pictures::default();
        let first = apply(
            &mut p,
            "h:1",
            vec![
                dump("a", 3, "10.0.0.0/24", "eth0"),
                dump("a", 3, "10.0.1.0/24", "eth0"),
                dump("a", 3, "10.0.2.0/24", "eth0"),
                sync("a", 3),
                route(
                    "a",
                    4,
                    Origin::Notification,
                    Action::Add,
                    "10.0.3.0/24",
                    "eth0",
                ),
            ],
        );
        assert_eq!(first.len(), 5, "the first snapshot is shown whole");
        let after = apply(
            &mut p,
            "h:1",
            vec![
                resync("b", 0),
                dump("b", 7, "10.0.0.0/24", "eth0"),
                dump("b", 7, "10.0.2.0/24", "eth1"),
                dump("b", 7, "10.0.3.0/24", "eth0"),
                dump("b", 7, "10.0.9.0/24", "eth0"),
                sync("b", 7),
            ],
        );
        let (lines, differences) = summary(&after);
        assert!(differences);
        assert_eq!(
            lines,
            [
                "Delete Reconcile 10.0.1.0/24 eth0 @b:7",
                "Add Reconcile 10.0.2.0/24 eth1 @b:7",
                "Add Reconcile 10.0.9.0/24 eth0 @b:7",
            ]
        );
        assert!(
            matches!(after.last(), Some((false, e)) if matches!(e.kind, Some(event::Kind::Sync(_))))
        );
        // Live changes continue on the new picture.
        let live = apply(
            &mut p,
            "h:1",
            vec![
                route(
                    "b",
                    8,
                    Origin::Notification,
                    Action::Delete,
                    "10.0.9.0/24",
                    "eth0",
                ),
                resync("c", 0),
                sync("c", 1),
            ],
        );
        let (lines, _) = summary(&live);
        assert_eq!(
            lines,
            [
                "Delete Notification 10.0.9.0/24 eth0 @b:8",
                "Delete Reconcile 10.0.0.0/24 eth0 @c:1",
                "Delete Reconcile 10.0.2.0/24 eth1 @c:1",
                "Delete Reconcile 10.0.3.0/24 eth0 @c:1",
            ]
        );
    }

    #[test]
    fn without_a_complete_picture_a_resync_passes_the_full_snapshot() {
        let mut p = Pictures::default();
        let shown = apply(
            &mut p,
            "h:1",
            vec![
                resync("b", 0),
                dump("b", 2, "10.0.0.0/24", "eth0"),
                sync("b", 2),
            ],
        );
        let (lines, differences) = summary(&shown);
        assert!(!differences, "a tail resumed from a file holds no picture");
        assert_eq!(lines, ["Add Dump 10.0.0.0/24 eth0 @b:2"]);
    }

    #[test]
    fn a_resync_within_a_resync_starts_the_snapshot_over() {
        let mut p = Pictures::default();
        apply(
            &mut p,
            "h:1",
            vec![dump("a", 1, "10.0.0.0/24", "eth0"), sync("a", 1)],
        );
        let shown = apply(
            &mut p,
            "h:1",
            vec![
                resync("b", 0),
                dump("b", 2, "10.0.5.0/24", "eth0"),
                resync("c", 0),
                dump("c", 2, "10.0.0.0/24", "eth0"),
                sync("c", 2),
            ],
        );
        let (lines, differences) = summary(&shown);
        assert!(differences);
        assert!(lines.is_empty(), "nothing changed: {lines:?}");
    }

    #[test]
    fn showing_stops_where_asked() {
        let mut p = Pictures::default();
        let mut seen = 0;
        let go = p
            .apply(
                "h:1",
                vec![
                    dump("a", 1, "10.0.0.0/24", "eth0"),
                    dump("a", 1, "10.0.1.0/24", "eth0"),
                    sync("a", 1),
                ],
                &mut |_| {
                    seen += 1;
                    Ok(seen < 2)
                },
            )
            .unwrap();
        assert!(!go);
        assert_eq!(seen, 2, "nothing shown after the stop");
    }

    #[test]
    fn a_snapshot_s_last_word_on_a_key_decides() {
        let mut p = Pictures::default();
        apply(
            &mut p,
            "h:1",
            vec![
                dump("a", 1, "10.0.0.0/24", "eth0"),
                dump("a", 1, "10.0.1.0/24", "eth0"),
                sync("a", 1),
            ],
        );
        let delete = |dst: &str| route("b", 5, Origin::Dump, Action::Delete, dst, "eth0");
        let shown = apply(
            &mut p,
            "h:1",
            vec![
                resync("b", 0),
                // Added and deleted within the snapshot: gone.
                dump("b", 5, "10.0.0.0/24", "eth0"),
                delete("10.0.0.0/24"),
                // Deleted, then added with another device: changed.
                delete("10.0.1.0/24"),
                dump("b", 5, "10.0.1.0/24", "eth1"),
                // Added twice: the second holds.
                dump("b", 5, "10.0.2.0/24", "eth0"),
                dump("b", 5, "10.0.2.0/24", "eth2"),
                sync("b", 5),
            ],
        );
        let (lines, differences) = summary(&shown);
        assert!(differences);
        assert_eq!(
            lines,
            [
                "Delete Reconcile 10.0.0.0/24 eth0 @b:5",
                "Add Reconcile 10.0.1.0/24 eth1 @b:5",
                "Add Reconcile 10.0.2.0/24 eth2 @b:5",
            ]
        );
        // What the picture now holds comes back whole on the next resync.
        let shown = apply(&mut p, "h:1", vec![resync("c", 0), sync("c", 6)]);
        assert_eq!(
            summary(&shown).0,
            [
                "Delete Reconcile 10.0.1.0/24 eth1 @c:6",
                "Delete Reconcile 10.0.2.0/24 eth2 @c:6",
            ]
        );
    }

    #[test]
    fn targets_keep_pictures_of_their_own() {
        let mut p = Pictures::default();
        apply(
            &mut p,
            "h:1",
            vec![dump("a", 1, "10.0.0.0/24", "eth0"), sync("a", 1)],
        );
        let shown = apply(&mut p, "h:2", vec![resync("b", 0), sync("b", 0)]);
        let (lines, differences) = summary(&shown);
        assert!(!differences && lines.is_empty(), "{lines:?}");
    }
}
