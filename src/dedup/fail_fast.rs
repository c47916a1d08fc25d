//! While Redis is failing, requests are refused at once instead of each waiting out a call's
//! 2 s bound (the client reconnecting meanwhile): after a failed call, one request every
//! [`RETRY_EVERY`] tries Redis, the others get [`super::DedupError::RedisDown`] (503, retried
//! by the vendor). The first call that succeeds opens the way again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a request tries Redis while it is failing.
pub const RETRY_EVERY: Duration = Duration::from_millis(500);

/// How long a trying request holds the turn: a call's bound, so one that never returns does
/// not keep every other request away.
const TURN: Duration = Duration::from_secs(2);

/// The gate, shared by every request of a store.
#[derive(Debug)]
pub struct FailFast {
    start: Instant,
    /// Milliseconds from `start` before which no request tries Redis; 0 while it works.
    next_try_ms: AtomicU64,
}

impl Default for FailFast {
    fn default() -> FailFast {
        FailFast {
            start: Instant::now(),
            next_try_ms: AtomicU64::new(0),
        }
    }
}

impl FailFast {
    fn now_ms(&self) -> u64 {
        // At least 1: 0 means "working".
        u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX / 2)
            .max(1)
    }

    /// True when this request may call Redis: it works, or it is this request's turn to try.
    pub fn may_try(&self) -> bool {
        let next = self.next_try_ms.load(Ordering::Relaxed);
        if next == 0 {
            return true;
        }
        let now = self.now_ms();
        let turn = u64::try_from(TURN.as_millis()).unwrap_or(u64::MAX / 2);
        now >= next
            && self
                .next_try_ms
                .compare_exchange(next, now + turn, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Records a failed call: the next try comes after [`RETRY_EVERY`].
    pub fn failed(&self) {
        let wait = u64::try_from(RETRY_EVERY.as_millis()).unwrap_or(500);
        self.next_try_ms
            .store(self.now_ms() + wait, Ordering::Relaxed);
    }

    /// Records a call that worked: every request may call again.
    pub fn worked(&self) {
        if self.next_try_ms.load(Ordering::Relaxed) != 0 {
            self.next_try_ms.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_failure_one_request_at_a_time_tries_again() {
        let gate = FailFast::default();
        assert!(gate.may_try() && gate.may_try(), "open while Redis works");
        gate.failed();
        assert!(!gate.may_try(), "refused at once after a failure");
        std::thread::sleep(RETRY_EVERY + Duration::from_millis(20));
        assert!(gate.may_try(), "one request tries after the wait");
        assert!(!gate.may_try(), "only one");
        gate.worked();
        assert!(
            gate.may_try() && gate.may_try(),
            "open again once a call worked"
        );
    }
}
