//! Config: the TOML file an operator writes, loaded once and validated in one pass.
//!
//! Input: a file path. Output: [`Config`] (serde types that describe the file). Runtime types
//! (routes, verifiers, sinks) are built from it in `app.rs`; stages never read raw config.
//! Fails with [`ConfigError`], which lists every problem found, each naming the key.

pub mod auth;
pub mod dedup;
pub mod delivery;
pub mod kafka;
pub mod limits;
pub mod listener;
mod paths;
pub mod process;
pub mod secret;
pub mod sink;
pub mod source;
pub mod spool;
pub mod status;
pub mod telemetry;
pub mod trust;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::auth::AuthConfig;
pub use self::dedup::{DedupBackend, DedupConfig};
pub use self::delivery::{DeliveryConfig, DeliveryMode};
pub use self::kafka::{Compression, KafkaConfig};
pub use self::limits::LimitsConfig;
pub use self::listener::{AdminConfig, ListenerConfig, TlsConfig};
pub use self::process::{CpuScheduling, ProcessConfig};
pub use self::secret::Secret;
pub use self::sink::SinkConfig;
pub use self::source::SourceConfig;
pub use self::spool::SpoolConfig;
pub use self::status::StatusConfig;
pub use self::telemetry::{LogFormat, TelemetryConfig};
pub use self::trust::TrustConfig;

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[listener]`: the public port. Defaults apply when absent.
    #[serde(default)]
    pub listener: ListenerConfig,
    /// `[admin]`: health, readiness and metrics port. Defaults apply when absent.
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[limits]`: body, decompression and batch caps. Defaults apply when absent.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[sink]`: where normalized events go. Default: JSON lines on standard output.
    #[serde(default)]
    pub sink: SinkConfig,
    /// `[status]`: the source-health endpoints on the admin listener. Defaults apply when
    /// absent (loopback clients only).
    #[serde(default)]
    pub status: StatusConfig,
    /// `[delivery]`: when a 2xx is sent (spool or direct). See `config/delivery.rs`.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// `[kafka]`: the cluster to publish to. Absent: events go to `[sink]` (JSON lines).
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// `[spool]`: the local durable queue (spool mode). Defaults apply when absent.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// `[dedup]`: duplicate window and store. Defaults apply when absent.
    #[serde(default)]
    pub dedup: DedupConfig,
    /// `[telemetry]`: log format and level.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// `[parsers]`: extra parser definitions.
    #[serde(default)]
    pub parsers: ParsersConfig,
    /// `[[source]]`: one entry per vendor endpoint. At least one is required.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// `[trust]`: trusted proxies and the OAuth2 token endpoint. Defaults apply when absent.
    #[serde(default)]
    pub trust: TrustConfig,
    /// `[process]`: the threads' CPU scheduling policy. Defaults apply when absent.
    #[serde(default)]
    pub process: ProcessConfig,
    /// The file this config was read from (not a key; set by [`Config::from_toml`]), so a
    /// SIGHUP reload knows what to re-read.
    #[serde(skip)]
    pub path: PathBuf,
}

/// `[parsers]`: where parser definitions come from besides the ones built in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParsersConfig {
    /// Directory of extra definitions (`*.toml`). A file named like a built-in parser
    /// replaces it. Default: none (built-ins only). Example: `"/etc/hookgate/parsers"`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// One thing wrong with a config: the key it concerns and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `source[hyprwatch-prod].path`.
    pub key: String,
    /// What is wrong, for an operator.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Operator's fault: the file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Operator's fault: the file is not valid TOML or does not match the schema.
    #[error("config file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and what ([`syntax_message`]): never the offending line itself, which may
        /// hold a literal secret.
        message: String,
    },
    /// Operator's fault: the file parsed but its values do not fit together.
    #[error("config file {path} has {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// Keys whose values are secrets (`Secret` fields); every key under `[kafka.properties]` too.
const SECRET_KEYS: &[&str] = &[
    "secrets",
    "tokens",
    "values",
    "password",
    "client_secret",
    "token",
    "token_signing_keys",
    "redis_url",
];

/// Longest `[dedup] reservation_ttl_s`: a day (a reservation only spans one delivery).
const MAX_RESERVATION_TTL_S: u64 = 86_400;

/// Whether the line at `at` may hold a secret: it names a secret key, sits under
/// `[kafka.properties]`, or names no key at all (a value of a list or table spread over
/// lines). Errors on other lines are shown as toml words them.
fn may_hold_secret(text: &str, at: usize) -> bool {
    let before = text.get(..at).unwrap_or_default();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text
        .get(start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_default();
    let table = before
        .lines()
        .rev()
        .map(str::trim_start)
        .find(|l| l.starts_with('['))
        .unwrap_or_default();
    let table: String = table.chars().filter(|c| !c.is_whitespace()).collect();
    if table.starts_with("[kafka.properties]") || !line.contains('=') {
        return true;
    }
    line.split('=').any(|key_side| {
        let key = key_side
            .trim_end()
            .rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',' || c == '[')
            .next()
            .unwrap_or_default()
            .trim_matches(['"', '\'']);
        SECRET_KEYS.contains(&key)
    })
}

/// `message` with every double-quoted text replaced by `"***"`; a quote inside backticks
/// (toml's "expected `\"`") is a quote character, not the start of a value.
fn mask_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        let (head, tail) = rest.split_at(open);
        out.push_str(head);
        let after = tail.get(1..).unwrap_or_default();
        match after.find('"') {
            Some(close) if !after.get(..close).unwrap_or_default().contains(['`', '\n']) => {
                out.push_str("\"***\"");
                rest = after.get(close + 1..).unwrap_or_default();
            }
            _ => {
                out.push('"');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// toml's error as line, column and message. toml's own `Display` quotes the offending line,
/// and a message may quote a value: a literal secret (allowed for local experiments) would
/// reach `check`'s output and the reload log, so quoted text is masked. When an environment
/// variable is missing, every `${NAME}` the file uses (outside comments) that is not set is
/// listed, not only the first one met.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let mut message = String::new();
    if let Some(span) = e.span() {
        let before = text.get(..span.start).unwrap_or_default();
        let line = 1 + before.matches('\n').count();
        let column = 1 + before.len() - before.rfind('\n').map_or(0, |i| i + 1);
        message.push_str(&format!("line {line}, column {column}: "));
    }
    let what = e.message().trim_end();
    if e.span()
        .is_some_and(|span| !may_hold_secret(text, span.start))
    {
        message.push_str(what);
    } else {
        message.push_str(&mask_quoted(what));
    }
    let unset = secret::unset_variables(text);
    if !unset.is_empty() {
        message.push_str(&format!(
            " (environment variables not set: {})",
            unset.join(", ")
        ));
    }
    message
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Metrics labels hookgate gives requests of no source; a source of that name would share them.
const RESERVED_SOURCE_NAMES: [&str; 2] =
    [crate::metrics::UNMATCHED, crate::metrics::TOKEN_ENDPOINT];

impl Config {
    /// Reads and parses `path`, then validates against the known parser names.
    pub fn load(path: &Path, known_vendors: &[String]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, path, known_vendors)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn from_toml(
        text: &str,
        path: &Path,
        known_vendors: &[String],
    ) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: syntax_message(text, &e),
        })?;
        config.path = path.to_owned();
        let problems = config.problems(known_vendors);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Every problem with this config; empty when it is usable.
    pub fn problems(&self, known_vendors: &[String]) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut add = |key: String, message: String| problems.push(Problem { key, message });
        if self.sources.is_empty() {
            add(
                "source".into(),
                "no [[source]] is configured; hookgate would accept nothing".into(),
            );
        }
        if self.listener.backlog == 0 {
            add("listener.backlog".into(), "must be at least 1".into());
        }
        if self.listener.max_connections == 0 {
            add(
                "listener.max_connections".into(),
                "must be at least 1".into(),
            );
        }
        if self.listener.max_connections_per_address == Some(0) {
            add(
                "listener.max_connections_per_address".into(),
                "must be at least 1".into(),
            );
        }
        if self.limits.max_body_bytes == 0 {
            add("limits.max_body_bytes".into(), "must be at least 1".into());
        }
        if self.limits.max_events_per_request == 0 {
            add(
                "limits.max_events_per_request".into(),
                "must be at least 1".into(),
            );
        }
        for (key, ms) in [
            (
                "listener.header_read_timeout_ms",
                self.listener.header_read_timeout_ms,
            ),
            (
                "listener.body_read_timeout_ms",
                self.listener.body_read_timeout_ms,
            ),
        ] {
            if ms == 0 {
                add(key.into(), "must be at least 1".into());
            }
        }
        if let Err(e) = crate::telemetry::parse_filter(&self.telemetry.log_level) {
            add(
                "telemetry.log_level".into(),
                format!("is not a log filter: {e}"),
            );
        }
        for (key, path) in [
            ("sink.path", Some(&self.sink.path)),
            ("sink.dead_letter_path", self.sink.dead_letter_path.as_ref()),
        ] {
            let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
                continue;
            };
            // A pipe or device is written but never synced (every answer a 503 after the line
            // went out), and read back at startup without end (`/dev/full`).
            if let Ok(meta) = std::fs::metadata(path) {
                if !meta.is_file() {
                    add(
                        key.into(),
                        format!(
                            "{} is not a regular file; write \"-\" for standard output",
                            path.display()
                        ),
                    );
                }
            }
        }
        if self.limits.max_decompressed_bytes < self.limits.max_body_bytes {
            add(
                "limits.max_decompressed_bytes".into(),
                "must be at least limits.max_body_bytes".into(),
            );
        }
        if self.admin.address == self.listener.address && self.listener.address.port() != 0 {
            add(
                "admin.address".into(),
                "must differ from listener.address: the admin endpoints never share the public port".into(),
            );
        }
        let names: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
        for (key, message) in self.limits.problems(&names) {
            add(key, message);
        }
        for (key, message) in self.status.problems() {
            add(key, message);
        }
        if let Some(tls) = &self.listener.tls {
            for (key, file) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
                if !file.is_file() {
                    add(
                        format!("listener.tls.{key}"),
                        format!("{} is not a readable file", file.display()),
                    );
                }
            }
        }
        for (key, message) in self.output_path_problems() {
            add(key, message);
        }
        delivery_problems(self, &mut add);
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let at = if source.name.is_empty() {
                format!("source[{i}]")
            } else {
                format!("source[{}]", source.name)
            };
            if source.name.is_empty()
                || !source
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                add(
                    format!("{at}.name"),
                    "must be non-empty and use only letters, digits, '-' and '_'".into(),
                );
            }
            if !names.insert(source.name.as_str()) {
                add(format!("{at}.name"), "is used by another source".into());
            }
            if RESERVED_SOURCE_NAMES.contains(&source.name.as_str()) {
                add(
                    format!("{at}.name"),
                    format!(
                        "{:?} is the metrics label of {} and cannot name a source",
                        source.name,
                        if source.name == crate::metrics::UNMATCHED {
                            "requests that match no source"
                        } else {
                            "the OAuth token endpoint"
                        }
                    ),
                );
            }
            if !source.path.starts_with('/') || source.path.contains(['?', '#', ' ']) {
                add(
                    format!("{at}.path"),
                    format!(
                        "{:?} must start with '/' and contain no '?', '#' or spaces",
                        source.path
                    ),
                );
            }
            if !paths.insert(source.path.as_str()) {
                add(
                    format!("{at}.path"),
                    format!("{:?} is used by another source", source.path),
                );
            }
            if !known_vendors.iter().any(|v| v == &source.vendor) {
                add(
                    format!("{at}.vendor"),
                    format!(
                        "unknown parser {:?}; known: {}",
                        source.vendor,
                        known_vendors.join(", ")
                    ),
                );
            }
            if source.methods.is_empty() {
                add(
                    format!("{at}.methods"),
                    "must list at least one HTTP method".into(),
                );
            }
            for m in &source.methods {
                if !matches!(
                    m.as_str(),
                    "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD"
                ) {
                    add(
                        format!("{at}.methods"),
                        format!("{m:?} is not one of GET, POST, PUT, DELETE, PATCH, HEAD"),
                    );
                }
            }
            for (key, value) in [
                ("expect_heartbeat_secs", source.expect_heartbeat_secs),
                ("expect_event_secs", source.expect_event_secs),
            ] {
                if value == Some(0) {
                    add(format!("{at}.{key}"), "must be at least 1".into());
                }
            }
            if source.max_body_bytes == Some(0) {
                add(format!("{at}.max_body_bytes"), "must be at least 1".into());
            }
            if source.auth.is_empty() {
                add(
                    format!("{at}.auth"),
                    "no authentication configured; write auth = [{ kind = \"none\" }] to accept unauthenticated requests on purpose".into(),
                );
            }
            for (j, scheme) in source.auth.iter().enumerate() {
                for p in auth::problems(scheme, &self.trust) {
                    add(format!("{at}.auth[{j}].{}", p.key), p.message);
                }
                // The age check leaves the dedup store to catch every younger replay: a
                // window the operator set for all sources must outlast it.
                if let (
                    AuthConfig::Hmac {
                        max_age_s: Some(age),
                        ..
                    },
                    Some(window),
                ) = (scheme, self.dedup.window_s)
                {
                    let needs = age.saturating_add(crate::auth::freshness::AHEAD.as_secs());
                    if window < needs {
                        add(
                            format!("{at}.auth[{j}].max_age_s"),
                            format!("[dedup] window_s = {window} forgets an id before max_age_s lets its replay through: a replay after {window} s would be published again; set window_s to at least {needs} (max_age_s plus an hour), or leave it out"),
                        );
                    }
                }
            }
            for p in auth::shared_header_problems(&source.auth) {
                add(format!("{at}.auth{}", p.key), p.message);
            }
            if source.path == self.trust.token_path && !self.trust.token_signing_keys.is_empty() {
                add(
                    format!("{at}.path"),
                    "is trust.token_path, the OAuth2 token endpoint".into(),
                );
            }
        }
        for p in trust::problems(&self.trust, &self.sources) {
            add(p.key, p.message);
        }
        problems
    }
}

impl Config {
    /// The JSON-lines file events are written to when there is no Kafka (the embedded
    /// default), `None` when they go to Kafka or to standard output (`path = "-"`). In spool
    /// mode in front of it, the spool is what a crash leaves to read.
    pub fn events_file(&self) -> Option<&Path> {
        let path = self.sink.path.as_path();
        (self.kafka.is_none() && path.as_os_str() != "-").then_some(path)
    }

    /// The delivery mode in force: the configured one, else spool with Kafka, direct without.
    pub fn delivery_mode(&self) -> DeliveryMode {
        match (self.delivery.mode, &self.kafka) {
            (Some(mode), _) => mode,
            (None, Some(_)) => DeliveryMode::Spool,
            (None, None) => DeliveryMode::Direct,
        }
    }
}

/// Problems in `[delivery]`, `[kafka]`, `[spool]` and `[dedup]`.
impl Config {
    /// Where the gateway will write that cannot be made there (see `config/paths.rs`): the
    /// JSON-lines files (when no Kafka is configured), the spool directory (spool mode), the
    /// dedup journal.
    fn output_path_problems(&self) -> Vec<(String, String)> {
        let stdout = Path::new("-");
        let mut found = Vec::new();
        if self.kafka.is_none() {
            let files = [
                ("sink.path", Some(&self.sink.path)),
                ("sink.dead_letter_path", self.sink.dead_letter_path.as_ref()),
            ];
            for (key, path) in files {
                if let Some(path) = path.filter(|p| p.as_path() != stdout) {
                    found.extend(paths::file_problem(key, path));
                }
            }
        }
        if self.delivery_mode() == DeliveryMode::Spool {
            found.extend(paths::spool_dir_problem("spool.dir", &self.spool.dir));
        }
        if let Some(journal) = &self.dedup.journal_path {
            found.extend(paths::file_problem("dedup.journal_path", journal));
        }
        found
    }
}

fn delivery_problems(config: &Config, add: &mut impl FnMut(String, String)) {
    if let Some(kafka) = &config.kafka {
        if kafka.brokers.trim().is_empty() {
            add(
                "kafka.brokers".into(),
                "must name at least one host:port".into(),
            );
        }
        for (key, template) in [
            ("kafka.topic", &kafka.topic),
            ("kafka.dead_letter_topic", &kafka.dead_letter_topic),
        ] {
            match crate::publish::TopicTemplate::parse(template) {
                Err(message) => add(key.into(), message),
                Ok(t) if key == "kafka.dead_letter_topic" && t.uses_class() => add(
                    key.into(),
                    "a dead letter has no OCSF class: use {source} or {vendor} only".into(),
                ),
                Ok(_) => {}
            }
        }
        if kafka.topic_partitions < 1 {
            add("kafka.topic_partitions".into(), "must be at least 1".into());
        }
        if kafka.message_timeout_ms == 0 {
            // librdkafka reads 0 as no timeout: a message answered 503 would still be sent
            // once the broker is back, and the vendor's retry sent again.
            add(
                "kafka.message_timeout_ms".into(),
                "must be at least 1 (0 would mean never give up on a message)".into(),
            );
        }
        let properties = crate::publish::client_config::property_problems(&kafka.properties);
        // Each property alone is fine: then whether librdkafka takes them all together.
        let together = properties
            .is_empty()
            .then(|| crate::publish::client_config::client_problem(kafka, config.delivery_mode()));
        for (property, message) in properties {
            add(format!("kafka.properties.{property:?}"), message);
        }
        if let Some(Some(message)) = together {
            add(
                "kafka".into(),
                format!("librdkafka refuses these settings together: {message}"),
            );
        }
        if kafka.topic_replication == 0 || kafka.topic_replication < -1 {
            add(
                "kafka.topic_replication".into(),
                "must be at least 1, or -1 for the broker's default".into(),
            );
        }
    }
    if config.delivery_mode() == DeliveryMode::Spool || config.kafka.is_some() {
        // A body no event can be read from is kept whole as one record, in the spool and in Kafka.
        let largest = crate::normalize::MAX_EVENT_BYTES as u64;
        let limits = &config.limits;
        let per_source = config.sources.iter().filter_map(|s| {
            let bytes = s.max_body_bytes?;
            Some((format!("source[{}].max_body_bytes", s.name), bytes))
        });
        for (key, bytes) in [
            ("limits.max_body_bytes".to_owned(), limits.max_body_bytes),
            (
                "limits.max_decompressed_bytes".to_owned(),
                limits.max_decompressed_bytes,
            ),
        ]
        .into_iter()
        .chain(per_source)
        {
            if bytes > largest {
                add(
                    key,
                    format!("must be at most {largest} with Kafka or the spool (a body is kept whole as one record)"),
                );
            }
        }
    }
    if config.delivery_mode() == DeliveryMode::Spool {
        let spool = &config.spool;
        if spool.segment_bytes < 4096 {
            add("spool.segment_bytes".into(), "must be at least 4096".into());
        }
        if spool.max_bytes < spool.segment_bytes.saturating_mul(2) {
            add(
                "spool.max_bytes".into(),
                "must be at least twice spool.segment_bytes (space is freed one segment at a time)"
                    .into(),
            );
        }
        if spool.ready_below_percent == 0 || spool.ready_below_percent > 100 {
            add(
                "spool.ready_below_percent".into(),
                "must be between 1 and 100".into(),
            );
        }
        if spool.forward_wait_ms > 10_000 {
            add(
                "spool.forward_wait_ms".into(),
                "must be at most 10000 (events would wait that long to reach Kafka)".into(),
            );
        }
    }
    let dedup = &config.dedup;
    if dedup.window_s == Some(0) {
        add("dedup.window_s".into(), "must be at least 1".into());
    }
    if dedup
        .window_s
        .is_some_and(|s| s > crate::parse::compile::MAX_WINDOW_SECS)
    {
        add(
            "dedup.window_s".into(),
            format!(
                "must be at most {} (ten years)",
                crate::parse::compile::MAX_WINDOW_SECS
            ),
        );
    }
    if !(1..=MAX_RESERVATION_TTL_S).contains(&dedup.reservation_ttl_s) {
        add(
            "dedup.reservation_ttl_s".into(),
            format!("must be between 1 and {MAX_RESERVATION_TTL_S} (a day)"),
        );
    }
    if dedup.max_entries == 0 {
        add("dedup.max_entries".into(), "must be at least 1".into());
    }
    match (&dedup.backend, &dedup.redis_url) {
        (DedupBackend::Redis, None) => add(
            "dedup.redis_url".into(),
            "is required when dedup.backend = \"redis\"".into(),
        ),
        // The URL is a secret: the message says what is wrong, never what it is.
        (DedupBackend::Redis, Some(url)) if redis::Client::open(url.expose()).is_err() => add(
            "dedup.redis_url".into(),
            "is not a Redis URL this build can use (redis://[user:password@]host[:port][/db]; no TLS)".into(),
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendors() -> Vec<String> {
        vec!["hyprwatch".to_owned()]
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = Config::from_toml(
            r#"
[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = [{ kind = "hmac", secrets = ["whsec_test"] }]
"#,
            Path::new("t.toml"),
            &vendors(),
        )
        .unwrap();
        assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
        assert_eq!(c.sources[0].methods, vec!["POST"]);
    }

    #[test]
    fn a_syntax_error_names_its_place_but_never_quotes_a_secret() {
        // A literal secret on the broken line (allowed for local experiments), and one a
        // type error would quote.
        for text in [
            "[[source]]\nname = \"hw\"\nvendor = \"hyprwatch\"\npath = \"/in\"\nauth = [{ kind = \"hmac\", secrets = [\"hunter2-literal\"] }\n",
            "[[source]]\nname = \"hw\"\nvendor = \"hyprwatch\"\npath = \"/in\"\nauth = [{ kind = \"hmac\", secrets = \"hunter2-literal\" }]\n",
        ] {
            let err = Config::from_toml(text, Path::new("t.toml"), &vendors())
                .unwrap_err()
                .to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("line "), "{err}");
        }
    }

    #[test]
    fn a_syntax_error_off_a_secret_line_is_shown_as_toml_words_it() {
        let source = "[[source]]\nname = \"hw\"\nvendor = \"hyprwatch\"\npath = \"/in\"\nauth = [{ kind = \"hmac\", secrets = [\"s\"] }]\n";
        let bare = format!("[dedup]\nbackend = memory\n{source}");
        let err = Config::from_toml(&bare, Path::new("t.toml"), &vendors())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("***"), "{err}");
        let methods = source.replace("path = ", "methods = \"POST\"\npath = ");
        let err = Config::from_toml(&methods, Path::new("t.toml"), &vendors())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"POST\""), "{err}");
        // A quoted key is still a secret's key.
        let quoted = source.replace("secrets = [\"s\"]", "'secrets' = \"hunter2\"");
        let err = Config::from_toml(&quoted, Path::new("t.toml"), &vendors())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        // A value under [kafka.properties] is masked, as on a secret's own line.
        let props = format!("{source}[kafka]\nbrokers = \"b:9092\"\n[kafka.properties]\n\"sasl.password\" = [\"hunter2\"]\n");
        let err = Config::from_toml(&props, Path::new("t.toml"), &vendors())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn every_unset_environment_variable_is_named_at_once() {
        let text = "# ${HOOKGATE_UNSET_IN_A_COMMENT}\n[[source]]\nname = \"hw\"\nvendor = \"hyprwatch\"\npath = \"/in\"\nauth = [{ kind = \"hmac\", secrets = [\"${HOOKGATE_UNSET_ONE}\", \"${HOOKGATE_UNSET_TWO}\", \"${PATH}\"] }]\n";
        let err = Config::from_toml(text, Path::new("t.toml"), &vendors())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environment variables not set: HOOKGATE_UNSET_ONE, HOOKGATE_UNSET_TWO)"),
            "{err}"
        );
        assert!(!err.contains("IN_A_COMMENT"), "{err}");
    }

    #[test]
    fn zero_caps_bad_filters_urls_and_classless_dead_letter_topics_are_refused() {
        let text = r#"
[listener]
header_read_timeout_ms = 0
body_read_timeout_ms = 0
[limits]
max_events_per_request = 0
[telemetry]
log_level = "info,[[[bad"
[dedup]
backend = "redis"
redis_url = "not a url with a pa55word"
[kafka]
brokers = "k:9092"
dead_letter_topic = "dl.{class}"
[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/in"
auth = [{ kind = "hmac", secrets = ["whsec_test"] }]
"#;
        let err = Config::from_toml(text, Path::new("t.toml"), &vendors())
            .unwrap_err()
            .to_string();
        for key in [
            "listener.header_read_timeout_ms",
            "listener.body_read_timeout_ms",
            "limits.max_events_per_request",
            "telemetry.log_level",
            "dedup.redis_url",
            "kafka.dead_letter_topic",
        ] {
            assert!(err.contains(key), "{key} not in {err}");
        }
        assert!(!err.contains("pa55word"), "{err}");
        // The class fields stay fine for events.
        let ok = text.replace(
            "dead_letter_topic = \"dl.{class}\"",
            "topic = \"ocsf.{class}.{class_uid}\"",
        );
        let err = Config::from_toml(&ok, Path::new("t.toml"), &vendors())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("kafka."), "{err}");
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let err = Config::from_toml(
            r#"
[[source]]
name = "a b"
vendor = "nope"
path = "x"
methods = ["FETCH"]
"#,
            Path::new("t.toml"),
            &vendors(),
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "source[a b].name",
            "source[a b].vendor",
            "source[a b].path",
            "source[a b].methods",
            "source[a b].auth",
        ] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }

    #[test]
    fn a_reserved_label_a_device_sink_and_a_word_for_a_level_are_refused() {
        let err = Config::from_toml(
            r#"
[telemetry]
log_level = "warning2"

[sink]
path = "/dev/null"
dead_letter_path = "/dev/full"

[[source]]
name = "unmatched"
vendor = "hyprwatch"
path = "/a"
auth = [{ kind = "hmac", secrets = ["whsec_test"] }]

[[source]]
name = "oauth_token"
vendor = "hyprwatch"
path = "/b"
auth = [{ kind = "hmac", secrets = ["whsec_test"] }]
"#,
            Path::new("t.toml"),
            &vendors(),
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "telemetry.log_level",
            "sink.path: /dev/null is not a regular file",
            "sink.dead_letter_path: /dev/full is not a regular file",
            "source[unmatched].name",
            "source[oauth_token].name",
        ] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }

    #[test]
    fn rejects_unknown_keys() {
        let err = Config::from_toml(
            "[listener]\nadress = \"0.0.0.0:1\"\n",
            Path::new("t.toml"),
            &vendors(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("adress"), "{err}");
    }
}
