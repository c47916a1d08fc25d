//! Metrics: every metric name hookgate exports, and typed functions to record them.
//!
//! Names follow `hookgate_<noun>_<unit>[_total]`, in base units (seconds, bytes). Label values
//! come only from bounded sets: configured source names (or `unmatched`), vendor names, OCSF
//! class names, outcomes and error `code()`s. Never a raw path, event id, peer address or
//! error message. Callers record once per request or batch, not per event. The full list with
//! meanings is in `docs/operations.md`; alert rules in `deploy/prometheus/` use these names.
//! The names themselves are written once, in `metrics/register.rs`.

mod register;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramVec, IntCounterVec, IntGauge, Registry,
    TextEncoder,
};

use crate::config::Config;

/// Label for requests that matched no source.
pub const UNMATCHED: &str = "unmatched";

/// Label of the OAuth2 token endpoint's requests.
pub const TOKEN_ENDPOINT: &str = "oauth_token";

/// The registry and every metric in it. Built once in `app.rs` and shared.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    rejections: IntCounterVec,
    events: IntCounterVec,
    heartbeats: IntCounterVec,
    in_flight: IntGauge,
    last_event: GaugeVec,
    last_heartbeat: GaugeVec,
    expected_event: GaugeVec,
    expected_heartbeat: GaugeVec,
    spool_records: IntGauge,
    spool_bytes: IntGauge,
    spool_oldest_age: Gauge,
    spool_capacity: IntGauge,
    kafka_latency: Histogram,
    kafka_errors: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// What became of an event.
#[derive(Debug, Clone, Copy)]
pub enum EventOutcome {
    /// Made durable downstream (spooled or acknowledged by Kafka). Label `published`.
    Accepted,
    /// Already delivered before; not published again (a dedup hit). Label `duplicate`.
    Duplicate,
    /// Could not be normalized; written to the dead-letter output. Label `dead_lettered`.
    DeadLettered,
    /// Split from a request that then failed (e.g. the sink was down); the vendor retries.
    /// Label `rejected`.
    Rejected,
}

impl EventOutcome {
    fn label(self) -> &'static str {
        match self {
            EventOutcome::Accepted => "published",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::DeadLettered => "dead_lettered",
            EventOutcome::Rejected => "rejected",
        }
    }
}

/// What a source promises about its traffic (from `[[source]]` health fields).
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// Source name.
    pub source: &'a str,
    /// `expect_event_secs`.
    pub event_secs: Option<u64>,
    /// `expect_heartbeat_secs`.
    pub heartbeat_secs: Option<u64>,
}

/// Why the metrics could not be registered (a programming error: duplicate names).
#[derive(Debug, thiserror::Error)]
#[error("metric registration failed")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Applies a (re)loaded config: publishes each source's health expectations. Call at
    /// startup and after every reload.
    pub fn configure(&self, config: &Config) {
        let expectations: Vec<Expectation<'_>> = config
            .sources
            .iter()
            .map(|s| Expectation {
                source: &s.name,
                event_secs: s.expect_event_secs,
                heartbeat_secs: s.expect_heartbeat_secs,
            })
            .collect();
        self.configure_sources(&expectations);
    }

    /// Publishes the configured expectations (a removed source's expectation disappears, so
    /// its silence alert stops).
    pub fn configure_sources(&self, expectations: &[Expectation<'_>]) {
        self.expected_event.reset();
        self.expected_heartbeat.reset();
        for e in expectations {
            if let Some(secs) = e.event_secs {
                self.expected_event
                    .with_label_values(&[e.source])
                    .set(secs as f64);
            }
            if let Some(secs) = e.heartbeat_secs {
                self.expected_heartbeat
                    .with_label_values(&[e.source])
                    .set(secs as f64);
            }
        }
    }

    /// Records one finished request.
    pub fn request(&self, source: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[source, status_label(status)])
            .inc();
        self.request_duration
            .with_label_values(&[source])
            .observe(elapsed.as_secs_f64());
    }

    /// Records a rejection by the refusing stage and its bounded reason code.
    pub fn rejection(&self, source: &str, stage: &'static str, reason: &'static str) {
        self.rejections
            .with_label_values(&[source, stage, reason])
            .inc();
    }

    /// Records `count` events of one class and outcome. For [`EventOutcome::Accepted`] it also
    /// moves the source's last-event timestamp to now.
    pub fn events(
        &self,
        source: &str,
        vendor: &str,
        class: &str,
        outcome: EventOutcome,
        count: u64,
    ) {
        if count > 0 {
            self.events
                .with_label_values(&[source, vendor, class, outcome.label()])
                .inc_by(count);
            if matches!(outcome, EventOutcome::Accepted) {
                self.last_event.with_label_values(&[source]).set(unix_now());
            }
        }
    }

    /// Records one durable batch: its published events (one OCSF class name per event,
    /// grouped here), its duplicates (dedup hits) and its dead letters. Once per request.
    pub fn batch(
        &self,
        source: &str,
        vendor: &str,
        classes: &[&'static str],
        duplicates: usize,
        dead_lettered: u64,
    ) {
        self.published(source, vendor, classes);
        let duplicates = u64::try_from(duplicates).unwrap_or(u64::MAX);
        self.events(source, vendor, "none", EventOutcome::Duplicate, duplicates);
        self.events(
            source,
            vendor,
            "none",
            EventOutcome::DeadLettered,
            dead_lettered,
        );
    }

    fn published(&self, source: &str, vendor: &str, classes: &[&'static str]) {
        let mut by_class: Vec<(&'static str, u64)> = Vec::new();
        for class in classes {
            match by_class.iter_mut().find(|(c, _)| c == class) {
                Some((_, n)) => *n += 1,
                None => by_class.push((class, 1)),
            }
        }
        for (class, n) in by_class {
            self.events(source, vendor, class, EventOutcome::Accepted, n);
        }
    }

    /// Records a vendor heartbeat (Hyperproof's daily call): counted, timestamped, no event.
    pub fn heartbeat(&self, source: &str) {
        self.heartbeats.with_label_values(&[source]).inc();
        self.last_heartbeat
            .with_label_values(&[source])
            .set(unix_now());
    }

    /// Marks a request started; the guard marks it finished when dropped.
    pub fn in_flight(&self) -> InFlightGuard {
        self.in_flight.inc();
        InFlightGuard(self.in_flight.clone())
    }

    /// Sets the spool gauges (call from the spool after each append or acknowledgement batch):
    /// records not yet acknowledged, bytes on disk, and the age of the oldest such record
    /// (`Duration::ZERO` when empty).
    pub fn spool_gauge(&self, records: u64, bytes: u64, oldest_age: Duration) {
        self.spool_records
            .set(i64::try_from(records).unwrap_or(i64::MAX));
        self.spool_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.spool_oldest_age.set(oldest_age.as_secs_f64());
    }

    /// Sets the spool's configured capacity in bytes (call once when the spool opens), so
    /// alerts can compare `hookgate_spool_bytes` against it.
    pub fn spool_capacity(&self, max_bytes: u64) {
        self.spool_capacity
            .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
    }

    /// Records one Kafka delivery report (or one batch's, once): `Ok(())` observes `latency`
    /// in the delivery histogram; `Err(code)` counts an error with that bounded reason code
    /// (e.g. `PublishError::code()`).
    pub fn kafka_delivery(&self, latency: Duration, result: Result<(), &'static str>) {
        match result {
            Ok(()) => self.kafka_latency.observe(latency.as_secs_f64()),
            Err(reason) => self.kafka_errors.with_label_values(&[reason]).inc(),
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Seconds since the Unix epoch, as Prometheus timestamps are written.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Decrements the in-flight gauge on drop.
#[derive(Debug)]
pub struct InFlightGuard(IntGauge);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        202 => "202",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        429 => "429",
        // Not sent: the sender went away before the answer.
        499 => "499",
        500 => "500",
        // The client's doing (a transfer coding it chose), kept apart from the gateway's 5xx.
        501 => "501",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests;
