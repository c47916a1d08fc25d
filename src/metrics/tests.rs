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
