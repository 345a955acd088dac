//! One target's record keeper: turns the target's stream into rows.
//!
//! The ledger holds what the store holds for the target (its cursor and its
//! current versions) and, fed events in stream order, accumulates the next
//! [`Write`]. A snapshot (the first one, or the one after a resync) is held
//! back until its Sync, then compared with the current versions: what it
//! lacks is closed, what differs gets a new version, what is identical stays
//! open. A resync also records a gap.
//!
//! The ledger also keeps the digests of what the store holds (per netns,
//! kind and table: a count and a sum of hashes, see
//! [`routewatch_proto::digest`]), counted from the stored objects when the
//! target is claimed and kept on every change. A `Digest` event at the
//! ledger's position is compared with them: a difference means the record
//! drifted from the host (a bug, a damaged or restored store), and
//! [`Ledger::apply`] says so; the caller starts the subscription over from
//! a fresh snapshot, which the ledger compares with what it holds like any
//! resync's, recording a gap with reason `digest mismatch`.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use routewatch_proto::digest::{self, Digests, Kind, Mismatch, Slot};
use routewatch_proto::v1::{change, event, Action, Change, Event, Origin, ResyncCause};

use super::columns::{self, Attribution};
use super::plan::{
    Close, CloseRow, EventRow, GapRow, OpenVersion, StoredCursor, TargetRow, VersionRow, Write,
};
use super::schema::{destination, CLOSED_BY_RESYNC, KIND_NEXTHOP, KIND_ROUTE, KIND_RULE};

/// `(netns, key)`: an object's identity within a target.
type Identity = (Box<str>, Box<str>);

#[derive(Debug, Clone, Copy)]
struct Current {
    vid: i64,
    digest: i64,
    /// Its part and hash in the ledger's digests.
    slot: Slot,
    hash: u128,
}

impl Current {
    /// Whether it holds the object of stored digest `digest` and part and
    /// hash `hashed`.
    fn same(&self, digest: i64, hashed: (Slot, u128)) -> bool {
        self.digest == digest && (self.slot, self.hash) == hashed
    }
}

/// A snapshot being received.
#[derive(Debug, Default)]
struct Snapshot {
    /// The resync that started it (none for the first snapshot).
    resync: Option<(i64, String)>,
    objects: HashMap<Identity, (i64, Change)>,
}

/// One target's record keeper.
#[derive(Debug)]
pub struct Ledger {
    target_id: i64,
    host: String,
    /// Where the store stands once every write taken so far is committed.
    cursor: StoredCursor,
    last_seen: Option<i64>,
    next_vid: i64,
    current: HashMap<Identity, Current>,
    snapshot: Option<Snapshot>,
    pending: Write,
    /// Versions opened in `pending`, by vid: where to close them in place.
    opened_here: HashMap<i64, usize>,
    dirty: bool,
    /// What `current` holds, per (netns, kind, table).
    digests: Digests,
    /// Scratch space for hashing objects.
    scratch: Vec<u8>,
    /// A digest differed: events are ignored until the subscription
    /// starts over (a Resync), whose gap gets this reason.
    restarting: Option<String>,
}

/// The gap reason of a resync a digest mismatch made (followed by the
/// parts that differed).
pub const DIGEST_MISMATCH: &str = "digest mismatch";

/// `versions.kind` as a digest's kind.
fn kind_of(kind: i64) -> Kind {
    match kind {
        KIND_NEXTHOP => Kind::Nexthop,
        KIND_RULE => Kind::Rule,
        _ => Kind::Route,
    }
}

impl Ledger {
    /// The ledger of a target as the store holds it.
    pub fn new(target: &TargetRow, open: Vec<OpenVersion>) -> Ledger {
        let mut digests = Digests::default();
        let mut scratch = Vec::new();
        let current = open
            .into_iter()
            .map(|v| {
                let kind = kind_of(v.kind);
                // A stored object that no longer decodes counts with the
                // hash of its bytes: it differs, and the next digest says so.
                let (slot, hash) = digest::stored_hash(kind, &v.object, &mut scratch)
                    .unwrap_or_else(|_| ((kind, 0), digest::hash_bytes(kind, &v.object)));
                digests.add(&v.netns, slot, hash);
                let id = (v.netns.into_boxed_str(), v.key.into_boxed_str());
                (
                    id,
                    Current {
                        vid: v.vid,
                        digest: v.digest,
                        slot,
                        hash,
                    },
                )
            })
            .collect();
        let mut ledger = Ledger {
            target_id: target.id,
            host: target.host.clone(),
            cursor: target.cursor.clone(),
            last_seen: target.last_seen,
            next_vid: target.next_vid,
            current,
            snapshot: None,
            pending: Write::default(),
            opened_here: HashMap::new(),
            dirty: false,
            digests,
            scratch,
            restarting: None,
        };
        ledger.reset_pending();
        ledger
    }

    /// The cursor to resume from (none before the first complete snapshot).
    pub fn cursor(&self) -> &StoredCursor {
        &self.cursor
    }

    /// Routes and nexthop objects currently held.
    pub fn current_len(&self) -> usize {
        self.current.len()
    }

    /// The agent reported its host name.
    pub fn set_host(&mut self, host: &str) {
        if self.host != host {
            self.host = host.to_owned();
            self.dirty = true;
        }
    }

    /// Notes the next events of the stream, in order. Returns the parts
    /// that differ when a digest did not match what the ledger holds: the
    /// caller must start the subscription over from a fresh snapshot (see
    /// the module); until its Resync every event is ignored.
    pub fn apply(&mut self, events: &[Event]) -> Option<Vec<Mismatch>> {
        let mut found = None;
        for event in events {
            if let Some(m) = self.apply_one(event) {
                found = Some(m);
            }
        }
        found
    }

    /// What the ledger holds, per (netns, kind, table).
    pub fn digests(&self) -> &Digests {
        &self.digests
    }

    fn apply_one(&mut self, event: &Event) -> Option<Vec<Mismatch>> {
        let time = event.time_unix_nano;
        if self.restarting.is_some() && !matches!(event.kind, Some(event::Kind::Resync(_))) {
            return None;
        }
        match &event.kind {
            Some(event::Kind::Change(change)) => {
                if self.snapshot.is_none() && !self.cursor.is_set() {
                    // The first snapshot of this target.
                    self.snapshot = Some(Snapshot::default());
                }
                match self.snapshot.as_mut() {
                    Some(snapshot) => {
                        let id = identity(&event.netns, &change.key);
                        if change.action == Action::Delete as i32 {
                            snapshot.objects.remove(&id);
                        } else {
                            snapshot.objects.insert(id, (time, change.clone()));
                        }
                    }
                    None => self.change(event, change),
                }
            }
            Some(event::Kind::Sync(_)) => {
                let to = StoredCursor {
                    stream_id: event.stream_id.as_str().into(),
                    seq: event.seq as i64,
                };
                if let Some(snapshot) = self.snapshot.take() {
                    self.replace_all(snapshot, &to, time);
                    self.pending.snapshots += 1;
                }
                self.move_to(to, time);
            }
            Some(event::Kind::Resync(resync)) => {
                let reason = match self.restarting.take() {
                    Some(reason) if resync.cause == ResyncCause::DigestMismatch as i32 => reason,
                    _ => resync.reason.clone(),
                };
                // Only a target with a record can lose track of it; a resync
                // before the first Sync just restarts the snapshot.
                let resync = self
                    .cursor
                    .is_set()
                    .then(|| (i64::from(resync.cause), reason));
                self.snapshot = Some(Snapshot {
                    resync,
                    objects: HashMap::new(),
                });
            }
            Some(event::Kind::Heartbeat(_))
                if self.snapshot.is_none()
                    && self.cursor.is_set()
                    && *self.cursor.stream_id == *event.stream_id =>
            {
                let to = StoredCursor {
                    stream_id: self.cursor.stream_id.clone(),
                    seq: (event.seq as i64).max(self.cursor.seq),
                };
                self.move_to(to, time);
            }
            // collect never asks for a replay of the journal.
            Some(event::Kind::Digest(d))
                if self.snapshot.is_none()
                    && self.cursor.is_set()
                    && *self.cursor.stream_id == *event.stream_id
                    && self.cursor.seq == event.seq as i64 =>
            {
                let mismatches = self.digests.compare(d);
                if !mismatches.is_empty() {
                    let mut reason = format!("{DIGEST_MISMATCH}: {}", mismatches[0]);
                    if mismatches.len() > 1 {
                        reason += &format!(" (and {} more parts)", mismatches.len() - 1);
                    }
                    self.restarting = Some(reason);
                    return Some(mismatches);
                }
            }
            // collect never asks for a replay of the journal.
            Some(event::Kind::Heartbeat(_) | event::Kind::Replay(_) | event::Kind::Digest(_))
            | None => {}
        }
        None
    }

    /// A live change (notification or reconcile).
    fn change(&mut self, event: &Event, change: &Change) {
        let stream: Arc<str> = if *self.cursor.stream_id == *event.stream_id {
            self.cursor.stream_id.clone()
        } else {
            event.stream_id.as_str().into()
        };
        let seq = event.seq as i64;
        let time = event.time_unix_nano;
        let id = identity(&event.netns, &change.key);
        let vid = if change.action == Action::Delete as i32 {
            match self.current.remove(&id) {
                Some(current) => {
                    self.digests.remove(&id.0, current.slot, current.hash);
                    self.close(current.vid, time, &stream, seq, i64::from(change.origin));
                    current.vid
                }
                None => {
                    tracing::warn!(
                        target_id = self.target_id,
                        key = %change.key,
                        seq,
                        "a delete of an object the record does not hold; logged without a version"
                    );
                    0
                }
            }
        } else {
            let (object, digest) = encode(change);
            let hashed = self.hash(change, &object);
            match self.current.get(&id).copied() {
                // Sent again unchanged: the version goes on.
                Some(current) if current.same(digest, hashed) => current.vid,
                found => {
                    if let Some(current) = found {
                        self.digests.remove(&id.0, current.slot, current.hash);
                        self.close(current.vid, time, &stream, seq, i64::from(change.origin));
                    }
                    self.open(
                        id,
                        change,
                        object,
                        (digest, hashed),
                        time,
                        &stream,
                        seq,
                        i64::from(change.origin),
                    )
                }
            }
        };
        self.pending.events.push(EventRow {
            stream_id: stream.clone(),
            seq,
            time,
            action: i64::from(change.action),
            origin: i64::from(change.origin),
            vid,
            by: (change.action == Action::Delete as i32)
                .then(|| Box::new(Attribution::of(change)))
                .filter(|by| **by != Attribution::default()),
        });
        self.move_to(
            StoredCursor {
                stream_id: stream,
                seq,
            },
            time,
        );
    }

    /// A complete snapshot as of `to`: it replaces everything held.
    fn replace_all(&mut self, snapshot: Snapshot, to: &StoredCursor, sync_time: i64) {
        let Snapshot { resync, objects } = snapshot;
        if let Some((cause, reason)) = resync {
            self.pending.gaps.push(GapRow {
                from_time: self.last_seen,
                from: self.cursor.clone(),
                to_time: sync_time,
                to: to.clone(),
                cause,
                reason,
            });
        }
        let gone: Vec<Identity> = self
            .current
            .keys()
            .filter(|id| !objects.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(current) = self.current.remove(&id) {
                self.digests.remove(&id.0, current.slot, current.hash);
                self.close(
                    current.vid,
                    sync_time,
                    &to.stream_id,
                    to.seq,
                    CLOSED_BY_RESYNC,
                );
            }
        }
        let dump = Origin::Dump as i64;
        for (id, (time, change)) in objects {
            let (object, digest) = encode(&change);
            let hashed = self.hash(&change, &object);
            match self.current.get(&id).copied() {
                // The stored version's digest and hash both: a stored
                // object damaged in place is replaced.
                Some(current) if current.same(digest, hashed) => {}
                found => {
                    if let Some(current) = found {
                        self.digests.remove(&id.0, current.slot, current.hash);
                        self.close(current.vid, sync_time, &to.stream_id, to.seq, dump);
                    }
                    // A version that replaces one held starts when the
                    // snapshot proved it; a new one when the agent saw it.
                    let from = if found.is_some() { sync_time } else { time };
                    self.open(
                        id,
                        &change,
                        object,
                        (digest, hashed),
                        from,
                        &to.stream_id,
                        to.seq,
                        dump,
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        id: Identity,
        change: &Change,
        object: Vec<u8>,
        (digest, (slot, hash)): (i64, (Slot, u128)),
        time: i64,
        stream: &Arc<str>,
        seq: i64,
        origin: i64,
    ) -> i64 {
        let vid = self.next_vid;
        self.next_vid += 1;
        let mut row = VersionRow {
            vid,
            netns: id.0.to_string(),
            key: id.1.to_string(),
            kind: KIND_ROUTE,
            family: 0,
            table_id: None,
            dst_len: None,
            dst_lo: None,
            dst_hi: None,
            object,
            digest,
            valid_from: time,
            opened_stream: stream.clone(),
            opened_seq: seq,
            opened_origin: origin,
            close: None,
            columns: columns::of_change(change),
        };
        match &change.object {
            Some(change::Object::Route(route)) => {
                row.family = i64::from(route.family);
                row.table_id = Some(i64::from(route.table));
                if let Ok(net) = route.dst.parse::<ipnet::IpNet>() {
                    let (len, lo, hi) = destination(&net);
                    row.dst_len = Some(len);
                    row.dst_lo = Some(lo);
                    row.dst_hi = Some(hi);
                }
            }
            Some(change::Object::Nexthop(nexthop)) => {
                row.kind = KIND_NEXTHOP;
                row.family = i64::from(nexthop.family);
            }
            Some(change::Object::Rule(rule)) => {
                row.kind = KIND_RULE;
                row.family = i64::from(rule.family);
                row.table_id = (rule.table != 0).then(|| i64::from(rule.table));
            }
            None => {}
        }
        self.digests.add(&id.0, slot, hash);
        self.opened_here.insert(vid, self.pending.opens.len());
        self.pending.opens.push(row);
        self.current.insert(
            id,
            Current {
                vid,
                digest,
                slot,
                hash,
            },
        );
        vid
    }

    /// A change's object's part and hash, from `encoded`, the object as
    /// [`encode`] wrote it (no copy of the object, no second encoding).
    fn hash(&mut self, change: &Change, encoded: &[u8]) -> (Slot, u128) {
        match &change.object {
            Some(object) => {
                let slot = digest::slot_of(object);
                (
                    slot,
                    digest::encoded_hash(slot.0, encoded, &mut self.scratch),
                )
            }
            None => ((Kind::Route, 0), digest::hash_bytes(Kind::Route, &[])),
        }
    }

    fn close(&mut self, vid: i64, time: i64, stream: &Arc<str>, seq: i64, origin: i64) {
        let close = Close {
            valid_to: time,
            stream_id: stream.clone(),
            seq,
            origin,
        };
        match self.opened_here.get(&vid) {
            Some(&i) => self.pending.opens[i].close = Some(close),
            None => self.pending.closes.push(CloseRow { vid, close }),
        }
    }

    fn move_to(&mut self, to: StoredCursor, time: i64) {
        self.cursor = to;
        self.last_seen = Some(self.last_seen.map_or(time, |t| t.max(time)));
        self.dirty = true;
    }

    /// Events of a snapshot held back until its Sync.
    pub fn held_back(&self) -> usize {
        self.snapshot.as_ref().map_or(0, |s| s.objects.len())
    }

    /// The next write, which brings the store to this ledger's cursor; the
    /// ledger goes on from there. A write that fails must be retried as is
    /// (or the ledger dropped and loaded again).
    pub fn take(&mut self) -> Option<Write> {
        if !self.dirty {
            return None;
        }
        let mut write = std::mem::take(&mut self.pending);
        write.cursor = self.cursor.clone();
        write.host = self.host.clone();
        write.next_vid = self.next_vid;
        write.last_seen = self.last_seen;
        self.reset_pending();
        // A burst of adds then deletes leaves the map of current versions
        // sized for its peak: give the room back once it is mostly empty.
        if self.current.capacity() > 4 * self.current.len() + SHRINK_ABOVE {
            self.current.shrink_to(2 * self.current.len());
        }
        Some(write)
    }

    /// Starts the next write from where the store will stand.
    fn reset_pending(&mut self) {
        self.pending = Write {
            target_id: self.target_id,
            expect: self.cursor.clone(),
            ..Write::default()
        };
        if self.opened_here.capacity() > SHRINK_ABOVE {
            // Sized for the largest write so far (a snapshot's versions).
            self.opened_here = HashMap::new();
        } else {
            self.opened_here.clear();
        }
        self.dirty = false;
    }
}

/// Entries a ledger's maps keep room for whatever they hold: below it,
/// shrinking them is not worth the reallocation.
const SHRINK_ABOVE: usize = 1024;

fn identity(netns: &str, key: &str) -> Identity {
    (netns.into(), key.into())
}

/// The object's bytes as stored, and their digest.
fn encode(change: &Change) -> (Vec<u8>, i64) {
    let bytes = match &change.object {
        Some(change::Object::Route(route)) => route.encode_to_vec(),
        Some(change::Object::Nexthop(nexthop)) => nexthop.encode_to_vec(),
        Some(change::Object::Rule(rule)) => rule.encode_to_vec(),
        None => Vec::new(),
    };
    let digest = xxhash_rust::xxh3::xxh3_64(&bytes) as i64;
    (bytes, digest)
}

#[cfg(test)]
mod tests;
