//! Metrics: every metric name hookgate exports, and typed functions to record them.
//!
//! Names follow `hookgate_<noun>_<unit>[_total]`. Label values come only from bounded sets:
//! configured source names (or `unmatched`), vendor names, OCSF class names, outcomes and
//! error `code()`s. Never a raw path, event id, peer address or error message.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
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
    in_flight: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// What became of an event.
#[derive(Debug, Clone, Copy)]
pub enum EventOutcome {
    /// Made durable downstream.
    Accepted,
    /// Already delivered before; not published again.
    Duplicate,
    /// Could not be normalized; written to the dead-letter output.
    DeadLettered,
}

impl EventOutcome {
    fn label(self) -> &'static str {
        match self {
            EventOutcome::Accepted => "accepted",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Why the metrics could not be registered (a programming error: duplicate names).
#[derive(Debug, thiserror::Error)]
#[error("metric registration failed")]
pub struct MetricsError(#[from] prometheus::Error);

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
                "Rejected requests, by source and reason",
            ),
            &["source", "reason"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "hookgate_events_total",
                "Vendor events, by source, vendor, OCSF class and outcome",
            ),
            &["source", "vendor", "class", "outcome"],
        )?;
        let in_flight = IntGauge::new("hookgate_requests_in_flight", "Requests being processed")?;
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
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(build_info))?;
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            rejections,
            events,
            in_flight,
        })
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

    /// Records a rejection by its bounded reason code.
    pub fn rejection(&self, source: &str, reason: &'static str) {
        self.rejections.with_label_values(&[source, reason]).inc();
    }

    /// Records `count` events of one class and outcome.
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
        }
    }

    /// Marks a request started; the guard marks it finished when dropped.
    pub fn in_flight(&self) -> InFlightGuard {
        self.in_flight.inc();
        InFlightGuard(self.in_flight.clone())
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
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
