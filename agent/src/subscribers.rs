//! A journal's sessions as the metrics see them: how many there are, how
//! far the slowest one is behind, how often one had to start over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use routewatch_proto::v1::ResyncCause;

/// Position of a session that has not sent anything yet.
const UNPLACED: u64 = u64::MAX;

/// Every session of one journal.
#[derive(Debug, Default)]
pub struct Subscribers {
    sessions: Arc<Mutex<Sessions>>,
    /// Resyncs sent, by [`ResyncCause`] number.
    resyncs: [AtomicU64; 4],
    /// Snapshot events sent (adds with origin dump).
    snapshot_events: AtomicU64,
}

#[derive(Debug, Default)]
struct Sessions {
    next: u64,
    /// Each session's position: the last seq it has handed to its
    /// connection.
    positions: HashMap<u64, Arc<AtomicU64>>,
}

/// One session's place among the subscribers; it leaves when dropped.
#[derive(Debug)]
pub struct Membership {
    id: u64,
    position: Arc<AtomicU64>,
    sessions: Arc<Mutex<Sessions>>,
}

impl Subscribers {
    /// Registers a new session.
    pub fn join(&self) -> Membership {
        let position = Arc::new(AtomicU64::new(UNPLACED));
        let mut sessions = self.lock();
        let id = sessions.next;
        sessions.next += 1;
        sessions.positions.insert(id, position.clone());
        Membership {
            id,
            position,
            sessions: self.sessions.clone(),
        }
    }

    /// Sessions open now.
    pub fn count(&self) -> usize {
        self.lock().positions.len()
    }

    /// How many changes the slowest session is behind `last_seq` (0 with
    /// no session).
    pub fn max_lag(&self, last_seq: u64) -> u64 {
        self.lock()
            .positions
            .values()
            .map(|p| p.load(Ordering::Relaxed))
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().expect("subscribers lock")
    }
}

impl Membership {
    /// The session has handed everything up to `seq` to its connection.
    pub fn at(&self, seq: u64) {
        self.position.store(seq, Ordering::Relaxed);
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.positions.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_placed_session_sets_the_lag() {
        let s = Subscribers::default();
        assert_eq!(s.max_lag(10), 0);
        let a = s.join();
        let b = s.join();
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
