//! Capped exponential backoff with full jitter.

use std::time::Duration;

/// Delays between retries: attempt `n` waits a random time in
/// `[base·2ⁿ/2, base·2ⁿ]`, never more than `max` — the jitter keeps several
/// collectors from retrying in lockstep against a recovering database.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The cap.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        let ceiling = self.base.saturating_mul(factor).min(self.max);
        let half = ceiling / 2;
        half + ceiling.saturating_sub(half).mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 0..40 {
            let d = b.delay(attempt);
            let ceiling =
                (Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(20))).min(b.max);
            assert!(d <= ceiling && d >= ceiling / 2, "attempt {attempt}: {d:?}");
        }
        let samples: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(3)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
