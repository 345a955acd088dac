//! `--max-subscribers`: how many sessions the agent serves at once.
//!
//! A permit is taken when a subscription is accepted and moves into the
//! session's task; it is returned when that task ends, however it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// The agent's subscriber slots.
#[derive(Debug, Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
    /// `routewatch_subscribers_rejected_total`: subscriptions refused
    /// with RESOURCE_EXHAUSTED because every slot was taken.
    pub rejected: Arc<AtomicU64>,
}

impl Admission {
    pub fn new(limit: usize) -> Admission {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            rejected: Arc::default(),
        }
    }

    /// A slot for one more session, or RESOURCE_EXHAUSTED at once: a client
    /// should retry later rather than wait in a queue it cannot see.
    #[allow(clippy::result_large_err)]
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(limit = self.limit, "subscriber refused: --max-subscribers reached");
            Status::resource_exhausted(format!(
                "routewatch-agent already serves its maximum of {} subscribers (--max-subscribers); try again later, or raise the limit",
                self.limit
            ))
        })
    }

    /// Sessions running now.
    pub fn in_use(&self) -> usize {
        self.limit - self.slots.available_permits()
    }
}
