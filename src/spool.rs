//! Stage 9, spool: hookgate's local, append-only, crash-safe queue.
//!
//! Input: encoded records (one per event, see `sink::envelope`). Output: a sequence number once
//! the records are appended **and fsynced**; the request path answers 2xx only after that.
//! A forwarder reads records back in order ([`SpoolReader`]) and calls [`Spool::ack`] once
//! Kafka acknowledged them; whole segments below the acknowledged point are deleted.
//! Fails with [`SpoolError`]: `Full` (→ 503 + `Retry-After`) or `Io` (→ 503).
//! Never: acknowledges a record before its fsync returned; reads past the fsynced length;
//! deletes a segment holding an unacknowledged record.
//!
//! # Invariants
//!
//! 1. Sequence numbers start at 1 and increase by exactly one per record, across segments
//!    (past records damaged on disk, which recovery cannot read, they skip: invariant 6).
//! 2. A record is *durable* once the group it belongs to was written and `fdatasync`ed; only
//!    then is its caller answered and only then may the reader see it (`durable_len`).
//! 3. Group commit: one writer thread owns the open segment. It takes every append queued
//!    while it was busy, writes them in arrival order, syncs once, then answers them all.
//!    A failed write or sync answers the whole group with an error and truncates the segment
//!    back to where the group started, so the file never holds an unanswered record.
//! 4. Bounded: bytes on disk plus bytes queued never exceed `max_bytes`; an append that would
//!    is refused with `Full` before it is queued (the vendor retries later).
//! 5. Trim: only whole segments are deleted, never the open one, and only when every record in
//!    them is `<=` the acknowledged sequence. The acknowledged sequence is kept in the `acked`
//!    file (overwritten in place, alternating between two checksummed slots; synced before
//!    any segment is deleted).
//!    A stale or unreadable `acked` file only causes records to be forwarded again
//!    (at-least-once), never lost. A spent segment becomes the spare when there is none, else
//!    it is shrunk a step at a time and deleted on the trimmer's thread (`trim.rs`), so
//!    neither stalls an append's sync.
//! 6. Recovery at startup: every segment is scanned. At the first record whose header is
//!    incomplete, whose length is implausible, whose checksum fails or whose sequence number is
//!    not the expected next one, the segment is truncated there. In the newest segment with
//!    bytes with no intact record after, that is a torn write from a crash (such a record was
//!    never fsynced, so never acknowledged), logged at warn. Otherwise it is damage on disk
//!    to acknowledged records: the bad bytes are kept (`damaged-*.bin`), logged at error, and
//!    the intact records after them are written, synced, to a segment of their own named by
//!    the first of them before the truncation, so nothing readable is lost (`format::recover`).
//!    A valid record older than the segment's first is a reused file's leftover, cut off
//!    quietly. A segment whose successor starts at or below `acked + 1` is deleted unread.
//!    Writing then continues in a fresh segment.
//!
//! # On-disk layout
//!
//! A directory holding `acked`, segment files named `<first sequence, 20 digits>.seg`, and at
//! most one spare (`spare.seg-recycled`: a spent segment the next roll renames into place and
//! overwrites; records past a segment's durable length may be such leftovers).
//! A segment is a series of records, nothing else (no file header):
//!
//! ```text
//! offset  size  field
//! 0       4     payload length N, u32 little-endian (at most MAX_RECORD_BYTES)
//! 4       4     CRC-32 (IEEE) over bytes 8..16+N (sequence number and payload), u32 LE
//! 8       8     sequence number, u64 little-endian
//! 16      N     payload (opaque here)
//! ```
//!
//! `acked` is two 16-byte slots written in turn, each the acknowledged sequence number (u64
//! LE), its CRC-32 (u32 LE) and 4 zero bytes; the larger valid slot counts (`mark.rs`).

mod format;
mod mark;
mod reader;
mod trim;
pub mod volume;
mod writer;

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use crate::health::recent_failure::RecentFailure;
use tokio::sync::{oneshot, Notify};

pub use self::format::{MAX_RECORD_BYTES, RECORD_HEADER_BYTES};
pub use self::reader::SpoolReader;
pub use self::writer::Writer;

/// Why the spool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Downstream fault (Kafka is behind): the spool holds `max_bytes` already.
    #[error("spool is full ({used_bytes} of {max_bytes} bytes)")]
    Full {
        /// Bytes held or queued.
        used_bytes: u64,
        /// The configured cap.
        max_bytes: u64,
    },
    /// Sender's fault in size: one record is larger than a spool record may be.
    #[error("record of {bytes} bytes exceeds the spool record limit")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Downstream fault (disk): a read, write, sync or rename failed.
    #[error("spool i/o failed: {context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Gateway fault: the writer thread is gone or the state lock was poisoned.
    #[error("spool is closed")]
    Closed,
}

impl SpoolError {
    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SpoolError::Full { .. } => "spool_full",
            SpoolError::TooLarge { .. } => "spool_record_too_large",
            SpoolError::Io { .. } => "spool_io",
            SpoolError::Closed => "spool_closed",
        }
    }

    /// An I/O error with this one's context, kind and text (the OS's "No space left on
    /// device" included), for each request of a group that failed (an `io::Error` is not
    /// `Clone`).
    fn copy_as_io(&self) -> SpoolError {
        match self {
            SpoolError::Io { context, source } => SpoolError::Io {
                context,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            other => SpoolError::Io {
                context: "append to spool",
                source: std::io::Error::other(other.to_string()),
            },
        }
    }

    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> SpoolError {
        move |source| SpoolError::Io { context, source }
    }
}

/// How the spool is sized.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// Directory holding segments and the `acked` file (created when missing).
    pub dir: PathBuf,
    /// Cap on bytes held (segments on disk plus queued appends).
    pub max_bytes: u64,
    /// A segment is closed and a new one started once it reaches this many bytes.
    pub segment_bytes: u64,
}

/// One segment as the shared state knows it.
#[derive(Debug, Clone)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    /// Bytes written and synced; the reader never reads past this.
    durable_len: u64,
    /// Sequence of the last durable record; `first_seq - 1` while empty.
    last_seq: u64,
}

#[derive(Debug)]
struct Shared {
    /// Oldest first; the last one is the writer's open segment.
    segments: VecDeque<Segment>,
    durable_seq: u64,
    acked_seq: u64,
    /// Bytes of all segments' durable lengths.
    used_bytes: u64,
    /// Bytes accepted into the writer's queue but not yet written.
    queued_bytes: u64,
    /// Group commits (fsyncs of appended data) so far.
    syncs: u64,
    /// Set once the writer hit an error it could not undo; every later append fails.
    broken: bool,
}

#[derive(Debug)]
struct Inner {
    settings: SpoolSettings,
    shared: Mutex<Shared>,
    /// The `acked` file (written by `Spool::ack` only).
    mark: Mutex<mark::Mark>,
    /// Woken after each group commit (the forwarder waits on it).
    appended: Notify,
    /// The last group commit's disk outcome (recorded by the writer), for readiness.
    io: RecentFailure,
    /// The recycled segment's records found at startup ([`Spool::take_recycled`]).
    recycled: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl Inner {
    fn lock(&self) -> Result<MutexGuard<'_, Shared>, SpoolError> {
        self.shared.lock().map_err(|_| SpoolError::Closed)
    }
}

/// A queued append: encoded payloads and where to answer.
#[derive(Debug)]
enum Job {
    Append {
        payloads: Vec<Vec<u8>>,
        bytes: u64,
        reply: oneshot::Sender<Result<u64, SpoolError>>,
    },
    Close,
}

/// The spool handle used by the request path and the forwarder (cheap to clone).
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
    jobs: mpsc::Sender<Job>,
    /// Spent segments to keep as the spare or delete a step at a time (`trim.rs`).
    trim: mpsc::Sender<PathBuf>,
}

/// Point-in-time figures for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes held or queued.
    pub used_bytes: u64,
    /// The cap.
    pub max_bytes: u64,
    /// Records durable but not yet acknowledged downstream.
    pub pending_records: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Group commits (one fsync each) since start.
    pub syncs: u64,
}

/// Records queued for the spool's writer: resolves to the last sequence number once they are
/// fsynced ([`Spool::enqueue`]).
#[derive(Debug)]
pub struct Appending(oneshot::Receiver<Result<u64, SpoolError>>);

impl std::future::Future for Appending {
    type Output = Result<u64, SpoolError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.map_err(|_| SpoolError::Closed)?)
    }
}

impl Spool {
    /// Opens (recovering) the spool in `settings.dir`. Returns the handle and the writer, which
    /// the caller runs on a blocking thread (`Writer::run`) — `app.rs` owns background work.
    pub fn open(settings: SpoolSettings) -> Result<(Spool, Writer), SpoolError> {
        fs::create_dir_all(&settings.dir).map_err(SpoolError::io("create spool dir"))?;
        let (mark, acked_seq) = mark::Mark::open(&settings.dir)?;
        let recovered = format::recover(&settings.dir, acked_seq)?;
        let next_seq = recovered.next_seq;
        // Only the spare's records among the last ones made durable.
        let oldest = next_seq.saturating_sub(format::RECYCLED_KEPT as u64);
        let recycled: Vec<(u64, Vec<u8>)> = recovered
            .recycled
            .into_iter()
            .filter(|(seq, _)| *seq >= oldest && *seq < next_seq)
            .collect();
        let mut segments: VecDeque<Segment> = recovered.segments.into();
        let used_bytes = segments.iter().map(|s| s.durable_len).sum();
        // Writing always continues in a fresh segment, so a repaired tail is never appended to.
        let open = match segments.back() {
            Some(last) if last.durable_len == 0 => last.clone(),
            _ => {
                let seg = Segment {
                    first_seq: next_seq,
                    path: format::segment_path(&settings.dir, next_seq),
                    durable_len: 0,
                    last_seq: next_seq - 1,
                };
                segments.push_back(seg.clone());
                seg
            }
        };
        let file = format::open_segment(&open.path, &settings.dir)?;
        let shared = Shared {
            segments,
            durable_seq: next_seq - 1,
            acked_seq: acked_seq.min(next_seq - 1),
            used_bytes,
            queued_bytes: 0,
            syncs: 0,
            broken: false,
        };
        let inner = Arc::new(Inner {
            settings,
            shared: Mutex::new(shared),
            mark: Mutex::new(mark),
            appended: Notify::new(),
            recycled: Mutex::new(recycled),
            io: RecentFailure::new(),
        });
        let (jobs, rx) = mpsc::channel();
        let writer = Writer::new(Arc::clone(&inner), rx, file, open, next_seq);
        let trim = trim::start(inner.settings.dir.clone())
            .map_err(SpoolError::io("start spool trimmer"))?;
        Ok((Spool { inner, jobs, trim }, writer))
    }

    /// Appends `payloads` as consecutive records; returns the last sequence number once they
    /// are fsynced. Refuses with `Full` before queuing when the cap would be passed.
    pub async fn append(&self, payloads: Vec<Vec<u8>>) -> Result<u64, SpoolError> {
        self.enqueue(payloads)?.await
    }

    /// Queues `payloads` for the writer; the returned [`Appending`] resolves to the last
    /// sequence number once they are fsynced. Queued, they are written whether or not it is
    /// awaited. Refuses with `Full` before queuing when the cap would be passed.
    pub fn enqueue(&self, payloads: Vec<Vec<u8>>) -> Result<Appending, SpoolError> {
        let mut bytes = 0u64;
        for p in &payloads {
            if p.len() > MAX_RECORD_BYTES {
                return Err(SpoolError::TooLarge { bytes: p.len() });
            }
            bytes += (RECORD_HEADER_BYTES + p.len()) as u64;
        }
        {
            let mut shared = self.inner.lock()?;
            if shared.broken {
                return Err(SpoolError::Closed);
            }
            let used = shared.used_bytes + shared.queued_bytes;
            if used + bytes > self.inner.settings.max_bytes {
                return Err(SpoolError::Full {
                    used_bytes: used,
                    max_bytes: self.inner.settings.max_bytes,
                });
            }
            shared.queued_bytes += bytes;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job::Append {
            payloads,
            bytes,
            reply,
        };
        if self.jobs.send(job).is_err() {
            self.unqueue(bytes);
            return Err(SpoolError::Closed);
        }
        Ok(Appending(answer))
    }

    /// False for a while after an append failed on the disk (full, read-only) with none
    /// succeeding since, and for good once the writer has stopped (closed, or its thread
    /// ended by a panic): every request is refused then, so the instance is not ready.
    pub fn is_writable(&self) -> bool {
        self.inner.io.is_healthy() && self.inner.lock().is_ok_and(|s| !s.broken)
    }

    fn unqueue(&self, bytes: u64) {
        if let Ok(mut shared) = self.inner.lock() {
            shared.queued_bytes = shared.queued_bytes.saturating_sub(bytes);
        }
    }

    /// A reader positioned at the first unacknowledged record.
    pub fn reader(&self) -> SpoolReader {
        SpoolReader::new(Arc::clone(&self.inner))
    }

    /// A reader over the last `records` durable records, acknowledged or not (as far as
    /// their segments are still on disk).
    pub fn tail_reader(&self, records: u64) -> SpoolReader {
        let after = self
            .inner
            .lock()
            .map_or(0, |s| s.durable_seq.saturating_sub(records));
        SpoolReader::after(Arc::clone(&self.inner), after)
    }

    /// The records of the segment recycled before the last stop that are among the last ones
    /// made durable (their segment is gone from the list, so [`tail_reader`](Self::tail_reader)
    /// cannot reach them), read at startup before the writer overwrote them; once.
    pub fn take_recycled(&self) -> Vec<(u64, Vec<u8>)> {
        self.inner
            .recycled
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    /// Waits until something new was appended (or returns at once if it already was since the
    /// last call).
    pub async fn appended(&self) {
        self.inner.appended.notified().await;
    }

    /// Records everything up to `seq` as delivered downstream: persists the mark and hands
    /// segments that hold nothing newer to the trimmer, which keeps one as the spare and
    /// deletes the others in the background.
    /// The mark is made durable before a segment is touched, so a crash mid-deletion leaves a
    /// file that recovery knows to be spent.
    pub fn ack(&self, seq: u64) -> Result<(), SpoolError> {
        let (acked, doomed) = {
            let mut shared = self.inner.lock()?;
            if seq <= shared.acked_seq {
                return Ok(());
            }
            // Never past what is durable: a record not yet synced cannot have been forwarded.
            shared.acked_seq = seq.min(shared.durable_seq);
            let mut doomed = Vec::new();
            while shared.segments.len() > 1 {
                match shared.segments.front() {
                    Some(front) if front.last_seq <= shared.acked_seq => {
                        if let Some(seg) = shared.segments.pop_front() {
                            shared.used_bytes = shared.used_bytes.saturating_sub(seg.durable_len);
                            doomed.push(seg);
                        }
                    }
                    _ => break,
                }
            }
            (shared.acked_seq, doomed)
        };
        self.inner
            .mark
            .lock()
            .map_err(|_| SpoolError::Closed)?
            .write(acked, !doomed.is_empty())?;
        for seg in doomed {
            if self.trim.send(seg.path).is_err() {
                tracing::warn!("spool trimmer has stopped; spent segments stay until restart");
            }
        }
        Ok(())
    }

    /// Current figures.
    pub fn stats(&self) -> SpoolStats {
        match self.inner.lock() {
            Ok(s) => SpoolStats {
                used_bytes: s.used_bytes + s.queued_bytes,
                max_bytes: self.inner.settings.max_bytes,
                pending_records: s.durable_seq.saturating_sub(s.acked_seq),
                segments: s.segments.len(),
                syncs: s.syncs,
            },
            Err(_) => SpoolStats {
                used_bytes: self.inner.settings.max_bytes,
                max_bytes: self.inner.settings.max_bytes,
                pending_records: 0,
                segments: 0,
                syncs: 0,
            },
        }
    }

    /// Asks the writer to finish what is queued and stop (shutdown). Appends after this fail.
    pub fn close(&self) {
        let _ = self.jobs.send(Job::Close);
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.inner.settings.dir
    }
}

#[cfg(test)]
mod tests;
