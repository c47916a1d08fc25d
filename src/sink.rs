//! Stages 9–10, spool and publish: make a request's records durable downstream.
//!
//! Input: a [`Batch`] of normalized events and dead letters from one request. Output:
//! `Ok(())` only once every record is durable (written and synced, or acknowledged).
//! Fails with [`SinkError`] → 503 with `Retry-After`, so the vendor retries. Every output
//! goes through the one [`Sink`] type, so adding one never touches the request path.

pub mod jsonl;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::SinkConfig;
use crate::normalize::OcsfEvent;

/// One request's records, with the context downstream consumers need (Kafka headers).
#[derive(Debug)]
pub struct Batch {
    /// Source name.
    pub source: Arc<str>,
    /// Vendor (parser) name.
    pub vendor: Arc<str>,
    /// Request id.
    pub request_id: String,
    /// Events and dead letters, in request order.
    pub records: Vec<Record>,
}

/// One output record.
#[derive(Debug)]
pub enum Record {
    /// A normalized OCSF event.
    Event(OcsfEvent),
    /// An event that could not be parsed or mapped.
    DeadLetter(DeadLetter),
}

/// An accepted event that could not be normalized: kept with its raw bytes and the reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its dedup id.
    pub uid: String,
    /// Bounded reason code (`ParseError::code`).
    pub reason_code: &'static str,
    /// Human-readable reason.
    pub reason: String,
    /// The event's exact bytes.
    pub raw: Bytes,
}

/// Why records could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Downstream fault: the output could not be written or synced.
    #[error("sink write failed")]
    Io(#[source] std::io::Error),
    /// Gateway fault: the writer task is gone.
    #[error("sink is closed")]
    Closed,
}

impl SinkError {
    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SinkError::Io(_) => "sink_io",
            SinkError::Closed => "sink_closed",
        }
    }
}

/// Why a sink could not be built at startup.
#[derive(Debug, thiserror::Error)]
pub enum SinkBuildError {
    /// Operator's fault: the output file cannot be opened.
    #[error("cannot open sink output {path}: {source}")]
    Open {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The configured output.
#[derive(Debug)]
pub enum Sink {
    /// JSON lines to standard output or a file (the embedded default).
    Jsonl(jsonl::JsonlSink),
}

impl Sink {
    /// Builds the sink described by `config`.
    pub fn build(config: &SinkConfig) -> Result<Sink, SinkBuildError> {
        Ok(Sink::Jsonl(jsonl::JsonlSink::open(config)?))
    }

    /// Makes `batch` durable; returns only once it is.
    pub async fn deliver(&self, batch: Batch) -> Result<(), SinkError> {
        match self {
            Sink::Jsonl(s) => s.deliver(batch).await,
        }
    }

    /// True when the output can take records now (readiness probe).
    pub fn is_ready(&self) -> bool {
        match self {
            Sink::Jsonl(s) => s.is_ready(),
        }
    }

    /// Flushes and syncs whatever is buffered (shutdown).
    pub async fn flush(&self) -> Result<(), SinkError> {
        match self {
            Sink::Jsonl(s) => s.flush().await,
        }
    }
}
