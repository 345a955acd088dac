//! The journal: numbers every change and keeps the most recent ones.
//!
//! There is one writer (the netlink source). It holds the lock only to
//! apply a batch and append it; it never waits for a session. Sessions read
//! the ring under the same lock, so a snapshot and the sequence number it is
//! valid for are always taken together. A session the ring has overtaken
//! learns it explicitly ([`Lagged`]) and is resynchronised, never skipped.
//!
//! Each change is encoded once, when it is appended ([`Entry::record`]);
//! every session sends those bytes as they are.
//!
//! One journal serves every network namespace the agent watches: each
//! namespace has its own table, and their changes share one stream (one
//! stream id, one sequence), each event naming its namespace. A consumer's
//! cursor is therefore one position, whatever the namespaces.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use routewatch_proto::digest::Digests;
use routewatch_proto::v1::{self as api, event, Cursor, ResyncCause};
use routewatch_proto::Names;
use tokio::sync::watch;

use crate::cause::Cause;
use crate::labelled::Labelled;
use crate::state::{Action, Change, Key, Object, Previous, StateTable};
use crate::subscribers::Subscribers;

/// The reader asked for changes the ring no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged;

/// One journaled change.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    /// When the agent observed the change (as in `record`).
    pub time_unix_nano: i64,
    pub origin: api::Origin,
    /// The network namespace the change happened in.
    pub netns: Arc<str>,
    pub change: Change,
    /// Who made the change, and why it was reconciled (see [`Cause`]).
    pub cause: Option<Arc<Cause>>,
    /// The records of the whole batch this change was published in, side
    /// by side, then the definitions of the causes they refer to (from
    /// `defs` on); this change's record is `chunk[range]`. Sessions send
    /// runs of one chunk as a single shared slice, with its definitions.
    chunk: Bytes,
    range: std::ops::Range<usize>,
    defs: usize,
    /// The seq of the chunk's last change: a reader skips to it without
    /// visiting the changes in between.
    chunk_last: u64,
}

impl Entry {
    /// An entry whose record is `record` alone (encoded as
    /// [`encode_change_record`] encodes, referring to `cause` if any).
    pub fn new(
        seq: u64,
        time_unix_nano: i64,
        origin: api::Origin,
        netns: Arc<str>,
        change: Change,
        cause: Option<Arc<Cause>>,
        record: Bytes,
    ) -> Entry {
        let range = 0..record.len();
        let defs = record.len();
        let chunk = match &cause {
            Some(cause) => [record, cause.record().clone()].concat().into(),
            None => record,
        };
        Entry {
            seq,
            time_unix_nano,
            origin,
            netns,
            change,
            cause,
            chunk,
            range,
            defs,
            chunk_last: seq,
        }
    }

    /// Who made the change, when known.
    pub fn changed_by(&self) -> Option<&api::ChangedBy> {
        self.cause.as_ref().and_then(|c| c.changed_by.as_ref())
    }

    /// The event as a field-1 record of a `SubscribeResponse`.
    pub fn record(&self) -> Bytes {
        self.chunk.slice(self.range.clone())
    }

    pub fn record_len(&self) -> usize {
        self.range.len()
    }

    /// The definitions of the causes the records of this entry's batch
    /// refer to (`SubscribeResponse.causes`): sent with any of them.
    pub fn defs(&self) -> Option<Bytes> {
        (self.defs < self.chunk.len()).then(|| self.chunk.slice(self.defs..))
    }

    /// What keeping this entry costs besides its slot in the ring: its
    /// share of its batch's bytes (the batch's last change, the last to go,
    /// counts the causes' definitions), and the versions of the object it
    /// holds (counted in full even where the table shares them, so that the
    /// bound holds after the table lets them go).
    pub fn footprint(&self) -> usize {
        let previous = match &self.change.previous {
            Previous::Was(object) => object.footprint(),
            Previous::None | Previous::Unknown => 0,
        };
        let defs = if self.seq == self.chunk_last {
            self.chunk.len() - self.defs
        } else {
            0
        };
        self.record_len() + defs + self.change.object.footprint() + previous
    }
}

/// Every object with its key, by namespace (see [`Core::snapshot`]).
pub type Snapshot = Vec<(Arc<str>, Vec<(Key, Object)>)>;

/// Receives every appended batch, with the stream's info, before any
/// session can see it.
pub type Sink = Box<dyn FnMut(&StreamInfo, &[Entry]) + Send>;

/// `entries` as whole `SubscribeResponse`s, one per run of one batch: the
/// parts of each (the stream id, the run's records, the definitions of
/// their causes), shared and in order. What is kept on disk, where no
/// response is around a record to say what it leaves out.
pub fn whole_responses<'a>(
    info: &'a StreamInfo,
    entries: impl IntoIterator<Item = &'a Entry> + 'a,
) -> impl Iterator<Item = Vec<Bytes>> + 'a {
    let mut entries = entries.into_iter().peekable();
    std::iter::from_fn(move || {
        let first = entries.next()?;
        let mut end = first.range.end;
        while let Some(next) =
            entries.next_if(|e| e.chunk.as_ptr() == first.chunk.as_ptr() && e.range.start == end)
        {
            end = next.range.end;
        }
        let mut parts = vec![
            info.stream_record().clone(),
            first.chunk.slice(first.range.start..end),
        ];
        parts.extend(first.defs());
        Some(parts)
    })
}

/// How much the ring keeps: whichever limit is reached first.
#[derive(Debug, Clone, Copy)]
pub struct RingLimits {
    pub changes: usize,
    pub bytes: usize,
}

/// The shared state of the namespaces watched: their tables and their
/// stream.
pub struct Journal {
    core: Mutex<Core>,
    last_seq: watch::Sender<u64>,
    ready: watch::Sender<bool>,
    /// The sessions reading this journal, as the metrics see them.
    pub subscribers: Subscribers,
}

/// What the lock protects: the tables and the ring, always consistent.
pub struct Core {
    /// One table per namespace watched, by name (`""`: the agent's own).
    tables: BTreeMap<Arc<str>, StateTable>,
    info: StreamInfo,
    /// Changes published, by origin and action (for the metrics).
    published: Published,
    ring: VecDeque<Entry>,
    ring_bytes: usize,
    limits: RingLimits,
    last_seq: u64,
    /// The time of the last change numbered: times never go back along
    /// the stream, whatever order the clock was read in.
    last_time: i64,
    /// Receives every appended batch (the state dir's log), before any
    /// session can see it.
    sink: Option<Sink>,
    /// What the tables hold, per (netns, kind, table), as of `last_seq`.
    digests: Digests,
    /// Where objects that leave are encoded to be hashed out.
    scratch: BytesMut,
}

/// Most restored changes put into one shared chunk.
const PACK: usize = 1024;

/// Restored changes (each with a record of its own) put side by side in
/// shared chunks, as if published in batches: a session resuming through
/// them sends a few slices, not one per change.
fn packed(recent: Vec<Entry>) -> Vec<Entry> {
    let mut out = Vec::with_capacity(recent.len());
    for group in recent.chunks(PACK) {
        let mut buf = BytesMut::with_capacity(group.iter().map(Entry::record_len).sum());
        let mut ranges = Vec::with_capacity(group.len());
        for entry in group {
            let start = buf.len();
            buf.extend_from_slice(&entry.chunk[entry.range.clone()]);
            ranges.push(start..buf.len());
        }
        let defs = buf.len();
        put_defs(group.iter().map(|e| &e.cause), &mut buf);
        let chunk = buf.freeze();
        let chunk_last = group.last().map_or(0, |e| e.seq);
        out.extend(group.iter().zip(ranges).map(|(entry, range)| Entry {
            chunk: chunk.clone(),
            range,
            defs,
            chunk_last,
            ..entry.clone()
        }));
    }
    out
}

/// Adds a batch's cause definitions (see [`Entry::defs`]) to those a
/// response carries, unless the same bytes are there already (batches read
/// one after another mostly have the same causes); returns the bytes added.
pub fn carry_defs(carried: &mut Vec<Bytes>, defs: Option<Bytes>) -> usize {
    match defs {
        Some(defs) if !carried.iter().any(|d| d[..] == defs[..]) => {
            let len = defs.len();
            carried.push(defs);
            len
        }
        _ => 0,
    }
}

/// Appends the definition of each distinct cause of `causes` to `buf`.
fn put_defs<'a>(causes: impl Iterator<Item = &'a Option<Arc<Cause>>>, buf: &mut BytesMut) {
    let mut seen: Vec<u64> = Vec::new();
    let mut last = 0;
    for cause in causes.flatten() {
        // A batch's changes mostly come in runs of one cause.
        if cause.id() == last || seen.contains(&cause.id()) {
            continue;
        }
        last = cause.id();
        seen.push(last);
        buf.extend_from_slice(cause.record());
    }
}

impl Journal {
    /// A new, empty journal.
    pub fn new(stream_id: String, netns: String, limits: RingLimits) -> Journal {
        Journal::resume(
            StreamInfo::new(stream_id, netns),
            0,
            BTreeMap::new(),
            Vec::new(),
            limits,
        )
    }

    /// A journal continuing a stream at `last_seq`, with `tables` as its
    /// state and `recent` (oldest first, ending at `last_seq`) in the ring.
    pub fn resume(
        info: StreamInfo,
        last_seq: u64,
        tables: BTreeMap<Arc<str>, StateTable>,
        recent: Vec<Entry>,
        limits: RingLimits,
    ) -> Journal {
        let limits = RingLimits {
            changes: limits.changes.max(1),
            bytes: limits.bytes.max(1),
        };
        let mut core = Core {
            tables,
            info,
            published: Published::default(),
            ring: VecDeque::new(),
            ring_bytes: 0,
            limits,
            last_seq,
            last_time: recent.last().map_or(0, |e| e.time_unix_nano),
            sink: None,
            digests: Digests::default(),
            scratch: BytesMut::new(),
        };
        let netns: Vec<Arc<str>> = core.tables.keys().cloned().collect();
        for netns in netns {
            core.recount(&netns);
        }
        for entry in packed(recent) {
            core.push(entry);
        }
        Journal {
            core: Mutex::new(core),
            last_seq: watch::channel(0).0,
            ready: watch::channel(false).0,
            subscribers: Subscribers::default(),
        }
    }

    /// This journal, its events carrying `names` (the host's).
    pub fn with_names(mut self, names: Arc<Names>) -> Journal {
        let core = self
            .core
            .get_mut()
            .expect("journal lock poisoned by a panic");
        core.info.names = names;
        // The names are no part of a digest, but an object's hash is
        // taken as it is encoded with them: count again with these.
        let netns: Vec<Arc<str>> = core.tables.keys().cloned().collect();
        for netns in netns {
            core.recount(&netns);
        }
        self
    }

    /// The names its events carry; filters read their values with them.
    pub fn names(&self) -> Arc<Names> {
        self.lock().info.names.clone()
    }

    pub fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves the table possibly half
        // updated; continuing would serve a wrong picture silently.
        self.core.lock().expect("journal lock poisoned by a panic")
    }

    /// Wakes sessions after the writer appended.
    pub fn wake(&self) {
        let seq = self.lock().last_seq;
        self.last_seq.send_replace(seq);
    }

    /// Subscribes to wake-ups; the value is the last sequence number.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.last_seq.subscribe()
    }

    /// Marks the first complete dump as done.
    pub fn set_ready(&self) {
        self.ready.send_replace(true);
    }

    /// Whether the first complete dump is in the table.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the first complete dump is in the table.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }
}

impl Core {
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Sends every appended batch to `sink` first (see [`Core::publish`]).
    pub fn set_sink(&mut self, sink: Sink) {
        self.sink = Some(sink);
    }

    /// The table of namespace `netns`, if it is watched.
    pub fn table(&self, netns: &str) -> Option<&StateTable> {
        self.tables.get(netns)
    }

    /// The table of namespace `netns`, empty if it was not watched yet.
    pub fn table_mut(&mut self, netns: &Arc<str>) -> &mut StateTable {
        self.tables.entry(netns.clone()).or_default()
    }

    /// Every namespace's table, by name.
    pub fn tables(&self) -> impl Iterator<Item = (&Arc<str>, &StateTable)> {
        self.tables.iter()
    }

    /// Stops holding namespace `netns`: every object it held is published
    /// as a delete (origin reconcile), so consumers drop it too. Returns
    /// how many.
    pub fn drop_namespace(&mut self, netns: &str) -> usize {
        let Some((name, table)) = self.tables.remove_entry(netns) else {
            return 0;
        };
        // Routes before the nexthop objects they may use.
        let deletes: Vec<Change> = table
            .snapshot()
            .into_iter()
            .rev()
            .map(|c| Change {
                action: Action::Delete,
                ..c
            })
            .collect();
        let n = deletes.len();
        let cause = Cause::new(None, format!("network namespace {name} no longer watched"));
        self.publish_caused(
            &name,
            deletes,
            &[(usize::MAX, now_unix_nano())],
            &[(usize::MAX, Some(cause))],
            api::Origin::Reconcile,
        );
        self.digests.drop_namespace(&name);
        n
    }

    /// Counts namespace `netns`'s table afresh into the digests: after it
    /// was filled without changes (its first dump).
    pub fn recount(&mut self, netns: &str) {
        let Core {
            tables,
            info,
            digests,
            scratch,
            ..
        } = self;
        match tables.get(netns) {
            Some(table) => crate::digest::recount(digests, netns, table, &info.names, scratch),
            None => digests.drop_namespace(netns),
        }
    }

    /// What the tables hold as of [`Core::last_seq`], per (netns, kind,
    /// table).
    pub fn digests(&self) -> &Digests {
        &self.digests
    }

    /// A `Digest` event at [`Core::last_seq`].
    pub fn digest_event(&self) -> api::Event {
        let kind = event::Kind::Digest(self.digests.to_message());
        self.info
            .event_in("", self.last_seq, now_unix_nano().max(self.last_time), kind)
    }

    /// Changes published so far, by origin and action.
    pub fn published(&self) -> &Published {
        &self.published
    }

    /// Numbers `changes` of the journal's own namespace (see
    /// [`Core::publish_in`]).
    pub fn publish(&mut self, changes: Vec<Change>, origin: api::Origin) {
        let netns: Arc<str> = self.info.netns.as_str().into();
        self.publish_in(&netns, changes, origin);
    }

    /// Numbers `changes` of namespace `netns`, observed now, encodes each
    /// once and appends them, dropping the oldest beyond the ring's limits.
    pub fn publish_in(&mut self, netns: &Arc<str>, changes: Vec<Change>, origin: api::Origin) {
        let now = now_unix_nano();
        self.publish_observed(netns, changes, &[(usize::MAX, now)], origin);
    }

    /// Like [`Core::publish_in`], each change with the time it was
    /// observed: `times` holds `(end, time)` pairs in order, `time` being
    /// that of the changes before index `end` (and after the previous
    /// pair's); the last pair's time covers the rest. A time earlier than
    /// the last one published is raised to it.
    pub fn publish_observed(
        &mut self,
        netns: &Arc<str>,
        changes: Vec<Change>,
        times: &[(usize, i64)],
        origin: api::Origin,
    ) {
        self.publish_caused(netns, changes, times, &[], origin);
    }

    /// Like [`Core::publish_observed`], each change with its cause:
    /// `causes` holds `(end, cause)` pairs like `times` (none: no cause).
    pub fn publish_caused(
        &mut self,
        netns: &Arc<str>,
        changes: Vec<Change>,
        times: &[(usize, i64)],
        causes: &[(usize, Option<Arc<Cause>>)],
        origin: api::Origin,
    ) {
        if changes.is_empty() {
            return;
        }
        let mut causes = causes.iter().peekable();
        let mut times = times.iter().peekable();
        let mut stamps = Vec::with_capacity(changes.len());
        for i in 0..changes.len() {
            while times.peek().is_some_and(|(end, _)| *end <= i) && times.len() > 1 {
                times.next();
            }
            let observed = times.peek().map_or_else(now_unix_nano, |(_, t)| *t);
            self.last_time = self.last_time.max(observed);
            stamps.push(self.last_time);
        }
        // One buffer for the whole batch: encoded once, shared by every
        // session that sends it.
        let mut buf = BytesMut::new();
        let mut placed = Vec::with_capacity(changes.len());
        for (i, (change, time)) in changes.into_iter().zip(stamps).enumerate() {
            while causes.peek().is_some_and(|(end, _)| *end <= i) {
                causes.next();
            }
            let cause = causes.peek().and_then(|(_, c)| c.clone());
            self.last_seq += 1;
            self.published.count(origin, change.action);
            let start = buf.len();
            let unlabelled = encode_change_record(
                &self.info,
                netns,
                self.last_seq,
                time,
                &change,
                origin,
                cause.as_deref(),
                &mut buf,
            );
            crate::digest::note(
                &mut self.digests,
                netns,
                &change,
                routewatch_proto::digest::hash_bytes(
                    crate::digest::slot(&change.object).0,
                    &buf[unlabelled],
                ),
                &self.info.names,
                &mut self.scratch,
            );
            placed.push((self.last_seq, time, change, cause, start..buf.len()));
        }
        let defs = buf.len();
        put_defs(placed.iter().map(|p| &p.3), &mut buf);
        let chunk = buf.freeze();
        let chunk_last = self.last_seq;
        let entries: Vec<Entry> = placed
            .into_iter()
            .map(|(seq, time, change, cause, range)| Entry {
                seq,
                time_unix_nano: time,
                origin,
                netns: netns.clone(),
                change,
                cause,
                chunk: chunk.clone(),
                range,
                defs,
                chunk_last,
            })
            .collect();
        if let Some(sink) = self.sink.as_mut() {
            sink(&self.info, &entries);
        }
        for entry in entries {
            self.push(entry);
        }
    }

    fn push(&mut self, entry: Entry) {
        // The ring's slots count too, spare ones included; a full ring
        // doubles them, so rather drop the oldest than outgrow the bound.
        let slot = std::mem::size_of::<Entry>();
        while !self.ring.is_empty()
            && self.ring.len() == self.ring.capacity()
            && self.ring_bytes + 2 * self.ring.capacity() * slot + entry.footprint()
                > self.limits.bytes
        {
            self.pop();
        }
        self.ring_bytes += entry.footprint();
        self.ring.push_back(entry);
        while self.ring.len() > self.limits.changes
            || (self.ring_bytes() > self.limits.bytes && self.ring.len() > 1)
        {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some(old) = self.ring.pop_front() {
            self.ring_bytes -= old.footprint();
        }
    }

    /// Changes after `cursor`, at most `max` of them and about `max_bytes`
    /// (at least one), or [`Lagged`] when the ring has dropped some.
    pub fn read_after(
        &self,
        cursor: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, Lagged> {
        if cursor >= self.last_seq {
            return Ok(Vec::new());
        }
        let first = self.first_seq();
        if cursor + 1 < first {
            return Err(Lagged);
        }
        let start = (cursor + 1 - first) as usize;
        let mut bytes = 0;
        let mut out = Vec::new();
        for entry in self.ring.range(start..).take(max.max(1)) {
            if !out.is_empty() && bytes + entry.record_len() > max_bytes {
                break;
            }
            bytes += entry.record_len();
            out.push(entry.clone());
        }
        Ok(out)
    }

    /// Like [`Core::read_after`], but only the encoded records, as shared
    /// slices (one per run of a published batch), then the definitions of
    /// the causes they refer to, and the last seq: what an unfiltered
    /// session sends (with the stream id). Copies nothing.
    pub fn read_records_after(
        &self,
        cursor: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Option<(u64, Vec<Bytes>)>, Lagged> {
        if cursor >= self.last_seq {
            return Ok(None);
        }
        let first = self.first_seq();
        if cursor + 1 < first {
            return Err(Lagged);
        }
        let start = (cursor + 1 - first) as usize;
        // Whole runs at a time: a run's first and last change say its
        // bytes, so a read costs a few visits per published batch, not one
        // per change (with a hundred sessions, that is what shows).
        let end = self.ring.len().min(start + max.max(1));
        let mut bytes = 0;
        let mut parts = Vec::new();
        let mut sent_defs = Vec::new();
        let mut at = start;
        while at < end {
            let first = &self.ring[at];
            let run_end = end.min(at + 1 + (first.chunk_last - first.seq) as usize);
            let from = first.range.start;
            let upto = |i: usize| self.ring[i].range.end - from;
            // The run's longest prefix within the byte cap (at least one
            // change in all).
            let room = max_bytes.saturating_sub(bytes);
            let mut take = if upto(run_end - 1) <= room {
                run_end - at
            } else {
                let (mut lo, mut hi) = (0, run_end - at - 1);
                while lo < hi {
                    let mid = (lo + hi).div_ceil(2);
                    if upto(at + mid - 1) <= room {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                lo
            };
            if take == 0 && parts.is_empty() {
                take = 1;
            }
            if take == 0 {
                break;
            }
            let len = upto(at + take - 1);
            parts.push(first.chunk.slice(from..from + len));
            bytes += len;
            bytes += carry_defs(&mut sent_defs, first.defs());
            at += take;
            if at < run_end {
                break;
            }
        }
        parts.extend(sent_defs);
        Ok(Some((self.ring[at - 1].seq, parts)))
    }

    /// Where a consumer holding `cursor` can continue, or why it cannot.
    pub fn position(&self, cursor: &Cursor) -> Result<u64, ResyncCause> {
        if cursor.stream_id != self.info.stream_id || cursor.seq > self.last_seq {
            return Err(ResyncCause::UnknownStream);
        }
        if cursor.seq + 1 < self.first_seq() {
            return Err(ResyncCause::CursorTooOld);
        }
        Ok(cursor.seq)
    }

    /// The oldest sequence number the ring holds (last + 1 when empty).
    fn first_seq(&self) -> u64 {
        self.last_seq + 1 - self.ring.len() as u64
    }

    /// When the agent observed the change after `cursor`, if the ring
    /// holds it.
    pub fn time_after(&self, cursor: u64) -> Option<i64> {
        let index = cursor.checked_add(1)?.checked_sub(self.first_seq())?;
        self.ring
            .get(usize::try_from(index).ok()?)
            .map(|e| e.time_unix_nano)
    }

    /// The oldest change the ring holds (last + 1 when it holds none): a
    /// consumer can resume from any cursor at or after this minus one.
    pub fn oldest_seq(&self) -> u64 {
        self.first_seq()
    }

    /// The ring's entries, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Entry> {
        self.ring.iter()
    }

    /// Changes the ring holds.
    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }

    /// Bytes of encoded events the ring holds.
    /// Memory the ring takes: its slots (spare ones too) and what its
    /// entries hold.
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes + self.ring.capacity() * std::mem::size_of::<Entry>()
    }

    /// Every object of every namespace with its key, by namespace, valid
    /// as of [`Core::last_seq`]. The objects are shared with the tables:
    /// this costs a reference each, not a copy.
    pub fn snapshot(&self) -> Snapshot {
        self.tables
            .iter()
            .map(|(netns, table)| {
                let mut objects = Vec::with_capacity(table.object_count());
                objects.extend(table.objects());
                (netns.clone(), objects)
            })
            .collect()
    }
}

/// Changes published, by origin (notification, reconcile) and action.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    /// `[origin][action]`: origin 0 notification, 1 reconcile (anything
    /// else counts as reconcile); action 0 add, 1 delete.
    counts: [[u64; 2]; 2],
}

impl Published {
    fn count(&mut self, origin: api::Origin, action: Action) {
        let o = usize::from(origin != api::Origin::Notification);
        let a = usize::from(action == Action::Delete);
        self.counts[o][a] += 1;
    }

    /// `(origin, action, count)` for every combination.
    pub fn counts(&self) -> impl Iterator<Item = (api::Origin, Action, u64)> + '_ {
        [api::Origin::Notification, api::Origin::Reconcile]
            .into_iter()
            .enumerate()
            .flat_map(move |(o, origin)| {
                [Action::Add, Action::Delete]
                    .into_iter()
                    .enumerate()
                    .map(move |(a, action)| (origin, action, self.counts[o][a]))
            })
    }
}

/// What every event of one stream carries.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub stream_id: String,
    pub netns: String,
    /// The host's iproute2 names, written beside the numbers of every
    /// change as it is encoded (see [`crate::labelled`]).
    pub names: Arc<Names>,
    /// The stream id as a response's field: changes leave it to the
    /// response.
    stream_record: Bytes,
}

impl StreamInfo {
    /// The stream `stream_id` of the agent's namespace `netns`, names not
    /// known yet.
    pub fn new(stream_id: String, netns: String) -> StreamInfo {
        StreamInfo {
            stream_record: routewatch_proto::batch::stream_record(&stream_id),
            stream_id,
            netns,
            names: Default::default(),
        }
    }

    /// The stream id as a `SubscribeResponse` field (shared): sent in
    /// every response that carries changes.
    pub fn stream_record(&self) -> &Bytes {
        &self.stream_record
    }

    /// An event of this stream at `seq`.
    pub fn event(&self, seq: u64, time_unix_nano: i64, kind: event::Kind) -> api::Event {
        self.event_in(&self.netns, seq, time_unix_nano, kind)
    }

    /// An event of this stream at `seq` about namespace `netns`.
    pub fn event_in(
        &self,
        netns: &str,
        seq: u64,
        time_unix_nano: i64,
        kind: event::Kind,
    ) -> api::Event {
        api::Event {
            stream_id: self.stream_id.clone(),
            seq,
            time_unix_nano,
            netns: netns.to_string(),
            kind: Some(kind),
        }
    }
}

/// A change encoded as one field-1 record of a `SubscribeResponse`.
pub fn change_record(
    info: &StreamInfo,
    netns: &str,
    seq: u64,
    time_unix_nano: i64,
    change: &Change,
    origin: api::Origin,
    cause: Option<&Cause>,
) -> Bytes {
    let mut buf = BytesMut::new();
    encode_change_record(
        info,
        netns,
        seq,
        time_unix_nano,
        change,
        origin,
        cause,
        &mut buf,
    );
    buf.freeze()
}

/// Appends a change as one field-1 record of a `SubscribeResponse` to
/// `buf`, straight from the shared route or nexthop, with the names of
/// `info` beside its numbers: the same bytes as encoding the `Event`
/// [`StreamInfo::event_in`] would build with [`change_kind`], without
/// copying the object, except that the stream id is left to the response
/// (`SubscribeResponse.stream_id`) and the cause is referred to by id (the
/// response defines it, see [`Entry::defs`]). Returns where in `buf` the
/// object's own fields are (the bytes its digest hash is taken over, see
/// [`crate::digest`]).
// The event's fields, one argument each: a struct of them would be built
// only to be taken apart here.
#[allow(clippy::too_many_arguments)]
pub fn encode_change_record(
    info: &StreamInfo,
    netns: &str,
    seq: u64,
    time_unix_nano: i64,
    change: &Change,
    origin: api::Origin,
    cause: Option<&Cause>,
    buf: &mut BytesMut,
) -> std::ops::Range<usize> {
    use prost::encoding::{
        encode_key, encode_varint, encoded_len_varint, int32, int64, key_len, uint64, WireType,
    };
    let action = match change.action {
        Action::Add => api::Action::Add,
        Action::Delete => api::Action::Delete,
    } as i32;
    let origin = origin as i32;
    // A key of 32 hex digits goes as its 16 bytes (`key_bytes`, field 10,
    // last as field order has it), never printed; a nexthop object's short
    // `nh|ID` as text.
    let text = change.key.is_nexthop().then(|| change.key.text());
    let (key, key_bytes) = match &text {
        Some(text) => (text.as_str(), None),
        None => ("", Some(change.key.to_be_bytes())),
    };
    let object = Labelled::new(&change.object, &info.names);
    let object_len = object.encoded_len();
    let change_len = int32::encoded_len(1, &action)
        + int32::encoded_len(2, &origin)
        + if key.is_empty() {
            0
        } else {
            key_len(3) + encoded_len_varint(key.len() as u64) + key.len()
        }
        + object_len
        + cause.map_or(0, |c| c.reference().len())
        + key_bytes.map_or(0, |b| key_len(CHANGE_KEY_BYTES) + 1 + b.len());
    let mut event_len = key_len(10) + encoded_len_varint(change_len as u64) + change_len;
    if seq != 0 {
        event_len += uint64::encoded_len(2, &seq);
    }
    if time_unix_nano != 0 {
        event_len += int64::encoded_len(3, &time_unix_nano);
    }
    if !netns.is_empty() {
        event_len += key_len(4) + encoded_len_varint(netns.len() as u64) + netns.len();
    }
    buf.reserve(1 + encoded_len_varint(event_len as u64) + event_len);
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(event_len as u64, buf);
    if seq != 0 {
        uint64::encode(2, &seq, buf);
    }
    if time_unix_nano != 0 {
        int64::encode(3, &time_unix_nano, buf);
    }
    if !netns.is_empty() {
        encode_key(4, WireType::LengthDelimited, buf);
        encode_varint(netns.len() as u64, buf);
        buf.extend_from_slice(netns.as_bytes());
    }
    encode_key(10, WireType::LengthDelimited, buf);
    encode_varint(change_len as u64, buf);
    int32::encode(1, &action, buf);
    int32::encode(2, &origin, buf);
    if !key.is_empty() {
        encode_key(3, WireType::LengthDelimited, buf);
        encode_varint(key.len() as u64, buf);
        buf.extend_from_slice(key.as_bytes());
    }
    let unlabelled = object.encode(buf);
    if let Some(cause) = cause {
        buf.extend_from_slice(cause.reference());
    }
    if let Some(bytes) = key_bytes {
        encode_key(CHANGE_KEY_BYTES, WireType::LengthDelimited, buf);
        encode_varint(bytes.len() as u64, buf);
        buf.extend_from_slice(&bytes);
    }
    unlabelled
}

/// The field number of `Change.key_bytes`.
const CHANGE_KEY_BYTES: u32 = 10;

/// `event` in the form [`encode_change_record`] gives a change: the stream
/// id left to the response, a key of 32 hex digits as its bytes.
pub fn lean(event: &mut api::Event) {
    event.stream_id.clear();
    if let Some(event::Kind::Change(c)) = &mut event.kind {
        if let Some(key) = Key::parse(&c.key).filter(|k| !k.is_nexthop()) {
            c.key_bytes = key.to_be_bytes().to_vec();
            c.key.clear();
        }
    }
}

/// Takes up to `max` changes from `changes` and appends those `keep` lets
/// through to `buf` as a snapshot's (origin dump at `seq`, no cause), as
/// [`encode_change_record`] does; returns how many it appended.
#[allow(clippy::too_many_arguments)]
pub fn encode_snapshot(
    info: &StreamInfo,
    netns: &str,
    seq: u64,
    time_unix_nano: i64,
    changes: &mut impl Iterator<Item = Change>,
    max: usize,
    keep: impl Fn(&Change) -> bool,
    buf: &mut BytesMut,
) -> usize {
    let mut sent = 0;
    for change in changes.take(max).filter(|c| keep(c)) {
        encode_change_record(
            info,
            netns,
            seq,
            time_unix_nano,
            &change,
            api::Origin::Dump,
            None,
            buf,
        );
        sent += 1;
    }
    sent
}

/// The API form of a change, names included: decoded from its record, so
/// that it cannot differ from what subscribers receive. Every event the
/// agent sends is encoded straight from the change; tests read it back here.
#[cfg(test)]
pub fn change_kind(info: &StreamInfo, change: &Change, origin: api::Origin) -> event::Kind {
    use prost::Message;
    let record = change_record(info, "", 0, 0, change, origin, None);
    let response = routewatch_proto::v1::SubscribeResponse::decode(record)
        .expect("a record the agent encoded decodes");
    response
        .events
        .into_iter()
        .next()
        .and_then(|e| e.kind)
        .expect("a change record holds a change")
}

pub fn now_unix_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Each change of `events` as (seq, stream id, its requester's comm or
/// "-", reason), for tests.
#[cfg(test)]
pub(crate) fn test_makers(events: &[api::Event]) -> Vec<(u64, String, String, String)> {
    events
        .iter()
        .map(|e| {
            let Some(event::Kind::Change(c)) = &e.kind else {
                panic!("a change");
            };
            let comm = c.changed_by.as_ref().map_or("-", |b| &b.comm);
            (
                e.seq,
                e.stream_id.clone(),
                comm.to_string(),
                c.reason.clone(),
            )
        })
        .collect()
}

/// A route change keyed `Key::test(n)` with metric `n`, for tests.
#[cfg(test)]
pub(crate) fn test_change(n: u32) -> Change {
    let key = Key::test(n);
    Change {
        action: Action::Add,
        key,
        object: crate::state::Object::Route(crate::state::Record::new(
            key,
            &api::Route {
                metric: n,
                ..Default::default()
            },
        )),
        previous: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::batch::record;

    use super::test_change as change;

    fn limits(changes: usize) -> RingLimits {
        RingLimits {
            changes,
            bytes: usize::MAX,
        }
    }

    fn seqs(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn shared_records_equal_the_generated_encoding() {
        let info = StreamInfo::new("s".into(), "ns1".into());
        for c in [
            change(7),
            Change {
                action: Action::Delete,
                ..change(8)
            },
        ] {
            let direct = change_record(&info, "ns2", 42, 1234, &c, api::Origin::Reconcile, None);
            let kind = change_kind(&info, &c, api::Origin::Reconcile);
            let mut ev = info.event_in("ns2", 42, 1234, kind);
            lean(&mut ev);
            assert_eq!(direct, record(&ev));
            let event::Kind::Change(api::Change {
                object: Some(api::change::Object::Route(r)),
                ..
            }) = &ev.kind.as_ref().unwrap()
            else {
                panic!("a route change")
            };
            assert_eq!((&*r.table_name, &*r.type_name), ("unspec", "none"));
        }
    }

    #[test]
    fn changes_are_numbered_contiguously() {
        let j = Journal::new("s".into(), String::new(), limits(8));
        let mut core = j.lock();
        core.publish((0..3).map(change).collect(), api::Origin::Notification);
        assert_eq!(
            seqs(&core.read_after(0, 10, usize::MAX).unwrap()),
            vec![1, 2, 3]
        );
        assert!(core.read_after(3, 10, usize::MAX).unwrap().is_empty());
    }

    #[test]
    fn each_change_keeps_the_time_it_was_observed_and_times_never_go_back() {
        let j = Journal::new("s".into(), String::new(), limits(16));
        let mut core = j.lock();
        let netns: Arc<str> = "".into();
        // Changes 0..2 read at 100, 2..5 at 200, the rest at 300.
        let times = [(2, 100), (5, 200), (6, 300)];
        core.publish_observed(
            &netns,
            (0..6).map(change).collect(),
            &times,
            api::Origin::Notification,
        );
        // Read earlier than what is numbered already: not before it.
        core.publish_observed(&netns, vec![change(9)], &[(1, 150)], api::Origin::Reconcile);
        let stamps: Vec<i64> = core
            .read_after(0, 10, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.time_unix_nano)
            .collect();
        assert_eq!(stamps, [100, 100, 200, 200, 200, 300, 300]);
    }

    #[test]
    fn overtaken_reader_learns_it_lagged() {
        let j = Journal::new("s".into(), String::new(), limits(4));
        let mut core = j.lock();
        core.publish((0..10).map(change).collect(), api::Origin::Notification);
        assert_eq!(
            seqs(&core.read_after(6, 10, usize::MAX).unwrap()),
            vec![7, 8, 9, 10]
        );
        assert!(matches!(core.read_after(5, 10, usize::MAX), Err(Lagged)));
    }

    #[test]
    fn the_ring_is_bounded_by_bytes_too() {
        let bounds = RingLimits {
            changes: 1000,
            bytes: 4000,
        };
        let j = Journal::new("s".into(), String::new(), bounds);
        let mut core = j.lock();
        core.publish((0..100).map(change).collect(), api::Origin::Notification);
        assert!(core.ring_bytes() <= 4000, "{}", core.ring_bytes());
        assert!(core.recent().count() < 100);
        assert_eq!(core.recent().last().unwrap().seq, 100);
        // What an entry costs counts what it holds, not just its bytes on
        // the wire: the version an add replaced too.
        let plain = core.recent().last().unwrap().footprint();
        let mut replacing = change(0);
        replacing.previous = Previous::Was(change(1).object);
        core.publish(vec![replacing], api::Origin::Notification);
        let entry = core.recent().last().unwrap();
        assert!(plain > entry.record_len());
        assert!(entry.footprint() > plain + entry.change.object.footprint() / 2);
    }

    #[test]
    fn batches_respect_the_byte_cap_but_hold_at_least_one() {
        let j = Journal::new("s".into(), String::new(), limits(100));
        let mut core = j.lock();
        core.publish((0..10).map(change).collect(), api::Origin::Notification);
        assert_eq!(core.read_after(0, 10, 1).unwrap().len(), 1);
        let all = core.read_after(0, 10, usize::MAX).unwrap();
        let three: usize = all[..3].iter().map(Entry::record_len).sum();
        assert_eq!(core.read_after(0, 10, three).unwrap().len(), 3);
    }

    #[test]
    fn record_reads_share_one_slice_per_published_batch() {
        let j = Journal::new("s".into(), String::new(), limits(100));
        let mut core = j.lock();
        core.publish((0..3).map(change).collect(), api::Origin::Notification);
        core.publish((3..5).map(change).collect(), api::Origin::Notification);
        let (last, parts) = core.read_records_after(1, 10, usize::MAX).unwrap().unwrap();
        assert_eq!(last, 5);
        assert_eq!(
            parts.len(),
            2,
            "seq 2-3 from the first batch, 4-5 from the second"
        );
        let entries = core.read_after(1, 10, usize::MAX).unwrap();
        let joined: Vec<u8> = entries.iter().flat_map(|e| e.record().to_vec()).collect();
        assert_eq!(parts.concat(), joined);
        assert!(core
            .read_records_after(5, 10, usize::MAX)
            .unwrap()
            .is_none());
        assert!(matches!(
            core.read_records_after(1, 1, usize::MAX),
            Ok(Some((2, _)))
        ));
    }

    /// The shared-slice read and the per-change read agree on every
    /// cursor, count cap and byte cap, across batches of several sizes and
    /// a ring that dropped the start of a batch.
    #[test]
    fn record_reads_equal_change_reads_under_every_cap() {
        let j = Journal::new("s".into(), String::new(), limits(40));
        let mut core = j.lock();
        let mut n = 0;
        for size in [5, 1, 17, 3, 9, 1, 12] {
            core.publish(
                (n..n + size).map(change).collect(),
                api::Origin::Notification,
            );
            n += size;
        }
        let last = core.last_seq();
        let first = last + 1 - core.recent().count() as u64;
        let one = core.read_after(first - 1, 1, usize::MAX).unwrap()[0].record_len();
        for cursor in first - 1..=last {
            for max in [1, 2, 4, 7, 40] {
                for max_bytes in [0, one, one * 3 - 1, one * 5, usize::MAX] {
                    let entries = core.read_after(cursor, max, max_bytes).unwrap();
                    let read = core.read_records_after(cursor, max, max_bytes).unwrap();
                    let Some((upto, parts)) = read else {
                        assert!(entries.is_empty());
                        continue;
                    };
                    assert_eq!(Some(upto), entries.last().map(|e| e.seq));
                    let joined: Vec<u8> =
                        entries.iter().flat_map(|e| e.record().to_vec()).collect();
                    assert_eq!(
                        parts.concat(),
                        joined,
                        "cursor {cursor} max {max} bytes {max_bytes}"
                    );
                }
            }
        }
        assert!(matches!(
            core.read_records_after(first - 2, 5, usize::MAX),
            Err(Lagged)
        ));
    }

    #[test]
    fn a_resumed_ring_is_read_in_shared_slices() {
        let j = Journal::new("s".into(), String::new(), limits(5000));
        let mut core = j.lock();
        for i in 0..1500 {
            core.publish(vec![change(i)], api::Origin::Notification);
        }
        // As the state dir gives them back: a record of its own each.
        let recent: Vec<Entry> = core
            .recent()
            .map(|e| {
                let (seq, time, origin) = (e.seq, e.time_unix_nano, e.origin);
                Entry::new(
                    seq,
                    time,
                    origin,
                    e.netns.clone(),
                    e.change.clone(),
                    e.cause.clone(),
                    e.record(),
                )
            })
            .collect();
        let (info, before) = (
            core.info().clone(),
            core.read_after(0, 5000, usize::MAX).unwrap(),
        );
        drop(core);
        let resumed = Journal::resume(info, 1500, BTreeMap::new(), recent, limits(5000));
        let core = resumed.lock();
        let (last, parts) = core
            .read_records_after(0, 5000, usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(last, 1500);
        assert_eq!(parts.len(), 2, "1024 changes, then 476");
        let joined: Vec<u8> = before.iter().flat_map(|e| e.record().to_vec()).collect();
        assert_eq!(parts.concat(), joined);
        let (last, parts) = core
            .read_records_after(1000, 100, usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!((last, parts.len()), (1100, 2), "across the chunks' border");
    }

    #[test]
    fn cursors_resume_only_within_the_same_stream_and_ring() {
        let j = Journal::new("s".into(), String::new(), limits(4));
        let mut core = j.lock();
        core.publish((0..10).map(change).collect(), api::Origin::Notification);
        let at = |stream: &str, seq| Cursor {
            stream_id: stream.into(),
            seq,
        };
        assert_eq!(core.position(&at("s", 10)), Ok(10));
        assert_eq!(core.position(&at("s", 6)), Ok(6));
        assert_eq!(core.position(&at("s", 5)), Err(ResyncCause::CursorTooOld));
        assert_eq!(
            core.position(&at("other", 10)),
            Err(ResyncCause::UnknownStream)
        );
        assert_eq!(core.position(&at("s", 11)), Err(ResyncCause::UnknownStream));
    }

    #[test]
    fn the_sink_sees_every_batch_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let j = Journal::new("s".into(), String::new(), limits(2));
        let mut core = j.lock();
        let log = seen.clone();
        core.set_sink(Box::new(move |_: &StreamInfo, entries: &[Entry]| {
            log.lock().unwrap().extend(entries.iter().map(|e| e.seq));
        }));
        core.publish((0..3).map(change).collect(), api::Origin::Notification);
        core.publish((0..1).map(change).collect(), api::Origin::Reconcile);
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4]);
    }
}
