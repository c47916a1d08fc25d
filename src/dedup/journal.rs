//! The memory dedup store's journal: committed keys with their wall-clock expiry.
//!
//! Input: `(scoped key, expiry)` on each commit. Output: the same pairs at startup. One JSON
//! array per line, `["<key>", <expires unix ms>]`; a torn or unreadable line is skipped (its
//! key is forgotten, never invented). Compacted (the live keys written to a temporary file,
//! then renamed over it) at startup and whenever it holds more than twice `max_entries` lines.
//! Never holds event bodies.
//!
//! Appends are written behind: a commit queues its lines (no system call on the request
//! path) and the journal's own thread writes whatever is queued, [`WRITE_DELAY`] after the
//! first line of a batch, in one `write` (under load one per millisecond instead of one per
//! request, and no lock held across a write on the request path). So a process crash
//! forgets the ids of at most the last few milliseconds, as a power loss forgets those the
//! kernel had not written back; a clean stop writes everything ([`Journal::flush`], and on
//! drop).
//!
//! A compaction runs in two steps so the request path never waits for it:
//! [`Journal::begin_compaction`] (on the committing request: from then on written lines are
//! also kept aside), then the store's snapshot of live keys, then
//! [`Journal::finish_compaction`] on a thread of its own, which writes the snapshot, adds what
//! was kept aside, swaps the files and frees the old one a step at a time
//! (`crate::slow_delete`). A key committed while it runs is in the snapshot or in what was
//! kept aside (or still queued, then written to the new file), so it is never lost.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the writer thread lets queued lines gather before it writes them: bounds what a
/// process crash can forget, and makes the writes per second at most about its inverse.
pub const WRITE_DELAY: Duration = Duration::from_millis(1);

/// A background compaction syncs its new file this many bytes at a time, pausing
/// [`COMPACTION_STEP_PAUSE`] after each: one `sync_all` of the whole file (≈ 43 MB at a
/// million ids) put every spool `fdatasync` behind it, and a 10-minute soak at 5,000
/// requests/s saw all requests wait ≈ 50–60 ms at that moment.
const COMPACTION_STEP_BYTES: usize = 1024 * 1024;
/// See [`COMPACTION_STEP_BYTES`]: a million ids' file is written in about half a second.
const COMPACTION_STEP_PAUSE: Duration = Duration::from_millis(10);

/// An append-only file of committed dedup keys, with the thread that writes it.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// Taken to write (the writer thread, [`Journal::flush`]) and to swap files: lock order
    /// `open`, then `queue`; a commit only ever takes `queue`.
    open: Mutex<Open>,
    queue: Mutex<Queue>,
    /// Signalled when the queue turns non-empty or the journal closes.
    queued: Condvar,
    /// How long the writer lets lines gather ([`WRITE_DELAY`] but in tests).
    delay: Duration,
    /// Lines in the file (counted as they are written).
    lines: AtomicUsize,
    /// Set from `begin_compaction` until its `finish_compaction` (or `cancel_compaction`).
    compacting: AtomicBool,
}

#[derive(Debug)]
struct Open {
    file: Option<File>,
    /// Lines written since the running compaction began (`None` when none runs).
    kept_aside: Option<Vec<u8>>,
    /// A failed write may have left part of a line: the next write ends it first, so only
    /// that line is lost, not also the one appended to it.
    torn: bool,
}

/// Lines committed and not yet written.
#[derive(Debug, Default)]
struct Queue {
    bytes: Vec<u8>,
    lines: usize,
    closing: bool,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    // Both locks guard bytes and a file handle that every holder leaves whole, so a panic
    // elsewhere while one was held leaves nothing half-done: the guard is taken back.
    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes every queued line to the file (and aside, while a compaction runs), counting
    /// them under the same lock as a compaction's recount.
    fn write_queued(&self) -> std::io::Result<()> {
        let mut open = self.open();
        let (bytes, lines) = {
            let mut queue = self.queue();
            (
                std::mem::take(&mut queue.bytes),
                std::mem::take(&mut queue.lines),
            )
        };
        if bytes.is_empty() {
            return Ok(());
        }
        self.lines.fetch_add(lines, Ordering::Relaxed);
        if let Some(aside) = open.kept_aside.as_mut() {
            aside.extend_from_slice(&bytes);
        }
        let torn = std::mem::take(&mut open.torn);
        let Some(file) = open.file.as_mut() else {
            return Ok(());
        };
        let written = if torn {
            file.write_all(b"\n").and_then(|()| file.write_all(&bytes))
        } else {
            file.write_all(&bytes)
        };
        open.torn = written.is_err();
        written
    }

    /// The writer thread: waits for queued lines, lets more gather for `delay`, writes them;
    /// once closing, writes what is left and returns.
    fn run_writer(&self) {
        loop {
            let closing = {
                let mut queue = self.queue();
                while queue.bytes.is_empty() && !queue.closing {
                    queue = self
                        .queued
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                // Only closing signals the condvar now: appends to a non-empty queue do not.
                let deadline = Instant::now() + self.delay;
                while !queue.closing {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    queue = self
                        .queued
                        .wait_timeout(queue, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                queue.closing
            };
            if let Err(e) = self.write_queued() {
                tracing::error!(error = %e, "cannot journal dedup keys; a restart may forget them");
            }
            if closing {
                return;
            }
        }
    }
}

impl Journal {
    /// Opens (creating) the journal at `path` and starts its writer thread.
    pub fn open(path: PathBuf) -> std::io::Result<Journal> {
        Journal::open_with_delay(path, WRITE_DELAY)
    }

    /// [`Journal::open`] with another gathering delay (tests: a long one shows what only a
    /// flush, a drop or a compaction writes).
    pub fn open_with_delay(path: PathBuf, delay: Duration) -> std::io::Result<Journal> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let shared = Arc::new(Shared {
            path,
            open: Mutex::new(Open {
                file: Some(file),
                kept_aside: None,
                torn: false,
            }),
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            delay,
            lines: AtomicUsize::new(0),
            compacting: AtomicBool::new(false),
        });
        let for_thread = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("dedup-journal".to_owned())
            .spawn(move || for_thread.run_writer())?;
        Ok(Journal {
            shared,
            writer: Some(writer),
        })
    }

    /// Every readable entry, oldest first (queued lines are written first).
    pub fn entries(&self) -> Vec<(String, SystemTime)> {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "cannot write the dedup journal's queued lines");
        }
        let Ok(file) = File::open(&self.shared.path) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<(String, u64)>(&line).ok())
            .map(|(key, ms)| (key, UNIX_EPOCH + Duration::from_millis(ms)))
            .collect()
    }

    /// Appends one committed key.
    pub fn append(&self, key: &str, expires: SystemTime) -> std::io::Result<()> {
        self.append_many(std::iter::once((key, expires)))
    }

    /// Queues committed keys, one line each, for the writer thread (which writes a batch in
    /// one `write`, so a crash tears at most the last line, which replay skips).
    pub fn append_many<K: AsRef<str>>(
        &self,
        entries: impl Iterator<Item = (K, SystemTime)>,
    ) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(64);
        let mut count = 0usize;
        for (key, expires) in entries {
            serde_json::to_writer(&mut buf, &(key.as_ref(), unix_ms(expires)))?;
            buf.push(b'\n');
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        let was_empty = {
            let mut queue = self.shared.queue();
            let was_empty = queue.bytes.is_empty();
            queue.bytes.extend_from_slice(&buf);
            queue.lines += count;
            was_empty
        };
        // Only the first line of a batch wakes the writer; it sleeps until then.
        if was_empty {
            self.shared.queued.notify_one();
        }
        Ok(())
    }

    /// Writes every queued line now (a clean stop; tests).
    pub fn flush(&self) -> std::io::Result<()> {
        self.shared.write_queued()
    }

    /// True when the file holds many more lines than live keys and no compaction runs.
    pub fn needs_compaction(&self, max_entries: usize) -> bool {
        self.shared.lines.load(Ordering::Relaxed) > max_entries.saturating_mul(2)
            && !self.shared.compacting.load(Ordering::Relaxed)
    }

    /// Starts a compaction: false when one already runs. From now on written lines are also
    /// kept aside; take the snapshot of live keys *after* this returns, then call
    /// [`Journal::finish_compaction`] (or [`Journal::cancel_compaction`]).
    pub fn begin_compaction(&self) -> bool {
        if self.shared.compacting.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Lines queued before now belong to the old file (the snapshot has their keys).
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "cannot journal dedup keys; a restart may forget them");
        }
        self.shared.open().kept_aside = Some(Vec::new());
        true
    }

    /// Ends a begun compaction without writing anything.
    pub fn cancel_compaction(&self) {
        self.shared.open().kept_aside = None;
        self.shared.compacting.store(false, Ordering::Release);
    }

    /// Replaces the file with `live` plus the lines written since `begin_compaction`, its
    /// new file synced and the old one freed a step at a time. Blocks for about 10 ms per MiB
    /// of each: call it from a thread of its own ([`Journal::rewrite`] at startup does not
    /// pace the new file).
    pub fn finish_compaction<K: AsRef<str>>(
        &self,
        live: impl Iterator<Item = (K, SystemTime)>,
    ) -> std::io::Result<()> {
        self.finish(live, true)
    }

    /// [`Journal::finish_compaction`], its new file synced a step at a time when `stepped`.
    fn finish<K: AsRef<str>>(
        &self,
        live: impl Iterator<Item = (K, SystemTime)>,
        stepped: bool,
    ) -> std::io::Result<()> {
        let result = self.write_and_swap(live, stepped);
        self.shared.compacting.store(false, Ordering::Release);
        let old = result?;
        if let Some(old) = old {
            crate::slow_delete::shrink_open(&old)?;
        }
        Ok(())
    }

    /// Writes `live` to a temporary file (synced [`COMPACTION_STEP_BYTES`] at a time when
    /// `stepped`), then under the lock adds what was kept aside and renames it over the
    /// journal. Returns the replaced file, still open. Lines still queued are written to the
    /// new file after it.
    fn write_and_swap<K: AsRef<str>>(
        &self,
        live: impl Iterator<Item = (K, SystemTime)>,
        stepped: bool,
    ) -> std::io::Result<Option<File>> {
        let tmp = self.shared.path.with_extension("tmp");
        let written = (|| {
            let mut file = File::create(&tmp)?;
            let mut chunk = Vec::with_capacity(COMPACTION_STEP_BYTES + 128);
            let mut count = 0usize;
            for (key, expires) in live {
                serde_json::to_writer(&mut chunk, &(key.as_ref(), unix_ms(expires)))?;
                chunk.push(b'\n');
                count += 1;
                if chunk.len() >= COMPACTION_STEP_BYTES {
                    file.write_all(&chunk)?;
                    chunk.clear();
                    if stepped {
                        file.sync_data()?;
                        std::thread::sleep(COMPACTION_STEP_PAUSE);
                    }
                }
            }
            file.write_all(&chunk)?;
            file.sync_all()?;
            Ok::<_, std::io::Error>((file, count))
        })();
        let mut open = self.shared.open();
        let aside = open.kept_aside.take().unwrap_or_default();
        let (mut file, count) = written?;
        // Appends are not synced one by one either: the kept-aside lines reach the disk with
        // the file's next writeback, like every other append.
        file.write_all(&aside)?;
        fs::rename(&tmp, &self.shared.path)?;
        let old = open.file.replace(file);
        open.torn = false;
        let aside_lines = aside.iter().filter(|&&b| b == b'\n').count();
        self.shared
            .lines
            .store(count + aside_lines, Ordering::Relaxed);
        Ok(old)
    }

    /// Compacts at once (startup, before any request): the file holds exactly `live`.
    pub fn rewrite<K: AsRef<str>>(
        &self,
        live: impl Iterator<Item = (K, SystemTime)>,
    ) -> std::io::Result<()> {
        if !self.begin_compaction() {
            return Err(std::io::Error::other(
                "a journal compaction is already running",
            ));
        }
        self.finish(live, false)
    }

    /// True while a compaction runs.
    pub fn is_compacting(&self) -> bool {
        self.shared.compacting.load(Ordering::Acquire)
    }
}

impl Drop for Journal {
    /// Stops the writer thread after it wrote everything queued.
    fn drop(&mut self) {
        self.shared.queue().closing = true;
        self.shared.queued.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(j: &Journal) -> Vec<String> {
        j.entries().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn keys_appended_while_a_compaction_runs_survive_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("dedup.journal")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        for k in ["old", "live"] {
            j.append(k, later).unwrap();
        }
        assert!(j.begin_compaction());
        assert!(!j.begin_compaction(), "a second compaction began");
        j.append("during", later).unwrap();
        j.finish_compaction(std::iter::once(("live".to_owned(), later)))
            .unwrap();
        assert!(!j.is_compacting());
        j.append("after", later).unwrap();
        assert_eq!(keys(&j), ["live", "during", "after"]);
        assert!(!dir.path().join("dedup.tmp").exists());
    }

    /// The file's lines as they are on disk now (no flush).
    fn on_disk(dir: &tempfile::TempDir) -> String {
        fs::read_to_string(dir.path().join("dedup.journal")).unwrap()
    }

    /// A journal whose writer thread would wait an hour: only a flush, a compaction's start
    /// or a drop writes.
    fn held(dir: &tempfile::TempDir) -> Journal {
        Journal::open_with_delay(dir.path().join("dedup.journal"), Duration::from_secs(3600))
            .unwrap()
    }

    #[test]
    fn lines_are_queued_and_written_by_a_flush_not_by_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let j = held(&dir);
        let later = SystemTime::now() + Duration::from_secs(3600);
        j.append_many([("a", later), ("b", later)].into_iter())
            .unwrap();
        assert_eq!(on_disk(&dir), "", "a commit wrote to the file itself");
        j.flush().unwrap();
        assert_eq!(on_disk(&dir).lines().count(), 2);
    }

    #[test]
    fn the_writer_thread_writes_queued_lines_behind_the_commits() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("dedup.journal")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        for k in ["a", "b", "c"] {
            j.append(k, later).unwrap();
        }
        // No flush: the thread writes them within a few of its delays.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while on_disk(&dir).lines().count() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(WRITE_DELAY);
        }
        let text = on_disk(&dir);
        let keys: Vec<&str> = text.lines().map(|l| &l[2..3]).collect();
        assert_eq!(keys, ["a", "b", "c"], "{text}");
    }

    #[test]
    fn dropping_the_journal_ends_the_writers_wait_and_writes_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        let j = held(&dir);
        for i in 0..500 {
            j.append(&format!("k{i}"), later).unwrap();
        }
        // On a thread, so a drop that waited out the writer's hour fails instead of hanging.
        let (done, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(j);
            let _ = done.send(());
        });
        assert!(
            dropped.recv_timeout(Duration::from_secs(30)).is_ok(),
            "drop waited for the writer's delay"
        );
        let j = Journal::open(dir.path().join("dedup.journal")).unwrap();
        assert_eq!(keys(&j).len(), 500);
    }

    #[test]
    fn lines_written_during_a_compaction_are_kept_aside_and_queued_ones_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = held(&dir);
        let later = SystemTime::now() + Duration::from_secs(3600);
        j.append("stale", later).unwrap();
        j.append("live", later).unwrap();
        assert!(j.begin_compaction());
        // Queued before the compaction began: written to the old file by its start.
        assert_eq!(on_disk(&dir).lines().count(), 2);
        j.append("written", later).unwrap();
        j.flush().unwrap(); // reaches the old file and the kept-aside lines
        j.append("queued", later).unwrap();
        j.finish_compaction(std::iter::once(("live".to_owned(), later)))
            .unwrap();
        // Still queued at the swap: not in the new file yet, and written to it afterwards.
        assert!(!on_disk(&dir).contains("queued"), "{}", on_disk(&dir));
        assert_eq!(keys(&j), ["live", "written", "queued"]);
    }

    #[test]
    fn the_line_count_that_triggers_compaction_counts_each_written_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let j = held(&dir);
        let later = SystemTime::now() + Duration::from_secs(3600);
        for i in 0..5 {
            j.append(&format!("k{i}"), later).unwrap();
        }
        assert!(
            !j.needs_compaction(2),
            "queued lines are not in the file yet"
        );
        j.flush().unwrap();
        assert!(j.needs_compaction(2), "5 lines > 2 * 2");
        assert!(!j.needs_compaction(3));
    }

    #[test]
    fn after_a_failed_write_the_next_one_ends_the_torn_line_first() {
        let dir = tempfile::tempdir().unwrap();
        let j = held(&dir);
        let later = SystemTime::now() + Duration::from_secs(3600);
        // What a write cut short by a full disk leaves: part of a line, no newline.
        j.shared
            .open()
            .file
            .as_mut()
            .unwrap()
            .write_all(b"[\"cut\",17")
            .unwrap();
        j.shared.open().torn = true;
        j.append("next", later).unwrap();
        assert_eq!(keys(&j), ["next"], "{}", on_disk(&dir));
    }

    #[test]
    fn a_compaction_larger_than_one_sync_step_keeps_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let j = held(&dir);
        let later = SystemTime::now() + Duration::from_secs(3600);
        // ≈ 1.4 MB of lines: more than one step of COMPACTION_STEP_BYTES.
        let live: Vec<String> = (0..40_000).map(|i| format!("{i:024x}")).collect();
        assert!(j.begin_compaction());
        j.append("during", later).unwrap();
        j.flush().unwrap();
        j.finish_compaction(live.iter().map(|k| (k.as_str(), later)))
            .unwrap();
        let got = keys(&j);
        assert_eq!(got.len(), 40_001);
        assert_eq!(got[..40_000], live[..]);
        assert_eq!(got[40_000], "during");
        assert!(
            fs::metadata(dir.path().join("dedup.journal"))
                .unwrap()
                .len()
                > 1 << 20
        );
    }

    #[test]
    fn a_cancelled_compaction_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("dedup.journal")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        j.append("a", later).unwrap();
        assert!(j.begin_compaction());
        j.append("b", later).unwrap();
        j.cancel_compaction();
        assert!(j.begin_compaction(), "cancel did not end the compaction");
        j.cancel_compaction();
        assert_eq!(keys(&j), ["a", "b"]);
    }
}
