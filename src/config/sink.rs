//! `[sink]`: where normalized events leave hookgate.

use std::path::PathBuf;

use serde::Deserialize;

/// `[sink]`: the embedded default writes JSON lines, so hookgate runs with nothing else
/// installed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// JSON-lines output: `"-"` for standard output, or a file path that is appended to (its
    /// directory made when missing; `check` refuses one that cannot be) and synced before each
    /// acknowledgement. Standard output cannot be synced, so in direct mode
    /// a 2xx then means written to the pipe, not durable (`serve` and `check` warn). Default
    /// `"-"`. Example: `"/var/lib/hookgate/events.jsonl"`.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Where events that could not be parsed or mapped are written, with their raw bytes and
    /// the reason. Default: the same output as `path`, marked `"dead_letter": true`. The
    /// bytes are `raw_data`; bytes that are not UTF-8 are also in `raw_data_base64`, exactly.
    #[serde(default)]
    pub dead_letter_path: Option<PathBuf>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            path: default_path(),
            dead_letter_path: None,
        }
    }
}

fn default_path() -> PathBuf {
    PathBuf::from("-")
}
