//! librdkafka's global errors in the gateway's log, each kind at most once per
//! [`REPEAT_AFTER`].
//!
//! While no broker answers, librdkafka reports "all brokers down" and each failed connection
//! attempt as a global error, for every client (producer, admin), several times a second: an
//! outage at startup wrote hundreds of identical error lines in ten seconds. The first of a
//! kind is logged at once; repeats within the interval are counted and the count is logged
//! with the next line of that kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

/// How long repeats of one kind of error are counted rather than logged.
pub const REPEAT_AFTER: Duration = Duration::from_secs(30);

/// Kinds remembered at most (librdkafka has a few dozen error codes; past this, start over).
const KINDS: usize = 64;

/// The Kafka clients' context: global errors through [`Repeats`].
#[derive(Debug, Clone, Default)]
pub struct KafkaLog {
    repeats: Arc<Mutex<Repeats>>,
}

impl ClientContext for KafkaLog {
    fn error(&self, error: KafkaError, reason: &str) {
        let kind = error.to_string();
        let suppressed = match self.repeats.lock() {
            Ok(mut repeats) => repeats.admit(&kind, Instant::now()),
            Err(_) => Some(0),
        };
        if let Some(suppressed) = suppressed {
            tracing::error!(
                error = %kind,
                reason,
                suppressed,
                "librdkafka error (its repeats in the next 30 s are counted, not logged)"
            );
        }
    }
}

/// When each kind of error was last logged, and how many repeats were not.
#[derive(Debug, Default)]
pub struct Repeats {
    kinds: HashMap<String, (Instant, u64)>,
}

impl Repeats {
    /// `Some(repeats not logged since the last line)` when `kind` is to be logged at `now`,
    /// `None` when it is a repeat within [`REPEAT_AFTER`] (counted).
    pub fn admit(&mut self, kind: &str, now: Instant) -> Option<u64> {
        if let Some((logged, suppressed)) = self.kinds.get_mut(kind) {
            if now.duration_since(*logged) < REPEAT_AFTER {
                *suppressed += 1;
                return None;
            }
            let count = *suppressed;
            *logged = now;
            *suppressed = 0;
            return Some(count);
        }
        if self.kinds.len() >= KINDS {
            self.kinds.clear();
        }
        self.kinds.insert(kind.to_owned(), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_logged_once_per_interval_with_the_repeats_counted() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.admit("AllBrokersDown", t0), Some(0));
        for i in 1..=5 {
            assert_eq!(
                r.admit("AllBrokersDown", t0 + Duration::from_millis(i)),
                None
            );
        }
        // Another kind is not held back by the first.
        assert_eq!(r.admit("Transport", t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(r.admit("AllBrokersDown", t0 + REPEAT_AFTER), Some(5));
        assert_eq!(
            r.admit("AllBrokersDown", t0 + REPEAT_AFTER + Duration::from_secs(1)),
            None
        );
    }
}
