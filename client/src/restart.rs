//! Starting a target's subscription over from a fresh snapshot, asked by
//! whoever keeps the picture (`collect`'s ledger, `tail --verify`) when a
//! digest shows that picture differs from the agent's.
//!
//! The subscription drops its connection, delivers a Resync (cause
//! `DIGEST_MISMATCH`, reason "digest mismatch") after everything the old
//! connection delivered, and subscribes again without a cursor: the
//! consumer treats it like any resync, comparing the fresh snapshot with
//! what it holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use routewatch_proto::v1::{event, Event, Resync, ResyncCause};
use tokio::sync::Notify;

/// The reason of the Resync a restart delivers.
pub const REASON: &str = "digest mismatch";

/// Every target's restart signal, by the address dialled.
#[derive(Debug, Clone, Default)]
pub struct Restarts(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl Restarts {
    /// The signal of `target`, which its subscription waits on.
    pub fn handle(&self, target: &str) -> Arc<Notify> {
        let mut map = self.0.lock().expect("restart map poisoned");
        map.entry(target.to_owned()).or_default().clone()
    }

    /// Asks `target`'s subscription to start over (once, however often it
    /// is asked before it does).
    pub fn restart(&self, target: &str) {
        self.handle(target).notify_one();
    }
}

/// The Resync a restarted subscription delivers, at the position it left.
pub fn resync_event(stream_id: &str, seq: u64) -> Event {
    Event {
        stream_id: stream_id.to_owned(),
        seq,
        kind: Some(event::Kind::Resync(Resync {
            reason: REASON.into(),
            cause: ResyncCause::DigestMismatch as i32,
        })),
        ..Default::default()
    }
}
