//! Declares and registers every metric family: the one place a metric name is written.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

use super::{unix_now, Metrics, MetricsError};

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
}
