//! [`RetryPolicy`]: how a bus retries failed deliveries. Every delay is a typed [`Duration`]
//! (the seed added a delay in milliseconds to a clock in seconds, so its retries fired 1000
//! times late).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Retries with exponential backoff, a cap and full jitter, then the dead-letter queue.
///
/// A delivery that fails on attempt `n` (1-based) is delivered again after a delay drawn from
/// `[0, min(cap, base * factor^(n-1))]` when `jitter` is on, or exactly that bound when it is
/// off. After `max_attempts` deliveries the message goes to the dead-letter queue.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Deliveries in total, the first included; at least 1.
    pub max_attempts: u32,
    /// The bound of the first retry's delay.
    pub base: Duration,
    /// How much the bound grows per failed attempt (1.0: a fixed delay).
    pub factor: f64,
    /// The largest delay.
    pub cap: Duration,
    /// Draw each delay at random below its bound ("full jitter"), so failures that happened
    /// together do not retry together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// The seed's policy: 3 attempts, 2 s doubling (2 s, then 4 s), capped at 5 minutes, with
    /// full jitter.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_secs(2),
            factor: 2.0,
            cap: Duration::from_secs(300),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the delay after failed attempt `attempt` (1-based).
    pub fn bound(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let seconds = self.base.as_secs_f64() * factor.powi(exponent);
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay after failed attempt `attempt`: random in `[0, bound]` with jitter, else the
    /// bound.
    pub fn delay(&self, attempt: u32) -> Duration {
        let bound = self.bound(attempt);
        if !self.jitter || bound.is_zero() {
            return bound;
        }
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(random() % nanos.saturating_add(1))
    }

    /// True when a delivery that failed on attempt `attempt` gets no further attempt.
    pub fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts.max(1)
    }
}

/// A random number from the standard library's per-hasher random keys: jitter needs spread,
/// not cryptographic quality.
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RetryPolicy;

    #[test]
    fn the_seed_defaults_wait_two_then_four_seconds_not_milliseconds() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts, 3);
        assert_eq!(policy.bound(1), Duration::from_secs(2));
        assert_eq!(policy.bound(2), Duration::from_secs(4));
        assert!(!policy.exhausted(2));
        assert!(policy.exhausted(3));
    }

    #[test]
    fn bounds_grow_by_the_factor_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            factor: 3.0,
            cap: Duration::from_secs(1),
            jitter: false,
        };
        let bounds: Vec<_> = (1..=4).map(|n| policy.bound(n)).collect();
        assert_eq!(
            bounds,
            [100, 300, 900, 1000].map(Duration::from_millis).to_vec()
        );
        assert_eq!(policy.delay(2), Duration::from_millis(300));
        assert_eq!(policy.bound(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_within_the_bound_and_spreads() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (0..200).map(|_| policy.delay(2)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)));
        assert!(delays.iter().any(|d| *d < Duration::from_secs(2)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(2)));
    }
}
