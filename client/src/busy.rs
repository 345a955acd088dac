//! `show --retry-for`: a one-shot call the agent refuses as busy
//! (RESOURCE_EXHAUSTED: all of its slots for one-shot snapshots are taken)
//! is tried again, with backoff, for a bounded time.
//!
//! A snapshot takes a slot only while it is sent, so a busy agent usually
//! has room again within a second; waiting a little is what an operator
//! running `show` by hand would do anyway. Any other failure is returned
//! at once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::ClientError;

/// The first ceiling between attempts, and the largest.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(1);

/// Calls `attempt` until it succeeds, fails other than as busy, or the
/// next attempt would start more than `within` after the first; a last
/// busy refusal becomes [`ClientError::Busy`].
pub async fn retry_busy<T, A, F>(within: Duration, mut attempt: A) -> Result<T, ClientError>
where
    A: FnMut() -> F,
    F: Future<Output = Result<T, ClientError>>,
{
    let start = Instant::now();
    let mut backoff = Backoff::new(FIRST_DELAY, MAX_DELAY);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let e = match attempt().await {
            Err(e) if e.is_busy() => e,
            done => return done,
        };
        let delay = backoff.next_delay();
        if start.elapsed() + delay > within {
            let ClientError::Stream { target, status } = e else {
                return Err(e);
            };
            return Err(ClientError::Busy {
                target,
                problem: status.message().to_owned(),
                attempts,
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn busy() -> ClientError {
        ClientError::Stream {
            target: "h:1".into(),
            status: tonic::Status::resource_exhausted(
                "agent busy: routewatch-agent already serves its maximum of 16 one-shot snapshots (--max-snapshots); try again later, or raise the limit",
            ),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_agent_is_asked_again_until_it_has_room() {
        let calls = AtomicU32::new(0);
        let got = retry_busy(Duration::from_secs(5), || async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0..=2 => Err(busy()),
                _ => Ok("snapshot"),
            }
        })
        .await;
        assert_eq!(got.expect("the fourth attempt is served"), "snapshot");
        assert_eq!(calls.load(Ordering::Relaxed), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_agent_is_given_up_on_within_the_bound_with_a_clear_message() {
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let e = retry_busy(Duration::from_secs(3), || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(busy())
        })
        .await
        .expect_err("still busy");
        assert!(
            start.elapsed() <= Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert!(calls.load(Ordering::Relaxed) >= 3, "it was asked again");
        let text = e.to_string();
        assert!(
            text.starts_with("h:1: agent busy: routewatch-agent already serves its maximum of 16 one-shot snapshots")
                && text.contains("still busy after")
                && text.contains("--retry-for"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let e = retry_busy(Duration::from_secs(5), || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(ClientError::Stream {
                target: "h:1".into(),
                status: tonic::Status::invalid_argument("bad filter"),
            })
        })
        .await
        .expect_err("refused");
        assert!(e.is_refused_request());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_time_means_one_attempt() {
        let calls = AtomicU32::new(0);
        let e = retry_busy(Duration::ZERO, || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(busy())
        })
        .await
        .expect_err("busy");
        assert!(matches!(e, ClientError::Busy { attempts: 1, .. }), "{e}");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
