//! Warnings that can come in floods, logged with counts instead of once per
//! occurrence.
//!
//! 950 clients retrying against a full agent, or one netlink overflow after
//! another, would otherwise write a line each (thousands a minute) and bury
//! everything else. Each call site keeps one [`RateLimited`]: the first
//! occurrence is logged at once, later ones within [`INTERVAL`] of the last
//! line are only counted, and the next occurrence after that logs again
//! with how many were left out ("950 more in the last 10 s"). The exact
//! counts are in the metrics.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per call site in this time.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// One call site's rate limit.
#[derive(Debug)]
pub struct RateLimited {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last line was written.
    logged: Option<Instant>,
    /// Occurrences left out since then.
    more: u64,
}

/// What a line logged now says about the occurrences left out before it;
/// displays as "" or " (N more in the last S s)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// Occurrences since the previous line that were not logged.
    pub more: u64,
    /// Time since the previous line.
    pub over: Duration,
}

impl fmt::Display for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.more == 0 {
            return Ok(());
        }
        write!(
            f,
            " ({} more in the last {} s)",
            self.more,
            self.over.as_secs().max(1)
        )
    }
}

impl Default for RateLimited {
    fn default() -> Self {
        RateLimited::new()
    }
}

impl RateLimited {
    /// A limit of one line per [`INTERVAL`]; usable in a `static`.
    pub const fn new() -> RateLimited {
        RateLimited::every(INTERVAL)
    }

    /// A limit of one line per `interval`.
    pub const fn every(interval: Duration) -> RateLimited {
        RateLimited {
            interval,
            state: Mutex::new(State {
                logged: None,
                more: 0,
            }),
        }
    }

    /// Notes one occurrence now: `Some` if it is to be logged (with what
    /// was left out before it), `None` if it was only counted.
    pub fn check(&self) -> Option<Burst> {
        self.check_at(Instant::now())
    }

    /// Notes one occurrence at `now`.
    pub fn check_at(&self, now: Instant) -> Option<Burst> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.logged {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.more += 1;
                None
            }
            last => {
                let burst = Burst {
                    more: state.more,
                    over: last.map_or(Duration::ZERO, |l| now.saturating_duration_since(l)),
                };
                state.logged = Some(now);
                state.more = 0;
                Some(burst)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_logged_then_one_line_per_interval_with_the_count() {
        let limit = RateLimited::every(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let first = limit.check_at(at(0)).expect("the first is logged");
        assert_eq!(first.more, 0);
        assert_eq!(first.to_string(), "", "nothing was left out");
        // 950 more within the interval: counted, not logged.
        for i in 1..=950 {
            assert_eq!(limit.check_at(at(i * 10)), None, "occurrence {i}");
        }
        let summary = limit
            .check_at(at(10_000))
            .expect("the first after the interval is logged");
        assert_eq!(
            summary,
            Burst {
                more: 950,
                over: Duration::from_secs(10)
            }
        );
        assert_eq!(summary.to_string(), " (950 more in the last 10 s)");
        // The count starts again from that line.
        assert_eq!(limit.check_at(at(10_001)), None);
        assert_eq!(limit.check_at(at(19_999)), None);
        let next = limit.check_at(at(25_000)).expect("logged");
        assert_eq!(next.more, 2);
        assert_eq!(next.to_string(), " (2 more in the last 15 s)");
    }

    #[test]
    fn a_quiet_call_site_logs_every_occurrence() {
        let limit = RateLimited::every(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..5 {
            let burst = limit
                .check_at(t0 + Duration::from_secs(60 * i))
                .expect("each is logged");
            assert_eq!(burst.more, 0);
        }
    }

    #[test]
    fn a_clock_that_goes_backwards_counts_rather_than_floods() {
        let limit = RateLimited::every(Duration::from_secs(10));
        let t0 = Instant::now() + Duration::from_secs(100);
        assert!(limit.check_at(t0).is_some());
        assert_eq!(limit.check_at(t0 - Duration::from_secs(50)), None);
    }

    #[test]
    fn call_sites_are_limited_independently() {
        let a = RateLimited::every(Duration::from_secs(10));
        let b = RateLimited::every(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(a.check_at(t0).is_some());
        assert!(b.check_at(t0).is_some());
        assert!(a.check_at(t0).is_none());
        assert!(b.check_at(t0).is_none());
    }
}
