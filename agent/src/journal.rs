//! The journal: numbers every change and keeps the most recent ones.
//!
//! There is one writer (the netlink source). It holds the lock only to
//! apply a batch and append it; it never waits for a session. Sessions read
//! the ring under the same lock, so a snapshot and the sequence number it is
//! valid for are always taken together. A session the ring has overtaken
//! learns it explicitly ([`Lagged`]) and is resynchronised, never skipped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use routewatch_proto::v1::{self as api, event};
use tokio::sync::watch;

use crate::state::{Action, Change, Object, StateTable};

/// The reader asked for changes the ring no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged;

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
    ring: VecDeque<Arc<api::Event>>,
    capacity: usize,
    last_seq: u64,
}

impl Journal {
    /// A new, empty journal keeping at most `capacity` changes.
    pub fn new(stream_id: String, netns: String, capacity: usize) -> Journal {
        Journal {
            core: Mutex::new(Core {
                state: StateTable::new(),
                info: StreamInfo { stream_id, netns },
                ring: VecDeque::with_capacity(capacity.min(1 << 16)),
                capacity: capacity.max(1),
                last_seq: 0,
            }),
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

    /// Numbers `changes` and appends them, dropping the oldest beyond capacity.
    pub fn publish(&mut self, changes: Vec<Change>, origin: api::Origin) {
        let time = now_unix_nano();
        for change in changes {
            self.last_seq += 1;
            let ev = self
                .info
                .event(self.last_seq, time, change_kind(&change, origin));
            if self.ring.len() == self.capacity {
                self.ring.pop_front();
            }
            self.ring.push_back(Arc::new(ev));
        }
    }

    /// Up to `max` changes after `cursor`, or [`Lagged`] when the ring has
    /// dropped some of them.
    pub fn read_after(&self, cursor: u64, max: usize) -> Result<Vec<Arc<api::Event>>, Lagged> {
        if cursor >= self.last_seq {
            return Ok(Vec::new());
        }
        let first = self.last_seq + 1 - self.ring.len() as u64;
        if cursor + 1 < first {
            return Err(Lagged);
        }
        let start = (cursor + 1 - first) as usize;
        Ok(self.ring.range(start..).take(max).cloned().collect())
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
    use routewatch_proto::v1::Route;

    fn change(n: u32) -> Change {
        Change {
            action: Action::Add,
            key: format!("k{n}").into(),
            object: Object::Route(Arc::new(Route {
                metric: n,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn changes_are_numbered_contiguously() {
        let j = Journal::new("s".into(), String::new(), 8);
        let mut core = j.lock();
        core.publish((0..3).map(change).collect(), api::Origin::Notification);
        let seqs: Vec<u64> = core
            .read_after(0, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(core.read_after(3, 10).unwrap().len(), 0);
    }

    #[test]
    fn overtaken_reader_learns_it_lagged() {
        let j = Journal::new("s".into(), String::new(), 4);
        let mut core = j.lock();
        core.publish((0..10).map(change).collect(), api::Origin::Notification);
        assert_eq!(core.read_after(6, 10).unwrap().first().unwrap().seq, 7);
        assert_eq!(core.read_after(6, 10).unwrap().len(), 4);
        assert_eq!(core.read_after(5, 10), Err(Lagged));
    }
}
