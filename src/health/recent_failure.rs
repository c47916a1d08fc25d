//! Whether a component failed recently, for the readiness probe: a write to the JSON-lines
//! sink or the spool, a call to Redis. Failed within [`NOT_READY_AFTER_FAILURE`] with no
//! success since → not ready, so a load balancer sends the vendor's retries elsewhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a failure keeps readiness false when no success follows it.
pub const NOT_READY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// When the component last failed, shared between its workers and the readiness probe.
#[derive(Debug)]
pub struct RecentFailure {
    /// The clock's origin.
    start: Instant,
    /// Milliseconds from `start` to the last failure; [`RecentFailure::OK`] after a success.
    failed_at_ms: AtomicU64,
}

impl Default for RecentFailure {
    fn default() -> RecentFailure {
        RecentFailure::new()
    }
}

impl RecentFailure {
    const OK: u64 = u64::MAX;

    /// No failure yet.
    pub fn new() -> RecentFailure {
        RecentFailure {
            start: Instant::now(),
            failed_at_ms: AtomicU64::new(RecentFailure::OK),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(RecentFailure::OK - 1)
    }

    /// Records an outcome: a success clears any failure.
    pub fn record(&self, ok: bool) {
        let value = if ok { RecentFailure::OK } else { self.now_ms() };
        self.failed_at_ms.store(value, Ordering::Relaxed);
    }

    /// False within [`NOT_READY_AFTER_FAILURE`] of a failure not followed by a success.
    pub fn is_healthy(&self) -> bool {
        let failed = self.failed_at_ms.load(Ordering::Relaxed);
        let window = u64::try_from(NOT_READY_AFTER_FAILURE.as_millis()).unwrap_or(u64::MAX);
        failed == RecentFailure::OK || self.now_ms().saturating_sub(failed) >= window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_unhealthy_until_a_success() {
        let r = RecentFailure::new();
        assert!(r.is_healthy());
        r.record(false);
        assert!(!r.is_healthy());
        r.record(true);
        assert!(r.is_healthy());
        // A failure older than the window no longer counts; one just inside it does.
        let earlier = RecentFailure {
            start: Instant::now() - NOT_READY_AFTER_FAILURE * 2,
            failed_at_ms: AtomicU64::new(0),
        };
        assert!(earlier.is_healthy());
        let window_ms = NOT_READY_AFTER_FAILURE.as_millis() as u64;
        earlier
            .failed_at_ms
            .store(window_ms + 1_000, Ordering::Relaxed);
        assert!(!earlier.is_healthy());
    }
}
