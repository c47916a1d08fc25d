//! The spool's single writer: group commit on a blocking thread.
//!
//! Input: queued [`Job`]s. Output: each append answered with its last sequence number after
//! the one `fdatasync` its group shared. Fails a whole group on a write or sync error and
//! truncates the segment back to the group's start (invariant 3 in `spool.rs`). Never answers
//! before the sync returned.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;

use super::format;
use super::{Inner, Job, Segment, SpoolError};

/// Most appends folded into one sync; bounds latency for the first of a large group.
const MAX_GROUP_JOBS: usize = 4096;

type Reply = oneshot::Sender<Result<u64, SpoolError>>;

/// Owns the open segment. Run it with [`Writer::run`] on a blocking thread.
#[derive(Debug)]
pub struct Writer {
    inner: Arc<Inner>,
    jobs: mpsc::Receiver<Job>,
    file: File,
    segment: Segment,
    next_seq: u64,
}

/// The writer's end, however it comes (a close, a panic unwinding its thread): appends fail
/// from then on and the spool says it is not writable (readiness), instead of requests
/// finding out one 503 at a time.
impl Drop for Writer {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.inner.shared.lock() {
            shared.broken = true;
        }
    }
}

impl Writer {
    pub(super) fn new(
        inner: Arc<Inner>,
        jobs: mpsc::Receiver<Job>,
        file: File,
        segment: Segment,
        next_seq: u64,
    ) -> Writer {
        Writer {
            inner,
            jobs,
            file,
            segment,
            next_seq,
        }
    }

    /// Serves appends until [`super::Spool::close`] or until every handle is dropped. Blocks.
    pub fn run(mut self) {
        let mut closing = false;
        while !closing {
            let Ok(first) = self.jobs.recv() else {
                break;
            };
            let mut group = Vec::new();
            match first {
                Job::Append {
                    payloads,
                    bytes,
                    reply,
                } => group.push((payloads, bytes, reply)),
                Job::Close => closing = true,
            }
            while !closing && group.len() < MAX_GROUP_JOBS {
                match self.jobs.try_recv() {
                    Ok(Job::Append {
                        payloads,
                        bytes,
                        reply,
                    }) => group.push((payloads, bytes, reply)),
                    Ok(Job::Close) => closing = true,
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit(group);
            }
        }
        if let Err(e) = self.file.sync_data() {
            tracing::error!(error = %e, "final spool sync failed");
        }
        tracing::info!(next_seq = self.next_seq, "spool writer stopped");
    }

    fn commit(&mut self, group: Vec<(Vec<Vec<u8>>, u64, Reply)>) {
        let queued: u64 = group.iter().map(|(_, b, _)| *b).sum();
        // A group never spans two segments: roll before it, so undoing it touches one file.
        let mut result = Ok(());
        if self.segment.durable_len >= self.inner.settings.segment_bytes {
            result = self.roll();
        }
        let start_len = self.segment.durable_len;
        let mut buf = Vec::with_capacity(queued as usize);
        let mut answers = Vec::with_capacity(group.len());
        for (payloads, _, reply) in group {
            for p in &payloads {
                format::encode(self.next_seq, p, &mut buf);
                self.next_seq += 1;
            }
            answers.push((self.next_seq - 1, reply));
        }
        // At an explicit offset: a reused segment is longer than what it holds.
        let result = result.and_then(|()| {
            self.file
                .write_all_at(&buf, start_len)
                .and_then(|()| self.file.sync_data())
                .map_err(SpoolError::io("append to spool"))
        });
        let Ok(mut shared) = self.inner.lock() else {
            return;
        };
        shared.queued_bytes = shared.queued_bytes.saturating_sub(queued);
        match result {
            Ok(()) => {
                self.segment.durable_len += buf.len() as u64;
                self.segment.last_seq = self.next_seq - 1;
                shared.used_bytes += buf.len() as u64;
                shared.durable_seq = self.next_seq - 1;
                shared.syncs += 1;
                if let Some(open) = shared.segments.back_mut() {
                    open.durable_len = self.segment.durable_len;
                    open.last_seq = self.segment.last_seq;
                }
                drop(shared);
                self.inner.io.record(true);
                self.inner.appended.notify_one();
                for (seq, reply) in answers {
                    let _ = reply.send(Ok(seq));
                }
            }
            Err(e) => {
                tracing::error!(
                    error = %crate::telemetry::causes(&e),
                    "spool append failed; answering its group with 503"
                );
                // Undo whatever part of the group reached the open segment (invariant 3).
                if self.file.set_len(start_len).is_err() {
                    shared.broken = true;
                }
                self.next_seq = shared.durable_seq + 1;
                drop(shared);
                self.inner.io.record(false);
                for (_, reply) in answers {
                    let _ = reply.send(Err(e.copy_as_io()));
                }
            }
        }
    }

    /// Closes the open (already synced) segment and starts a new one.
    fn roll(&mut self) -> Result<(), SpoolError> {
        let next = Segment {
            first_seq: self.next_seq,
            path: format::segment_path(&self.inner.settings.dir, self.next_seq),
            durable_len: 0,
            last_seq: self.next_seq - 1,
        };
        let file = format::open_segment(&next.path, &self.inner.settings.dir)?;
        self.inner.lock()?.segments.push_back(next.clone());
        self.file = file;
        self.segment = next;
        Ok(())
    }
}
