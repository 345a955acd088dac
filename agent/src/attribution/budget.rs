//! A share of the time: earned as time passes, spent by work that must not
//! take more than its share (a long piece of work leaves a debt).

use std::time::{Duration, Instant};

/// Time available for some work, in seconds.
pub struct Budget {
    left: f64,
    at: Instant,
    share: f64,
    most: f64,
}

impl Budget {
    /// `share` of the time passing, at most `most` saved up (and at start).
    pub fn new(share: f64, most: Duration) -> Budget {
        Budget {
            left: most.as_secs_f64(),
            at: Instant::now(),
            share,
            most: most.as_secs_f64(),
        }
    }

    /// Whether any time is left now.
    pub fn available(&mut self) -> bool {
        self.available_at(Instant::now())
    }

    fn available_at(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.share;
        self.left = (self.left + earned).min(self.most);
        self.at = now;
        self.left > 0.0
    }

    pub fn spend(&mut self, took: Duration) {
        self.left -= took.as_secs_f64();
    }

    /// Gives back time spent ahead and not used.
    pub fn refund(&mut self, unused: Duration) {
        self.left = (self.left + unused.as_secs_f64()).min(self.most);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_takes_at_most_its_share_of_the_time() {
        let most = Duration::from_millis(200);
        let mut budget = Budget::new(0.1, most);
        let start = budget.at;
        assert!(budget.available_at(start));
        budget.spend(Duration::from_millis(500));
        let later = |ms| start + Duration::from_millis(ms);
        // 300 ms in debt: 3 s repay it at a tenth.
        assert!(!budget.available_at(later(2900)));
        assert!(budget.available_at(later(3100)));
        // Idle time saves up `most` at most.
        assert!(budget.available_at(later(60_000)));
        budget.spend(most + Duration::from_millis(1));
        assert!(!budget.available_at(later(60_000)));
        budget.refund(Duration::from_millis(2));
        assert!(budget.available_at(later(60_000)));
    }
}
