//! `[delivery]`: when a request is acknowledged.

use serde::Deserialize;

/// When hookgate answers 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// 2xx once the events are appended to the local spool and fsynced; a background
    /// forwarder publishes them. Keeps accepting while Kafka is down (until the spool is full).
    Spool,
    /// 2xx once Kafka acknowledged every event (or the JSON-lines file is synced). A Kafka
    /// outage turns into 503 + `Retry-After` at once.
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
