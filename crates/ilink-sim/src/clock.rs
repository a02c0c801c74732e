//! The emulator's clock: real time plus an offset that tests can advance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds that tests can move forward without sleeping.
#[derive(Debug)]
pub(crate) struct Clock {
    start_ms: u64,
    start: Instant,
    offset_ms: AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            start_ms,
            start: Instant::now(),
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Epoch milliseconds as the emulated server sees them.
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.start_ms
            .saturating_add(elapsed)
            .saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn advance_ms(&self, ms: u64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let c = Clock::new();
        let before = c.now_ms();
        c.advance_ms(86_400_000);
        assert!(c.now_ms() >= before + 86_400_000);
    }
}
