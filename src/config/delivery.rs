//! `[delivery]`: when a request is acknowledged.

use serde::Deserialize;

/// When hookgate answers 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// 2xx once the events are appended to the local spool and fsynced; a background
    /// forwarder publishes them. Keeps accepting while Kafka is down (until the spool is full).
    Spool,
    /// 2xx once Kafka acknowledged every event (or the JSON-lines file is synced). During a
    /// Kafka outage a request waits for the acknowledgement up to `kafka.message_timeout_ms`
    /// (it is answered 200 if Kafka is back by then), then gets 503 + `Retry-After`.
    Direct,
}

/// `[delivery]`: how durable a 2xx is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// `"spool"` or `"direct"`. Default: `"spool"` when `[kafka]` is configured, `"direct"`
    /// otherwise (the JSON-lines file is already synced before each answer, so a spool in front
    /// of it adds nothing). Example: `mode = "direct"`.
    #[serde(default)]
    pub mode: Option<DeliveryMode>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, DeliveryMode};

    const SOURCE: &str = r#"
[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = [{ kind = "hmac", secrets = ["whsec_test"] }]
"#;

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml(
            &format!("{extra}\n{SOURCE}"),
            Path::new("t.toml"),
            &["hyprwatch".to_owned()],
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn mode_defaults_to_direct_without_kafka_and_spool_with_it() {
        assert_eq!(load("").unwrap().delivery_mode(), DeliveryMode::Direct);
        let c = load("[kafka]\nbrokers = \"k:9092\"\n").unwrap();
        assert_eq!(c.delivery_mode(), DeliveryMode::Spool);
        assert_eq!(c.dedup.window_s, None, "each parser's window applies");
        let c = load("[delivery]\nmode = \"direct\"\n[kafka]\nbrokers = \"k:9092\"\n").unwrap();
        assert_eq!(c.delivery_mode(), DeliveryMode::Direct);
    }

    #[test]
    fn the_producer_sends_at_once_in_direct_mode_and_lingers_in_spool_mode() {
        let c = load("[kafka]\nbrokers = \"k:9092\"\n").unwrap();
        let kafka = c.kafka.unwrap();
        assert_eq!(kafka.linger_ms_in(DeliveryMode::Direct), 0);
        assert_eq!(kafka.max_in_flight_in(DeliveryMode::Direct), Some(1));
        assert_eq!(kafka.linger_ms_in(DeliveryMode::Spool), 5);
        assert_eq!(kafka.max_in_flight_in(DeliveryMode::Spool), None);
        assert_eq!(
            kafka.compression_level(),
            Some(1),
            "zstd at its cheapest level"
        );
        let c = load("[kafka]\nbrokers = \"k:9092\"\nlinger_ms = 20\n").unwrap();
        let kafka = c.kafka.unwrap();
        assert_eq!(kafka.linger_ms_in(DeliveryMode::Direct), 20);
        assert_eq!(kafka.linger_ms_in(DeliveryMode::Spool), 20);
        let c = load("[kafka]\nbrokers = \"k:9092\"\ncompression = \"lz4\"\n").unwrap();
        assert_eq!(c.kafka.unwrap().compression_level(), None);
    }

    #[test]
    fn every_delivery_problem_is_reported_with_its_key() {
        let err = load(
            r#"
[kafka]
brokers = " "
topic = "ocsf.{tenant}"
dead_letter_topic = "dead letters"
topic_partitions = 0
topic_replication = 0
[limits]
max_decompressed_bytes = 33554432
[spool]
segment_bytes = 100
max_bytes = 150
ready_below_percent = 0
forward_wait_ms = 60000
[dedup]
backend = "redis"
window_s = 0
max_entries = 0
"#,
        )
        .unwrap_err();
        for key in [
            "kafka.brokers",
            "kafka.topic",
            "kafka.dead_letter_topic",
            "kafka.topic_partitions",
            "kafka.topic_replication",
            "spool.segment_bytes",
            "spool.max_bytes",
            "spool.ready_below_percent",
            "spool.forward_wait_ms",
            "limits.max_decompressed_bytes",
            "dedup.redis_url",
            "dedup.window_s",
            "dedup.max_entries",
        ] {
            assert!(err.contains(key), "missing {key} in {err}");
        }
    }

    /// `window_s` replaces every parser's window, so it must outlast an `hmac` check's age
    /// limit: otherwise a replay younger than the limit, sent after the window, is published
    /// again (outside re-check).
    #[test]
    fn a_window_shorter_than_an_hmac_age_limit_is_refused() {
        let aged = |window: u64| {
            Config::from_toml(
                &format!(
                    "[dedup]\nwindow_s = {window}\n[[source]]\nname = \"hw\"\nvendor = \"hyprwatch\"\npath = \"/h\"\nauth = [{{ kind = \"hmac\", secrets = [\"0123456789abcdef\"], max_age_s = 21600 }}]\n"
                ),
                Path::new("t.toml"),
                &["hyprwatch".to_owned()],
            )
            .map_err(|e| e.to_string())
        };
        let err = aged(7200).unwrap_err();
        assert!(
            err.contains("source[hw].auth[0].max_age_s") && err.contains("25200"),
            "{err}"
        );
        assert!(aged(25200).is_ok());
    }

    #[test]
    fn a_window_past_ten_years_is_refused() {
        let err = load("[dedup]\nwindow_s = 9223372036854775807\n").unwrap_err();
        assert!(err.contains("dedup.window_s"), "{err}");
        assert!(load("[dedup]\nwindow_s = 315360000\n").is_ok());
    }

    /// A huge reservation lifetime would overflow the Redis settler's clock (a panic).
    #[test]
    fn a_reservation_ttl_past_a_day_is_refused() {
        let err = load("[dedup]\nreservation_ttl_s = 9223372036854775807\n").unwrap_err();
        assert!(err.contains("dedup.reservation_ttl_s"), "{err}");
        assert!(load("[dedup]\nreservation_ttl_s = 0\n").is_err());
        assert!(load("[dedup]\nreservation_ttl_s = 86400\n").is_ok());
    }

    #[test]
    fn kafka_properties_are_secrets_and_unknown_keys_are_refused() {
        let c =
            load("[kafka]\nbrokers = \"k:9092\"\n[kafka.properties]\n\"sasl.password\" = \"pw\"\n")
                .unwrap();
        let kafka = c.kafka.unwrap();
        assert!(!format!("{kafka:?}").contains("pw"));
        assert!(load("[kafka]\nbrokers = \"k\"\nbroker = \"x\"\n").is_err());
        assert!(load("[kafka]\nbrokers = \"k\"\ncompression = \"brotli\"\n").is_err());
    }

    /// What librdkafka would refuse at startup is a config problem `check` names, by key,
    /// without the value (a typo under a password, a Java client's JAAS line).
    #[test]
    fn kafka_properties_librdkafka_refuses_are_named_without_their_values() {
        let e = load("[kafka]\nbrokers = \"k:9092\"\n[kafka.properties]\n\"sasl.pasword\" = \"Pa55-SECRET\"\n\"security.protocol\" = \"SASL_SSLX\"\n\"sasl.password\" = \"Pa55-SECRET\"\n")
            .unwrap_err();
        assert!(e.contains("2 problem(s)"), "{e}");
        assert!(e.contains("kafka.properties.\"sasl.pasword\""), "{e}");
        assert!(e.contains("kafka.properties.\"security.protocol\""), "{e}");
        assert!(!e.contains("Pa55") && !e.contains("SASL_SSLX"), "{e}");
    }

    /// TOML reads an unquoted dotted name as nested tables: the refusal says to quote it.
    #[test]
    fn an_unquoted_dotted_property_name_is_refused_with_the_way_out() {
        let e = load("[kafka]\nbrokers = \"k:9092\"\n[kafka.properties]\nsecurity.protocol = \"PLAINTEXT\"\n")
            .unwrap_err();
        assert!(
            e.contains("put a librdkafka name with dots in quotes"),
            "{e}"
        );
        assert!(load("[kafka]\nbrokers = \"k:9092\"\n[kafka.properties]\n\"security.protocol\" = \"PLAINTEXT\"\n").is_ok());
    }

    /// librdkafka reads 0 as no timeout: a message answered 503 would be sent later all the
    /// same, and the vendor's retry with it.
    #[test]
    fn a_zero_message_timeout_is_refused() {
        let e = load("[kafka]\nbrokers = \"k:9092\"\nmessage_timeout_ms = 0\n").unwrap_err();
        assert!(e.contains("kafka.message_timeout_ms"), "{e}");
        assert!(load("[kafka]\nbrokers = \"k:9092\"\nmessage_timeout_ms = 1000\n").is_ok());
        // And librdkafka wants it above linger.ms (5 in spool mode).
        let e = load("[kafka]\nbrokers = \"k:9092\"\nmessage_timeout_ms = 3\n").unwrap_err();
        assert!(
            e.contains("kafka: librdkafka refuses these settings together"),
            "{e}"
        );
    }
}
