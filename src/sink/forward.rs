//! The spool forwarder: drains the spool, in order, to the output (Kafka).
//!
//! Input: durable spool records. Output: each batch published and acknowledged, then
//! `spool.ack` (which trims whole segments). While the output fails it retries the batch's
//! unacknowledged envelopes with capped backoff. It skips none but a record that passed its
//! checksum yet is no envelope this version wrote (logged at error); a record Kafka refuses for
//! good is set aside (`refused.rs`), not retried. On shutdown it waits up to 5 s for the
//! verdict on the batch it handed to librdkafka, and acknowledges it when it comes (the
//! sink's flush would publish it anyway; forwarding it again after the restart would make
//! copies). A batch still undecided then stays unacknowledged and is forwarded again after
//! restart (at-least-once; Kafka consumers see the dedup id as the message key).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::envelope::Envelope;
use super::{refused, Output, SinkError};
use crate::metrics::Metrics;
use crate::publish::PublishError;
use crate::spool::Spool;

/// Most records published per batch.
const BATCH_RECORDS: usize = 500;
/// About the most payload bytes per batch.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How long a stop waits for the verdict on the batch in hand (see [`Forwarder::publish`]).
const STOP_WAIT: Duration = Duration::from_secs(5);
/// Longest wait between retries while the output is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Drains a spool to an output. Run with [`Forwarder::run`].
#[derive(Debug)]
pub struct Forwarder {
    spool: Spool,
    output: Arc<Output>,
    /// How long a batch may fill while fewer than [`BATCH_RECORDS`] are waiting
    /// (`[spool] forward_wait_ms`).
    fill_wait: Duration,
}

impl Forwarder {
    /// A forwarder from `spool` to `output` that lets a batch fill for up to `fill_wait`.
    pub fn new(spool: Spool, output: Arc<Output>, fill_wait: Duration) -> Forwarder {
        Forwarder {
            spool,
            output,
            fill_wait,
        }
    }

    /// Forwards until `stop` is cancelled, keeping the spool gauges and Kafka delivery
    /// metrics in `metrics` current.
    pub async fn run(self, stop: CancellationToken, metrics: impl AsRef<Metrics>) {
        let metrics = metrics.as_ref();
        metrics.spool_capacity(self.spool.stats().max_bytes);
        let mut reader = self.spool.reader();
        let mut forwarded = 0u64;
        // Since when records have been waiting without progress (see `report`): after a
        // restart, since the oldest pending event was received, so the age (and the alert
        // on it) does not start over with every restart of a gateway Kafka is not taking from.
        let mut waiting_since: Option<Instant> = self
            .oldest_pending_age()
            .and_then(|age| Instant::now().checked_sub(age));
        // When the last batch was read: the next one may fill until `fill_wait` after it.
        let mut last_read: Option<Instant> = None;
        loop {
            let pending = self.spool.stats().pending_records;
            if pending == 0 {
                waiting_since = None;
            }
            self.report(metrics, waiting_since);
            if stop.is_cancelled() {
                break;
            }
            // Let a partial batch fill: at most one produce request per `fill_wait` unless full
            // batches are waiting. A record arriving longer than that after the last read
            // (the first after a quiet spell) goes at once.
            if pending > 0 && pending < BATCH_RECORDS as u64 {
                let left = last_read.map_or(Duration::ZERO, |t| {
                    self.fill_wait.saturating_sub(t.elapsed())
                });
                if !left.is_zero() && sleep_or_stop(left, &stop).await {
                    break;
                }
            }
            // Read on the worker, not a blocking thread: the read buffers (up to 4 MiB) then
            // stay in the workers' allocator heaps. Read on blocking threads, the spool sweep's
            // peak RSS was 155 MB instead of 143-144 MB.
            let records = match reader.read(BATCH_RECORDS, BATCH_BYTES) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %crate::telemetry::causes(&e), "cannot read the spool; retrying");
                    if sleep_or_stop(Duration::from_secs(1), &stop).await {
                        break;
                    }
                    continue;
                }
            };
            let Some(&(last_seq, _)) = records.last() else {
                tokio::select! {
                    () = self.spool.appended() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = stop.cancelled() => break,
                }
                continue;
            };
            last_read = Some(Instant::now());
            let since = *waiting_since.get_or_insert_with(Instant::now);
            let mut envelopes: Vec<Envelope> = Vec::with_capacity(records.len());
            for (seq, payload) in &records {
                match Envelope::decode(payload) {
                    Ok(e) => envelopes.push(e),
                    Err(e) => {
                        tracing::error!(seq, error = %e, "spool record is not an envelope; skipping it")
                    }
                }
            }
            if !self.publish(&mut envelopes, &stop, metrics, since).await {
                break;
            }
            waiting_since = Some(Instant::now());
            forwarded += envelopes.len() as u64;
            // The mark is one small positional write, but synced when a segment is spent: a
            // blocking thread's work, not a request worker's. The spool's own thread deletes
            // segments.
            let spool = self.spool.clone();
            let error = match tokio::task::spawn_blocking(move || spool.ack(last_seq)).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(error) = error {
                tracing::error!(%error, "cannot record forwarded spool position; records may be forwarded again");
            }
        }
        tracing::info!(forwarded, "spool forwarder stopped");
    }

    /// How long ago the oldest record still to forward was received: its OCSF event's
    /// `unmapped.hookgate.received_time`. `None` when nothing is pending, or the record is a
    /// dead letter (raw bytes, no such member) or unreadable.
    fn oldest_pending_age(&self) -> Option<Duration> {
        if self.spool.stats().pending_records == 0 {
            return None;
        }
        let records = self.spool.reader().read(1, 64 * 1024).ok()?;
        let (_, payload) = records.first()?;
        let envelope = Envelope::decode(payload).ok()?;
        let event: serde_json::Value = serde_json::from_slice(&envelope.body).ok()?;
        let received_ms = event
            .pointer("/unmapped/hookgate/received_time")?
            .as_u64()?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis();
        let age_ms = now_ms.checked_sub(u128::from(received_ms))?;
        Some(Duration::from_millis(u64::try_from(age_ms).ok()?))
    }

    /// Sets the spool gauges; the oldest-record age is how long records have waited without
    /// progress (an upper bound on the oldest pending record's wait; after a restart, its
    /// age since it was received).
    fn report(&self, metrics: &Metrics, waiting_since: Option<Instant>) {
        let stats = self.spool.stats();
        let age = waiting_since.map_or(Duration::ZERO, |t| t.elapsed());
        metrics.spool_gauge(stats.pending_records, stats.used_bytes, age);
    }

    /// Publishes the batch, retrying what is left; false when stopped before it was all done.
    async fn publish(
        &self,
        envelopes: &mut [Envelope],
        stop: &CancellationToken,
        metrics: &Metrics,
        waiting_since: Instant,
    ) -> bool {
        let mut done = vec![false; envelopes.len()];
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let result = {
                let send = self.output.send(envelopes, &mut done);
                tokio::pin!(send);
                tokio::select! {
                    r = &mut send => r,
                    // Stopping with the batch handed to librdkafka: the sink's flush would
                    // publish it anyway, and a restart would then send it again. So its
                    // verdict is awaited a while, and the batch acknowledged when it comes.
                    () = stop.cancelled() => match tokio::time::timeout(STOP_WAIT, &mut send).await {
                        Ok(r) => r,
                        Err(_) => return false,
                    },
                }
            };
            if matches!(*self.output, Output::Kafka(_)) {
                let outcome = result.as_ref().map(|_| ()).map_err(|e| e.code());
                metrics.kafka_delivery(started.elapsed(), outcome);
            }
            match result {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "forwarding resumed");
                    }
                    return true;
                }
                Err(SinkError::Publish(PublishError::Refused { index, source })) => {
                    // Not retried as it is: the event goes to the dead-letter topic, a dead
                    // letter Kafka refuses too to a file beside the spool.
                    if self.set_aside(envelopes, &mut done, index, &source).await {
                        continue;
                    }
                    self.report(metrics, Some(waiting_since));
                    failures += 1;
                    if sleep_or_stop(backoff, stop).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(_) if stop.is_cancelled() => return false,
                Err(e) => {
                    self.report(metrics, Some(waiting_since));
                    failures += 1;
                    if failures == 1 || failures % 20 == 0 {
                        tracing::warn!(error = %crate::telemetry::causes(&e), code = e.code(), failures, "forwarding failed; retrying");
                    }
                    if sleep_or_stop(backoff, stop).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Sets aside the envelope at `index` that Kafka refused for good: an event becomes a dead
    /// letter (sent next round), a dead letter is kept in the spool directory's
    /// [`refused::KEPT_FILE`] and marked done. False when it could not be kept (retried).
    async fn set_aside(
        &self,
        envelopes: &mut [Envelope],
        done: &mut [bool],
        index: usize,
        why: &rdkafka::error::KafkaError,
    ) -> bool {
        if refused::set_aside(envelopes, index, why) == refused::SetAside::DeadLettered {
            refused::warn_dead_lettered(envelopes, index);
            return true;
        }
        let Some(envelope) = envelopes.get(index).cloned() else {
            return false;
        };
        let dir = self.spool.dir().to_path_buf();
        let kept = tokio::task::spawn_blocking(move || {
            refused::keep(&dir, &envelope).map(|p| (p, envelope))
        })
        .await;
        match kept {
            Ok(Ok((path, envelope))) => {
                tracing::error!(
                    source = %envelope.source,
                    request_id = %envelope.request_id,
                    uid = %envelope.uid,
                    raw_bytes = envelope.body.len(),
                    error = %crate::telemetry::causes(why),
                    path = %path.display(),
                    "Kafka refused a dead letter for good; kept it in a file beside the spool instead"
                );
                if let Some(d) = done.get_mut(index) {
                    *d = true;
                }
                true
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot keep a dead letter Kafka refused; retrying");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot keep a dead letter Kafka refused; retrying");
                false
            }
        }
    }
}

/// Sleeps `d`; true when `stop` fired first.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = stop.cancelled() => true,
    }
}
