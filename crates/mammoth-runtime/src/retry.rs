//! [`RetryPolicy`]: bounded retries with exponential backoff, full jitter and a cap, all as
//! typed [`Duration`]s (the seed added milliseconds to a seconds clock).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How often and how patiently to retry.
///
/// Attempt `n` (1-based) that fails waits a random time in `[0, min(cap, base * factor^(n-1))]`
/// ("full jitter") before attempt `n + 1`; after `max_attempts` attempts the error is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first; 1 means no retry.
    pub max_attempts: u32,
    /// The first backoff's upper bound.
    pub base: Duration,
    /// How much the bound grows per attempt.
    pub factor: u32,
    /// The largest bound.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, backoff from 0.5 ms doubling to at most 50 ms: conflicts on one aggregate
    /// clear in well under a second.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base: Duration::from_micros(500),
            factor: 2,
            cap: Duration::from_millis(50),
        }
    }
}

impl RetryPolicy {
    /// No retry: one attempt.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The default backoff with `max_attempts` attempts (at least 1).
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// The upper bound of the wait after failed attempt `attempt` (1-based).
    pub fn bound(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        let growth = self.factor.max(1).saturating_pow(exponent);
        self.base.saturating_mul(growth).min(self.cap)
    }

    /// A random wait in `[0, bound(attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let bound = self.bound(attempt).as_nanos() as u64;
        if bound == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(next_random() % (bound + 1))
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new({
        // A per-thread random seed from the standard library's hasher keys.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        hasher.finish() | 1
    });
}

/// xorshift64*: jitter needs spread, not cryptographic quality.
fn next_random() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}
