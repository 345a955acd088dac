//! Delays between reconnection attempts: capped exponential backoff with
//! full jitter.
//!
//! Full jitter (a uniform delay between zero and the current ceiling) keeps
//! a fleet of clients that lost the same agent from reconnecting in step;
//! the ceiling doubles per failed attempt so that a host that stays down
//! costs little, and the cap bounds how stale a reconnect can be.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The ceiling of the first delay.
pub const INITIAL: Duration = Duration::from_millis(200);
/// The largest ceiling.
pub const MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
    random: Random,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// Ceilings start at `initial` and double up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            ceiling: initial,
            random: Random::new(),
        }
    }

    /// The largest delay the next call to [`Backoff::next_delay`] can return.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// The delay before the next attempt; raises the ceiling for the one
    /// after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.ceiling.mul_f64(self.random.unit());
        self.ceiling = (self.ceiling * 2).min(self.max);
        delay
    }

    /// Back to the first ceiling: the last attempt worked.
    pub fn reset(&mut self) {
        self.ceiling = self.initial;
    }
}

/// Enough randomness for jitter without another dependency: the standard
/// library seeds every `RandomState` from the OS, and SipHash spreads a
/// counter over 64 bits.
#[derive(Debug, Clone)]
struct Random {
    state: std::hash::RandomState,
    counter: u64,
}

impl Random {
    fn new() -> Random {
        Random {
            state: std::hash::RandomState::new(),
            counter: 0,
        }
    }

    /// Uniform in [0, 1].
    fn unit(&mut self) -> f64 {
        self.counter += 1;
        let mut hasher = self.state.build_hasher();
        hasher.write_u64(self.counter);
        // The top 53 bits fit an f64 mantissa exactly.
        (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_ceiling_and_the_ceiling_doubles_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            let ceiling = b.ceiling();
            ceilings.push(ceiling);
            let delay = b.next_delay();
            assert!(delay <= ceiling, "{delay:?} above its ceiling {ceiling:?}");
        }
        assert_eq!(ceilings[0], Duration::from_millis(200));
        assert_eq!(ceilings[1], Duration::from_millis(400));
        assert_eq!(ceilings[5], Duration::from_millis(6400));
        assert!(ceilings.windows(2).all(|w| w[1] >= w[0]), "{ceilings:?}");
        assert_eq!(*ceilings.last().unwrap(), Duration::from_secs(10));
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(10));
        }
    }

    #[test]
    fn delays_are_jittered_and_grow_on_average() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let early: Vec<Duration> = (0..200)
            .map(|_| {
                b.reset();
                b.next_delay()
            })
            .collect();
        let late: Vec<Duration> = (0..200)
            .map(|_| {
                for _ in 0..10 {
                    b.next_delay();
                }
                b.next_delay()
            })
            .collect();
        let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
        assert!(
            mean(&late) > mean(&early) * 10,
            "{:?} vs {:?}",
            mean(&late),
            mean(&early)
        );
        let distinct: std::collections::BTreeSet<_> = early.iter().collect();
        assert!(distinct.len() > 100, "jitter spreads the delays");
    }

    #[test]
    fn reset_returns_to_the_first_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(10));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(200));
        assert!(b.next_delay() <= Duration::from_millis(200));
    }
}
