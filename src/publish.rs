//! Stage 10, publish: envelopes → Kafka, acknowledged.
//!
//! Input: [`Envelope`]s (from the request in direct mode, from the spool in spool mode).
//! Output: each envelope marked done once Kafka acknowledged it (idempotent producer,
//! `acks=all`). Message key = the dedup id, so a vendor's retries land on one partition;
//! headers carry source, vendor, OCSF class and version, request id (and a dead letter's
//! reason). Fails with [`PublishError`] (always a downstream fault: the caller answers 503 or
//! retries). Never reports an envelope done before its delivery report said so.

pub mod client_config;
mod kafka_log;
mod topics;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use arc_swap::ArcSwap;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use self::kafka_log::KafkaLog;
pub use self::topics::TopicTemplate;
use crate::config::{DeliveryMode, KafkaConfig};
use crate::normalize::OCSF_VERSION;
use crate::sink::envelope::{Envelope, Kind};

/// How long metadata and admin calls may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why envelopes were not acknowledged by Kafka.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Downstream fault: the producer could not be built from the config. What librdkafka
    /// said, with every `[kafka.properties]` value masked (they are secrets).
    #[error("cannot create Kafka client: {0}")]
    Build(String),
    /// Downstream fault: the topic does not exist and could not be created.
    #[error("Kafka topic {topic:?} is missing and could not be created: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// What the broker or client said.
        reason: String,
    },
    /// Downstream fault: the topic does not exist and `kafka.create_topics` is false.
    #[error("Kafka topic {topic:?} does not exist (kafka.create_topics = false)")]
    TopicMissing {
        /// The topic.
        topic: String,
    },
    /// Downstream fault: the cluster's metadata could not be fetched (unreachable).
    #[error("cannot fetch Kafka metadata")]
    Metadata(#[source] KafkaError),
    /// Downstream fault: the producer refused or Kafka did not acknowledge in time.
    #[error("Kafka did not acknowledge the message")]
    Produce(#[source] KafkaError),
    /// Gateway fault: the producer dropped the delivery report.
    #[error("Kafka delivery report was lost")]
    Canceled,
    /// Downstream refusal for good: the broker (or librdkafka, over `message.max.bytes`)
    /// refused the envelope at `index` as too large or invalid, so sending it again cannot
    /// succeed. The caller turns an event into a dead letter (`sink/refused.rs`).
    #[error("Kafka refused the record for good")]
    Refused {
        /// The refused envelope's index in the slice given to [`Kafka::send`].
        index: usize,
        /// What the broker or client said.
        #[source]
        source: KafkaError,
    },
    /// Downstream fault: no delivery report within `message_timeout_ms` (and a second of
    /// librdkafka's timeout scan); the message may still be written later.
    #[error("Kafka did not acknowledge within {after:?}")]
    TimedOut {
        /// How long the request waited.
        after: Duration,
    },
}

impl PublishError {
    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::Build(_) => "kafka_client",
            PublishError::Topic { .. } => "kafka_topic",
            PublishError::TopicMissing { .. } => "kafka_topic_missing",
            PublishError::Metadata(_) => "kafka_unreachable",
            PublishError::Produce(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                "kafka_queue_full"
            }
            PublishError::Produce(_) => "kafka_produce",
            PublishError::Canceled => "kafka_canceled",
            PublishError::TimedOut { .. } => "kafka_timeout",
            PublishError::Refused { .. } => "kafka_refused",
        }
    }

    /// True when the broker answered and refused (as opposed to being unreachable).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PublishError::TopicMissing { .. }
                | PublishError::Topic { .. }
                | PublishError::Refused { .. }
        )
    }
}

/// True when Kafka refuses this record whatever is tried again: larger than the broker's (or
/// the producer's) limit, or a record the broker finds invalid.
fn refused_for_good(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

/// librdkafka's `message.max.bytes`: the spool's largest record plus room for the request
/// framing. `[kafka.properties]` may lower it.
pub(crate) const MESSAGE_MAX_BYTES: usize = crate::spool::MAX_RECORD_BYTES + 1024 * 1024;

/// The Kafka producer with its routing and topic bookkeeping.
pub struct Kafka {
    /// Replaced whole when librdkafka reports a fatal error (an idempotent producer that lost
    /// its sequence state cannot continue; a new one can).
    producer: ArcSwap<FutureProducer<KafkaLog>>,
    client_config: ClientConfig,
    admin: AdminClient<KafkaLog>,
    /// Shared by the clients, so a rebuilt producer keeps counting repeats.
    log: KafkaLog,
    topic: TopicTemplate,
    dead_letter_topic: TopicTemplate,
    create_topics: bool,
    partitions: i32,
    replication: i32,
    /// Topics known to exist.
    ensured: Mutex<HashSet<String>>,
    /// Held while a topic is checked or created ([`Kafka::ensure`]).
    ensuring: tokio::sync::Mutex<()>,
    /// Last known reachability (delivery reports and probes).
    reachable: AtomicBool,
    /// Direct mode: the longest a send waits, a new topic's metadata and the delivery reports
    /// included: `message_timeout_ms` plus a second (librdkafka fails a message it already
    /// sent only when its produce request times out, which may be later; a vendor waits).
    /// Spool mode: none, the forwarder waits for librdkafka's own verdict on every message
    /// (sending again what is still in flight would only add copies).
    delivery_wait: Option<Duration>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("topic", &self.topic)
            .field("reachable", &self.reachable)
            .finish_non_exhaustive()
    }
}

impl Kafka {
    /// Builds the producer and admin client (connects lazily).
    pub fn build(config: &KafkaConfig, mode: DeliveryMode) -> Result<Kafka, PublishError> {
        let client = client_config::build(config, mode);
        let log = KafkaLog::new(config.properties.values().cloned());
        let refused =
            |e: KafkaError| PublishError::Build(client_config::masked(&e, &config.properties));
        let producer: FutureProducer<KafkaLog> =
            client.create_with_context(log.clone()).map_err(refused)?;
        let admin: AdminClient<KafkaLog> =
            client.create_with_context(log.clone()).map_err(refused)?;
        let template = |t: &str| {
            TopicTemplate::parse(t).map_err(|reason| PublishError::Topic {
                topic: t.to_owned(),
                reason,
            })
        };
        Ok(Kafka {
            producer: ArcSwap::from_pointee(producer),
            client_config: client,
            admin,
            log,
            topic: template(&config.topic)?,
            dead_letter_topic: template(&config.dead_letter_topic)?,
            create_topics: config.create_topics,
            partitions: config.topic_partitions,
            replication: config.topic_replication,
            ensured: Mutex::new(HashSet::new()),
            ensuring: tokio::sync::Mutex::new(()),
            reachable: AtomicBool::new(false),
            delivery_wait: (mode == DeliveryMode::Direct).then(|| {
                Duration::from_millis(u64::from(config.message_timeout_ms)) + Duration::from_secs(1)
            }),
        })
    }

    /// Ensures the topics whose names do not depend on the event (startup check).
    pub async fn ensure_fixed_topics(&self) -> Result<(), PublishError> {
        for template in [&self.topic, &self.dead_letter_topic] {
            if let Some(name) = template.fixed() {
                self.ensure(name).await?;
            }
        }
        Ok(())
    }

    /// Makes sure `topic` exists: checks metadata, creates it when allowed. One check at a
    /// time: while the broker does not answer, requests for unconfirmed topics wait their
    /// turn (each within its deadline) instead of each holding a blocking thread for the
    /// metadata timeout.
    async fn ensure(&self, topic: &str) -> Result<(), PublishError> {
        if self.ensured.lock().is_ok_and(|s| s.contains(topic)) {
            return Ok(());
        }
        let _one_at_a_time = self.ensuring.lock().await;
        if self.ensured.lock().is_ok_and(|s| s.contains(topic)) {
            return Ok(());
        }
        let producer = self.producer.load_full();
        let name = topic.to_owned();
        let exists = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&name), ADMIN_TIMEOUT)
                .map(|m| {
                    m.topics().iter().any(|t| {
                        t.name() == name && t.error().is_none() && !t.partitions().is_empty()
                    })
                })
        })
        .await
        .map_err(|_| PublishError::Canceled)?
        .map_err(PublishError::Metadata)?;
        self.reachable.store(true, Ordering::Relaxed);
        if !exists {
            if !self.create_topics {
                return Err(PublishError::TopicMissing {
                    topic: topic.to_owned(),
                });
            }
            let new = NewTopic::new(
                topic,
                self.partitions,
                TopicReplication::Fixed(self.replication),
            );
            let opts = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT));
            let results =
                self.admin
                    .create_topics([&new], &opts)
                    .await
                    .map_err(|e| PublishError::Topic {
                        topic: topic.to_owned(),
                        reason: e.to_string(),
                    })?;
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => {
                        return Err(PublishError::Topic {
                            topic: topic.to_owned(),
                            reason: code.to_string(),
                        })
                    }
                }
            }
            tracing::info!(topic, partitions = self.partitions, "created Kafka topic");
        }
        if let Ok(mut set) = self.ensured.lock() {
            set.insert(topic.to_owned());
        }
        Ok(())
    }

    /// The topic `envelope` goes to.
    pub fn topic_for(&self, envelope: &Envelope) -> String {
        match envelope.kind {
            Kind::Event { .. } => self.topic.render(envelope),
            Kind::DeadLetter { .. } => self.dead_letter_topic.render(envelope),
        }
    }

    /// Publishes every envelope not yet `done`, marking each one Kafka acknowledged. Returns the
    /// first error when any is left undone; the caller retries the rest (or answers 503). An
    /// envelope Kafka refused for good is reported as [`PublishError::Refused`] before any
    /// other error, so the caller can set it aside rather than retry it.
    pub async fn send(
        &self,
        envelopes: &[Envelope],
        done: &mut [bool],
    ) -> Result<(), PublishError> {
        let mut first_error = None;
        let mut refused = None;
        let mut pending = Vec::with_capacity(envelopes.len());
        // In direct mode the whole call, a new topic's metadata included, ends by this deadline.
        let now = tokio::time::Instant::now();
        let deadline = self
            .delivery_wait
            .map_or_else(far_future, |wait| now + wait);
        let timed_out = || PublishError::TimedOut {
            after: deadline - now,
        };
        for (i, envelope) in envelopes.iter().enumerate() {
            if done.get(i).copied().unwrap_or(true) {
                continue;
            }
            let topic = self.topic_for(envelope);
            let ensured = tokio::time::timeout_at(deadline, self.ensure(&topic)).await;
            if let Err(e) = ensured.unwrap_or_else(|_| Err(timed_out())) {
                first_error.get_or_insert(e);
                break;
            }
            let record = FutureRecord::to(&topic)
                .key(envelope.uid.as_bytes())
                .payload(envelope.body.as_ref())
                .headers(headers(envelope));
            match self.producer.load().send_result(record) {
                Ok(delivery) => pending.push((i, delivery)),
                Err((e, _)) if refused_for_good(&e) => {
                    refused.get_or_insert((i, e));
                }
                Err((e, _)) => {
                    first_error.get_or_insert(PublishError::Produce(e));
                    break;
                }
            }
        }
        for (i, delivery) in pending {
            // Past the deadline each report is still polled once: those already in are kept.
            let Ok(delivery) = tokio::time::timeout_at(deadline, delivery).await else {
                first_error.get_or_insert_with(timed_out);
                continue;
            };
            match delivery {
                Ok(Ok(_)) => {
                    if let Some(d) = done.get_mut(i) {
                        *d = true;
                    }
                    self.reachable.store(true, Ordering::Relaxed);
                }
                Ok(Err((e, _))) if refused_for_good(&e) => {
                    refused.get_or_insert((i, e));
                }
                Ok(Err((e, _))) => {
                    first_error.get_or_insert(PublishError::Produce(e));
                }
                Err(_) => {
                    first_error.get_or_insert(PublishError::Canceled);
                }
            }
        }
        if let Some((index, source)) = refused {
            first_error = Some(PublishError::Refused { index, source });
        }
        match first_error {
            None => Ok(()),
            Some(e) => {
                self.replace_if_fatal();
                if !e.is_refusal() {
                    self.reachable.store(false, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    /// Builds a fresh producer when the current one reported a fatal error; the caller's retry
    /// then goes through the new one.
    fn replace_if_fatal(&self) {
        let Some((code, reason)) = self.producer.load().client().fatal_error() else {
            return;
        };
        tracing::error!(%code, reason, "Kafka producer hit a fatal error; replacing it");
        match self
            .client_config
            .create_with_context::<_, FutureProducer<KafkaLog>>(self.log.clone())
        {
            Ok(fresh) => self.producer.store(std::sync::Arc::new(fresh)),
            Err(e) => tracing::error!(error = %e, "cannot create a new Kafka producer"),
        }
    }

    /// Asks the cluster for metadata; updates and returns reachability.
    pub async fn probe(&self) -> bool {
        let producer = self.producer.load_full();
        let ok = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(3))
                .is_ok()
        })
        .await
        .unwrap_or(false);
        self.reachable.store(ok, Ordering::Relaxed);
        ok
    }

    /// Last known reachability.
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Waits (up to `timeout`) for queued messages to be delivered (shutdown).
    pub async fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        let producer = self.producer.load_full();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|_| PublishError::Canceled)?
            .map_err(PublishError::Produce)
    }
}

fn headers(envelope: &Envelope) -> OwnedHeaders {
    let mut h = OwnedHeaders::new()
        .insert(Header {
            key: "source",
            value: Some(envelope.source.as_str()),
        })
        .insert(Header {
            key: "vendor",
            value: Some(envelope.vendor.as_str()),
        })
        .insert(Header {
            key: "request_id",
            value: Some(envelope.request_id.as_str()),
        });
    match &envelope.kind {
        Kind::Event {
            class_uid,
            class_name,
        } => {
            h = h
                .insert(Header {
                    key: "ocsf.class_uid",
                    value: Some(class_uid.to_string().as_str()),
                })
                .insert(Header {
                    key: "ocsf.class_name",
                    value: Some(class_name.as_str()),
                })
                .insert(Header {
                    key: "ocsf.version",
                    value: Some(OCSF_VERSION),
                });
        }
        Kind::DeadLetter {
            reason_code,
            reason,
        } => {
            h = h
                .insert(Header {
                    key: "dead_letter.reason_code",
                    value: Some(reason_code.as_str()),
                })
                .insert(Header {
                    key: "dead_letter.reason",
                    value: Some(reason.as_str()),
                });
        }
    }
    h
}
/// A deadline no wait reaches (about thirty years on).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}
