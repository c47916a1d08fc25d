//! `[telemetry]`: log format and level.

use serde::Deserialize;

/// `[telemetry]`: how hookgate writes its own logs (to standard error).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `"human"` (default) or `"json"` (one JSON object per line, for log shippers).
    #[serde(default)]
    pub log_format: LogFormat,
    /// Level filter in `tracing` syntax. Default `"info"`. Example: `"info,hookgate=debug"`.
    /// A filter that does not parse is a config error, and so is a bare word that is not a
    /// level (`trace`, `debug`, `info`, `warn` or `warning`, `error`, `off`): a module is
    /// written `module=level`. The `RUST_LOG` environment variable,
    /// when set, takes precedence.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// JSON lines.
    Json,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Human,
            log_level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}
