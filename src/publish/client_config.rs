//! The librdkafka client configuration: hookgate's settings, then `[kafka.properties]`
//! passed through as written. Every property value is treated as a secret (SASL passwords,
//! JAAS lines copied from Java clients), so no error from here carries one.
//!
//! Input: [`KafkaConfig`]. Output: a [`ClientConfig`], or a refusal that names the property
//! and says what librdkafka found wrong, with every property value in it masked.

use std::collections::BTreeMap;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use crate::config::{DeliveryMode, KafkaConfig, Secret};

/// What stands for a property value in a message.
const MASK: &str = "<redacted>";

/// Properties whose 0 librdkafka reads as "never": a message never given up on.
const NEVER_ZERO: &[&str] = &["message.timeout.ms", "delivery.timeout.ms"];

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
            // librdkafka reads 0 as no timeout (see `KafkaConfig::message_timeout_ms`).
            if NEVER_ZERO.contains(&key.as_str()) && as_librdkafka_reads(value.expose()) == Some(0)
            {
                return Some((
                    key.clone(),
                    "must be at least 1 (0 would mean never give up on a message)".to_owned(),
                ));
            }
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
    mask(text, properties.values())
}

/// `text` with every one of `values` in it masked. Values too short to be told apart from
/// ordinary words are left alone: "1", "all".
pub fn mask<'v>(text: String, values: impl IntoIterator<Item = &'v Secret>) -> String {
    values
        .into_iter()
        .map(Secret::expose)
        .filter(|v| v.len() >= 4)
        .fold(text, |text, value| text.replace(value, MASK))
}

/// An integer property's text as librdkafka's `strtol(…, 0)` reads it: an optional sign, then
/// hexadecimal after `0x`, octal after a leading `0`, else decimal (`"00"`, `"-0"`, `"0x0"`
/// are all 0). `None` when it is not a whole number.
fn as_librdkafka_reads(text: &str) -> Option<i64> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// What librdkafka refuses when it builds a client from the whole configuration, hookgate's
/// settings and `[kafka.properties]` together (a message timeout not above `linger.ms`, a SASL
/// mechanism it does not support, a CA file that is missing), masked. It builds a producer
/// without brokers, so nothing is connected, and drops it at once; its log lines are dropped.
pub fn client_problem(config: &KafkaConfig, mode: DeliveryMode) -> Option<String> {
    let mut client = build(config, mode);
    client.set("bootstrap.servers", "");
    match client.create_with_context::<_, BaseProducer<Silent>>(Silent) {
        Ok(_) => None,
        Err(e) => Some(masked(&e, &config.properties)),
    }
}

/// A client context that logs nothing (the trial client of [`client_problem`]).
struct Silent;

impl ClientContext for Silent {
    fn log(&self, _: RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: KafkaError, _: &str) {}
}

impl ProducerContext for Silent {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
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
    fn settings_librdkafka_refuses_together_are_found_without_connecting() {
        let load = |toml: &str| -> KafkaConfig { toml::from_str(toml).unwrap() };
        let good = load("brokers = \"127.0.0.1:9\"\n");
        assert_eq!(client_problem(&good, DeliveryMode::Spool), None);
        let short = load("brokers = \"127.0.0.1:9\"\nmessage_timeout_ms = 3\nlinger_ms = 60000\n");
        let problem = client_problem(&short, DeliveryMode::Spool).unwrap();
        assert!(problem.contains("linger.ms"), "{problem}");
        let sasl = load("brokers = \"127.0.0.1:9\"\n[properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"MECH-SECRET\"\n");
        let problem = client_problem(&sasl, DeliveryMode::Direct).unwrap();
        assert!(!problem.contains("MECH-SECRET"), "{problem}");
        for spelled in ["0", " 0", "00", "-0", "+0", "0x0", "000"] {
            let zero = properties(&[
                ("message.timeout.ms", spelled),
                ("delivery.timeout.ms", spelled),
            ]);
            assert_eq!(property_problems(&zero).len(), 2, "{spelled:?}");
        }
        assert_eq!(as_librdkafka_reads("010"), Some(8));
        assert_eq!(as_librdkafka_reads("0x1F"), Some(31));
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
