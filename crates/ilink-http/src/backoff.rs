//! Exponential backoff with jitter: the one retry delay of every crate that retries
//! (CDN uploads, sends that never left, typing cancels).

use std::time::Duration;

/// Exponential backoff with "equal jitter": before retry `n` (from 0) the ceiling is
/// `base * 2^n`, capped at `max`, and the delay is drawn uniformly from
/// `[ceiling / 2, ceiling]`. Half of the delay is always waited (so retries never bunch up
/// within a millisecond), and the random half keeps many clients that failed together from
/// retrying in lock step.
///
/// ```
/// use std::time::Duration;
/// use ilink_http::Backoff;
///
/// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(b.ceiling(0), Duration::from_millis(100));
/// assert_eq!(b.ceiling(3), Duration::from_millis(800));
/// assert_eq!(b.ceiling(9), Duration::from_secs(1));
/// let d = b.delay(1);
/// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Default for Backoff {
    /// 250 ms doubling to at most 8 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(8))
    }
}

impl Backoff {
    /// A backoff starting at `base` and doubling up to `max` (a `max` below `base` is
    /// raised to `base`).
    #[must_use]
    pub const fn new(base: Duration, max: Duration) -> Self {
        let max = if max.as_nanos() < base.as_nanos() {
            base
        } else {
            max
        };
        Self { base, max }
    }

    /// No delay at all (for tests that count attempts and want them fast).
    #[must_use]
    pub const fn none() -> Self {
        Self::new(Duration::ZERO, Duration::ZERO)
    }

    /// The first ceiling.
    #[must_use]
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The largest ceiling.
    #[must_use]
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The ceiling before retry `retry` (from 0): `base * 2^retry`, at most `max`.
    #[must_use]
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The jittered delay before retry `retry` (from 0): uniform in
    /// `[ceiling / 2, ceiling]`.
    #[must_use]
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        if spread == 0 {
            return ceiling;
        }
        half + Duration::from_nanos(random_u64() % spread.saturating_add(1))
    }

    /// Sleeps for [`Backoff::delay`]`(retry)`.
    pub async fn sleep(&self, retry: u32) {
        let d = self.delay(retry);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Jitter only needs to differ between processes; the clock does that well enough.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return u64::from(now) ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_max() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(70));
        let c: Vec<u128> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(c, vec![10, 20, 40, 70, 70, 70]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(70));
        assert_eq!(
            Backoff::new(Duration::from_secs(1), Duration::ZERO).max(),
            Duration::from_secs(1)
        );
        assert_eq!(Backoff::none().delay(5), Duration::ZERO);
    }

    #[test]
    fn delays_stay_in_the_upper_half_and_vary() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut seen = std::collections::HashSet::new();
        for retry in 0..5 {
            let ceiling = b.ceiling(retry);
            for _ in 0..50 {
                let d = b.delay(retry);
                assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
                seen.insert(d);
            }
        }
        // Jitter: 250 draws from ranges of 50 ms or more are not all the same.
        assert!(seen.len() > 10);
    }
}
