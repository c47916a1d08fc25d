//! librdkafka's global errors in the gateway's log, each kind at most once per
//! [`REPEAT_AFTER`], and its log lines with every `[kafka.properties]` value masked (they
//! are secrets; librdkafka quotes values in its configuration warnings, and prints them all
//! with `debug = "conf"`).
//!
//! While no broker answers, librdkafka reports "all brokers down" and each failed connection
//! attempt as a global error, for every client (producer, admin), several times a second: an
//! outage at startup wrote hundreds of identical error lines in ten seconds. The first of a
//! kind is logged at once; repeats within the interval are counted and the count is logged
//! with the next line of that kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

use crate::config::Secret;

/// How long repeats of one kind of error are counted rather than logged.
pub const REPEAT_AFTER: Duration = Duration::from_secs(30);

/// Kinds remembered at most (librdkafka has a few dozen error codes; past this, start over).
const KINDS: usize = 64;

/// The Kafka clients' context: global errors through [`Repeats`], log lines masked.
#[derive(Debug, Clone, Default)]
pub struct KafkaLog {
    repeats: Arc<Mutex<Repeats>>,
    /// The `[kafka.properties]` values, masked wherever librdkafka's text holds one.
    secrets: Arc<Vec<Secret>>,
}

impl KafkaLog {
    /// A context masking `secrets` in every line.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> KafkaLog {
        KafkaLog {
            repeats: Arc::default(),
            secrets: Arc::new(secrets.into_iter().collect()),
        }
    }

    fn masked(&self, text: String) -> String {
        super::client_config::mask(text, self.secrets.iter())
    }
}

impl ClientContext for KafkaLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let line = self.masked(log_message.to_owned());
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "librdkafka: {fac} {line}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "librdkafka: {fac} {line}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {fac} {line}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "librdkafka: {fac} {line}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let kind = self.masked(error.to_string());
        let reason = self.masked(reason.to_owned());
        let suppressed = match self.repeats.lock() {
            Ok(mut repeats) => repeats.admit(&kind, Instant::now()),
            Err(_) => Some(0),
        };
        if let Some(suppressed) = suppressed {
            tracing::error!(
                error = %kind,
                %reason,
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
    fn property_values_are_masked_in_librdkafka_text() {
        let log = KafkaLog::new([Secret::new("SCRAM-SHA-512"), Secret::new("CIDSECRET-42")]);
        let line = log.masked(
            "Configuration property sasl.mechanism set to SCRAM-SHA-512 but security.protocol is not configured; client.id = CIDSECRET-42".to_owned(),
        );
        assert!(
            !line.contains("SCRAM") && !line.contains("CIDSECRET"),
            "{line}"
        );
        assert!(line.contains("sasl.mechanism"), "{line}");
    }

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
