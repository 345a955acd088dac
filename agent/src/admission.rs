//! `--max-subscribers` and `--max-snapshots`: how many sessions the agent
//! serves at once.
//!
//! Followers (subscriptions with `follow`) and one-shot snapshots (`show`:
//! a snapshot, then the end) have separate slots, so that followers that
//! fill their limit cannot lock out a `show`, and a burst of `show`s never
//! takes a follower's slot.
//!
//! A permit is taken when a subscription is accepted and moves into the
//! session's task; it is returned when that task ends, however it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::ratelog::RateLimited;

/// One kind of session's slots.
#[derive(Debug, Clone)]
struct Slots {
    semaphore: Arc<Semaphore>,
    limit: usize,
}

impl Slots {
    fn new(limit: usize) -> Slots {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Slots {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    fn in_use(&self) -> usize {
        self.limit - self.semaphore.available_permits()
    }
}

/// The agent's subscriber slots.
#[derive(Debug, Clone)]
pub struct Admission {
    followers: Slots,
    snapshots: Slots,
    /// `routewatch_subscribers_rejected_total`: subscriptions refused
    /// with RESOURCE_EXHAUSTED because every slot of their kind was taken.
    pub rejected: Arc<AtomicU64>,
}

impl Admission {
    /// `followers` slots for subscriptions that follow, `snapshots` for
    /// one-shot snapshots (each at least 1).
    pub fn new(followers: usize, snapshots: usize) -> Admission {
        Admission {
            followers: Slots::new(followers),
            snapshots: Slots::new(snapshots),
            rejected: Arc::default(),
        }
    }

    /// A slot for one more session (`follow`: a follower's, else a one-shot
    /// snapshot's), or RESOURCE_EXHAUSTED at once: a client should retry
    /// later rather than wait in a queue it cannot see.
    #[allow(clippy::result_large_err)]
    pub fn admit(&self, follow: bool) -> Result<OwnedSemaphorePermit, Status> {
        let (slots, what, flag) = if follow {
            (&self.followers, "subscribers", "--max-subscribers")
        } else {
            (&self.snapshots, "one-shot snapshots", "--max-snapshots")
        };
        slots.semaphore.clone().try_acquire_owned().map_err(|_| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            // Refused clients retry: one line per refusal would be a flood.
            static REFUSED: RateLimited = RateLimited::new();
            if let Some(burst) = REFUSED.check() {
                tracing::warn!(
                    limit = slots.limit,
                    "subscriber refused: {flag} reached{burst}"
                );
            }
            Status::resource_exhausted(format!(
                "agent busy: routewatch-agent already serves its maximum of {} {what} ({flag}); try again later, or raise the limit",
                slots.limit
            ))
        })
    }

    /// Sessions running now, of both kinds.
    pub fn in_use(&self) -> usize {
        self.followers.in_use() + self.snapshots.in_use()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_and_followers_have_their_own_slots() {
        let admission = Admission::new(1, 1);
        let follower = admission.admit(true).expect("the follower's slot");
        let refused = admission.admit(true).expect_err("followers are full");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().starts_with("agent busy: ")
                && refused
                    .message()
                    .contains("maximum of 1 subscribers (--max-subscribers)"),
            "{}",
            refused.message()
        );
        let snapshot = admission
            .admit(false)
            .expect("a one-shot snapshot is admitted while followers are full");
        let refused = admission.admit(false).expect_err("snapshots are full");
        assert!(
            refused
                .message()
                .contains("maximum of 1 one-shot snapshots (--max-snapshots)"),
            "{}",
            refused.message()
        );
        assert_eq!(admission.in_use(), 2);
        assert_eq!(admission.rejected.load(Ordering::Relaxed), 2);
        drop(snapshot);
        drop(follower);
        assert_eq!(admission.in_use(), 0);
        let _again = admission.admit(true).expect("a slot came back");
    }
}
