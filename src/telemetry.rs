//! Logs and traces: the `tracing` subscriber, and the redaction helpers for anything that might
//! carry a secret.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Lines the log's writer thread may have waiting; past this, new lines are dropped rather than
/// block the thread that logs them.
const QUEUED_LINES: usize = 16_384;

/// Installs the global subscriber (logs go to standard error, through a writer thread). Keep
/// the returned guard until exit: dropping it writes the lines still queued. `RUST_LOG`
/// overrides the level.
pub fn init(config: &TelemetryConfig) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| parse_filter(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A log reader that stops reading (a stalled pipe) must not stop the gateway: lines go
    // through a bounded queue to a thread of their own and are dropped when it is full.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(LogWriter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
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
    guard
}

/// Standard error for log lines, dropping what cannot be written. A log line that cannot be
/// written (the disk full, the file-size limit reached, the reading end of a pipe gone) must
/// not end the request or the thread that logs it: tracing-subscriber reports a failed write
/// with `eprintln!`, which panics when standard error itself fails, and a panicking worker
/// left requests unanswered and the process deaf to SIGTERM.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Levels a bare directive of `[telemetry] log_level` may name.
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// `[telemetry] log_level` as a filter. A directive without `=` must be a level (`warning`
/// is read as `warn`): the filter's own syntax takes any other word as a module name to log
/// at every level, so `"warning"` silenced every line while `check` said ok.
pub fn parse_filter(text: &str) -> Result<EnvFilter, String> {
    let mut directives = Vec::new();
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[', ':']);
        let level = directive.to_ascii_lowercase();
        directives.push(match level.as_str() {
            "warning" => "warn".to_owned(),
            _ if bare && !LEVELS.contains(&level.as_str()) => {
                return Err(format!(
                    "{directive:?} is not a level ({}); a module is written `module=level`",
                    LEVELS.join(", ")
                ))
            }
            _ => directive.to_owned(),
        });
    }
    EnvFilter::try_new(directives.join(",")).map_err(|e| e.to_string())
}

/// Words that make a name (a header, a JSON field) name a secret, lowercase with `_` for any
/// `-`: the one list of them (the status page's redaction, parser definitions' headers).
const SECRET_WORDS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "authorization",
    "api_key",
    "apikey",
    "signature",
    "credential",
    "cookie",
    "private_key",
];

/// True when `name` (a header or field name, any case, `-` or `_`) looks like it holds a
/// secret: its value is never shown, logged or copied into an event.
pub fn names_a_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase().replace('-', "_");
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// An error and its causes, `: `-joined (the disk's "No space left on device" under "spool
/// i/o failed: append to spool"; librdkafka's reason under "Kafka did not acknowledge").
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_log_level_is_a_level_or_a_module_with_one() {
        for ok in [
            "info",
            "WARN",
            "warning",
            "hookgate=debug,info",
            "hookgate::auth=trace",
            "off",
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["warning2", "verbose", "info,loud"] {
            let err = parse_filter(bad).unwrap_err();
            assert!(err.contains("not a level"), "{bad}: {err}");
        }
        assert_eq!(
            parse_filter("warning").unwrap().to_string(),
            parse_filter("warn").unwrap().to_string()
        );
    }

    use super::*;

    #[test]
    fn causes_joins_the_chain_once_each() {
        #[derive(Debug, thiserror::Error)]
        #[error("spool i/o failed")]
        struct Outer(#[source] std::io::Error);
        let disk = std::io::Error::other("No space left on device");
        assert_eq!(
            causes(&Outer(disk)),
            "spool i/o failed: No space left on device"
        );
        // A message that already ends with its cause's text does not repeat it.
        #[derive(Debug, thiserror::Error)]
        #[error("refused: {0}")]
        struct Same(#[source] std::io::Error);
        let why = std::io::Error::other("connection refused");
        assert_eq!(causes(&Same(why)), "refused: connection refused");
    }

    #[test]
    fn names_of_secrets_in_any_spelling() {
        for name in [
            "Authorization",
            "svix-signature",
            "X-Api-Key",
            "x_api_key",
            "client_secret",
            "Cookie",
        ] {
            assert!(names_a_secret(name), "{name}");
        }
        for name in ["content-type", "svix-id", "webhook-timestamp", "hostname"] {
            assert!(!names_a_secret(name), "{name}");
        }
    }
}
