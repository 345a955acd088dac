//! Gives the memory a burst freed back to the system.
//!
//! A dump builds a second table beside the first, and a churn of hundreds
//! of thousands of routes allocates and frees as many records and journal
//! entries. glibc keeps what is freed in the middle of its heap for reuse,
//! so the agent's resident memory would stay at its peak for ever. Once the
//! stream has been quiet for a moment after enough changes (or after the
//! first dump), `malloc_trim` hands the free pages back. It walks the heap,
//! a few milliseconds for a full table, and only runs after bursts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::source::SourceStats;

/// How often the stream is looked at.
const PERIOD: Duration = Duration::from_secs(1);
/// Changes since the last trim that make another worth it.
const BURST: u64 = 10_000;

/// Runs until `shutdown`.
pub async fn after_bursts(
    journal: Arc<Journal>,
    stats: Arc<SourceStats>,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = journal.wait_ready() => {}
    }
    // Changes published, a dump counting as a burst of its own.
    let work = || journal.lock().last_seq() + stats.dumps.load(Ordering::Relaxed) * BURST;
    release();
    let mut trimmed_at = work();
    let mut seen = trimmed_at;
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = work();
        if now == seen && now - trimmed_at >= BURST {
            release();
            trimmed_at = now;
        }
        seen = now;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() {
    // SAFETY: malloc_trim only reorganises the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}
