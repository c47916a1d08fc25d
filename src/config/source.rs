//! `[[source]]`: one configured vendor webhook endpoint.

use serde::Deserialize;

use crate::config::auth::AuthConfig;

/// `[[source]]`: a route, the vendor parser behind it, and its trust rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name of this source, used in logs, metrics labels and Kafka headers.
    /// Letters, digits, `-` and `_`. Example: `"hyprwatch-prod"`.
    pub name: String,
    /// Parser (vendor) that reads this source's payloads: a file name under `parsers/`
    /// without extension. Example: `"hyprwatch"`.
    pub vendor: String,
    /// URL path the vendor posts to. Must start with `/`. Example: `"/ingest/hyprwatch/prod"`.
    pub path: String,
    /// HTTP methods accepted on the path. Default `["POST"]`. HYPR hooks may be configured
    /// with GET, PUT, DELETE or PATCH. Others → 405.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Tenant id put into `metadata.tenant_uid` when the vendor sends none.
    /// Default: the source name.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Per-source override of `[limits] max_body_bytes`, in bytes.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Authentication schemes; all must pass. Required: write `[{ kind = "none" }]` to accept
    /// unauthenticated traffic on purpose.
    #[serde(default)]
    pub auth: Vec<AuthConfig>,
    /// Health expectation: the vendor calls its heartbeat at least this often, in seconds.
    /// Example: `90000` (25 h) for Hyperproof's daily heartbeat. Absent (default): a missing
    /// heartbeat never makes the source `silent`. Exported as
    /// `hookgate_source_expected_heartbeat_interval_seconds` for alerting.
    #[serde(default)]
    pub expect_heartbeat_secs: Option<u64>,
    /// Health expectation: at least one event arrives this often, in seconds. Example: `3600`.
    /// Absent (default): quiet periods never make the source `silent` or `paused`. Exported as
    /// `hookgate_source_expected_event_interval_seconds` for alerting.
    #[serde(default)]
    pub expect_event_secs: Option<u64>,
}

fn default_methods() -> Vec<String> {
    vec!["POST".to_owned()]
}
