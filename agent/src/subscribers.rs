//! Who is subscribed right now, for `GetInfo`.
//!
//! A session registers when it starts and holds its [`Registration`] for
//! as long as it runs: dropping it (the session ended, however) removes
//! the entry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use routewatch_proto::v1::SubscriberInfo;

use crate::journal::now_unix_nano;

/// The open sessions of one pipeline.
#[derive(Debug, Default)]
pub struct Subscribers {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Seat>>>,
}

/// One open session.
#[derive(Debug)]
struct Seat {
    peer: String,
    since_unix_nano: i64,
    filtered: bool,
    seq: AtomicU64,
}

/// A session's place in the list; removed on drop.
#[derive(Debug)]
pub struct Registration {
    list: Arc<Subscribers>,
    id: u64,
    seat: Arc<Seat>,
}

impl Subscribers {
    /// Adds a session from `peer` ("" in process).
    pub fn register(self: &Arc<Self>, peer: String, filtered: bool) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let seat = Arc::new(Seat {
            peer,
            since_unix_nano: now_unix_nano(),
            filtered,
            seq: AtomicU64::new(0),
        });
        self.lock().insert(id, seat.clone());
        Registration {
            list: self.clone(),
            id,
            seat,
        }
    }

    /// Every open session, oldest first.
    pub fn list(&self) -> Vec<SubscriberInfo> {
        self.lock()
            .values()
            .map(|s| SubscriberInfo {
                peer: s.peer.clone(),
                since_unix_nano: s.since_unix_nano,
                seq: s.seq.load(Ordering::Relaxed),
                filtered: s.filtered,
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Seat>>> {
        // The map is consistent after any panic: entries are whole.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registration {
    /// The session has sent everything up to `seq`.
    pub fn sent(&self, seq: u64) {
        self.seat.seq.store(seq, Ordering::Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.list.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_while_registered() {
        let list = Arc::new(Subscribers::default());
        let a = list.register("10.0.0.9:4000".into(), true);
        let b = list.register(String::new(), false);
        a.sent(42);
        let seen = list.list();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].peer, "10.0.0.9:4000");
        assert_eq!(seen[0].seq, 42);
        assert!(seen[0].filtered && !seen[1].filtered);
        drop(a);
        assert_eq!(list.list().len(), 1);
        drop(b);
        assert!(list.list().is_empty());
    }
}
