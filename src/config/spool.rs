//! `[spool]`: the local durable queue used in `delivery.mode = "spool"`.

use std::path::PathBuf;

use serde::Deserialize;

/// `[spool]`: where and how big the local spool is. Ignored in direct mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory holding spool segments, the `acked` mark and (by default) the dedup journal.
    /// Created when missing; must be on a local disk that honours fsync. One hookgate process
    /// per directory. Default `"/var/lib/hookgate/spool"`. Example: `"/data/hookgate/spool"`.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Cap on bytes held (unforwarded events plus framing). When reached, requests get 503
    /// with `Retry-After` until the forwarder catches up. Default 1 GiB (1073741824). At a
    /// typical 2 KiB per event that is about half a million events of Kafka outage. The
    /// directory holds up to one segment more: a spent segment kept for reuse.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Size at which a segment file is closed and a new one begun; space is reclaimed one whole
    /// segment at a time, so keep it well below `max_bytes`. Default 64 MiB (67108864).
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Readiness turns false when the spool is fuller than this percentage, so a load
    /// balancer prefers other instances before this one starts refusing. Default 90.
    #[serde(default = "default_ready_below_percent")]
    pub ready_below_percent: u8,
    /// Longest the forwarder lets a batch fill before sending it to Kafka, in milliseconds,
    /// while fewer than a full batch (500 records) are waiting; a full batch, and the first
    /// record after a quiet spell, go at once. Fewer, larger produce requests cost the broker
    /// and the gateway less per event (at 5,000 events/s, 20 ms halved the test broker's CPU
    /// per event; see BENCHMARKS.md); events reach Kafka up to this much later. Requests never
    /// wait for it: they are answered once spooled. Default 20, at most 10000; 0 sends
    /// whatever is waiting at once.
    #[serde(default = "default_forward_wait_ms")]
    pub forward_wait_ms: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: default_dir(),
            max_bytes: default_max_bytes(),
            segment_bytes: default_segment_bytes(),
            ready_below_percent: default_ready_below_percent(),
            forward_wait_ms: default_forward_wait_ms(),
        }
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("/var/lib/hookgate/spool")
}
fn default_max_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_ready_below_percent() -> u8 {
    90
}
fn default_forward_wait_ms() -> u64 {
    20
}
