//! Logs and traces: the `tracing` subscriber, and the redaction helpers for anything that might
//! carry a secret.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber (logs go to standard error). `RUST_LOG` overrides the level.
pub fn init(config: &TelemetryConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match config.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    // A subscriber is already set only when hookgate runs embedded (tests); keep that one.
    let _ = result;
}

/// Headers whose values are never logged.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "svix-signature",
    "webhook-signature",
    "x-hyprwatch-signature",
];

/// A header value fit for a log line: secrets become `***`.
pub fn redact_header<'a>(name: &str, value: &'a str) -> &'a str {
    if SECRET_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
        "***"
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_authorization_and_signatures() {
        assert_eq!(redact_header("Authorization", "Bearer x"), "***");
        assert_eq!(redact_header("svix-signature", "v1,abc"), "***");
        assert_eq!(
            redact_header("content-type", "application/json"),
            "application/json"
        );
    }
}
