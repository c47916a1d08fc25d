//! `[kafka]`: the Kafka cluster events are published to.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{DeliveryMode, Secret};

/// Compression codec for produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4: cheapest CPU.
    Lz4,
    /// Zstandard: best ratio for JSON.
    Zstd,
}

impl Compression {
    /// librdkafka's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `[kafka]`: absent = no Kafka; events go to the JSON-lines `[sink]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`. Required. Example:
    /// `"kafka-1:9092,kafka-2:9092"`.
    pub brokers: String,
    /// Topic for OCSF events: a name or a template over `{source}`, `{vendor}`, `{class_uid}`
    /// and `{class}` (class name in lowercase, spaces as `_`). Default `"ocsf.{vendor}"`.
    /// Example: `"ocsf.{class}"`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Topic for events that could not be parsed or mapped: raw bytes as the value, the reason
    /// in headers. Same template fields except the class ones (`{class}` or `{class_uid}` here
    /// is a config error: a dead letter has no class). Default `"hookgate.dead-letter"`.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// `"zstd"`, `"lz4"`, `"gzip"`, `"snappy"` or `"none"`. Default `"zstd"`, at level 1: on
    /// the fixtures' OCSF events it keeps 97 % of level 3's saving (9.5× against 9.9×) and
    /// cost 9–13 % less gateway CPU per request in direct mode (BENCHMARKS.md). Set
    /// `"compression.level"` in `[kafka.properties]` for another level.
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// How long the producer waits to fill a batch, in milliseconds. Default: 0 in direct mode
    /// (every request waits for its acknowledgement, so a batch is sent at once and the next
    /// one fills while it is in flight: batches grow with load, not with a timer), 5 in spool
    /// mode (no request waits on the forwarder). Example: `20` for fewer, larger batches.
    #[serde(default)]
    pub linger_ms: Option<u32>,
    /// How long one message may wait for Kafka's acknowledgement before it counts as failed,
    /// in milliseconds (direct mode answers 503; the spool forwarder retries it). A direct-mode
    /// request waits no longer than this plus a second, a new topic's metadata included. More
    /// than `linger_ms` (librdkafka's rule; 0 it reads as never). Default 30000.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u32,
    /// Create missing topics at startup and on first use. When false, hookgate only checks
    /// that they exist, and in spool mode a missing one stops the forwarder until it is
    /// created, every source's records waiting behind it (docs/delivery.md, Known limits).
    /// Default true.
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Partitions for topics hookgate creates. Default 3.
    #[serde(default = "default_topic_partitions")]
    pub topic_partitions: i32,
    /// Replication factor for topics hookgate creates; `-1` = the broker's default. Default 1
    /// (suits a single broker; use 3 on a production cluster).
    #[serde(default = "default_topic_replication")]
    pub topic_replication: i32,
    /// Extra librdkafka properties passed through verbatim, e.g. `"security.protocol" =
    /// "SASL_SSL"`, `"sasl.mechanism" = "SCRAM-SHA-512"`, `"sasl.password" = "${KAFKA_PASSWORD}"`.
    /// Values are secrets (`"${ENV}"` or `{ file = ".." }` work) and are never logged. They are
    /// applied after hookgate's own settings, so they can override them. A name or value
    /// librdkafka refuses (a typo, a Java client's `sasl.jaas.config`), or settings it refuses
    /// together (a SASL mechanism it lacks, a missing CA file), is a config problem `check`
    /// reports (by property where it can), never showing a value; librdkafka's own log lines
    /// are masked too. `message.timeout.ms` and `delivery.timeout.ms` may not be 0. Default:
    /// none.
    #[serde(default)]
    pub properties: BTreeMap<String, Secret>,
}

impl KafkaConfig {
    /// `linger.ms` for the producer in `mode` (see [`KafkaConfig::linger_ms`]).
    pub fn linger_ms_in(&self, mode: DeliveryMode) -> u32 {
        self.linger_ms.unwrap_or(match mode {
            DeliveryMode::Direct => 0,
            DeliveryMode::Spool => 5,
        })
    }

    /// `compression.level` hookgate sets: 1 for zstd (see [`KafkaConfig::compression`]), the
    /// codec's own default for the others.
    pub fn compression_level(&self) -> Option<i32> {
        (self.compression == Compression::Zstd).then_some(1)
    }

    /// `max.in.flight.requests.per.connection` in `mode`: 1 in direct mode, so that while one
    /// produce request waits for the broker the next requests' events gather into one batch
    /// (librdkafka's default of 5 sends them as up to five small requests, each acknowledged
    /// separately); librdkafka's default in spool mode. `[kafka.properties]` overrides it.
    pub fn max_in_flight_in(&self, mode: DeliveryMode) -> Option<u32> {
        (mode == DeliveryMode::Direct).then_some(1)
    }
}

fn default_topic() -> String {
    "ocsf.{vendor}".to_owned()
}
fn default_dead_letter_topic() -> String {
    "hookgate.dead-letter".to_owned()
}
fn default_compression() -> Compression {
    Compression::Zstd
}
fn default_message_timeout_ms() -> u32 {
    30_000
}
fn default_true() -> bool {
    true
}
fn default_topic_partitions() -> i32 {
    3
}
fn default_topic_replication() -> i32 {
    1
}
