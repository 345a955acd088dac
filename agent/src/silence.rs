//! How long a connection's peer has sent nothing.
//!
//! The agent pings every connection (HTTP/2 keepalive) and closes one whose
//! peer does not answer in time. A subscriber that stopped reading (a
//! stopped process, a wedged host) stops answering too, so a stream that
//! ends while its peer has been silent that long ended because the
//! subscriber stalled -- which the agent then says (see [`crate::wire`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// When the peer last sent bytes; clones share it.
#[derive(Debug, Clone)]
pub struct Silence {
    /// Milliseconds after [`epoch`].
    heard_at: Arc<AtomicU64>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Default for Silence {
    /// A peer heard just now.
    fn default() -> Self {
        Silence {
            heard_at: Arc::new(AtomicU64::new(now_ms())),
        }
    }
}

impl Silence {
    /// The peer sent something.
    pub fn heard(&self) {
        self.heard_at.store(now_ms(), Ordering::Relaxed);
    }

    /// Time since the peer last sent something.
    pub fn lasted(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.heard_at.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_lasts_until_the_peer_is_heard() {
        let s = Silence::default();
        let shared = s.clone();
        std::thread::sleep(Duration::from_millis(30));
        assert!(shared.lasted() >= Duration::from_millis(30));
        s.heard();
        assert!(shared.lasted() < Duration::from_millis(30));
    }
}
