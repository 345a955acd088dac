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

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use routewatch_proto::v1::{self as api, event, Cursor, ResyncCause};
use tokio::sync::watch;

use crate::state::{Action, Change, Object, StateTable};

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
    pub change: Change,
    /// The event as a field-1 record of a `SubscribeResponse`.
    pub record: Bytes,
}

/// Receives every appended batch before any session can see it.
pub type Sink = Box<dyn FnMut(&[Entry]) + Send>;

/// How much the ring keeps: whichever limit is reached first.
#[derive(Debug, Clone, Copy)]
pub struct RingLimits {
    pub changes: usize,
    pub bytes: usize,
}

/// The shared state of one network namespace: its table and its journal.
pub struct Journal {
    core: Mutex<Core>,
    last_seq: watch::Sender<u64>,
    ready: watch::Sender<bool>,
}

/// What the lock protects: the table and the ring, always consistent.
pub struct Core {
    pub state: StateTable,
    info: StreamInfo,
    ring: VecDeque<Entry>,
    ring_bytes: usize,
    limits: RingLimits,
    last_seq: u64,
    /// Receives every appended batch (the state dir's log), before any
    /// session can see it.
    sink: Option<Sink>,
}

impl Journal {
    /// A new, empty journal.
    pub fn new(stream_id: String, netns: String, limits: RingLimits) -> Journal {
        Journal::resume(
            StreamInfo { stream_id, netns },
            0,
            StateTable::new(),
            Vec::new(),
            limits,
        )
    }

    /// A journal continuing a stream at `last_seq`, with `table` as its
    /// state and `recent` (oldest first, ending at `last_seq`) in the ring.
    pub fn resume(
        info: StreamInfo,
        last_seq: u64,
        table: StateTable,
        recent: Vec<Entry>,
        limits: RingLimits,
    ) -> Journal {
        let limits = RingLimits {
            changes: limits.changes.max(1),
            bytes: limits.bytes.max(1),
        };
        let mut core = Core {
            state: table,
            info,
            ring: VecDeque::with_capacity(limits.changes.min(1 << 16)),
            ring_bytes: 0,
            limits,
            last_seq,
            sink: None,
        };
        for entry in recent {
            core.push(entry);
        }
        Journal {
            core: Mutex::new(core),
            last_seq: watch::channel(0).0,
            ready: watch::channel(false).0,
        }
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

    /// Numbers `changes`, encodes each once and appends them, dropping the
    /// oldest beyond the ring's limits.
    pub fn publish(&mut self, changes: Vec<Change>, origin: api::Origin) {
        if changes.is_empty() {
            return;
        }
        let time = now_unix_nano();
        let mut entries = Vec::with_capacity(changes.len());
        for change in changes {
            self.last_seq += 1;
            let record = change_record(&self.info, self.last_seq, time, &change, origin);
            entries.push(Entry {
                seq: self.last_seq,
                time_unix_nano: time,
                origin,
                change,
                record,
            });
        }
        if let Some(sink) = self.sink.as_mut() {
            sink(&entries);
        }
        for entry in entries {
            self.push(entry);
        }
    }

    fn push(&mut self, entry: Entry) {
        self.ring_bytes += entry.record.len();
        self.ring.push_back(entry);
        while self.ring.len() > self.limits.changes
            || (self.ring_bytes > self.limits.bytes && self.ring.len() > 1)
        {
            if let Some(old) = self.ring.pop_front() {
                self.ring_bytes -= old.record.len();
            }
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
            if !out.is_empty() && bytes + entry.record.len() > max_bytes {
                break;
            }
            bytes += entry.record.len();
            out.push(entry.clone());
        }
        Ok(out)
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

    /// The oldest change the ring holds (last + 1 when it holds none): a
    /// consumer can resume from any cursor at or after this minus one.
    pub fn oldest_seq(&self) -> u64 {
        self.first_seq()
    }

    /// The ring's entries, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Entry> {
        self.ring.iter()
    }

    /// Bytes of encoded events the ring holds.
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// The whole table as snapshot events, valid as of [`Core::last_seq`].
    pub fn snapshot(&self) -> Vec<Change> {
        self.state.snapshot()
    }
}

/// What every event of one stream carries.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub stream_id: String,
    pub netns: String,
}

impl StreamInfo {
    /// An event of this stream at `seq`.
    pub fn event(&self, seq: u64, time_unix_nano: i64, kind: event::Kind) -> api::Event {
        api::Event {
            stream_id: self.stream_id.clone(),
            seq,
            time_unix_nano,
            netns: self.netns.clone(),
            kind: Some(kind),
        }
    }
}

/// A change encoded as one field-1 record of a `SubscribeResponse`,
/// straight from the shared route or nexthop: the same bytes as encoding
/// the `Event` [`StreamInfo::event`] would build, without copying the object.
pub fn change_record(
    info: &StreamInfo,
    seq: u64,
    time_unix_nano: i64,
    change: &Change,
    origin: api::Origin,
) -> Bytes {
    use prost::encoding::{
        encode_key, encode_varint, encoded_len_varint, int32, int64, key_len, message, string,
        uint64, WireType,
    };
    let action = match change.action {
        Action::Add => api::Action::Add,
        Action::Delete => api::Action::Delete,
    } as i32;
    let origin = origin as i32;
    let key: &str = &change.key;
    let object_len = match &change.object {
        Object::Route(r) => message::encoded_len(4, &**r),
        Object::Nexthop(n) => message::encoded_len(5, &**n),
    };
    let change_len = int32::encoded_len(1, &action)
        + int32::encoded_len(2, &origin)
        + key_len(3)
        + encoded_len_varint(key.len() as u64)
        + key.len()
        + object_len;
    let mut event_len = key_len(10) + encoded_len_varint(change_len as u64) + change_len;
    if !info.stream_id.is_empty() {
        event_len += string::encoded_len(1, &info.stream_id);
    }
    if seq != 0 {
        event_len += uint64::encoded_len(2, &seq);
    }
    if time_unix_nano != 0 {
        event_len += int64::encoded_len(3, &time_unix_nano);
    }
    if !info.netns.is_empty() {
        event_len += string::encoded_len(4, &info.netns);
    }
    let mut buf = BytesMut::with_capacity(1 + encoded_len_varint(event_len as u64) + event_len);
    encode_key(1, WireType::LengthDelimited, &mut buf);
    encode_varint(event_len as u64, &mut buf);
    if !info.stream_id.is_empty() {
        string::encode(1, &info.stream_id, &mut buf);
    }
    if seq != 0 {
        uint64::encode(2, &seq, &mut buf);
    }
    if time_unix_nano != 0 {
        int64::encode(3, &time_unix_nano, &mut buf);
    }
    if !info.netns.is_empty() {
        string::encode(4, &info.netns, &mut buf);
    }
    encode_key(10, WireType::LengthDelimited, &mut buf);
    encode_varint(change_len as u64, &mut buf);
    int32::encode(1, &action, &mut buf);
    int32::encode(2, &origin, &mut buf);
    encode_key(3, WireType::LengthDelimited, &mut buf);
    encode_varint(key.len() as u64, &mut buf);
    buf.extend_from_slice(key.as_bytes());
    match &change.object {
        Object::Route(r) => message::encode(4, &**r, &mut buf),
        Object::Nexthop(n) => message::encode(5, &**n, &mut buf),
    }
    buf.freeze()
}

/// The API form of a change.
pub fn change_kind(change: &Change, origin: api::Origin) -> event::Kind {
    let object = match &change.object {
        Object::Route(r) => api::change::Object::Route((**r).clone()),
        Object::Nexthop(n) => api::change::Object::Nexthop((**n).clone()),
    };
    event::Kind::Change(api::Change {
        action: match change.action {
            Action::Add => api::Action::Add,
            Action::Delete => api::Action::Delete,
        } as i32,
        origin: origin as i32,
        key: change.key.to_string(),
        object: Some(object),
    })
}

pub fn now_unix_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::batch::record;
    use routewatch_proto::v1::Route;
    use std::sync::Arc;

    fn change(n: u32) -> Change {
        Change {
            action: Action::Add,
            key: format!("k{n}").into(),
            object: Object::Route(Arc::new(Route {
                metric: n,
                ..Default::default()
            })),
            previous: Default::default(),
        }
    }

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
        let info = StreamInfo {
            stream_id: "s".into(),
            netns: "ns1".into(),
        };
        for c in [
            change(7),
            Change {
                action: Action::Delete,
                ..change(8)
            },
        ] {
            let direct = change_record(&info, 42, 1234, &c, api::Origin::Reconcile);
            let ev = info.event(42, 1234, change_kind(&c, api::Origin::Reconcile));
            assert_eq!(direct, record(&ev));
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
            bytes: 200,
        };
        let j = Journal::new("s".into(), String::new(), bounds);
        let mut core = j.lock();
        core.publish((0..100).map(change).collect(), api::Origin::Notification);
        assert!(core.ring_bytes() <= 200, "{}", core.ring_bytes());
        assert!(core.recent().count() < 100);
        assert_eq!(core.recent().last().unwrap().seq, 100);
    }

    #[test]
    fn batches_respect_the_byte_cap_but_hold_at_least_one() {
        let j = Journal::new("s".into(), String::new(), limits(100));
        let mut core = j.lock();
        core.publish((0..10).map(change).collect(), api::Origin::Notification);
        assert_eq!(core.read_after(0, 10, 1).unwrap().len(), 1);
        let all = core.read_after(0, 10, usize::MAX).unwrap();
        let three: usize = all[..3].iter().map(|e| e.record.len()).sum();
        assert_eq!(core.read_after(0, 10, three).unwrap().len(), 3);
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
        core.set_sink(Box::new(move |entries: &[Entry]| {
            log.lock().unwrap().extend(entries.iter().map(|e| e.seq));
        }));
        core.publish((0..3).map(change).collect(), api::Origin::Notification);
        core.publish((0..1).map(change).collect(), api::Origin::Reconcile);
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4]);
    }
}
