//! `[limits]`: the caps every request is held to. Per-source overrides live in `[[source]]`.

use serde::Deserialize;

/// `[limits]`: bounds on what one request may cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted as sent on the wire, in bytes. Default 1 MiB (1048576),
    /// enough for a Hyprwatch `query.completed` with hundreds of rows. Larger → 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Largest body after `Content-Encoding: gzip`/`deflate` decoding, in bytes. Default 8 MiB.
    /// A body that inflates past this (a decompression bomb) → 413, and decoding stops there.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: u64,
    /// Most events one request may carry (JSON array elements or NDJSON lines). Default 1000.
    /// More → 413.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: default_max_body_bytes(),
            max_decompressed_bytes: default_max_decompressed_bytes(),
            max_events_per_request: default_max_events_per_request(),
        }
    }
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_max_decompressed_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_max_events_per_request() -> usize {
    1000
}
