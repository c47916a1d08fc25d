//! Metrics: every metric name hookgate exports, and typed functions to record them.
//!
//! Names follow `hookgate_<noun>_<unit>[_total]`, in base units (seconds, bytes). Label values
//! come only from bounded sets: configured source names (or `unmatched`), vendor names, OCSF
//! class names, outcomes and error `code()`s. Never a raw path, event id, peer address or
//! error message. Callers record once per request or batch, not per event. The full list with
//! meanings is in `docs/operations.md`; alert rules in `deploy/prometheus/` use these names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label for requests that matched no source.
pub const UNMATCHED: &str = "unmatched";

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

fn gauge_vec(name: &str, help: &str) -> Result<GaugeVec, prometheus::Error> {
    GaugeVec::new(Opts::new(name, help), &["source"])
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "hookgate_requests_total",
                "HTTP requests on the public port, by source and status code",
            ),
            &["source", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "hookgate_request_duration_seconds",
                "Time from request head to response, by source",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                15.0,
            ]),
            &["source"],
        )?;
        let rejections = IntCounterVec::new(
            Opts::new(
                "hookgate_rejections_total",
                "Rejected requests, by source, refusing stage and reason code",
            ),
            &["source", "stage", "reason"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "hookgate_events_total",
                "Vendor events, by source, vendor, OCSF class and outcome",
            ),
            &["source", "vendor", "class", "outcome"],
        )?;
        let heartbeats = IntCounterVec::new(
            Opts::new(
                "hookgate_heartbeats_total",
                "Vendor health calls answered without producing an event, by source",
            ),
            &["source"],
        )?;
        let in_flight = IntGauge::new("hookgate_requests_in_flight", "Requests being processed")?;
        let last_event = gauge_vec(
            "hookgate_source_last_event_timestamp_seconds",
            "Unix time of the last event made durable, by source; absent until the first",
        )?;
        let last_heartbeat = gauge_vec(
            "hookgate_source_last_heartbeat_timestamp_seconds",
            "Unix time of the last vendor heartbeat, by source; absent until the first",
        )?;
        let expected_event = gauge_vec(
            "hookgate_source_expected_event_interval_seconds",
            "Configured expect_event_secs, by source (only sources that set it)",
        )?;
        let expected_heartbeat = gauge_vec(
            "hookgate_source_expected_heartbeat_interval_seconds",
            "Configured expect_heartbeat_secs, by source (only sources that set it)",
        )?;
        let start_time = Gauge::new(
            "hookgate_start_time_seconds",
            "Unix time this process started",
        )?;
        start_time.set(unix_now());
        let spool_records = IntGauge::new(
            "hookgate_spool_records",
            "Records in the local spool not yet acknowledged by Kafka",
        )?;
        let spool_bytes = IntGauge::new(
            "hookgate_spool_bytes",
            "Bytes on disk used by the local spool",
        )?;
        let spool_oldest_age = Gauge::new(
            "hookgate_spool_oldest_record_age_seconds",
            "Age of the oldest record in the spool not yet acknowledged by Kafka; 0 when empty",
        )?;
        let spool_capacity = IntGauge::new(
            "hookgate_spool_capacity_bytes",
            "Configured largest spool size on disk (spool max bytes)",
        )?;
        let kafka_latency = Histogram::with_opts(
            HistogramOpts::new(
                "hookgate_kafka_delivery_duration_seconds",
                "Time from produce to Kafka acknowledgement, successful deliveries only",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        let kafka_errors = IntCounterVec::new(
            Opts::new(
                "hookgate_kafka_delivery_errors_total",
                "Kafka deliveries that failed, by reason code",
            ),
            &["reason"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "hookgate_build_info",
                "Build information; the value is always 1",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(rejections.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(heartbeats.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(last_event.clone()))?;
        registry.register(Box::new(last_heartbeat.clone()))?;
        registry.register(Box::new(expected_event.clone()))?;
        registry.register(Box::new(expected_heartbeat.clone()))?;
        registry.register(Box::new(start_time))?;
        registry.register(Box::new(spool_records.clone()))?;
        registry.register(Box::new(spool_bytes.clone()))?;
        registry.register(Box::new(spool_oldest_age.clone()))?;
        registry.register(Box::new(spool_capacity.clone()))?;
        registry.register(Box::new(kafka_latency.clone()))?;
        registry.register(Box::new(kafka_errors.clone()))?;
        registry.register(Box::new(build_info))?;
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            rejections,
            events,
            heartbeats,
            in_flight,
            last_event,
            last_heartbeat,
            expected_event,
            expected_heartbeat,
            spool_records,
            spool_bytes,
            spool_oldest_age,
            spool_capacity,
            kafka_latency,
            kafka_errors,
        })
    }

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
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_sets_timestamp_without_counting_an_event() {
        let m = Metrics::new().unwrap();
        m.heartbeat("hp");
        let text = m.render();
        assert!(
            text.contains("hookgate_heartbeats_total{source=\"hp\"} 1"),
            "{text}"
        );
        assert!(text.contains("hookgate_source_last_heartbeat_timestamp_seconds{source=\"hp\"}"));
        assert!(!text.contains("hookgate_events_total{"), "{text}");
    }

    #[test]
    fn only_published_events_move_the_last_event_timestamp() {
        let m = Metrics::new().unwrap();
        m.events("a", "v", "none", EventOutcome::Duplicate, 2);
        assert!(!m
            .render()
            .contains("last_event_timestamp_seconds{source=\"a\"}"));
        m.events("a", "v", "Base Event", EventOutcome::Accepted, 1);
        let text = m.render();
        assert!(
            text.contains("last_event_timestamp_seconds{source=\"a\"}"),
            "{text}"
        );
        assert!(text.contains("outcome=\"published\""), "{text}");
    }

    #[test]
    fn a_batch_is_counted_per_class_and_outcome() {
        let m = Metrics::new().unwrap();
        m.batch("s", "v", &["Base Event", "Base Event", "Other"], 2, 1);
        let text = m.render();
        for line in [
            "class=\"Base Event\",outcome=\"published\",source=\"s\",vendor=\"v\"} 2",
            "class=\"Other\",outcome=\"published\",source=\"s\",vendor=\"v\"} 1",
            "class=\"none\",outcome=\"duplicate\",source=\"s\",vendor=\"v\"} 2",
            "class=\"none\",outcome=\"dead_lettered\",source=\"s\",vendor=\"v\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in {text}");
        }
    }

    #[test]
    fn spool_and_kafka_functions_feed_their_series() {
        let m = Metrics::new().unwrap();
        m.spool_gauge(3, 4096, Duration::from_secs(7));
        m.spool_capacity(1 << 20);
        m.kafka_delivery(Duration::from_millis(12), Ok(()));
        m.kafka_delivery(Duration::from_millis(12), Err("broker_down"));
        let text = m.render();
        assert!(text.contains("hookgate_spool_records 3"), "{text}");
        assert!(text.contains("hookgate_spool_bytes 4096"), "{text}");
        assert!(
            text.contains("hookgate_spool_capacity_bytes 1048576"),
            "{text}"
        );
        assert!(
            text.contains("hookgate_spool_oldest_record_age_seconds 7"),
            "{text}"
        );
        assert!(
            text.contains("hookgate_kafka_delivery_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("hookgate_kafka_delivery_errors_total{reason=\"broker_down\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn reconfiguring_drops_expectations_of_removed_sources() {
        let m = Metrics::new().unwrap();
        let old = Expectation {
            source: "old",
            event_secs: Some(60),
            heartbeat_secs: None,
        };
        m.configure_sources(&[old]);
        assert!(m
            .render()
            .contains("expected_event_interval_seconds{source=\"old\"} 60"));
        let new = Expectation {
            source: "new",
            event_secs: None,
            heartbeat_secs: Some(90000),
        };
        m.configure_sources(&[new]);
        let text = m.render();
        assert!(!text.contains("source=\"old\""), "{text}");
        assert!(text.contains("expected_heartbeat_interval_seconds{source=\"new\"} 90000"));
    }
}
