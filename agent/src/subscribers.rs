//! A journal's open sessions: who they are (for `GetInfo`), how far the
//! slowest one is behind, and how often one had to start over (for the
//! metrics).
//!
//! A session joins when it starts and holds its [`Membership`] for as long
//! as it runs: dropping it (the session ended, however) removes the entry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use routewatch_proto::v1::{ResyncCause, SubscriberInfo};

use crate::journal::now_unix_nano;
use crate::metrics::Durations;

/// Position of a session that has not sent anything yet.
const UNPLACED: u64 = u64::MAX;

/// Every session of one journal.
#[derive(Debug, Default)]
pub struct Subscribers {
    next_id: AtomicU64,
    open: Arc<Mutex<BTreeMap<u64, Arc<Seat>>>>,
    /// Resyncs sent, by [`ResyncCause`] number.
    resyncs: [AtomicU64; 4],
    /// Snapshot events sent (adds with origin dump).
    snapshot_events: AtomicU64,
    /// From reading a change from the kernel to handing it to a connection.
    pub send_latency: SendLatency,
}

/// [`crate::metrics::SEND_LATENCY`]'s observations.
#[derive(Debug, Clone)]
pub struct SendLatency(Durations);

impl Default for SendLatency {
    fn default() -> SendLatency {
        SendLatency(Durations::new(Durations::LATENCY))
    }
}

impl std::ops::Deref for SendLatency {
    type Target = Durations;
    fn deref(&self) -> &Durations {
        &self.0
    }
}

/// One open session.
#[derive(Debug)]
struct Seat {
    peer: String,
    since_unix_nano: i64,
    filtered: bool,
    /// The last seq the session handed to its connection.
    position: AtomicU64,
}

/// One session's place among the subscribers; it leaves when dropped.
#[derive(Debug)]
pub struct Membership {
    id: u64,
    seat: Arc<Seat>,
    open: Arc<Mutex<BTreeMap<u64, Arc<Seat>>>>,
}

impl Subscribers {
    /// Registers a session from `peer` ("" in process).
    pub fn join(&self, peer: String, filtered: bool) -> Membership {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let seat = Arc::new(Seat {
            peer,
            since_unix_nano: now_unix_nano(),
            filtered,
            position: AtomicU64::new(UNPLACED),
        });
        lock(&self.open).insert(id, seat.clone());
        Membership {
            id,
            seat,
            open: self.open.clone(),
        }
    }

    /// Sessions open now.
    pub fn count(&self) -> usize {
        lock(&self.open).len()
    }

    /// Every open session, oldest first.
    pub fn list(&self) -> Vec<SubscriberInfo> {
        lock(&self.open)
            .values()
            .map(|s| SubscriberInfo {
                peer: s.peer.clone(),
                since_unix_nano: s.since_unix_nano,
                seq: match s.position.load(Ordering::Relaxed) {
                    UNPLACED => 0,
                    seq => seq,
                },
                filtered: s.filtered,
            })
            .collect()
    }

    /// How many changes the slowest session is behind `last_seq` (0 with
    /// no session).
    pub fn max_lag(&self, last_seq: u64) -> u64 {
        lock(&self.open)
            .values()
            .map(|s| s.position.load(Ordering::Relaxed))
            .filter(|&p| p != UNPLACED)
            .map(|p| last_seq.saturating_sub(p))
            .max()
            .unwrap_or(0)
    }

    /// Notes a resync sent to a session.
    pub fn count_resync(&self, cause: ResyncCause) {
        if let Some(n) = self.resyncs.get(cause as usize) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Resyncs sent so far with `cause`.
    pub fn resyncs(&self, cause: ResyncCause) -> u64 {
        self.resyncs
            .get(cause as usize)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Notes `n` snapshot events sent.
    pub fn count_snapshot_events(&self, n: usize) {
        self.snapshot_events.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Snapshot events sent so far.
    pub fn snapshot_events(&self) -> u64 {
        self.snapshot_events.load(Ordering::Relaxed)
    }
}

impl Membership {
    /// The session has handed everything up to `seq` to its connection.
    pub fn at(&self, seq: u64) {
        self.seat.position.store(seq, Ordering::Relaxed);
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        lock(&self.open).remove(&self.id);
    }
}

fn lock(open: &Mutex<BTreeMap<u64, Arc<Seat>>>) -> MutexGuard<'_, BTreeMap<u64, Arc<Seat>>> {
    // The map is consistent after any panic: entries are whole.
    open.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_while_they_run() {
        let s = Subscribers::default();
        let a = s.join("10.0.0.9:4000".into(), true);
        let b = s.join(String::new(), false);
        a.at(42);
        let seen = s.list();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].peer.as_str(), seen[0].seq), ("10.0.0.9:4000", 42));
        assert!(seen[0].filtered && !seen[1].filtered);
        drop(a);
        assert_eq!(s.list().len(), 1);
        drop(b);
        assert!(s.list().is_empty());
    }

    #[test]
    fn the_slowest_placed_session_sets_the_lag() {
        let s = Subscribers::default();
        assert_eq!(s.max_lag(10), 0);
        let a = s.join(String::new(), false);
        let b = s.join(String::new(), false);
        assert_eq!(s.count(), 2);
        assert_eq!(s.max_lag(10), 0, "unplaced sessions are not behind");
        a.at(7);
        b.at(9);
        assert_eq!(s.max_lag(10), 3);
        drop(a);
        assert_eq!(s.count(), 1);
        assert_eq!(s.max_lag(10), 1);
        s.count_resync(ResyncCause::Lagged);
        assert_eq!(s.resyncs(ResyncCause::Lagged), 1);
        assert_eq!(s.resyncs(ResyncCause::CursorTooOld), 0);
    }
}
