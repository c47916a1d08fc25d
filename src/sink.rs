//! Stages 9–10, spool and publish: make a request's records durable downstream.
//!
//! Input: a [`Batch`] of normalized events and dead letters from one request. Output:
//! `Ok(())` only once every record is durable: appended and fsynced to the spool (spool mode),
//! or acknowledged by Kafka / synced to the JSON-lines file (direct mode). Fails with
//! [`SinkError`] → 503 with `Retry-After`, so the vendor retries. The request path calls only
//! [`Sink::start`] and awaits its [`Delivery`] (`pipeline::Reserved::deliver`, which then
//! settles the request's dedup keys by the verdict); in spool
//! mode the [`forward::Forwarder`] publishes in the background.
//!
//! Modes (`[delivery] mode`): `spool` is the default with `[kafka]`; without `[kafka]` the
//! default is `direct` to the JSON-lines file (synced before each answer; standard output, the
//! default path, cannot be synced, and `serve` and `check` say so). `spool` in front
//! of the JSON-lines file also works (the forwarder writes the file).

pub mod envelope;
pub mod forward;
pub mod jsonl;
pub mod refused;
pub mod remember;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DeliveryMode};
use crate::metrics::Metrics;
use crate::normalize::OcsfEvent;
use crate::parse::EventKey;
use crate::publish::{Kafka, PublishError};
use crate::spool::{Spool, SpoolError, SpoolSettings, Writer};

/// How long spool-mode startup waits for Kafka to confirm the topics before it serves anyway
/// (a vendor that reaches a restarting gateway during a Kafka outage is answered at once, not
/// after the 5 s metadata timeout; EventBridge gives up after about 5 s).
const SPOOL_STARTUP_KAFKA_WAIT: Duration = Duration::from_secs(1);

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
    /// How long `uid` is deduplicated (`None`: not, or not by this id).
    pub window: Option<Duration>,
    /// Bounded reason code (`ParseError::code`).
    pub reason_code: &'static str,
    /// Human-readable reason.
    pub reason: String,
    /// The event's exact bytes.
    pub raw: Bytes,
}

/// How long a body kept as a dead letter because no event could be read from it is
/// remembered ([`DeadLetter::body_key`]), so the vendor's retries of it (each refused like
/// the first) do not keep it again: past the longest retry schedule of the vendors served
/// (Svix ≈ 28 h, vendor-notes.md).
pub const KEPT_BODY_WINDOW: Duration = Duration::from_secs(30 * 3600);

impl DeadLetter {
    /// The dedup key a body kept whole is remembered under: `dead-letter:<its SHA-256>` (its
    /// `uid`) for [`KEPT_BODY_WINDOW`], apart from the events' own ids.
    pub fn body_key(uid: &str) -> EventKey {
        EventKey {
            id: format!("dead-letter:{uid}"),
            window: Some(KEPT_BODY_WINDOW),
        }
    }
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
    /// Downstream fault: the spool refused (full) or failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Downstream fault: Kafka did not acknowledge (direct mode).
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl SinkError {
    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SinkError::Io(_) => "sink_io",
            SinkError::Closed => "sink_closed",
            SinkError::Spool(e) => e.code(),
            SinkError::Publish(e) => e.code(),
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
    /// Operator's or disk's fault: the spool directory cannot be opened or recovered.
    #[error("cannot open spool in {dir}: {source}")]
    Spool {
        /// The directory.
        dir: String,
        /// Why.
        #[source]
        source: SpoolError,
    },
    /// Operator's fault: Kafka refused the topics, or is unreachable in direct mode.
    #[error("Kafka at {brokers}: {source}")]
    Kafka {
        /// The bootstrap list.
        brokers: String,
        /// Why.
        #[source]
        source: PublishError,
    },
}

/// A batch on its way to durability ([`Sink::start`]); resolves once it is durable.
pub enum Delivery {
    /// Queued for the spool's writer (no allocation of its own: the request path's case).
    Spool(crate::spool::Appending),
    /// Sent to the direct-mode output.
    Direct(std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SinkError>> + Send>>),
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Delivery")
    }
}

impl std::future::Future for Delivery {
    type Output = Result<(), SinkError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Delivery::Spool(appending) => std::pin::Pin::new(appending)
                .poll(cx)
                .map(|appended| appended.map(drop).map_err(SinkError::from)),
            Delivery::Direct(sending) => sending.as_mut().poll(cx),
        }
    }
}

/// Where envelopes end up.
#[derive(Debug)]
pub enum Output {
    /// JSON lines to standard output or a file (the embedded default).
    Jsonl(jsonl::JsonlSink),
    /// A Kafka cluster.
    Kafka(Box<Kafka>),
}

impl Output {
    /// Publishes every envelope not yet `done`, marking those that are now durable.
    pub async fn send(
        &self,
        envelopes: &[envelope::Envelope],
        done: &mut [bool],
    ) -> Result<(), SinkError> {
        match self {
            Output::Jsonl(s) => s.send(envelopes, done).await,
            Output::Kafka(k) => Ok(k.send(envelopes, done).await?),
        }
    }

    fn is_reachable(&self) -> bool {
        match self {
            Output::Jsonl(s) => s.is_ready(),
            Output::Kafka(k) => k.is_reachable(),
        }
    }
}

/// Background work the sink needs; `app.rs` spawns and joins it.
#[derive(Debug, Default)]
pub struct SinkTasks {
    /// The spool's group-commit writer (a blocking thread).
    pub writer: Option<Writer>,
    /// The spool forwarder.
    pub forwarder: Option<forward::Forwarder>,
    /// Kafka, for the reachability probe.
    pub kafka: Option<Arc<Output>>,
}

/// What `/readyz` reports.
#[derive(Debug)]
pub struct Readiness {
    /// Whether to take traffic.
    pub ready: bool,
    /// Details for the body.
    pub detail: serde_json::Value,
}

/// The configured delivery path.
#[derive(Debug)]
pub enum Sink {
    /// 2xx once the output has it.
    Direct(Arc<Output>),
    /// 2xx once the spool has it; a forwarder drains the spool to the output.
    Spooled {
        /// The spool.
        spool: Spool,
        /// Where the forwarder publishes.
        output: Arc<Output>,
        /// Readiness turns false above this fill percentage.
        ready_below_percent: u8,
    },
}

impl Sink {
    /// Builds the delivery path described by `config`, checking or creating Kafka topics.
    pub async fn build(config: &Config) -> Result<(Sink, SinkTasks), SinkBuildError> {
        let mode = config.delivery_mode();
        let output = match &config.kafka {
            None => {
                if let Some(w) = jsonl::durability_warning(config) {
                    tracing::warn!("{w}");
                }
                Output::Jsonl(jsonl::JsonlSink::open(&config.sink)?)
            }
            Some(k) => {
                let kafka_error = |source| SinkBuildError::Kafka {
                    brokers: k.brokers.clone(),
                    source,
                };
                let kafka = Kafka::build(k, mode).map_err(kafka_error)?;
                // Spool mode accepts without Kafka, so startup waits for it only briefly: the
                // forwarder makes sure of the topics on first use. Direct mode needs it.
                let checked = match mode {
                    DeliveryMode::Spool => {
                        tokio::time::timeout(SPOOL_STARTUP_KAFKA_WAIT, kafka.ensure_fixed_topics())
                            .await
                            .ok()
                    }
                    DeliveryMode::Direct => Some(kafka.ensure_fixed_topics().await),
                };
                match checked {
                    Some(Ok(())) => {}
                    None => {
                        tracing::warn!(brokers = %k.brokers, wait_ms = SPOOL_STARTUP_KAFKA_WAIT.as_millis() as u64, "Kafka did not answer at startup; accepting into the spool and retrying");
                    }
                    Some(Err(e)) if mode == DeliveryMode::Spool && !e.is_refusal() => {
                        tracing::warn!(brokers = %k.brokers, error = %e, "Kafka is unreachable at startup; accepting into the spool and retrying");
                    }
                    Some(Err(e)) => return Err(kafka_error(e)),
                }
                Output::Kafka(Box::new(kafka))
            }
        };
        let output = Arc::new(output);
        let kafka = matches!(*output, Output::Kafka(_)).then(|| Arc::clone(&output));
        match mode {
            DeliveryMode::Direct => Ok((
                Sink::Direct(Arc::clone(&output)),
                SinkTasks {
                    kafka,
                    ..SinkTasks::default()
                },
            )),
            DeliveryMode::Spool => {
                let settings = SpoolSettings {
                    dir: config.spool.dir.clone(),
                    max_bytes: config.spool.max_bytes,
                    segment_bytes: config.spool.segment_bytes,
                };
                let (spool, writer) =
                    Spool::open(settings).map_err(|source| SinkBuildError::Spool {
                        dir: config.spool.dir.display().to_string(),
                        source,
                    })?;
                if let Some(w) = crate::spool::volume::warning(&config.spool) {
                    tracing::warn!("{w}");
                }
                let stats = spool.stats();
                tracing::info!(
                    dir = %config.spool.dir.display(),
                    pending_records = stats.pending_records,
                    used_bytes = stats.used_bytes,
                    "spool opened"
                );
                let forwarder = forward::Forwarder::new(
                    spool.clone(),
                    Arc::clone(&output),
                    Duration::from_millis(config.spool.forward_wait_ms),
                );
                Ok((
                    Sink::Spooled {
                        spool,
                        output,
                        ready_below_percent: config.spool.ready_below_percent,
                    },
                    SinkTasks {
                        writer: Some(writer),
                        forwarder: Some(forwarder),
                        kafka,
                    },
                ))
            }
        }
    }

    /// Starts making `batch` durable: the [`Delivery`] resolves once it is. Whether or not it
    /// is awaited, what it started goes on (a spool append, a Kafka produce), so a request
    /// dropped meanwhile hands it to a task that awaits the verdict (`pipeline::Reserved`).
    pub fn start(&self, batch: Batch) -> Result<Delivery, SinkError> {
        let mut envelopes = envelope::from_batch(batch);
        match self {
            Sink::Direct(output) => {
                let output = Arc::clone(output);
                Ok(Delivery::Direct(Box::pin(async move {
                    let mut done = vec![false; envelopes.len()];
                    loop {
                        let sent = output.send(&envelopes, &mut done).await;
                        // An event Kafka refuses for good goes to the dead-letter topic
                        // instead (each envelope at most once: a dead letter is not set
                        // aside again).
                        if let Err(SinkError::Publish(PublishError::Refused { index, source })) =
                            &sent
                        {
                            if refused::set_aside(&mut envelopes, *index, source)
                                == refused::SetAside::DeadLettered
                            {
                                refused::warn_dead_lettered(&envelopes, *index);
                                continue;
                            }
                        }
                        break sent;
                    }
                })))
            }
            Sink::Spooled { spool, .. } => {
                let payloads = envelopes.iter().map(envelope::Envelope::encode).collect();
                Ok(Delivery::Spool(spool.enqueue(payloads)?))
            }
        }
    }

    /// Records a direct-mode Kafka answer in `metrics`, as the forwarder records each batch's
    /// in spool mode (one per request).
    pub fn record(
        &self,
        metrics: &Metrics,
        started: std::time::Instant,
        delivered: &Result<(), SinkError>,
    ) {
        if let Sink::Direct(output) = self {
            if let Output::Kafka(_) = output.as_ref() {
                let outcome = delivered.as_ref().copied().map_err(SinkError::code);
                metrics.kafka_delivery(started.elapsed(), outcome);
            }
        }
    }

    /// True when the output can take records now (readiness probe).
    pub fn is_ready(&self) -> bool {
        self.readiness().ready
    }

    /// Readiness with its reasons: in direct mode the output must be reachable; in spool mode
    /// the spool must be below its pressure mark (a Kafka outage alone keeps it ready: the
    /// spool exists to ride it out).
    pub fn readiness(&self) -> Readiness {
        match self {
            Sink::Direct(output) => {
                let reachable = output.is_reachable();
                Readiness {
                    ready: reachable,
                    detail: json!({ "mode": "direct", "output_reachable": reachable }),
                }
            }
            Sink::Spooled {
                spool,
                output,
                ready_below_percent,
            } => {
                let stats = spool.stats();
                let percent = stats.used_bytes.saturating_mul(100) / stats.max_bytes.max(1);
                let writable = spool.is_writable();
                Readiness {
                    ready: percent < u64::from(*ready_below_percent) && writable,
                    detail: json!({
                        "mode": "spool",
                        "spool_writable": writable,
                        "output_reachable": output.is_reachable(),
                        "spool_used_percent": percent,
                        "spool_pending_records": stats.pending_records,
                    }),
                }
            }
        }
    }

    /// Flushes what is buffered (shutdown): the producer's queue, and the spool writer (which
    /// finishes its queue, syncs and stops). Call after the forwarder stopped.
    pub async fn flush(&self) -> Result<(), SinkError> {
        let output = match self {
            Sink::Direct(output) => output,
            Sink::Spooled { spool, output, .. } => {
                spool.close();
                output
            }
        };
        match &**output {
            Output::Jsonl(s) => s.flush().await,
            Output::Kafka(k) => Ok(k.flush(Duration::from_secs(10)).await?),
        }
    }
}

/// Probes Kafka every few seconds until `stop`, so readiness follows reachability even when
/// no traffic flows.
pub async fn watch_reachability(output: Arc<Output>, stop: CancellationToken) {
    let Output::Kafka(kafka) = &*output else {
        return;
    };
    loop {
        let was = kafka.is_reachable();
        let now = kafka.probe().await;
        if was != now {
            if now {
                tracing::info!("Kafka is reachable");
            } else {
                tracing::warn!("Kafka is unreachable");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            () = stop.cancelled() => return,
        }
    }
}
