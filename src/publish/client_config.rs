//! The librdkafka client configuration: hookgate's settings, then `[kafka.properties]`
//! passed through as written. Every property value is treated as a secret (SASL passwords,
//! JAAS lines copied from Java clients), so no error from here carries one.
//!
//! Input: [`KafkaConfig`]. Output: a [`ClientConfig`], or a refusal that names the property
//! and says what librdkafka found wrong, with every property value in it masked.

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;

use crate::config::{DeliveryMode, KafkaConfig, Secret};

/// What stands for a property value in a message.
const MASK: &str = "<redacted>";

/// The producer's and admin client's configuration for `mode`. Connects to nothing.
pub fn build(config: &KafkaConfig, mode: DeliveryMode) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", "hookgate")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", config.compression.as_str())
        .set("linger.ms", config.linger_ms_in(mode).to_string())
        .set("message.timeout.ms", config.message_timeout_ms.to_string())
        // Any record the gateway can make (the spool's largest, and an event is cut to a
        // dead letter before it grows past that), not librdkafka's 1 MB default, which a
        // large event passes before compression: refused at produce time, it would be
        // retried for ever (and stall the forwarder). The broker judges the compressed batch.
        .set("message.max.bytes", super::MESSAGE_MAX_BYTES.to_string());
    if let Some(level) = config.compression_level() {
        client.set("compression.level", level.to_string());
    }
    if let Some(n) = config.max_in_flight_in(mode) {
        client.set("max.in.flight.requests.per.connection", n.to_string());
    }
    for (key, value) in &config.properties {
        client.set(key, value.expose());
    }
    client
}

/// What librdkafka refuses in `[kafka.properties]`, one `(property, message)` per property:
/// an unknown name (a typo, a Java client's `sasl.jaas.config`), an invalid value. Checked
/// one property at a time, as librdkafka sets them, so every problem is named, not only the
/// first; nothing is connected. The messages never hold a value.
pub fn property_problems(properties: &BTreeMap<String, Secret>) -> Vec<(String, String)> {
    properties
        .iter()
        .filter_map(|(key, value)| {
            let mut one = ClientConfig::new();
            one.set(key, value.expose());
            let refused = one.create_native_config().err()?;
            Some((key.clone(), masked(&refused, properties)))
        })
        .collect()
}

/// `error`'s text with every `[kafka.properties]` value in it masked. librdkafka's own
/// config errors end with the value they refused; that part is dropped.
pub fn masked(error: &KafkaError, properties: &BTreeMap<String, Secret>) -> String {
    let text = match error {
        KafkaError::ClientConfig(_, description, _, _) => description.clone(),
        other => other.to_string(),
    };
    // Values too short to be told apart from ordinary words are left alone: "1", "all".
    properties
        .values()
        .map(Secret::expose)
        .filter(|v| v.len() >= 4)
        .fold(text, |text, value| text.replace(value, MASK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
            .collect()
    }

    #[test]
    fn a_mistyped_or_invalid_property_is_named_without_its_value() {
        let props = properties(&[
            ("sasl.pasword", "Kafka-Pa55word-SECRET"),
            (
                "sasl.jaas.config",
                "ScramLoginModule required password=\"Kafka-Pa55word-SECRET\";",
            ),
            ("security.protocol", "SASL_SSLX"),
            ("sasl.password", "Kafka-Pa55word-SECRET"),
            ("socket.timeout.ms", "30000"),
        ]);
        let problems = property_problems(&props);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["sasl.jaas.config", "sasl.pasword", "security.protocol"],
            "{problems:?}"
        );
        for (key, message) in &problems {
            assert!(!message.is_empty(), "{key}");
            assert!(!message.contains("Pa55word"), "{key}: {message}");
            assert!(!message.contains("SASL_SSLX"), "{key}: {message}");
        }
    }

    #[test]
    fn hookgate_settings_with_good_properties_make_a_native_config() {
        let toml = "brokers = \"127.0.0.1:9092\"\n[properties]\n\"sasl.password\" = \"x-secret\"\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n";
        let config: KafkaConfig = toml::from_str(toml).unwrap();
        for mode in [DeliveryMode::Spool, DeliveryMode::Direct] {
            assert!(build(&config, mode).create_native_config().is_ok());
        }
        assert!(property_problems(&config.properties).is_empty());
    }
}
